"""Values in Modbus registers: pure encode/decode, no I/O.

Modbus itself only moves 16-bit registers and single bits; how a device packs a number into them is
the device's choice, and it varies:

- `type`: int16 and uint16 take one register; int32, uint32 and float32 (IEEE 754) take two.
  `bool` is a coil or a discrete input (one bit, no register).
- `word_order`: which register holds the most significant half of a 32-bit value. "big" (the
  Modbus habit, high word first) or "little" (low word first, the "word swap" of many PLCs).
- `byte_order`: the order of the two bytes inside each register. "big" is what the Modbus standard
  specifies; "little" is seen on some devices.

For float32 123.456 (bytes 42 F6 E9 79, written ABCD) the four combinations are
ABCD (big/big) = [0x42F6, 0xE979], CDAB (word little) = [0xE979, 0x42F6],
BADC (byte little) = [0xF642, 0x79E9] and DCBA (both little) = [0x79E9, 0xF642].

A register holds a raw number; the physical value is `raw * scale + offset`, in the point's unit.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Literal

DataType = Literal["int16", "uint16", "int32", "uint32", "float32", "bool"]
Order = Literal["big", "little"]

REGISTER_COUNT: dict[str, int] = {
    "int16": 1,
    "uint16": 1,
    "int32": 2,
    "uint32": 2,
    "float32": 2,
}
"""Registers a value of each register type takes (bool takes a bit, not a register)."""

_STRUCT: dict[str, str] = {"int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "float32": "f"}

INTEGER_RANGE: dict[str, tuple[int, int]] = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
}


def register_count(data_type: str) -> int:
    """How many registers a value of `data_type` occupies."""
    try:
        return REGISTER_COUNT[data_type]
    except KeyError:
        raise ValueError(f"{data_type!r} is not a register type ({', '.join(REGISTER_COUNT)})") from None


def _words_to_wire(words: list[bytes], word_order: Order, byte_order: Order) -> list[bytes]:
    """Reorder big-endian 2-byte words (most significant first) into device order, or back.

    Both reorderings are their own inverse, so the same function encodes and decodes.
    """
    if word_order == "little":
        words = words[::-1]
    if byte_order == "little":
        words = [w[::-1] for w in words]
    return words


def encode_raw(raw: int | float, data_type: str, word_order: Order = "big", byte_order: Order = "big") -> list[int]:
    """The registers (0..65535 each) that hold the raw number `raw` as `data_type`.

    Integers must fit the type (ValueError otherwise); float32 rounds to single precision.
    """
    code = _STRUCT.get(data_type)
    if code is None:
        raise ValueError(f"{data_type!r} is not a register type ({', '.join(REGISTER_COUNT)})")
    if data_type in INTEGER_RANGE:
        if isinstance(raw, float):
            if not raw.is_integer():
                raise ValueError(f"{raw!r} is not an integer, cannot be stored as {data_type}")
            raw = int(raw)
        lo, hi = INTEGER_RANGE[data_type]
        if not lo <= raw <= hi:
            raise ValueError(f"{raw} does not fit {data_type} ({lo}..{hi})")
    try:
        data = struct.pack(">" + code, raw)
    except (struct.error, OverflowError) as exc:
        raise ValueError(f"{raw!r} cannot be stored as {data_type}: {exc}") from None
    words = [data[i : i + 2] for i in range(0, len(data), 2)]
    return [int.from_bytes(w, "big") for w in _words_to_wire(words, word_order, byte_order)]


def decode_raw(registers: Sequence[int], data_type: str, word_order: Order = "big", byte_order: Order = "big") -> int | float:
    """The raw number that `registers` (as read, in device order) hold as `data_type`."""
    code = _STRUCT.get(data_type)
    if code is None:
        raise ValueError(f"{data_type!r} is not a register type ({', '.join(REGISTER_COUNT)})")
    need = REGISTER_COUNT[data_type]
    if len(registers) != need:
        raise ValueError(f"{data_type} takes {need} register(s), got {len(registers)}")
    for r in registers:
        if not 0 <= r <= 0xFFFF:
            raise ValueError(f"register value {r} is not 16-bit")
    words = _words_to_wire([r.to_bytes(2, "big") for r in registers], word_order, byte_order)
    return struct.unpack(">" + code, b"".join(words))[0]


def to_physical(raw: int | float | bool, scale: float = 1.0, offset: float = 0.0) -> float:
    """Physical value of a raw number: `raw * scale + offset` (bools are 0/1, unscaled)."""
    if isinstance(raw, bool):
        return float(raw)
    return float(raw) * scale + offset


def to_raw(value: float, data_type: str, scale: float = 1.0, offset: float = 0.0) -> int | float:
    """The raw number to store for physical `value`: `(value - offset) / scale`.

    Integer types round to the nearest integer and must fit the type (ValueError otherwise).
    """
    if scale == 0:
        raise ValueError("scale must not be 0")
    raw = (float(value) - offset) / scale
    if data_type == "float32":
        return raw
    if data_type not in INTEGER_RANGE:
        raise ValueError(f"{data_type!r} is not a register type ({', '.join(REGISTER_COUNT)})")
    if not math.isfinite(raw):
        raise ValueError(f"{value!r} cannot be stored as {data_type}")
    rounded = round(raw)
    lo, hi = INTEGER_RANGE[data_type]
    if not lo <= rounded <= hi:
        raise ValueError(
            f"{value} (raw {rounded} with scale {scale}, offset {offset}) does not fit {data_type} ({lo}..{hi})"
        )
    return rounded


def encode_value(
    value: float,
    data_type: str,
    word_order: Order = "big",
    byte_order: Order = "big",
    scale: float = 1.0,
    offset: float = 0.0,
) -> list[int]:
    """Registers that hold physical `value` (scale and offset applied)."""
    return encode_raw(to_raw(value, data_type, scale, offset), data_type, word_order, byte_order)


def decode_value(
    registers: Sequence[int],
    data_type: str,
    word_order: Order = "big",
    byte_order: Order = "big",
    scale: float = 1.0,
    offset: float = 0.0,
) -> float:
    """Physical value held by `registers` (scale and offset applied)."""
    return to_physical(decode_raw(registers, data_type, word_order, byte_order), scale, offset)
