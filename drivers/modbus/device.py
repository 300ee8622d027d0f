"""Modbus devices (mass-flow controllers, pressure and temperature sensors, relay outputs) on pymodbus.

The transport is a pymodbus synchronous client, built by `make_transport` from the config's `url`:

    tcp://host:port  or  socket://host:port      Modbus TCP (MBAP framing)
    rtu+tcp://host:port                           RTU frames through a transparent serial-to-Ethernet
                                                  gateway (framing RTU, carried over TCP)
    anything else (/dev/ttyUSB0, a pty path)      Modbus RTU on a serial line, with the config's
                                                  baudrate, bytesize, parity and stopbits

The client is built with `retries=0`: the driver translates and never retries, the engine polls,
backs off and reopens. Tests hand in their own client.

Errors are typed: an exception response from the device is a `ModbusDeviceError` (a DriverError
naming the device, the request, the points and the exception code's meaning); no reply in time is a
`TransportTimeout`; a link that cannot be opened or broke is a `TransportError`. Each device has its
own client, so one dead device fails only its own reads.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pymodbus import FramerType
from pymodbus.client import ModbusBaseSyncClient, ModbusSerialClient, ModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ExceptionResponse, ModbusPDU

from drivers.base import DeviceConfig, Driver, DriverError, ValveDriver
from drivers.modbus.registermap import (
    BIT_KINDS,
    KIND_NAMES,
    MAX_READ_BITS,
    MAX_READ_REGISTERS,
    Point,
    ReadBlock,
    check_register_map,
    plan_reads,
)
from drivers.modbus.registers import decode_value, encode_value
from drivers.reading import Reading
from drivers.transport import TransportError, TransportTimeout

EXCEPTION_MEANINGS: dict[int, str] = {
    1: "ILLEGAL FUNCTION (the device does not support this function code)",
    2: "ILLEGAL DATA ADDRESS (the address or address range does not exist on the device)",
    3: "ILLEGAL DATA VALUE (the device refuses a value or count in the request)",
    4: "SERVER DEVICE FAILURE (the device failed while performing the request)",
    5: "ACKNOWLEDGE (accepted, still processing)",
    6: "SERVER DEVICE BUSY (the device is busy with a long command)",
    7: "NEGATIVE ACKNOWLEDGE",
    8: "MEMORY PARITY ERROR (the device's memory failed a consistency check)",
    10: "GATEWAY PATH UNAVAILABLE (the gateway has no path to the device)",
    11: "GATEWAY TARGET DEVICE FAILED TO RESPOND (the gateway got no reply from the device)",
}


def exception_meaning(code: int) -> str:
    return EXCEPTION_MEANINGS.get(code, f"exception code {code} (not defined by the Modbus standard)")


class ModbusDeviceError(DriverError):
    """The device answered a request with a Modbus exception response."""

    def __init__(
        self,
        device: str,
        request: str,
        function_code: int,
        address: int,
        count: int,
        points: tuple[str, ...],
        exception_code: int,
    ) -> None:
        self.device = device
        self.request = request
        self.function_code = function_code
        self.address = address
        self.count = count
        self.points = points
        self.exception_code = exception_code
        self.meaning = exception_meaning(exception_code)
        super().__init__(
            f"{device}: {request} (function {function_code}) refused with exception "
            f"{exception_code}: {self.meaning}"
        )


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if not parts.hostname or parts.port is None:
        raise ValueError(f"{url!r}: expected scheme://host:port")
    return parts.hostname, parts.port


def _url_kind(url: str) -> Literal["tcp", "rtu+tcp", "serial"]:
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("tcp", "socket"):
        return "tcp"
    if scheme in ("rtu+tcp", "rtu+socket"):
        return "rtu+tcp"
    return "serial"


def _check_url(url: str) -> str:
    if _url_kind(url) != "serial":
        _host_port(url)
    elif not url:
        raise ValueError("url must not be empty")
    return url


def make_modbus_client(config: "ModbusDeviceConfig | ModbusRelayValveConfig") -> ModbusBaseSyncClient:
    """The pymodbus client a device config names (TCP, RTU over TCP, or RTU on a serial line)."""
    kind = _url_kind(config.url)
    if kind in ("tcp", "rtu+tcp"):
        host, port = _host_port(config.url)
        return ModbusTcpClient(
            host,
            port=port,
            framer=FramerType.SOCKET if kind == "tcp" else FramerType.RTU,
            name=config.id,
            timeout=config.timeout_s,
            retries=0,
        )
    return ModbusSerialClient(
        config.url,
        framer=FramerType.RTU,
        baudrate=config.baudrate,
        bytesize=config.bytesize,
        parity=config.parity,
        stopbits=config.stopbits,  # type: ignore[arg-type]  # pyserial also takes 1.5
        name=config.id,
        timeout=config.timeout_s,
        retries=0,
    )


class _ModbusConfig(DeviceConfig):
    """Fields shared by the Modbus drivers; each model narrows `driver` and adds its own."""

    url: str = Field(
        description="tcp://host:port or socket://host:port (Modbus TCP), rtu+tcp://host:port "
        "(RTU through a serial gateway), or a serial device path (Modbus RTU)"
    )
    unit_id: int = Field(default=1, ge=0, le=255, description="Modbus unit (slave) id; 1..247 on a serial line")
    baudrate: int = Field(
        default=19200, description="RTU line speed (the Modbus serial-line default); parity as DeviceConfig (N)"
    )
    timeout_s: float = Field(default=1.0, gt=0, description="reply timeout, seconds")

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        return _check_url(url)


class _ModbusDriverMixin:
    """Open/close/identify and request execution shared by the Modbus drivers."""

    config: Any
    transport: ModbusBaseSyncClient

    @classmethod
    def make_transport(cls, config: DeviceConfig) -> ModbusBaseSyncClient:
        return make_modbus_client(config)  # type: ignore[arg-type]

    def open(self) -> None:
        if not self.transport.connect():
            raise TransportError(f"{self.config.id}: cannot connect to {self.config.url}")

    def close(self) -> None:
        self.transport.close()

    def _execute(
        self,
        what: str,
        call: Callable[[], ModbusPDU],
        function_code: int,
        address: int,
        count: int,
        points: tuple[str, ...],
    ) -> ModbusPDU:
        """Run one request; turn every failure into the project's typed errors."""
        dev = self.config.id
        try:
            response = call()
        except ConnectionException as exc:
            raise TransportError(f"{dev}: {what}: link to {self.config.url} failed: {exc}") from exc
        except ModbusIOException as exc:
            if "no response" in str(exc).lower():
                raise TransportTimeout(
                    f"{dev}: no reply to {what} within {self.config.timeout_s} s from {self.config.url}"
                ) from exc
            raise DriverError(f"{dev}: {what}: unusable reply: {exc}") from exc
        except ModbusException as exc:
            raise DriverError(f"{dev}: {what}: {exc}") from exc
        except OSError as exc:
            raise TransportError(f"{dev}: {what}: I/O error on {self.config.url}: {exc}") from exc
        if isinstance(response, ExceptionResponse):
            raise ModbusDeviceError(dev, what, function_code, address, count, points, response.exception_code)
        if response.isError():
            raise DriverError(f"{dev}: {what}: error reply {response}")
        return response

    def _read_bits(self, kind: str, address: int, count: int, points: tuple[str, ...], what: str) -> list[bool]:
        fc = 1 if kind == "coil" else 2
        method = self.transport.read_coils if kind == "coil" else self.transport.read_discrete_inputs
        response = self._execute(
            what,
            lambda: method(address, count=count, device_id=self.config.unit_id),
            fc,
            address,
            count,
            points,
        )
        bits = list(response.bits)
        if len(bits) < count:
            raise DriverError(f"{self.config.id}: {what}: {len(bits)} bits in the reply, asked for {count}")
        return [bool(b) for b in bits[:count]]

    def _read_registers(self, kind: str, address: int, count: int, points: tuple[str, ...], what: str) -> list[int]:
        fc = 3 if kind == "holding" else 4
        method = self.transport.read_holding_registers if kind == "holding" else self.transport.read_input_registers
        response = self._execute(
            what,
            lambda: method(address, count=count, device_id=self.config.unit_id),
            fc,
            address,
            count,
            points,
        )
        registers = list(response.registers)
        if len(registers) != count:
            raise DriverError(
                f"{self.config.id}: {what}: {len(registers)} registers in the reply, asked for {count}"
            )
        return registers


