"""The simulated Senseair sensor on the bench: served by itself, faults through the control port,
its measurements held for their 2-s period and recorded with their truth."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from drivers.modbus.device import ModbusDeviceError
from drivers.senseair.k30 import K30
from drivers.transport import TransportTimeout
from ghgnet.clock import ManualClock
from simulators.bench import Bench
from simulators.config import BenchConfig

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def bench():
    clock = ManualClock(T0)
    config = BenchConfig.model_validate({"instruments": [
        {"id": "k30-1", "model": "senseair.k30", "mode": "rtu+tcp", "noise_ppm": 3.0,
         "response": {"gain": {"co2": 1.05}, "offset": {"co2": -10.0}}, "gas": {"co2": 430.0}}]})
    b = Bench(config, clock).start(control=False)
    yield b, clock
    b.stop()


def k30(url: str) -> K30:
    config = K30.Config.model_validate({"id": "k30-1", "driver": "senseair.k30", "url": url, "timeout_s": 0.3})
    d = K30(config, K30.make_transport(config))
    d.open()
    return d


def test_measurements_follow_the_gas_through_the_response_and_are_held_for_their_period(bench):
    b, clock = bench
    url = b.endpoints()["instruments"]["k30-1"]["url"]
    assert url.startswith("rtu+tcp://")
    d = k30(url)
    try:
        values = []
        for _ in range(60):
            d.now = clock.now
            values.append(d.poll().readings[0].values["co2_dry"])
            clock.advance(1.0)
        assert values[0::2] == values[1::2]  # one measurement per 2 s, read twice
        assert sum(values) / len(values) == pytest.approx(1.05 * 430.0 - 10.0, abs=1.5)
        ledger = b.devices["k30-1"].ledger
        assert len(ledger) == 30 and ledger[-1].truth["co2"] == pytest.approx(430.0)
        assert b.truth("k30-1", T0, T0.replace(minute=1))[0]["co2"] == pytest.approx(430.0)
    finally:
        d.close()


def test_faults_through_the_bench(bench):
    b, _ = bench
    d = k30(b.endpoints()["instruments"]["k30-1"]["url"])
    try:
        b.handle({"device": "k30-1", "fault": "status", "word": 16})
        assert d.poll().readings[0].status_flags == ("self_diagnostics_error",)
        b.handle({"device": "k30-1", "fault": "exception", "count": 1, "code": 6})
        with pytest.raises(ModbusDeviceError, match="SERVER DEVICE BUSY"):
            d.poll()
        b.handle({"device": "k30-1", "fault": "silent"})
        with pytest.raises(TransportTimeout):
            d.poll()
        assert b.handle({"device": "k30-1", "cmd": "clear_faults"}) == {"ok": True}
        assert d.poll().readings[0].status_ok
        assert b.stats("k30-1")["requests"] == 4
        with pytest.raises(ValueError, match="unknown fault 'smoke'"):
            b.handle({"device": "k30-1", "fault": "smoke"})
    finally:
        d.close()
