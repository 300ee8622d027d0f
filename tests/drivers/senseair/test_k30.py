"""Expected communication of the Senseair K30 and S8 drivers.

As for the other Modbus drivers (tests/drivers/modbus/test_device.py), `expected_protocol`'s byte
script is replaced by the same contract one level up, against a real pymodbus server: the exact
list of requests (unit id, function code, address, count) each operation makes. The bytes
themselves are checked on a real pty line in Modbus RTU: the frames are written out here as hex
(their CRCs computed once by CRC-16/MODBUS, which gives SFeli/ESP32_S8's published
`FE 04 00 03 00 01 D5 C5` for the same algorithm).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from drivers.base import DriverError
from drivers.modbus.device import ModbusDeviceError
from drivers.senseair.k30 import K30, S8, MeterStatus
from drivers.transport import TransportError, TransportTimeout
from ghgnet.clock import ManualClock
from simulators.config import DiurnalGasConfig
from simulators.modbus.device import ModbusRequest
from simulators.senseair.k30 import SenseairInstrument, SenseairSimulator

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def sim_config(model: str = "senseair.k30", mode: str = "tcp", **kw) -> SenseairInstrument:
    return SenseairInstrument(id="k30-sim", model=model, mode=mode, noise_ppm=0.0,
                              gas=DiurnalGasConfig(co2=420.0), **kw)


def driver(cls, url: str, **kw):
    config = cls.Config.model_validate({"id": "k30-1", "driver": cls.name, "url": url, "timeout_s": 0.3, **kw})
    d = cls(config, cls.make_transport(config))
    d.now = lambda: T0
    d.open()
    return d


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def k30(clock) -> Iterator[tuple[K30, SenseairSimulator]]:
    sim = SenseairSimulator(clock, sim_config()).start()
    d = driver(K30, sim.url)
    sim.take_requests()
    yield d, sim
    d.close()
    sim.stop()


def test_a_poll_is_one_read_of_input_registers_0_to_3_at_any_sensor_address(k30):
    d, sim = k30
    result = d.poll()
    assert sim.take_requests() == [ModbusRequest(0xFE, 4, 0, 4)]
    (r,) = result.readings
    assert (r.time, r.device, r.values, r.status, r.status_ok, r.status_flags) == (
        T0, "k30-1", {"co2_dry": 420.0}, 0, True, ())


def test_the_factory_address_is_answered_too(clock):
    sim = SenseairSimulator(clock, sim_config()).start()
    try:
        d = driver(K30, sim.url, unit_id=0x68)
        assert d.poll().readings[0].values == {"co2_dry": 420.0}
        assert sim.requests[-1] == ModbusRequest(0x68, 4, 0, 4)
        d.close()
    finally:
        sim.stop()


def test_meter_status_bits_make_the_reading_invalid_and_are_named(k30):
    d, sim = k30
    sim.inject("status", word=0b1100001)
    (r,) = d.poll().readings
    assert (r.status, r.status_ok) == (0x61, False)
    assert r.status_flags == ("fatal_error", "out_of_range", "memory_error")
    assert MeterStatus(0x0180).flags == ("unknown_status_bits_0x0180",)
    sim.clear_faults()
    assert d.poll().readings[0].status_ok


def test_a_modbus_exception_is_a_typed_error_naming_the_request(k30):
    d, sim = k30
    sim.inject("exception", count=1, code=4)
    with pytest.raises(ModbusDeviceError, match="read of input registers 0..3 .* SERVER DEVICE FAILURE") as err:
        d.poll()
    assert isinstance(err.value, DriverError) and err.value.exception_code == 4
    assert d.poll().readings[0].values["co2_dry"] == 420.0  # one request only


def test_silence_is_a_timeout_and_power_off_a_link_error(k30):
    d, sim = k30
    sim.inject("silent")
    with pytest.raises(TransportTimeout, match="no reply"):
        d.poll()
    sim.clear_faults()
    assert d.poll().readings
    sim.inject("power_off")
    with pytest.raises(TransportError):
        d.poll()
    sim.clear_faults()
    d.open()
    assert d.poll().readings


def test_a_humid_sample_reports_wet_co2(k30):
    _, sim = k30
    d = driver(K30, sim.url, sample_dried=False)
    try:
        assert d.poll().readings[0].values == {"co2": 420.0}
    finally:
        d.close()


def test_s8_identify_reads_status_abc_period_and_identity_registers(clock):
    sim = SenseairSimulator(clock, sim_config("senseair.s8")).start()
    try:
        d = driver(S8, sim.url)
        sim.take_requests()
        info = d.identify()
        assert sim.take_requests() == [ModbusRequest(0xFE, 4, 0, 4), ModbusRequest(0xFE, 3, 31, 1),
                                       ModbusRequest(0xFE, 4, 25, 6)]
        assert info["co2_ppm"] == 420 and info["abc_period_h"] == 180 and info["status_ok"]
        assert info["sensor_type"] == "0x000008" and info["sensor_id"] == "0x01203456"
        d.close()
    finally:
        sim.stop()


def test_k30_identify_reads_no_identity_registers(k30):
    d, sim = k30
    info = d.identify()
    assert [r.function_code for r in sim.take_requests()] == [4, 3]
    assert "sensor_id" not in info and info["meter_status"] == 0


def test_rtu_frames_on_the_line(clock):
    sim = SenseairSimulator(clock, sim_config(mode="rtu")).start()
    try:
        d = driver(K30, sim.url)
        d.poll()
        sim.inject("status", word=0x20)
        d.close()
        d = driver(K30, sim.url, unit_id=0x68)
        d.poll()
        sim.inject("exception", count=1, code=4)
        d.close()
        d = driver(K30, sim.url)
        with pytest.raises(ModbusDeviceError):
            d.poll()
        d.close()
        to_device, to_client = sim.take_wire()
    finally:
        sim.stop()
    assert to_device == bytes.fromhex("FE 04 00 00 00 04 E5 C6" "68 04 00 00 00 04 F8 F0" "FE 04 00 00 00 04 E5 C6")
    assert to_client == bytes.fromhex(
        "FE 04 08 00 00 00 00 00 00 01 A4 17 31"  # status 0, alarm 0, output 0, CO2 420 ppm
        "68 04 08 00 20 00 00 00 00 01 A4 D5 79"  # MeterStatus bit 5: out of range
        "FE 84 04 72 F3"  # exception 4 to function 4
    )