class ModbusDeviceConfig(_ModbusConfig):
    """Any Modbus device by its register map: `[[devices]]` entry with driver = "modbus.device"."""

    driver: Literal["modbus.device"] = "modbus.device"
    points: list[Point] = Field(min_length=1, description="the register map")
    max_gap: int = Field(
        default=0,
        ge=0,
        le=MAX_READ_REGISTERS,
        description="unmapped addresses a read may span to merge points into one request",
    )
    max_read_registers: int = Field(default=MAX_READ_REGISTERS, ge=1, le=MAX_READ_REGISTERS)
    max_read_bits: int = Field(default=MAX_READ_BITS, ge=1, le=MAX_READ_BITS)

    @model_validator(mode="after")
    def _map(self) -> "ModbusDeviceConfig":
        check_register_map(self.points)
        return self


class ModbusDevice(_ModbusDriverMixin, Driver):
    """Any Modbus device described by a register map in its configuration."""

    kind = "modbus"
    name = "modbus.device"
    Config = ModbusDeviceConfig
    simulator = "simulators.modbus.device:ModbusDeviceSimulator"

    config: ModbusDeviceConfig

    def __init__(self, config: DeviceConfig, transport: Any) -> None:
        super().__init__(config, transport)
        self._points = {p.name: p for p in self.config.points}
        self.plan: list[ReadBlock] = plan_reads(
            self.config.points,
            max_gap=self.config.max_gap,
            max_registers=self.config.max_read_registers,
            max_bits=self.config.max_read_bits,
        )
        """The read requests one `read()` makes, in order."""

    @property
    def units(self) -> dict[str, str]:
        """Unit of each point's value, by name (readings carry values only)."""
        return {p.name: p.unit or "1" for p in self.config.points}

    def read(self, at: datetime | None = None) -> Reading:
        """Every readable point, in physical units; stamped `at` (the engine's clock), else now (UTC).

        All planned requests are made; the first failure raises (no partial reading).
        """
        values: dict[str, float] = {}
        for block in self.plan:
            names = tuple(p.name for p in block.points)
            what = f"read of {block.describe()}"
            if block.kind in BIT_KINDS:
                bits = self._read_bits(block.kind, block.address, block.count, names, what)
                for p in block.points:
                    values[p.name] = float(bits[p.address - block.address])
            else:
                regs = self._read_registers(block.kind, block.address, block.count, names, what)
                for p in block.points:
                    i = p.address - block.address
                    values[p.name] = decode_value(
                        regs[i : i + p.width], p.type, p.word_order, p.byte_order, p.scale, p.offset  # type: ignore[arg-type]
                    )
        return Reading(time=at or datetime.now(UTC), device=self.device_id, values=values)

    def write(self, name: str, value: float | bool) -> None:
        """Write a writable point: a coil (truthy/falsy) or a holding-register value in physical units.

        One register is written with function 6, more with function 16; a coil with function 5.
        ValueError for an unknown or read-only point, or a value the register type cannot hold.
        """
        point = self._points.get(name)
        if point is None:
            raise ValueError(f"{self.device_id}: no point {name!r}; points: {', '.join(self._points)}")
        if not point.writable:
            raise ValueError(f"{self.device_id}: point {name!r} is not writable")
        unit_id = self.config.unit_id
        if point.kind == "coil":
            on = bool(value)
            self._execute(
                f"write of coil {point.address} ({name}) = {int(on)}",
                lambda: self.transport.write_coil(point.address, on, device_id=unit_id),
                5,
                point.address,
                1,
                (name,),
            )
            return
        try:
            regs = encode_value(float(value), point.type, point.word_order, point.byte_order, point.scale, point.offset)  # type: ignore[arg-type]
        except ValueError as exc:
            raise ValueError(f"{self.device_id}: point {name!r}: {exc}") from None
        what = f"write of holding registers {point.address}..{point.last} ({name}) = {value}"
        if len(regs) == 1:
            self._execute(
                what,
                lambda: self.transport.write_register(point.address, regs[0], device_id=unit_id),
                6,
                point.address,
                1,
                (name,),
            )
        else:
            self._execute(
                what,
                lambda: self.transport.write_registers(point.address, regs, device_id=unit_id),
                16,
                point.address,
                len(regs),
                (name,),
            )

    def identify(self) -> dict[str, Any]:
        return {
            "device": self.device_id,
            "driver": self.name,
            "url": self.config.url,
            "unit_id": self.config.unit_id,
            "points": {p.name: f"{KIND_NAMES[p.kind]} {p.address} {p.type} {p.unit}" for p in self.config.points},
            "reads_per_poll": len(self.plan),
        }


