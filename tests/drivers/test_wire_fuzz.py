"""Instrument replies fuzzed over real sockets: a Modbus device that answers with exception codes,
cut, garbled or misnumbered frames (a raw TCP server speaking MBAP, since a well-behaved pymodbus
server cannot be made to misbehave), and a Picarro line that answers noise to a real
AnalyzerPoller. Each bad reply gives a typed error (DriverError, TransportError) or a correct
value, never another exception; and once the device answers properly again, the next reads give
exactly its values: the poller goes on and loses nothing."""

from __future__ import annotations

import socket
import struct
import threading
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.base import DriverError
from drivers.modbus.device import ModbusDevice, ModbusDeviceError
from drivers.picarro.g2401 import G2401
from drivers.transport import TransportError
from ghgnet.clock import ManualClock
from simulators.serve import Listener
from station_agent.acquisition.poller import AnalyzerPoller, constant_stream

UNIT = 7
REGISTERS = [0x42F6, 0xE979, 10132]  # input 0..2: float32 123.456 (ABCD), int16 1013.2 hPa at scale 0.1
ACTIONS = ["good", "exception", "garbage", "cut", "wrong_tid", "wrong_fc", "wrong_count", "wrong_unit", "extra",
           "silent", "close"]


class MisbehavingModbus:
    """A Modbus TCP server on a free loopback port answering input-register reads: each request
    takes the next action from `plan` (then "good": the right registers)."""

    def __init__(self) -> None:
        self.plan: deque[tuple[str, bytes]] = deque()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        self._listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _read(conn: socket.socket, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = conn.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        return buf

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(0.1)
        with conn:
            while not self._stop.is_set():
                try:
                    tid, _, length, unit = struct.unpack(">HHHB", self._read(conn, 7))
                    pdu = self._read(conn, length - 1)
                except TimeoutError:
                    continue
                except (ConnectionError, OSError, struct.error):
                    return
                action, junk = self.plan.popleft() if self.plan else ("good", b"")
                if action == "close":
                    return
                reply = self._reply(action, junk, tid, unit, pdu)
                try:
                    conn.sendall(reply)
                except OSError:
                    return

    @staticmethod
    def _reply(action: str, junk: bytes, tid: int, unit: int, pdu: bytes) -> bytes:
        fc, address, count = struct.unpack(">BHH", pdu[:5])
        regs = REGISTERS[address:address + count]
        body = bytes([fc, 2 * len(regs)]) + b"".join(struct.pack(">H", r) for r in regs)
        if action == "exception":
            body = bytes([fc | 0x80, junk[0] if junk else 4])
        elif action == "wrong_fc":
            body = bytes([3]) + body[1:]
        elif action == "wrong_count":
            body = body[:-2] if len(body) > 2 else body + b"\x00\x00"
        if action == "wrong_tid":
            tid = (tid + 1) & 0xFFFF
        if action == "wrong_unit":
            unit = (unit + 1) & 0xFF
        frame = struct.pack(">HHHB", tid, 0, len(body) + 1, unit) + body
        if action == "garbage":
            return junk
        if action == "cut":
            return frame[: max(1, len(frame) - 1 - (junk[0] % len(frame) if junk else 0))]
        if action == "extra":
            return frame + junk
        if action == "silent":
            return b""
        return frame

    def close(self) -> None:
        self._stop.set()
        self._listener.close()


@pytest.fixture(scope="module")
def modbus() -> Iterator[MisbehavingModbus]:
    server = MisbehavingModbus()
    yield server
    server.close()


def modbus_device(port: int) -> ModbusDevice:
    config = ModbusDevice.Config.model_validate({
        "id": "flow-1", "driver": "modbus.device", "url": f"tcp://127.0.0.1:{port}", "unit_id": UNIT,
        "timeout_s": 0.2,
        "points": [{"name": "flow", "kind": "input", "address": 0, "type": "float32"},
                   {"name": "pressure", "kind": "input", "address": 2, "type": "int16", "scale": 0.1}]})
    return ModbusDevice(config, ModbusDevice.make_transport(config))


def read_as_the_poller_does(device: ModbusDevice) -> dict[str, float] | Exception:
    """One DevicePoller step: read; a TransportError closes the link and the next step reopens."""
    try:
        if not device.transport.connected:
            device.open()
        return device.read(at=datetime(2026, 3, 1, tzinfo=UTC)).values
    except TransportError as exc:
        device.close()
        return exc
    except DriverError as exc:
        return exc


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=st.lists(st.tuples(st.sampled_from(ACTIONS), st.binary(min_size=1, max_size=12)), min_size=1, max_size=3))
def test_a_modbus_device_misbehaving_gives_typed_errors_then_its_values_again(modbus, plan):
    device = modbus_device(modbus.port)
    try:
        modbus.plan.clear()
        modbus.plan.extend(plan)
        outcomes = [read_as_the_poller_does(device) for _ in plan]
        for (action, junk), got in zip(plan, outcomes):
            assert isinstance(got, dict | DriverError | TransportError), (action, got)
            if action == "exception":
                assert isinstance(got, ModbusDeviceError) and got.exception_code == junk[0], got
            if isinstance(got, dict):  # a reply read as valid is the device's true values
                assert got == {"flow": pytest.approx(123.456, abs=1e-4), "pressure": pytest.approx(1013.2)}
        modbus.plan.clear()
        steps = []  # the first read is right (200 runs); three more allow for a stall of the test machine
        while not (steps and isinstance(steps[-1], dict)) and len(steps) < 4:
            steps.append(read_as_the_poller_does(device))
        assert steps[-1] == {"flow": pytest.approx(123.456, abs=1e-4), "pressure": pytest.approx(1013.2)}, steps
    finally:
        device.close()


