"""The air a medium-precision sensor sits in and its response to it: the K30 and GMP343 simulators
read the truth moved by the known model (temperature, humidity, pressure, drift), record the air
with the truth, and the PTU300 reports the same air through the station's generic.line driver."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drivers.generic.line import GenericLine
from ghgnet.clock import ManualClock
from simulators.bench import Bench, DiurnalGas
from simulators.config import BenchConfig, DiurnalGasConfig
from simulators.vaisala.gmp343 import GMP343Simulator
from simulators.weather import SensitivityConfig, Weather, WeatherConfig

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]
WEATHER = {"seed": 5, "temperature_c": 18.0, "humidity_pct": 60.0, "pressure_hpa": 1005.0}
SENSITIVITY = {"temperature_ppm_per_c": 1.5, "humidity_ppm_per_pct": -0.4, "pressure_per_hpa": 0.0016}


def test_weather_is_deterministic_bounded_and_varies_on_its_own_scales():
    w, again = Weather(WeatherConfig(**WEATHER)), Weather(WeatherConfig(**WEATHER))
    days = [w(T0 + timedelta(hours=h)) for h in range(24 * 4)]
    assert days[10] == again(T0 + timedelta(hours=10))
    temps = [d["temperature"] for d in days]
    hums = [d["humidity"] for d in days]
    assert max(temps) - min(temps) > 8 and all(0 <= h <= 100 for h in hums)
    assert max(d["pressure"] for d in days) - min(d["pressure"] for d in days) > 2
    assert Weather(WeatherConfig(**{**WEATHER, "seed": 6}))(T0) != w(T0)


def test_sensitivity_is_the_documented_model():
    s = SensitivityConfig(**SENSITIVITY)
    air = {"temperature": 25.0, "humidity": 40.0, "pressure": 1003.25}
    expected = 430.0 * (1 + 0.0016 * (1003.25 - 1013.25)) + 1.5 * (25.0 - 20.0) - 0.4 * (40.0 - 50.0)
    assert s.apply(430.0, air) == pytest.approx(expected)
    assert s.apply(430.0, s.reference_air()) == 430.0
    assert SensitivityConfig().apply(430.0, air) == 430.0


def test_the_k30_reads_the_truth_through_its_response_drift_and_air_and_records_the_air():
    clock = ManualClock(T0)
    config = BenchConfig.model_validate({"instruments": [
        {"id": "k30-1", "model": "senseair.k30", "noise_ppm": 0.0, "gas": {"co2": 430.0},
         "response": {"gain": {"co2": 1.02}, "offset": {"co2": -5.0}, "drift_per_day": {"co2": 1.0}},
         "weather": WEATHER, "sensitivity": SENSITIVITY}]})
    sim = Bench(config, clock).devices["k30-1"]
    clock.advance(2 * 86400.0 + 1.0)
    co2 = sim._values(clock.now())["co2"]
    entry = sim.ledger[-1]  # the measurement just read
    air = Weather(WeatherConfig(**WEATHER))(entry.time)
    assert {k: entry.truth[k] for k in air} == pytest.approx(air)
    days = (entry.time - T0).total_seconds() / 86400
    expected = SensitivityConfig(**SENSITIVITY).apply(1.02 * 430.0 - 5.0 + days, air)
    assert co2 == round(expected) and abs(expected - 430.0) > 1.0


def test_the_gmp343_follows_its_air_its_sensitivity_and_reports_the_airs_temperature():
    clock = ManualClock(T0)
    weather = Weather(WeatherConfig(**WEATHER))
    sim = GMP343Simulator(clock, DiurnalGas.from_config(DiurnalGasConfig(co2=430.0, h2o=0.0)), None, 1,
                          weather=weather, sensitivity=SensitivityConfig(temperature_ppm_per_c=2.0))
    sim.switches["pressure"], sim.values["pressure"] = True, weather(T0)["pressure"]
    values, truth = sim.reading(T0)
    air = weather(T0)
    assert truth["temperature"] == air["temperature"] and truth["pressure"] == air["pressure"]
    assert values["T"] == pytest.approx(air["temperature"], abs=0.3)
    assert values["CO2"] == pytest.approx(430.0 + 2.0 * (air["temperature"] - 20.0), abs=2.0)


def test_the_ptu300_answers_send_and_the_generic_line_driver_reads_its_air():
    clock = ManualClock(T0)
    bench = Bench(BenchConfig.model_validate({"instruments": [
        {"id": "met-1", "model": "vaisala.ptu300", "seed": 3, "weather": WEATHER}]}), clock).start(control=False)
    try:
        assert bench.devices["met-1"].receive(b"send\r").decode().startswith("P= ")
        assert bench.devices["met-1"].receive(b"bogus\r") == b"Unknown command\r\n>"
        url = bench.endpoints()["instruments"]["met-1"]["url"]
        config = GenericLine.Config.model_validate(
            {"id": "met-1", "driver": "generic.line", "url": url, "timeout_s": 1.0,
             "definition": str(ROOT / "configs" / "analyzers" / "vaisala-ptu300.toml")})
        d = GenericLine(config, GenericLine.make_transport(config))
        d.open()
        try:
            readings = []
            for _ in range(3):
                d.now = clock.now
                readings += d.poll().readings
                clock.advance(20.0)
        finally:
            d.close()
        assert len(readings) == 3
        air = Weather(WeatherConfig(**WEATHER))(readings[-1].time)
        for q in ("temperature", "humidity", "pressure"):
            assert readings[-1].values[q] == pytest.approx(air[q], abs=1.0), q
    finally:
        bench.stop()
