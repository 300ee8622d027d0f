"""A Modbus device's register map, declared in configuration, and the reads that cover it.

One `Point` is one named quantity: where it lives (register kind and 0-based protocol address),
how it is packed (see `registers.py`) and what it means (unit, scale, offset). Addresses are the
addresses on the wire, counted from 0: a manual's "40101" or "holding register 101" (1-based,
kind-prefixed notation) is `kind = "holding"`, `address = 100`.

The same map drives the driver (what to read, how to decode) and the simulator (what to serve, how
to encode), so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from drivers.modbus.registers import DataType, Order, register_count
from drivers.reading import UNITS, unit_of

RegisterKind = Literal["holding", "input", "coil", "discrete"]

BIT_KINDS = frozenset({"coil", "discrete"})
WRITABLE_KINDS = frozenset({"holding", "coil"})

READ_FUNCTION: dict[str, int] = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}
"""Modbus function code that reads each kind."""

KIND_NAMES: dict[str, str] = {
    "coil": "coils",
    "discrete": "discrete inputs",
    "holding": "holding registers",
    "input": "input registers",
}

MAX_READ_REGISTERS = 125
"""The Modbus limit of registers per read (function codes 3 and 4)."""
MAX_READ_BITS = 2000
"""The Modbus limit of coils or discrete inputs per read (function codes 1 and 2)."""


class Point(BaseModel):
    """One named value in a device's register map."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$", description="quantity name in readings")
    kind: RegisterKind = Field(description="holding | input (registers), coil | discrete (bits)")
    address: int = Field(ge=0, le=65535, description="0-based protocol address of the first register or bit")
    type: DataType | None = Field(
        default=None,
        description="int16 | uint16 | int32 | uint32 | float32 for registers (default uint16); bool for bits",
    )
    word_order: Order = Field(default="big", description="big: high word first; little: low word first")
    byte_order: Order = Field(default="big", description="byte order inside each register")
    scale: float = Field(default=1.0, description="value = raw * scale + offset")
    offset: float = 0.0
    unit: str | None = Field(
        default=None,
        description="unit of the physical value; fixed for names ghgnet knows (flow: sccm, pressure: hPa ...)",
    )
    writable: bool = Field(default=False, description="may be written (holding registers and coils only)")
    readable: bool = Field(default=True, description="read by every poll (false for write-only commands)")

    @model_validator(mode="after")
    def _consistent(self) -> "Point":
        bits = self.kind in BIT_KINDS
        if self.type is None:
            self.type = "bool" if bits else "uint16"
        if bits and self.type != "bool":
            raise ValueError(f"a {self.kind} is a single bit: type must be bool, not {self.type}")
        if not bits and self.type == "bool":
            raise ValueError(f"{KIND_NAMES[self.kind]} hold numbers: type bool is for coils and discrete inputs")
        if bits and (self.scale != 1.0 or self.offset != 0.0):
            raise ValueError("scale and offset do not apply to coils and discrete inputs")
        if self.scale == 0:
            raise ValueError("scale must not be 0")
        if self.writable and self.kind not in WRITABLE_KINDS:
            raise ValueError(f"{KIND_NAMES[self.kind]} are read-only in Modbus: writable must be false")
        if not self.readable and not self.writable:
            raise ValueError("a point that is neither readable nor writable is not used")
        if self.address + self.width - 1 > 65535:
            raise ValueError(f"{self.type} at {self.address} runs past address 65535")
        if self.unit is None:
            self.unit = unit_of(self.name)
        elif self.name in UNITS and self.unit != UNITS[self.name]:
            raise ValueError(
                f"{self.name!r} is always in {UNITS[self.name]} in ghgnet readings, not {self.unit!r}: "
                f"set scale/offset to convert the device's unit"
            )
        return self

    @property
    def width(self) -> int:
        """Addresses the point occupies (registers, or 1 bit)."""
        return 1 if self.type in (None, "bool") else register_count(self.type)

    @property
    def last(self) -> int:
        return self.address + self.width - 1


def check_register_map(points: Sequence[Point]) -> None:
    """Names unique, no two points of one kind sharing an address (ValueError otherwise)."""
    seen: dict[str, int] = {}
    for i, p in enumerate(points):
        if p.name in seen:
            raise ValueError(f"point name {p.name!r} is used twice (points {seen[p.name]} and {i})")
        seen[p.name] = i
    for kind in KIND_NAMES:
        same = sorted((p for p in points if p.kind == kind), key=lambda p: p.address)
        for a, b in zip(same, same[1:]):
            if b.address <= a.last:
                raise ValueError(
                    f"points {a.name!r} ({a.address}..{a.last}) and {b.name!r} ({b.address}..{b.last}) "
                    f"overlap in the {KIND_NAMES[kind]}"
                )


@dataclass(frozen=True)
class ReadBlock:
    """One read request: `count` registers or bits of `kind` from `address`, covering `points`."""

    kind: str
    address: int
    count: int
    points: tuple[Point, ...]

    @property
    def function_code(self) -> int:
        return READ_FUNCTION[self.kind]

    def describe(self) -> str:
        names = ", ".join(p.name for p in self.points)
        return f"{KIND_NAMES[self.kind]} {self.address}..{self.address + self.count - 1} ({names})"


def plan_reads(
    points: Sequence[Point],
    *,
    max_gap: int = 0,
    max_registers: int = MAX_READ_REGISTERS,
    max_bits: int = MAX_READ_BITS,
) -> list[ReadBlock]:
    """The fewest reads that cover every readable point, in kind order (coils, discrete inputs,
    holding, input), then address order.

    Points of one kind are merged into one request while the unmapped addresses between them are at
    most `max_gap` (0: only adjacent points; many devices refuse reads of unmapped addresses) and
    the request stays within the per-request limit. A point is never split across requests.
    """
    blocks: list[ReadBlock] = []
    for kind in ("coil", "discrete", "holding", "input"):
        limit = max_bits if kind in BIT_KINDS else max_registers
        todo = sorted((p for p in points if p.kind == kind and p.readable), key=lambda p: p.address)
        current: list[Point] = []
        for p in todo:
            if current:
                start, end = current[0].address, max(q.last for q in current)
                if p.address - end - 1 <= max_gap and p.last - start + 1 <= limit:
                    current.append(p)
                    continue
                blocks.append(_block(kind, current))
            current = [p]
        if current:
            blocks.append(_block(kind, current))
    return blocks


def _block(kind: str, points: list[Point]) -> ReadBlock:
    start = points[0].address
    end = max(p.last for p in points)
    return ReadBlock(kind, start, end - start + 1, tuple(points))