# ------------------------------------------------------------------------- a Picarro and its poller

T = "26/03/01 12:00:00.000"
RECORD = (T + ";" + "".join(f"{v};" for v in (412.1, 420.0, 1.9, 2.0, 0.1, 1.2, 140.0, 45.0))).encode() + b"\r"


class NoisyPicarro(Listener):
    """A TCP line server answering `_Instr_GetStatus` and `_Meas_GetBuffer` from queued replies,
    then properly: 963, and one fresh record per buffer read (seq in the CO2 value's decimals)."""

    def __init__(self) -> None:
        super().__init__()
        self.replies: deque[bytes] = deque()
        self.served = 0

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        for chunk in self._chunks(conn):
            buf += chunk
            while b"\r\n" in buf:
                command, buf = buf.split(b"\r\n", 1)
                conn.sendall(self._answer(command))

    def _answer(self, command: bytes) -> bytes:
        if self.replies:
            return self.replies.popleft()
        if command == b"_Instr_GetStatus":
            return b"963\r"
        self.served += 1
        return b"1;\r" + RECORD.replace(b"412.1;", f"412.{self.served:04d};".encode())



@pytest.fixture(scope="module")
def picarro() -> Iterator[NoisyPicarro]:
    server = NoisyPicarro().start()
    yield server
    server.stop()


noise = st.lists(st.sampled_from([b"", b"ERR:3002", b"ERR:1234", b"9" * 5000, b"963", b"2;", b"\xff\xfe",
                                  b"26/13/45 99:99:99.999;1;", RECORD[:30], b"nan"])
                 | st.binary(max_size=30).map(lambda b: b.replace(b"\r", b"")), max_size=3)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(replies=st.lists(noise.map(lambda lines: b"".join(x + b"\r" for x in lines)), min_size=1, max_size=3))
def test_a_poller_fed_noise_goes_on_and_stores_every_good_record(picarro, replies):
    config = G2401.Config.model_validate({"id": "picarro-1", "driver": "picarro.g2401",
                                          "url": f"socket://127.0.0.1:{picarro.port}", "timeout_s": 0.1})
    driver = G2401(config, G2401.make_transport(config))
    stored: list[float] = []
    events = []
    poller = AnalyzerPoller(driver, ManualClock(datetime(2026, 3, 1, 12, tzinfo=UTC)),
                            lambda readings, drained=None: stored.extend(r.values["co2"] for r in readings) or True,
                            lambda: True, events.append, constant_stream("inlet:top"), structlog.get_logger(), threading.Event())
    try:
        picarro.replies.clear()
        picarro.replies.extend(replies)
        for _ in range(2 * len(replies) + 2):  # until the noise is used up
            poller.poll_once()  # raises nothing: every fault is a typed one the poller handles
        picarro.replies.clear()
        served = picarro.served
        driver.transport.timeout_s = 5.0  # from now on a late reply is load on the test machine
        while picarro.served < served + 2:
            poller.poll_once()
        expected = [round(412 + n / 10_000, 4) for n in range(served + 1, picarro.served + 1)]
        assert [v for v in stored if v in expected] == expected  # every record served, in order, once
        assert poller.health.connected
    finally:
        driver.close()

