"""The simulated Modbus device, seen by a plain pymodbus client (not our driver): it must behave as
a device would, over real TCP and over a real pty pair, and stop every thread it starts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from pymodbus.client import ModbusSerialClient, ModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusIOException
from pymodbus.pdu import ExceptionResponse

from drivers.modbus.registermap import Point
from ghgnet.clock import ManualClock
from simulators.modbus.device import ModbusDeviceSimulator, ModbusRelayValveSimulator, ModbusRequest

T0 = datetime(2026, 3, 1, tzinfo=UTC)

POINTS = [
    Point(name="flow", kind="input", address=100, type="float32", word_order="little"),
    Point(name="pressure", kind="input", address=102, type="uint16", scale=0.1),
    Point(name="flow_setpoint", kind="holding", address=0, type="int32", writable=True, unit="sccm"),
    Point(name="relay", kind="coil", address=5, writable=True),
    Point(name="door_open", kind="discrete", address=1),
]


def ramp(t: datetime) -> dict[str, float | bool]:
    s = (t - T0).total_seconds()
    return {"flow": 100.0 + s, "pressure": 1000.0 + s / 10, "door_open": s >= 60, "flow_setpoint": 250}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def sim(clock) -> Iterator[ModbusDeviceSimulator]:
    s = ModbusDeviceSimulator(POINTS, ramp, unit_id=2, clock=clock).start()
    yield s
    s.stop()


@pytest.fixture
def client(sim) -> Iterator[ModbusTcpClient]:
    c = ModbusTcpClient("127.0.0.1", port=sim.port, timeout=0.3, retries=0)
    assert c.connect()
    yield c
    c.close()


def test_registers_follow_values_of_the_clock_time_encoded_per_the_map(sim, client, clock):
    regs = client.read_input_registers(100, count=3, device_id=2).registers
    assert regs == [0x0000, 0x42C8, 10000]  # 100.0 = 0x42C80000, word-swapped; 1000.0 hPa / 0.1
    assert client.read_discrete_inputs(1, count=1, device_id=2).bits[0] is False
    clock.advance(60)
    regs = client.read_input_registers(100, count=3, device_id=2).registers
    assert regs == [0x0000, 0x4320, 10060]  # 160.0 = 0x43200000
    assert client.read_discrete_inputs(1, count=1, device_id=2).bits[0] is True
    assert sim.value("flow") == 160.0 and sim.value("pressure") == pytest.approx(1006.0)


def test_writable_points_start_from_values_then_keep_what_was_written(sim, client):
    assert client.read_holding_registers(0, count=2, device_id=2).registers == [0, 250]
    assert not client.write_registers(0, [0xFFFF, 0xFFFE], device_id=2).isError()
    assert sim.value("flow_setpoint") == -2
    assert client.read_holding_registers(0, count=2, device_id=2).registers == [0xFFFF, 0xFFFE]
    assert not client.write_coil(5, True, device_id=2).isError()
    assert sim.value("relay") is True
    assert sim.requests == [
        ModbusRequest(2, 3, 0, 2),
        ModbusRequest(2, 16, 0, 2, (0xFFFF, 0xFFFE)),
        ModbusRequest(2, 3, 0, 2),
        ModbusRequest(2, 5, 5, 1, (True,)),
    ]


def test_unmapped_addresses_read_only_points_and_unknown_functions_are_refused(client):
    for response, code in [
        (client.read_input_registers(99, count=2, device_id=2), 2),  # 99 is not mapped
        (client.read_input_registers(102, count=2, device_id=2), 2),  # runs past the map
        (client.read_coils(4, count=2, device_id=2), 2),
        (client.write_register(0, 1, device_id=2), 0),  # holding 0 is writable: accepted
        (client.write_coil(6, True, device_id=2), 2),
        (client.read_exception_status(device_id=2), 1),
    ]:
        if code:
            assert isinstance(response, ExceptionResponse) and response.exception_code == code
        else:
            assert not response.isError()


def test_refused_ranges_answer_the_exception_and_change_nothing(sim, client):
    sim.refuse("holding", 0, 1, code=4)
    response = client.write_registers(0, [0, 7], device_id=2)
    assert isinstance(response, ExceptionResponse) and response.exception_code == 4
    assert sim.value("flow_setpoint") == 250
    assert not client.read_input_registers(100, count=3, device_id=2).isError()
    sim.clear()
    assert not client.write_registers(0, [0, 7], device_id=2).isError()
    assert sim.value("flow_setpoint") == 7


def test_silent_device_and_other_unit_ids_get_no_answer(sim, client):
    with pytest.raises(ModbusIOException, match="No response"):
        client.read_input_registers(100, count=2, device_id=9)
    sim.inject("silent")
    with pytest.raises(ModbusIOException, match="No response"):
        client.read_input_registers(100, count=2, device_id=2)
    sim.clear()
    assert client.read_input_registers(102, count=1, device_id=2).registers == [10000]
    assert [r.unit_id for r in sim.requests] == [9, 2, 2]


def test_stuck_device_acknowledges_writes_without_applying_them(sim, client):
    sim.inject("stuck")
    assert not client.write_coil(5, True, device_id=2).isError()
    assert client.read_coils(5, count=1, device_id=2).bits[0] is False


def test_a_failing_values_function_is_a_device_failure_not_a_dead_server(clock):
    def broken(t: datetime) -> dict[str, float]:
        if t > T0:
            raise RuntimeError("bench not ready")
        return {}

    with ModbusDeviceSimulator(POINTS, broken, clock=clock) as sim:
        c = ModbusTcpClient("127.0.0.1", port=sim.port, timeout=0.3, retries=0)
        try:
            clock.advance(1)
            response = c.read_input_registers(102, count=1, device_id=1)
            assert isinstance(response, ExceptionResponse) and response.exception_code == 4
            assert "bench not ready" in sim.errors[0]
        finally:
            c.close()


def test_power_cycle_keeps_the_port_and_stop_joins_every_thread(clock):
    before = set(threading.enumerate())
    sim = ModbusDeviceSimulator(POINTS, ramp, clock=clock, name="cycled").start()
    port = sim.port
    c = ModbusTcpClient("127.0.0.1", port=port, timeout=0.3, retries=0)
    try:
        assert c.read_input_registers(102, count=1, device_id=1).registers == [10000]
        sim.power_off()
        with pytest.raises(ConnectionException):
            c.read_input_registers(102, count=1, device_id=1)
        sim.power_on()
        assert sim.port == port
        assert c.read_input_registers(102, count=1, device_id=1).registers == [10000]
    finally:
        c.close()
        sim.stop()
    assert set(threading.enumerate()) == before


def test_rtu_over_a_pty_pair_carries_exact_frames(clock):
    with ModbusDeviceSimulator(POINTS, ramp, unit_id=2, mode="rtu", clock=clock) as sim:
        assert sim.url.startswith("/dev/")
        c = ModbusSerialClient(sim.url, baudrate=19200, timeout=0.5, retries=0)
        try:
            assert c.connect()
            assert c.read_holding_registers(0, count=2, device_id=2).registers == [0, 250]
        finally:
            c.close()
        to_device, to_client = sim.take_wire()
    assert to_device == bytes.fromhex("02 03 00 00 00 02 C4 38")
    assert to_client[:7] == bytes.fromhex("02 03 04 00 00 00 FA")
    assert len(to_client) == 9  # plus the CRC


def test_relay_valve_simulator_reports_the_one_relay_on(clock):
    with ModbusRelayValveSimulator(4, first_coil=8, position=2, clock=clock) as sim:
        assert sim.coils() == [False, True, False, False] and sim.position == 2
        c = ModbusTcpClient("127.0.0.1", port=sim.port, timeout=0.3, retries=0)
        try:
            assert not c.write_coils(8, [False, False, False, True], device_id=1).isError()
            assert sim.position == 4
            assert not c.write_coil(8, True, device_id=1).isError()
            assert sim.position is None  # two relays on: no single stream selected
        finally:
            c.close()
