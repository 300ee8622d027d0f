"""The simulated stack on the bench: its devices are real pymodbus servers whose registers follow
simulate_stack at the bench clock's minute; live faults (control port) and scheduled ones
([[stack.faults]]) change what they answer; a lost device answers with exception 4."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from drivers.modbus.device import ModbusDevice, ModbusDeviceError
from ghgnet.clock import ManualClock
from simulators.bench import Bench
from simulators.config import BenchConfig, load_bench_config
from simulators.stack import UnitSpec, simulate_stack
from station_agent.config import load_station_config

SITE = Path(__file__).resolve().parents[2] / "configs" / "sites" / "stack-cems"
T0 = datetime(2026, 3, 1, 8, 0, 30, tzinfo=UTC)


@pytest.fixture
def bench():
    cfg = load_bench_config(SITE / "bench.toml").model_dump()
    for d in cfg["stack"]["devices"]:
        d["port"] = 0
    cfg["stack"]["faults"] = [{"kind": "device_lost", "device": "analyzer", "start": "2026-03-01T09:00:00Z",
                               "end": "2026-03-01T09:30:00Z"}]
    clock = ManualClock(T0)
    b = Bench(BenchConfig.model_validate(cfg), clock).start(control=False)
    yield b, clock
    b.stop()


def driver(bench: Bench, device: str) -> ModbusDevice:
    (cfg,) = [d for d in load_station_config(SITE / "station.toml").devices if d.id == device]
    cfg = cfg.model_copy(update={"url": bench.modbus[device].url})
    d = ModbusDevice(cfg, ModbusDevice.make_transport(cfg))
    d.open()
    return d


def test_the_devices_read_what_the_simulator_computes_for_the_minute(bench):
    b, clock = bench
    truth = simulate_stack(UnitSpec(capacity_mw=600.0), np.array([np.datetime64("2026-03-01T08:00")]), seed=18)
    flow, analyzer = driver(b, "cems-flow"), driver(b, "cems-analyzer")
    try:
        got = {**flow.read(at=clock.now()).values, **analyzer.read(at=clock.now()).values}
    finally:
        flow.close()
        analyzer.close()
    for name in ("differential_pressure_pa", "temperature_c", "moisture_pct", "co2_pct", "o2_pct"):
        assert got[name] == pytest.approx(truth.values[name][0], rel=1e-6), name
    assert b.handle({"cmd": "endpoints"})["endpoints"]["instruments"]["cems-flow"]["url"].startswith("tcp://")


def test_live_and_scheduled_faults(bench):
    b, clock = bench
    flow, analyzer = driver(b, "cems-flow"), driver(b, "cems-analyzer")
    try:
        b.handle({"device": "cems-flow", "fault": "blocked_pitot", "duration_s": 600})
        assert flow.read(at=clock.now()).values["differential_pressure_pa"] == pytest.approx(0.2)
        clock.advance(601)
        assert flow.read(at=clock.now()).values["differential_pressure_pa"] > 100  # the fault ended by itself
        b.handle({"device": "cems-analyzer", "fault": "co2_over_range"})
        assert analyzer.read(at=clock.now()).values["co2_pct"] == 20.0
        b.handle({"device": "cems-analyzer", "cmd": "clear_faults"})
        assert analyzer.read(at=clock.now()).values["co2_pct"] < 20.0
        clock.advance(3600)  # 09:10: the analyzer is lost (scheduled), the flow monitor is not
        with pytest.raises(ModbusDeviceError) as err:
            analyzer.read(at=clock.now())
        assert err.value.exception_code == 4
        assert flow.read(at=clock.now()).values["temperature_c"] > 40
        b.handle({"device": "cems-flow", "fault": "device_lost", "duration_s": 120})  # live, this device only
        with pytest.raises(ModbusDeviceError):
            flow.read(at=clock.now())
        clock.advance(3600)  # 10:10: both back
        assert flow.read(at=clock.now()).values["temperature_c"] > 40
        assert analyzer.read(at=clock.now()).values["check_span_pct"] == pytest.approx(15.0, rel=0.05)
    finally:
        flow.close()
        analyzer.close()


def test_stack_truth_is_the_simulated_true_mass(bench):
    b, _ = bench
    start = datetime(2026, 3, 1, tzinfo=UTC)
    truth = simulate_stack(UnitSpec(), np.arange(np.datetime64("2026-03-01T00:00"), np.datetime64("2026-03-01T06:00")),
                           seed=18)
    got = b.handle({"cmd": "stack_truth", "from": start.isoformat(), "to": (start + timedelta(hours=6)).isoformat()})
    assert got["true_mass_t"] == pytest.approx(truth.true_mass_t(), rel=1e-9)


def test_a_stack_device_point_that_follows_nothing_is_an_error_naming_it():
    cfg = load_bench_config(SITE / "bench.toml").model_dump()
    cfg["stack"]["devices"][0]["points"][0]["name"] = "co2_ppm"
    with pytest.raises(ValueError, match=r"co2_ppm.*follow nothing on the stack"):
        BenchConfig.model_validate(cfg)
