"""A simulated Modbus device: a real pymodbus server whose registers follow a register map.

The server runs in a background thread with its own asyncio loop (`start()` / `stop()`), as

    mode="tcp"       Modbus TCP on host:port (port 0: a free port, kept across power cycles)
    mode="rtu+tcp"   RTU frames over TCP (a transparent serial-to-Ethernet gateway)
    mode="rtu"       Modbus RTU on a pseudo-terminal: the pymodbus serial server opens one pty, the
                     client opens `url` (another pty), and a thread joins the two like a null-modem
                     cable, recording every byte each way (`wire_to_device`, `wire_to_client`)

Its registers are filled from the same `Point` list the driver is configured with
(drivers/modbus/registermap.py) and encoded with drivers/modbus/registers.py: on every request the
non-writable points take `values(t)[name]` (t = the injected clock's UTC time; a later issue ties
this to the gas bench). Writable points (setpoints, relays) keep what the client wrote; `value(name)`
reads any point back in physical units, `set_value` forces one.

Every request that reaches the device is logged in `requests` (unit id, function code, address,
count, written values): tests assert the exact requests a driver makes.

Faults on demand:
- `refuse(kind, first, last, code)`: any request touching those addresses gets an exception
  response with `code` (2 illegal data address, 4 device failure, ...); a refused write changes
  nothing.
- `inject("silent")`: requests are received (and logged) but never answered: the client times out.
- `inject("stuck")`: writes are acknowledged but not applied (a relay or setpoint that does not move).
- `power_off()` / `power_on()`: the server stops (TCP: connections dropped, connects refused; RTU:
  nobody answers on the line) and comes back on the same port or line.
- `clear()` removes the injected faults.
As a real device does, it refuses addresses that are not in its map (exception 2), writes to points
that are not writable (exception 2) and function codes other than 1-6, 15 and 16 (exception 1), and
stays silent to requests for another unit id.
"""

from __future__ import annotations

import asyncio
import os
import select
import threading
import tty
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.pdu import ExceptionResponse, ModbusPDU
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from drivers.modbus.registermap import BIT_KINDS, KIND_NAMES, Point, check_register_map
from drivers.modbus.registers import decode_value, encode_value
from ghgnet.clock import Clock, ScaledClock

Values = Callable[[datetime], Mapping[str, float | bool]]
Mode = Literal["tcp", "rtu+tcp", "rtu"]

KIND_OF_FUNCTION: dict[int, str] = {1: "coil", 5: "coil", 15: "coil", 2: "discrete", 3: "holding", 6: "holding", 16: "holding", 4: "input"}
WRITE_FUNCTIONS = frozenset({5, 6, 15, 16})
FAULTS = ("silent", "stuck")


@dataclass(frozen=True)
class ModbusRequest:
    """One request as the device received it. `values`: what a write carried (registers or bits)."""

    unit_id: int
    function_code: int
    address: int
    count: int
    values: tuple[int | bool, ...] = ()


@dataclass(frozen=True)
class Refusal:
    kind: str
    first: int
    last: int
    code: int


class _RefusedRequest(ModbusPDU):
    """Stands in for a request the device refuses: the server answers it with an exception response
    and never touches the datastore (pymodbus lets a server's trace_pdu replace a received PDU)."""

    def __init__(self, request: ModbusPDU, code: int) -> None:
        super().__init__(dev_id=request.dev_id, transaction_id=request.transaction_id)
        self.function_code = request.function_code
        self.refusal_code = code

    async def datastore_update(self, context: Any, device_id: int) -> ModbusPDU:
        return ExceptionResponse(self.function_code, self.refusal_code, device_id=device_id)


def _request_of(pdu: ModbusPDU) -> ModbusRequest:
    fc = pdu.function_code
    if fc in (5,):
        return ModbusRequest(pdu.dev_id, fc, pdu.address, 1, tuple(bool(b) for b in pdu.bits[:1]))
    if fc == 15:
        bits = tuple(bool(b) for b in pdu.bits)
        count = pdu.count or len(bits)
        return ModbusRequest(pdu.dev_id, fc, pdu.address, count, bits[:count])
    if fc in (6, 16):
        regs = tuple(int(r) for r in pdu.registers)
        return ModbusRequest(pdu.dev_id, fc, pdu.address, len(regs), regs)
    return ModbusRequest(pdu.dev_id, fc, getattr(pdu, "address", 0), getattr(pdu, "count", 0))