class ModbusRelayValveConfig(_ModbusConfig):
    """A relay manifold as a stream selector: `[[valves]]` entry with driver = "modbus.relay_valve"."""

    driver: Literal["modbus.relay_valve"] = "modbus.relay_valve"
    positions: int = Field(ge=2, le=64, description="number of streams (one relay each)")
    first_coil: int = Field(default=0, ge=0, le=65535, description="coil address of position 1")
    safe_position: int = Field(default=1, ge=1, description="the stream parked on (shutdown, faults)")

    @model_validator(mode="after")
    def _fits(self) -> "ModbusRelayValveConfig":
        if self.first_coil + self.positions - 1 > 65535:
            raise ValueError("first_coil + positions runs past coil 65535")
        if self.safe_position > self.positions:
            raise ValueError(f"safe_position {self.safe_position} > positions {self.positions}")
        return self


class ModbusRelayValve(_ModbusDriverMixin, ValveDriver):
    """A solenoid manifold on Modbus relay outputs, used as a stream selector.

    Position N (1-based) is coil `first_coil + N - 1` on and every other coil of the manifold off.
    `goto` writes all the manifold's coils in one request (function 15), so no state with two
    streams selected is ever commanded; `position` reads the coils back and raises when not exactly
    one is on.
    """

    name = "modbus.relay_valve"
    Config = ModbusRelayValveConfig
    simulator = "simulators.modbus.device:ModbusRelayValveSimulator"

    config: ModbusRelayValveConfig

    def _coils(self) -> str:
        c = self.config
        return f"coils {c.first_coil}..{c.first_coil + c.positions - 1}"

    def goto(self, position: int) -> None:
        c = self.config
        if not 1 <= position <= c.positions:
            raise ValueError(f"{self.device_id}: position {position} is not in 1..{c.positions}")
        states = [i == position - 1 for i in range(c.positions)]
        self._execute(
            f"write of {self._coils()} for position {position}",
            lambda: self.transport.write_coils(c.first_coil, states, device_id=c.unit_id),
            15,
            c.first_coil,
            c.positions,
            (),
        )

    def position(self) -> int:
        c = self.config
        what = f"read of {self._coils()}"
        bits = self._read_bits("coil", c.first_coil, c.positions, (), what)
        on = [i + 1 for i, b in enumerate(bits) if b]
        if len(on) != 1:
            pattern = "".join("1" if b else "0" for b in bits)
            raise DriverError(
                f"{self.device_id}: {self._coils()} read {pattern}: {len(on)} relays on, "
                f"a stream selector needs exactly one"
            )
        return on[0]

    def positions(self) -> int:
        return self.config.positions

    def identify(self) -> dict[str, Any]:
        return {
            "device": self.device_id,
            "driver": self.name,
            "url": self.config.url,
            "unit_id": self.config.unit_id,
            "coils": self._coils(),
        }
