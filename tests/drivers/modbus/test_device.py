"""Expected-communication tests of the Modbus drivers, against a real pymodbus server.

STYLE.md's `expected_protocol` scripts the exact bytes of a line-based serial driver. A Modbus
driver does not write bytes itself: pymodbus frames its requests (MBAP header and transaction ids
for TCP, unit id and CRC for RTU), so scripting bytes at the driver would test pymodbus, and a mock
client would test nothing real. The equivalent contract here is at the Modbus PDU level: the
simulator is a real pymodbus server (over real TCP on a free loopback port) that logs every request
it receives, and each test asserts the exact list of requests a driver operation makes (unit id,
function code, address, count, written values), just as an expected_protocol script would.
For the bytes themselves, one test runs the same driver over Modbus RTU on a real pty pair and
asserts the exact frames on the line, CRC included (checked with an independent CRC-16/MODBUS).

The register codec (drivers/modbus/registers.py) is tested table-driven below, with known byte
patterns for every type and every word/byte order.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from pymodbus.client import ModbusSerialClient, ModbusTcpClient

from drivers.base import DriverError
from drivers.modbus.device import ModbusDevice, ModbusDeviceError, ModbusRelayValve
from drivers.modbus.registermap import Point, plan_reads
from drivers.modbus.registers import (
    decode_raw,
    decode_value,
    encode_raw,
    encode_value,
    to_raw,
)
from drivers.registry import load_driver
from drivers.transport import TransportError, TransportTimeout
from ghgnet.clock import ManualClock
from simulators.modbus.device import (
    ModbusDeviceSimulator,
    ModbusRelayValveSimulator,
    ModbusRequest,
)

# --------------------------------------------------------------------------------------------
# register codec: known byte patterns
# --------------------------------------------------------------------------------------------

# float32 123.456 is 0x42F6E979 (bytes A B C D = 42 F6 E9 79)
CODEC_TABLE = [
    # value, type, word_order, byte_order, registers
    (123.456, "float32", "big", "big", [0x42F6, 0xE979]),  # ABCD
    (123.456, "float32", "little", "big", [0xE979, 0x42F6]),  # CDAB
    (123.456, "float32", "big", "little", [0xF642, 0x79E9]),  # BADC
    (123.456, "float32", "little", "little", [0x79E9, 0xF642]),  # DCBA
    (-2.5, "float32", "big", "big", [0xC020, 0x0000]),
    (0x12345678, "uint32", "big", "big", [0x1234, 0x5678]),
    (0x12345678, "uint32", "little", "big", [0x5678, 0x1234]),
    (0x12345678, "uint32", "big", "little", [0x3412, 0x7856]),
    (0x12345678, "uint32", "little", "little", [0x7856, 0x3412]),
    (-2, "int32", "big", "big", [0xFFFF, 0xFFFE]),
    (-2, "int32", "little", "big", [0xFFFE, 0xFFFF]),
    (-123456, "int32", "big", "big", [0xFFFE, 0x1DC0]),
    (-1, "int16", "big", "big", [0xFFFF]),
    (-32768, "int16", "big", "big", [0x8000]),
    (0x1234, "int16", "big", "little", [0x3412]),
    (65535, "uint16", "big", "big", [0xFFFF]),
    (0x00FF, "uint16", "big", "little", [0xFF00]),
    (0x00FF, "uint16", "little", "big", [0x00FF]),  # word order means nothing for one register
]


@pytest.mark.parametrize(("value", "dtype", "word", "byte", "registers"), CODEC_TABLE)
def test_codec_encodes_and_decodes_known_patterns(value, dtype, word, byte, registers):
    assert encode_raw(value, dtype, word, byte) == registers
    decoded = decode_raw(registers, dtype, word, byte)
    if dtype == "float32":
        assert decoded == pytest.approx(value, rel=1e-7)
        assert decoded == struct.unpack(">f", struct.pack(">f", value))[0]
    else:
        assert decoded == value


@pytest.mark.parametrize(
    ("registers", "dtype", "scale", "offset", "value"),
    [
        ([1013], "uint16", 0.1, 0.0, 101.3),
        ([0xFF9C], "int16", 0.01, 0.0, -1.0),  # -100 * 0.01
        ([400], "uint16", 0.125, -40.0, 10.0),  # a 4-20 mA style offset
        ([0x0001, 0x86A0], "uint32", 0.001, 0.0, 100.0),  # 100000 * 0.001
    ],
)
def test_scale_and_offset_apply_both_ways(registers, dtype, scale, offset, value):
    assert decode_value(registers, dtype, "big", "big", scale, offset) == pytest.approx(value)
    assert encode_value(value, dtype, "big", "big", scale, offset) == registers


@pytest.mark.parametrize(
    ("value", "dtype", "scale"),
    [(70000, "uint16", 1.0), (-1, "uint16", 1.0), (40000, "int16", 1.0), (2**32, "uint32", 1.0), (7000.0, "uint16", 0.1)],
)
def test_values_that_do_not_fit_the_type_are_refused(value, dtype, scale):
    with pytest.raises(ValueError, match="does not fit"):
        encode_value(value, dtype, scale=scale)


def test_integer_types_round_to_nearest_and_float32_keeps_fraction():
    assert to_raw(50.56, "uint16", 0.1) == 506
    assert to_raw(50.56, "float32", 0.1) == pytest.approx(505.6)
    assert math.isnan(decode_raw(encode_raw(float("nan"), "float32"), "float32"))


def test_decode_refuses_wrong_register_count():
    with pytest.raises(ValueError, match="takes 2 register"):
        decode_raw([1], "float32")


# --------------------------------------------------------------------------------------------
# register map and read planning
# --------------------------------------------------------------------------------------------


def _p(name: str, kind: str, address: int, type_: str | None = None, **kw) -> Point:
    return Point(name=name, kind=kind, address=address, type=type_, **kw)


def test_contiguous_points_share_a_read_and_gaps_split_it():
    points = [
        _p("flow", "input", 0, "float32"),
        _p("pressure", "input", 2, "int16"),
        _p("temperature", "input", 6, "int16"),
        _p("setpoint", "holding", 10, "uint16"),
        _p("relay_a", "coil", 1),
        _p("relay_b", "coil", 0),
    ]
    plan = [(b.kind, b.address, b.count, [p.name for p in b.points]) for b in plan_reads(points)]
    assert plan == [
        ("coil", 0, 2, ["relay_b", "relay_a"]),
        ("holding", 10, 1, ["setpoint"]),
        ("input", 0, 3, ["flow", "pressure"]),
        ("input", 6, 1, ["temperature"]),
    ]
    merged = plan_reads(points, max_gap=3)
    assert [(b.kind, b.address, b.count) for b in merged if b.kind == "input"] == [("input", 0, 7)]


def test_a_read_never_exceeds_the_request_limit_nor_splits_a_point():
    points = [_p(f"v{i}", "holding", 2 * i, "float32") for i in range(100)]  # 200 registers
    plan = plan_reads(points)
    assert [(b.address, b.count) for b in plan] == [(0, 124), (124, 76)]
    assert sum(len(b.points) for b in plan) == 100


def _config(url: str = "tcp://127.0.0.1:502", **extra) -> ModbusDevice.Config:
    data = {
        "id": "mfc-sample",
        "driver": "modbus.device",
        "url": url,
        "unit_id": 7,
        "timeout_s": 0.3,
        "points": [
            {"name": "flow", "kind": "input", "address": 0, "type": "float32", "word_order": "little"},
            {"name": "pressure", "kind": "input", "address": 2, "type": "int16", "scale": 0.1},
            {"name": "temperature", "kind": "input", "address": 8, "type": "int16", "scale": 0.01,
             "unit": "degC"},
            {"name": "flow_setpoint", "kind": "holding", "address": 20, "type": "uint16", "scale": 0.1,
             "unit": "sccm", "writable": True},
            {"name": "gain", "kind": "holding", "address": 30, "type": "float32", "writable": True},
            {"name": "valve_open", "kind": "coil", "address": 4, "writable": True},
            {"name": "low_flow_alarm", "kind": "discrete", "address": 2},
        ],
    }
    data.update(extra)
    return ModbusDevice.Config.model_validate(data)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"url": "tcp://nohost"}, "host:port"),
        ({"points": []}, "at least 1"),
        ({"points": [{"name": "a", "kind": "holding", "address": 0, "type": "float32"},
                     {"name": "b", "kind": "holding", "address": 1}]}, "overlap"),
        ({"points": [{"name": "a", "kind": "input", "address": 0}, {"name": "a", "kind": "input", "address": 5}]},
         "used twice"),
        ({"points": [{"name": "flow", "kind": "input", "address": 0, "unit": "slpm"}]}, "always in sccm"),
        ({"points": [{"name": "a", "kind": "holding", "address": 0, "type": "bool"}]}, "type bool"),
        ({"points": [{"name": "a", "kind": "coil", "address": 0, "type": "int16"}]}, "single bit"),
        ({"points": [{"name": "a", "kind": "input", "address": 0, "writable": True}]}, "read-only"),
        ({"points": [{"name": "a", "kind": "input", "address": 0, "colour": "red"}]}, "Extra inputs"),
    ],
)
def test_config_errors_name_the_problem(change, message):
    with pytest.raises(ValueError, match=message):
        _config(**change)


def test_make_transport_builds_the_pymodbus_client_the_url_names():
    tcp = ModbusDevice.make_transport(_config("tcp://10.0.0.5:1502"))
    assert isinstance(tcp, ModbusTcpClient)
    assert (tcp.comm_params.host, tcp.comm_params.port, tcp.retries) == ("10.0.0.5", 1502, 0)
    assert tcp.comm_params.timeout_connect == 0.3
    gateway = ModbusDevice.make_transport(_config("rtu+tcp://10.0.0.6:4001"))
    assert isinstance(gateway, ModbusTcpClient)
    assert type(gateway.framer).__name__ == "FramerRTU"
    serial = ModbusDevice.make_transport(_config("/dev/ttyUSB0", baudrate=9600, parity="E"))
    assert isinstance(serial, ModbusSerialClient)
    assert (serial.comm_params.host, serial.comm_params.baudrate, serial.comm_params.parity) == ("/dev/ttyUSB0", 9600, "E")
    assert serial.retries == 0


def test_drivers_are_registered_under_their_names():
    assert load_driver("modbus.device") is ModbusDevice
    assert load_driver("modbus.relay_valve") is ModbusRelayValve
    assert (ModbusDevice.kind, ModbusRelayValve.kind) == ("modbus", "valve")


# --------------------------------------------------------------------------------------------
# the driver against a real pymodbus server
# --------------------------------------------------------------------------------------------

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def bench(t: datetime) -> dict[str, float]:
    minutes = (t - T0).total_seconds() / 60
    return {"flow": 123.456 + minutes, "pressure": 1013.2, "temperature": 35.25, "low_flow_alarm": False}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def sim(clock: ManualClock) -> Iterator[ModbusDeviceSimulator]:
    s = ModbusDeviceSimulator.for_config(_config(), bench, clock=clock)
    s.start()
    yield s
    s.stop()


@pytest.fixture
def device(sim: ModbusDeviceSimulator) -> Iterator[ModbusDevice]:
    config = _config(sim.url)
    d = ModbusDevice(config, ModbusDevice.make_transport(config))
    d.open()
    sim.take_requests()
    yield d
    d.close()


def R(fc: int, address: int, count: int, values: tuple = ()) -> ModbusRequest:
    return ModbusRequest(7, fc, address, count, values)


def test_read_makes_one_request_per_contiguous_block_and_decodes_every_point(device, sim, clock):
    reading = device.read(at=T0)
    assert sim.take_requests() == [
        R(1, 4, 1),  # coil: valve_open
        R(2, 2, 1),  # discrete input: low_flow_alarm
        R(3, 20, 1),  # holding: flow_setpoint (gain at 30 is not adjacent)
        R(3, 30, 2),  # holding: gain
        R(4, 0, 3),  # input: flow (float32, word-swapped) + pressure
        R(4, 8, 1),  # input: temperature
    ]
    assert reading.time == T0 and reading.device == "mfc-sample"
    assert reading.values["flow"] == pytest.approx(123.456, abs=1e-4)
    assert reading.values["pressure"] == pytest.approx(1013.2)
    assert reading.values["temperature"] == pytest.approx(35.25)
    assert reading.values["valve_open"] == 0.0 and reading.values["low_flow_alarm"] == 0.0
    assert device.units["flow"] == "sccm" and device.units["pressure"] == "hPa"
    clock.advance(120)
    assert device.read().values["flow"] == pytest.approx(125.456, abs=1e-4)


def test_max_gap_merges_reads_across_unmapped_registers(sim):
    config = _config(sim.url, max_gap=6)
    d = ModbusDevice(config, ModbusDevice.make_transport(config))
    d.open()
    try:
        sim.take_requests()
        # the simulated device refuses unmapped addresses, as many real ones do
        with pytest.raises(ModbusDeviceError) as err:
            d.read()
        assert err.value.exception_code == 2
        assert sim.take_requests()[-1] == R(4, 0, 9)
    finally:
        d.close()


def test_writes_use_function_5_6_and_16_with_the_encoded_values(device, sim):
    device.write("flow_setpoint", 50.56)
    device.write("gain", 1.5)
    device.write("valve_open", True)
    assert sim.take_requests() == [
        R(6, 20, 1, (506,)),
        R(16, 30, 2, (0x3FC0, 0x0000)),
        R(5, 4, 1, (True,)),
    ]
    assert sim.value("flow_setpoint") == pytest.approx(50.6)
    values = device.read().values
    assert (values["flow_setpoint"], values["gain"], values["valve_open"]) == (pytest.approx(50.6), 1.5, 1.0)


def test_refused_writes_send_nothing(device, sim):
    with pytest.raises(ValueError, match="not writable"):
        device.write("pressure", 1.0)
    with pytest.raises(ValueError, match="no point 'nope'"):
        device.write("nope", 1.0)
    with pytest.raises(ValueError, match="does not fit uint16"):
        device.write("flow_setpoint", 7000.0)
    assert sim.take_requests() == []


@pytest.mark.parametrize(("code", "meaning"), [(2, "ILLEGAL DATA ADDRESS"), (4, "SERVER DEVICE FAILURE")])
def test_exception_response_names_device_points_address_and_meaning(device, sim, code, meaning):
    sim.refuse("input", 8, code=code)
    with pytest.raises(ModbusDeviceError) as err:
        device.read()
    e = err.value
    assert isinstance(e, DriverError)
    assert (e.device, e.function_code, e.address, e.count, e.points, e.exception_code) == (
        "mfc-sample", 4, 8, 1, ("temperature",), code,
    )
    assert meaning in str(e) and "mfc-sample" in str(e) and "input registers 8..8 (temperature)" in str(e)


def test_exception_on_write_is_typed_and_leaves_the_value(device, sim):
    sim.refuse("holding", 20, 21, code=4)
    with pytest.raises(ModbusDeviceError, match="SERVER DEVICE FAILURE") as err:
        device.write("flow_setpoint", 10.0)
    assert (err.value.function_code, err.value.points) == (6, ("flow_setpoint",))
    assert sim.value("flow_setpoint") == 0.0


def test_a_silent_device_is_a_transport_timeout(device, sim):
    sim.inject("silent")
    with pytest.raises(TransportTimeout, match="no reply .* within 0.3 s"):
        device.read()
    sim.clear()
    assert device.read().values["pressure"] == pytest.approx(1013.2)


def test_a_stopped_device_is_a_transport_error_and_open_fails_until_it_is_back(device, sim):
    sim.power_off()
    with pytest.raises(TransportError):
        device.read()
    with pytest.raises(TransportError, match="cannot connect"):
        device.open()
    sim.power_on()
    device.open()
    assert device.read().values["pressure"] == pytest.approx(1013.2)


def test_one_dead_device_never_stops_the_others(clock):
    """Two devices polled alternately, as the engine does: one stops, then goes silent; the other
    keeps answering every poll, and the dead one comes back without a new driver."""
    sims = [
        ModbusDeviceSimulator.for_config(_config(), bench, clock=clock, name=f"dev{i}").start() for i in (1, 2)
    ]
    drivers = []
    try:
        for s, name in zip(sims, ("mfc-a", "mfc-b")):
            config = _config(s.url, id=name)
            drivers.append(ModbusDevice(config, ModbusDevice.make_transport(config)))
            drivers[-1].open()
        alive, dead = drivers
        sims[1].power_off()
        outcomes = []
        for _ in range(3):
            for d in (alive, dead):
                try:
                    outcomes.append((d.device_id, d.read().values["pressure"]))
                except TransportError as exc:
                    outcomes.append((d.device_id, type(exc).__name__))
        assert outcomes == [("mfc-a", pytest.approx(1013.2)), ("mfc-b", "TransportError")] * 3
        sims[1].power_on()
        sims[1].inject("silent")
        with pytest.raises(TransportTimeout):
            dead.read()
        assert alive.read().values["pressure"] == pytest.approx(1013.2)
        sims[1].clear()
        assert dead.read().values["pressure"] == pytest.approx(1013.2)
    finally:
        for d in drivers:
            d.close()
        for s in sims:
            s.stop()


# --------------------------------------------------------------------------------------------
# Modbus RTU on a pty: the exact bytes on the line
# --------------------------------------------------------------------------------------------


def crc16_modbus(frame: bytes) -> bytes:
    """CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF), low byte first: independent of pymodbus."""
    crc = 0xFFFF
    for byte in frame:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc.to_bytes(2, "little")


def rtu(hex_pdu: str) -> bytes:
    body = bytes.fromhex(hex_pdu)
    return body + crc16_modbus(body)


def test_crc_helper_matches_the_textbook_frame():
    assert rtu("01 03 00 00 00 0A") == bytes.fromhex("01 03 00 00 00 0A C5 CD")


def test_rtu_read_and_write_put_the_exact_frames_on_the_line(clock):
    points = [
        {"name": "flow", "kind": "input", "address": 0, "type": "float32"},
        {"name": "pressure", "kind": "input", "address": 2, "type": "int16", "scale": 0.1},
        {"name": "flow_setpoint", "kind": "holding", "address": 20, "type": "uint16", "scale": 0.1,
         "unit": "sccm", "writable": True},
    ]
    config0 = _config(points=points, unit_id=17)
    sim = ModbusDeviceSimulator.for_config(config0, bench, clock=clock, mode="rtu").start()
    try:
        config = _config(sim.url, points=points, unit_id=17)
        d = ModbusDevice(config, ModbusDevice.make_transport(config))
        d.open()
        try:
            values = d.read().values
            d.write("flow_setpoint", 25.0)
        finally:
            d.close()
        to_device, to_client = sim.take_wire()
    finally:
        sim.stop()
    assert to_device == (
        rtu("11 03 00 14 00 01")  # unit 17, read holding 20, count 1
        + rtu("11 04 00 00 00 03")  # read input 0, count 3 (flow + pressure)
        + rtu("11 06 00 14 00 FA")  # write holding 20 = 250 (25.0 / 0.1)
    )
    assert to_client == (
        rtu("11 03 02 00 00")
        + rtu("11 04 06 42 F6 E9 79 27 94")  # 123.456 as ABCD, then 10132 = 1013.2 hPa
        + rtu("11 06 00 14 00 FA")  # a write-single reply echoes the request
    )
    assert values["flow"] == pytest.approx(123.456, abs=1e-4) and values["pressure"] == pytest.approx(1013.2)


# --------------------------------------------------------------------------------------------
# the relay manifold as a valve
# --------------------------------------------------------------------------------------------


@pytest.fixture
def manifold() -> Iterator[tuple[ModbusRelayValve, ModbusRelayValveSimulator]]:
    sim = ModbusRelayValveSimulator(6, first_coil=16, position=1, unit_id=3).start()
    config = ModbusRelayValve.Config.model_validate(
        {"id": "manifold", "driver": "modbus.relay_valve", "url": sim.url, "unit_id": 3, "positions": 6,
         "first_coil": 16, "timeout_s": 0.3}
    )
    valve = ModbusRelayValve(config, ModbusRelayValve.make_transport(config))
    valve.open()
    sim.take_requests()
    yield valve, sim
    valve.close()
    sim.stop()


def test_relay_valve_goto_switches_all_coils_in_one_request_and_reads_back(manifold):
    valve, sim = manifold
    assert valve.position() == 1
    valve.goto(4)
    assert valve.position() == 4
    assert sim.position == 4
    assert sim.take_requests() == [
        ModbusRequest(3, 1, 16, 6),
        ModbusRequest(3, 15, 16, 6, (False, False, False, True, False, False)),
        ModbusRequest(3, 1, 16, 6),
    ]
    assert valve.positions() == 6
    with pytest.raises(ValueError, match="not in 1..6"):
        valve.goto(7)


def test_relay_valve_reports_a_stuck_manifold_by_reading_back(manifold):
    valve, sim = manifold
    sim.inject("stuck")
    valve.goto(2)
    assert valve.position() == 1  # the engine sees the mismatch and flags it
    sim.set_value("relay_5", True)
    with pytest.raises(DriverError, match="coils 16..21 read 100010: 2 relays on"):
        valve.position()


def test_relay_valve_config_checks_the_safe_position():
    with pytest.raises(ValueError, match="safe_position 9 > positions 8"):
        ModbusRelayValve.Config.model_validate(
            {"id": "m", "driver": "modbus.relay_valve", "url": "tcp://h:502", "positions": 8, "safe_position": 9}
        )


def test_tcp_client_with_rtu_framing_reaches_a_gateway(clock):
    sim = ModbusDeviceSimulator.for_config(_config(), bench, clock=clock, mode="rtu+tcp").start()
    try:
        assert sim.url.startswith("rtu+tcp://")
        config = _config(sim.url)
        d = ModbusDevice(config, ModbusDevice.make_transport(config))
        d.open()
        try:
            assert d.read().values["pressure"] == pytest.approx(1013.2)
        finally:
            d.close()
        assert ModbusRequest(7, 4, 0, 3) in sim.requests
    finally:
        sim.stop()


def test_identify_names_the_device_and_its_map(device):
    info = device.identify()
    assert info["device"] == "mfc-sample" and info["unit_id"] == 7 and info["reads_per_poll"] == 6
    assert info["points"]["flow"] == "input registers 0 float32 sccm"