class NullModem:
    """Two pseudo-terminals joined back to back by a thread, like a null-modem cable.

    The client opens `client_path`, the device `device_path`. The slave ends stay open here, so
    either side may open and close its end at will. Every byte is recorded per direction.
    """

    def __init__(self, link: str | Path | None = None) -> None:
        self._m_client, self._s_client = os.openpty()
        self._m_device, self._s_device = os.openpty()
        for fd in (self._s_client, self._s_device):
            tty.setraw(fd)
        self.client_path = os.ttyname(self._s_client)
        self.device_path = os.ttyname(self._s_device)
        self.link = Path(link) if link else None
        if self.link:
            self.link.parent.mkdir(parents=True, exist_ok=True)
            if self.link.is_symlink() or self.link.exists():
                self.link.unlink()
            self.link.symlink_to(self.client_path)
        self.to_device = bytearray()
        self.to_client = bytearray()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="modbus-sim-null-modem", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return str(self.link or self.client_path)

    def _loop(self) -> None:
        route = {self._m_client: (self._m_device, self.to_device), self._m_device: (self._m_client, self.to_client)}
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select(list(route), [], [], 0.1)
            except (OSError, ValueError):
                return
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
                if not data:
                    continue
                out, log = route[fd]
                with self._lock:
                    log.extend(data)
                try:
                    os.write(out, data)
                except OSError:
                    pass

    def take(self) -> tuple[bytes, bytes]:
        """Bytes sent to the device and to the client since the last take."""
        with self._lock:
            to_device, to_client = bytes(self.to_device), bytes(self.to_client)
            self.to_device.clear()
            self.to_client.clear()
        return to_device, to_client

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for fd in (self._m_client, self._s_client, self._m_device, self._s_device):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.link and self.link.is_symlink():
            self.link.unlink()


