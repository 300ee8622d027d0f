"""Valid hours (HJ 75-2017's 45 minutes, Part 75's quadrants), hourly means and hourly mass."""

from __future__ import annotations

import numpy as np
import pytest

from station_agent.processing.cems import HourRule, MinuteInputs, RoundDuct, StackSettings
from station_agent.processing.cems.concentration import MG_M3_PER_PERCENT
from station_agent.processing.cems.hourly import PART75_HOUR, hour_mass_kg, hourly_values
from station_agent.processing.cems.minutes import minute_emissions

T0 = np.datetime64("2026-03-01T00:00")
SETTINGS = StackSettings(duct=RoundDuct(6.0), kv=1.0, velocity_method="ultrasonic", co2_basis="dry")


def _minutes(co2: np.ndarray, running: np.ndarray | None = None):
    n = len(co2)
    values = {"velocity_m_s": np.full(n, 10.0), "temperature_c": np.zeros(n), "static_pa": np.zeros(n),
              "barometric_pa": np.full(n, 101_325.0), "moisture_pct": np.zeros(n), "o2_pct": np.full(n, 6.0),
              "co2_pct": np.asarray(co2, float)}
    inputs = MinuteInputs(time=T0 + np.arange(n).astype("timedelta64[m]"),
                          running=np.ones(n, bool) if running is None else running, values=values)
    return minute_emissions(inputs, SETTINGS)


def test_45_valid_minutes_make_a_valid_hour_44_do_not():
    co2 = np.full(120, 12.0)
    co2[45:60] = np.nan          # hour 0: 45 valid minutes
    co2[60:76] = np.nan          # hour 1: 44 valid minutes
    h = hourly_values(_minutes(co2))
    assert h.co2_valid_minutes.tolist() == [45, 44]
    assert h.co2_valid.tolist() == [True, False]
    assert h.flow_valid.tolist() == [True, True]


def test_threshold_is_configurable_and_scales_for_a_partial_operating_hour():
    co2 = np.full(60, 12.0)
    co2[:20] = np.nan
    assert hourly_values(_minutes(co2), HourRule(min_valid_minutes=40)).co2_valid[0]
    assert not hourly_values(_minutes(co2), HourRule(min_valid_minutes=41)).co2_valid[0]
    # the unit ran 20 minutes: 45/60 of 20 = 15 valid minutes needed
    running = np.zeros(60, bool)
    running[40:] = True
    co2 = np.full(60, 12.0)
    co2[40:45] = np.nan          # 15 valid running minutes
    h = hourly_values(_minutes(co2, running))
    assert h.operating_minutes[0] == 20 and h.operating_hours[0] == pytest.approx(1 / 3)
    assert h.co2_valid[0]
    co2[45] = np.nan             # 14
    assert not hourly_values(_minutes(co2, running)).co2_valid[0]


def test_part75_quadrants_need_a_valid_minute_in_each_operating_quadrant():
    co2 = np.full(60, np.nan)
    co2[[3, 20, 31, 59]] = 12.0
    assert hourly_values(_minutes(co2), PART75_HOUR).co2_valid[0]
    co2[20] = np.nan             # quadrant 2 (minutes 15-29) now empty
    assert not hourly_values(_minutes(co2), PART75_HOUR).co2_valid[0]


def test_hour_means_and_mass_by_hand():
    co2 = np.concatenate([np.full(30, 12.0), np.full(30, 14.0)])
    h = hourly_values(_minutes(co2))
    assert h.co2_dry_pct[0] == pytest.approx(13.0)
    # 10 m/s in a 6 m stack at 0 degC, 101,325 Pa, dry: 3600 * 28.2743 * 10 = 1,017,876 m3/h
    assert h.standard_flow_m3_h[0] == pytest.approx(3600.0 * np.pi * 9.0 * 10.0)
    assert hour_mass_kg(13.0, 1_000_000.0, 0.5) == pytest.approx(13.0 * MG_M3_PER_PERCENT * 0.5)


def test_hours_with_no_minute_are_listed_as_not_operating():
    co2 = np.full(180, 12.0)
    m = _minutes(co2)
    keep = np.r_[0:60, 120:180]
    from dataclasses import replace
    sparse = replace(m, **{f: getattr(m, f)[keep] for f in ("time", "running", "velocity_m_s", "actual_flow_m3_h",
                                                           "standard_flow_m3_h", "co2_dry_pct", "co2_dry_mg_m3",
                                                           "rate_kg_h", "flow_valid", "co2_valid", "reasons")})
    h = hourly_values(sparse)
    assert h.operating_minutes.tolist() == [60, 0, 60]
    assert h.operating.tolist() == [True, False, True]
