"""Per-minute CEMS chain: a whole minute by hand, and each input's validity with its reason."""

from __future__ import annotations

import math

import numpy as np
import pytest

from station_agent.processing.cems import MinuteInputs, RoundDuct, StackSettings, reason_names
from station_agent.processing.cems.minutes import minute_emissions

T0 = np.datetime64("2026-03-01T00:00")


def _inputs(n: int = 1, **overrides) -> MinuteInputs:
    values = {"velocity_m_s": 15.0, "differential_pressure_pa": 150.0, "temperature_c": 50.0, "static_pa": 300.0,
              "barometric_pa": 101_000.0, "moisture_pct": 12.0, "o2_pct": 6.0, "co2_pct": 11.2}
    values.update({k: v for k, v in overrides.items() if k in values})
    return MinuteInputs(
        time=T0 + np.arange(n).astype("timedelta64[m]"),
        running=np.asarray(overrides.get("running", np.ones(n, bool))),
        values={k: np.full(n, v, float) if np.isscalar(v) else np.asarray(v, float) for k, v in values.items()},
        ok=overrides.get("ok"), out_of_control=overrides.get("out_of_control"))


ULTRASONIC = StackSettings(duct=RoundDuct(6.0), kv=1.05, velocity_method="ultrasonic", co2_basis="wet")


def test_a_whole_ultrasonic_wet_minute_by_hand():
    m = minute_emissions(_inputs(), ULTRASONIC)
    area = math.pi * 36.0 / 4.0                                    # 28.274334 m2
    q_s = 3600.0 * area * 15.0 * 1.05                              # 1,603,154.7 m3/h
    q_sn = q_s * 273.15 / 323.15 * 101_300.0 / 101_325.0 * 0.88    # standard, dry
    c_mg = 11.2 / 0.88 * 44.01 / 22.414 * 1e4                      # 249,900.6 mg/m3
    assert m.actual_flow_m3_h[0] == pytest.approx(q_s)
    assert m.standard_flow_m3_h[0] == pytest.approx(q_sn)
    assert m.co2_dry_mg_m3[0] == pytest.approx(c_mg)
    assert m.rate_kg_h[0] == pytest.approx(c_mg * q_sn * 1e-6)
    assert m.valid[0] and m.reasons[0] == 0


def test_pitot_minute_uses_the_measured_gas_density():
    settings = StackSettings(duct=RoundDuct(6.0), kv=1.05, kp=0.84, co2_basis="wet")
    m = minute_emissions(_inputs(), settings)
    dry = 11.2 / 0.88
    molar = (44.01 * dry / 100 + 31.999 * 0.06 + 28.014 * (1 - dry / 100 - 0.06)) * 0.88 + 18.015 * 0.12
    rho = molar / 1000.0 * 101_300.0 / (8.314462618 * 323.15)
    assert m.velocity_m_s[0] == pytest.approx(1.05 * 0.84 * math.sqrt(2 * 150.0 / rho))


def test_a_blocked_pitot_voids_the_flow_not_the_co2():
    settings = StackSettings(duct=RoundDuct(6.0), kv=1.05)
    m = minute_emissions(_inputs(differential_pressure_pa=0.3), settings)
    assert not m.flow_valid[0] and m.co2_valid[0] and np.isnan(m.rate_kg_h[0])
    assert reason_names(m.reasons[0]) == ["differential_pressure_pa"]


def test_co2_over_range_lost_values_and_device_verdicts_each_say_why():
    m = minute_emissions(_inputs(3, co2_pct=[20.0, np.nan, 11.0], ok={"temperature_c": np.array([True, True, False])}),
                         ULTRASONIC)
    assert reason_names(m.reasons[0]) == ["co2_over_range"]
    assert reason_names(m.reasons[1]) == ["co2_pct"]
    assert reason_names(m.reasons[2]) == ["temperature_c"]
    assert m.co2_valid.tolist() == [False, False, True]
    assert m.flow_valid.tolist() == [True, True, False]


def test_moisture_voids_a_wet_analyzers_co2_but_not_a_dry_ones():
    wet = minute_emissions(_inputs(moisture_pct=np.nan), ULTRASONIC)
    dry = minute_emissions(_inputs(moisture_pct=np.nan), StackSettings(duct=RoundDuct(6.0), kv=1.05,
                                                                      velocity_method="ultrasonic", co2_basis="dry"))
    assert not wet.co2_valid[0] and not wet.flow_valid[0]
    assert dry.co2_valid[0] and not dry.flow_valid[0]
    assert dry.co2_dry_pct[0] == 11.2


def test_out_of_control_minutes_and_stopped_unit():
    m = minute_emissions(_inputs(2, out_of_control=np.array([True, False]), running=np.array([True, False])),
                         ULTRASONIC)
    assert reason_names(m.reasons[0]) == ["out_of_control"]
    assert not m.co2_valid[0] and m.flow_valid[0]
    assert not m.valid[1] and m.reasons[1] == 0      # not running: nothing wrong, nothing to count


def test_bad_input_names_and_lengths_are_refused():
    with pytest.raises(ValueError, match="unknown minute inputs"):
        MinuteInputs(time=np.array([T0]), running=np.array([True]), values={"co2": np.array([1.0])})
    with pytest.raises(ValueError, match="'co2_pct' has 2 values for 1 minutes"):
        MinuteInputs(time=np.array([T0]), running=np.array([True]), values={"co2_pct": np.array([1.0, 2.0])})
    with pytest.raises(ValueError, match="unknown range names"):
        StackSettings(duct=RoundDuct(6.0), kv=1.0, ranges={"co2": (0, 1)})