class ModbusDeviceSimulator:
    """One simulated Modbus device (one unit id) behind a real pymodbus server."""

    def __init__(
        self,
        points: Sequence[Point],
        values: Values | None = None,
        *,
        unit_id: int = 1,
        mode: Mode = "tcp",
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Clock | None = None,
        link: str | Path | None = None,
        name: str = "modbus",
    ) -> None:
        check_register_map(points)
        if mode not in ("tcp", "rtu+tcp", "rtu"):
            raise ValueError(f"mode must be tcp, rtu+tcp or rtu, not {mode!r}")
        self.points = {p.name: p for p in points}
        self.values = values
        self.unit_id = unit_id
        self.mode: Mode = mode
        self.host = host
        self.port = port
        self.clock: Clock = clock or ScaledClock()
        self.name = name
        self._link = link
        self._lock = threading.Lock()
        self._store: dict[str, dict[int, int | bool]] = {k: {} for k in KIND_NAMES}
        self._held: dict[str, float | bool] = {}
        self._requests: list[ModbusRequest] = []
        self._refusals: list[Refusal] = []
        self._faults: set[str] = set()
        self.errors: list[str] = []
        """Exceptions raised by `values` (each also answered with exception 4, device failure)."""
        for p in points:
            self._encode(p, False if p.kind in BIT_KINDS else 0.0)
        self._initial_values()
        self._modem: NullModem | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None

    @classmethod
    def for_config(cls, config: Any, values: Values | None = None, **kwargs: Any) -> "ModbusDeviceSimulator":
        """A simulator for a `ModbusDevice.Config` (its points and unit id)."""
        kwargs.setdefault("name", config.id)
        return cls(config.points, values, unit_id=config.unit_id, **kwargs)

    # ----- lifecycle -----

    @property
    def url(self) -> str:
        """What a driver's `url` must say to reach this device."""
        if self.mode == "rtu":
            if self._modem is None:
                raise RuntimeError("start() the simulator first: the pty is made then")
            return self._modem.url
        scheme = "tcp" if self.mode == "tcp" else "rtu+tcp"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> "ModbusDeviceSimulator":
        """Start the server (and, for RTU, the pty line); returns once it accepts requests."""
        if self.mode == "rtu" and self._modem is None:
            self._modem = NullModem(self._link)
        self.power_on()
        return self

    def stop(self) -> None:
        """Stop the server and, for RTU, the pty line; every thread started is joined."""
        self.power_off()
        if self._modem is not None:
            self._modem.close()
            self._modem = None

    def __enter__(self) -> "ModbusDeviceSimulator":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def power_on(self) -> None:
        """Start the server (on the same port or line as before, if it ran already)."""
        if self._thread is not None:
            return
        self._ready.clear()
        self._start_error = None
        self._thread = threading.Thread(target=self._run, name=f"modbus-sim-{self.name}", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=10) or self._start_error is not None:
            error = self._start_error
            self.power_off()
            raise RuntimeError(f"modbus simulator {self.name} did not start: {error}")

    def power_off(self) -> None:
        """Stop the server (the device goes dead); the pty line, if any, stays."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        if self._loop is not None and self._stopping is not None:
            try:
                self._loop.call_soon_threadsafe(self._stopping.set)
            except RuntimeError:
                pass  # the loop already ended
        thread.join(timeout=10)
        self._loop = None
        self._stopping = None

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve(loop))
        except BaseException as exc:  # reported to start(), which raises it
            self._start_error = exc
        finally:
            self._ready.set()
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            asyncio.set_event_loop(None)
            loop.close()

    async def _serve(self, loop: asyncio.AbstractEventLoop) -> None:
        device = self._sim_device()
        server: ModbusTcpServer | ModbusSerialServer
        if self.mode == "rtu":
            assert self._modem is not None
            server = ModbusSerialServer(
                device, framer=FramerType.RTU, port=self._modem.device_path, trace_pdu=self._trace_pdu
            )
        else:
            server = ModbusTcpServer(
                device,
                framer=FramerType.SOCKET if self.mode == "tcp" else FramerType.RTU,
                address=(self.host, self.port),
                trace_pdu=self._trace_pdu,
            )
        self._stopping = asyncio.Event()
        await server.serve_forever(background=True)
        try:
            if self.mode != "rtu":
                self.port = server.transport.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self._loop = loop
            self._ready.set()
            await self._stopping.wait()
        finally:
            # asyncio finishes accepting a connection in a task of its own, and a task that
            # finds the server already closed leaves the accepted socket open (the client would
            # then wait on it instead of seeing the device gone). Connections a client made
            # before power_off() was called are already queued: let the loop take them in
            # before closing, then close whatever the listener did not.
            for _ in range(5):
                await asyncio.sleep(0)
            connections = list(server.active_connections.values())
            await server.shutdown()
            for _ in range(3):
                await asyncio.sleep(0)
            for connection in connections + list(server.active_connections.values()):
                if connection.transport:
                    connection.transport.close()
            await asyncio.sleep(0)

    def _sim_device(self) -> SimDevice:
        """The pymodbus datastore: one block per kind spanning the mapped addresses.

        Which addresses are valid is decided in `_trace_pdu` (exactly, per point); the blocks only
        hold the values, refreshed from the store by `_action` on every access.
        """
        blocks: list[list[SimData]] = []
        for kind in ("coil", "discrete", "holding", "input"):
            pts = [p for p in self.points.values() if p.kind == kind]
            if not pts:
                blocks.append(
                    [SimData(0, values=False, datatype=DataType.BITS)]
                    if kind in BIT_KINDS
                    else [SimData(0, datatype=DataType.INVALID)]
                )
                continue
            first = min(p.address for p in pts)
            size = max(p.last for p in pts) - first + 1
            if kind in BIT_KINDS:
                blocks.append([SimData(first, values=[False] * size, datatype=DataType.BITS)])
            else:
                blocks.append([SimData(first, values=[0] * size, datatype=DataType.REGISTERS)])
        return SimDevice(self.unit_id, simdata=(blocks[0], blocks[1], blocks[2], blocks[3]), action=self._action)

    # ----- the device's behaviour (runs in the server thread) -----

    def _trace_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU | None:
        if sending:
            return pdu
        request = _request_of(pdu)
        with self._lock:
            self._requests.append(request)
            silent = "silent" in self._faults
        if request.unit_id != self.unit_id or silent:
            return None  # the server handles no PDU: nothing is answered
        code = self._refusal_for(request)
        return _RefusedRequest(pdu, code) if code else pdu

    def _refusal_for(self, request: ModbusRequest) -> int | None:
        kind = KIND_OF_FUNCTION.get(request.function_code)
        if kind is None:
            return ExcCodes.ILLEGAL_FUNCTION
        first, last = request.address, request.address + max(request.count, 1) - 1
        covered: set[int] = set()
        for p in self.points.values():
            if p.kind == kind and p.address <= last and p.last >= first:
                if request.function_code in WRITE_FUNCTIONS and not p.writable:
                    return ExcCodes.ILLEGAL_ADDRESS
                covered.update(range(max(p.address, first), min(p.last, last) + 1))
        if len(covered) != last - first + 1:
            return ExcCodes.ILLEGAL_ADDRESS
        with self._lock:
            for r in self._refusals:
                if r.kind == kind and r.first <= last and r.last >= first:
                    return r.code
        return None

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """pymodbus calls this before serving each request: refresh the block from the store."""
        kind = KIND_OF_FUNCTION[function_code]
        try:
            self._refresh()
        except Exception as exc:  # a broken values() is a failing device, not a dead server
            with self._lock:
                self.errors.append(f"values(t) failed: {exc!r}")
            return ExcCodes.DEVICE_FAILURE
        with self._lock:
            store = self._store[kind]
            if set_values is not None and "stuck" not in self._faults:
                for i, v in enumerate(set_values):
                    store[address + i] = bool(v) if kind in BIT_KINDS else int(v)
            if kind in BIT_KINDS:
                for addr, bit in store.items():
                    i, mask = addr // 16 - start_address, 1 << (addr % 16)
                    if 0 <= i < len(registers):
                        registers[i] = (registers[i] | mask) if bit else (registers[i] & ~mask)
            else:
                for addr, reg in store.items():
                    i = addr - start_address
                    if 0 <= i < len(registers):
                        registers[i] = int(reg)
        return None

    def _refresh(self) -> None:
        current = self.values(self.clock.now()) if self.values is not None else {}
        with self._lock:
            for p in self.points.values():
                if p.writable:
                    continue
                value = self._held.get(p.name, current.get(p.name))
                if value is not None:
                    self._encode(p, value)

    def _initial_values(self) -> None:
        """Writable points start from values(t) at creation when it names them."""
        if self.values is None:
            return
        current = self.values(self.clock.now())
        with self._lock:
            for p in self.points.values():
                if p.name in current:
                    self._encode(p, current[p.name])

    def _encode(self, p: Point, value: float | bool) -> None:
        store = self._store[p.kind]
        if p.kind in BIT_KINDS:
            store[p.address] = bool(value)
            return
        regs = encode_value(float(value), p.type, p.word_order, p.byte_order, p.scale, p.offset)  # type: ignore[arg-type]
        for i, r in enumerate(regs):
            store[p.address + i] = r

    # ----- what tests and the gas bench see -----

    def value(self, name: str) -> float | bool:
        """A point's current value in physical units (what a client reading it now would get,
        before the next refresh from `values`)."""
        p = self.points[name]
        with self._lock:
            store = self._store[p.kind]
            if p.kind in BIT_KINDS:
                return bool(store[p.address])
            regs = [int(store[p.address + i]) for i in range(p.width)]
        return decode_value(regs, p.type, p.word_order, p.byte_order, p.scale, p.offset)  # type: ignore[arg-type]

    def set_value(self, name: str, value: float | bool) -> None:
        """Force a point: a writable one as if a client wrote it, another one held at `value`
        (overriding `values`) until `release(name)`."""
        p = self.points[name]
        with self._lock:
            if not p.writable:
                self._held[name] = value
            self._encode(p, value)

    def release(self, name: str) -> None:
        with self._lock:
            self._held.pop(name, None)

    @property
    def requests(self) -> list[ModbusRequest]:
        """Every request received, oldest first."""
        with self._lock:
            return list(self._requests)

    def take_requests(self) -> list[ModbusRequest]:
        """The requests received since the last take (and forget them)."""
        with self._lock:
            taken, self._requests = self._requests, []
        return taken

    def take_wire(self) -> tuple[bytes, bytes]:
        """RTU only: the bytes on the line (to the device, to the client) since the last take."""
        if self._modem is None:
            raise RuntimeError("the byte log exists in mode 'rtu' while started")
        return self._modem.take()

    def refuse(self, kind: str, first: int, last: int | None = None, code: int = ExcCodes.DEVICE_FAILURE) -> None:
        """Answer every request touching `first..last` of `kind` with exception `code`."""
        if kind not in KIND_NAMES:
            raise ValueError(f"kind must be one of {', '.join(KIND_NAMES)}")
        with self._lock:
            self._refusals.append(Refusal(kind, first, first if last is None else last, int(code)))

    def inject(self, fault: str) -> None:
        """'silent' (never answer) or 'stuck' (acknowledge writes, apply none)."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; faults: {', '.join(FAULTS)}")
        with self._lock:
            self._faults.add(fault)

    def clear(self) -> None:
        """Remove every injected fault and refusal."""
        with self._lock:
            self._faults.clear()
            self._refusals.clear()


class ModbusRelayValveSimulator(ModbusDeviceSimulator):
    """A solenoid manifold on relay coils: position N is coil `first_coil + N - 1` alone on."""

    def __init__(self, positions: int, *, first_coil: int = 0, position: int = 1, **kwargs: Any) -> None:
        points = [
            Point(name=f"relay_{i + 1}", kind="coil", address=first_coil + i, writable=True)
            for i in range(positions)
        ]
        kwargs.setdefault("name", "relay-valve")
        super().__init__(points, None, **kwargs)
        self.n_positions = positions
        if position:
            self.set_value(f"relay_{position}", True)

    @classmethod
    def for_config(cls, config: Any, values: Values | None = None, **kwargs: Any) -> "ModbusRelayValveSimulator":
        kwargs.setdefault("name", config.id)
        return cls(config.positions, first_coil=config.first_coil, unit_id=config.unit_id, **kwargs)

    def coils(self) -> list[bool]:
        return [bool(self.value(f"relay_{i + 1}")) for i in range(self.n_positions)]

    @property
    def position(self) -> int | None:
        """The stream selected: the one relay on, or None when none or several are on."""
        on = [i + 1 for i, b in enumerate(self.coils()) if b]
        return on[0] if len(on) == 1 else None
