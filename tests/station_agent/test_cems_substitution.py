"""Substituted gaps of each rule (HJ 75-2017 and US Part 75), computed by hand, with their codes."""

from __future__ import annotations

import numpy as np
import pytest

from station_agent.processing.cems import MODC, OutOfControlPeriod
from station_agent.processing.cems.substitution import (
    Part75Parameter,
    hj75_substitute,
    part75_co2,
    part75_substitute,
)

H0 = np.datetime64("2026-01-01T00", "h")


def _hours(n: int) -> np.ndarray:
    return H0 + np.arange(n).astype("timedelta64[h]")


def _series(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """values 10 + (i % 10), all valid, all operating."""
    return 10.0 + np.arange(n) % 10, np.ones(n, bool), np.ones(n, bool)


# ---------- HJ 75-2017 ----------

def test_hj75_short_gap_is_the_mean_of_the_hours_around_it():
    v = np.array([10.0, 11.0, np.nan, np.nan, 13.0])
    s = hj75_substitute(_hours(5), v, np.isfinite(v), np.ones(5, bool))
    assert s.values.tolist() == [10.0, 11.0, 12.0, 12.0, 13.0]          # (11 + 13) / 2
    assert s.modc.tolist() == ["01", "01", "H1", "H1", "01"]
    assert s.substituted.tolist() == [False, False, True, True, False]


def test_hj75_mean_around_a_gap_skips_the_hours_the_unit_did_not_run():
    v = np.array([11.0, np.nan, np.nan, np.nan, 15.0])
    operating = np.array([True, False, True, False, True])
    s = hj75_substitute(_hours(5), v, np.isfinite(v), operating)
    assert s.modc.tolist() == ["01", "", "H1", "", "01"]
    assert s.values[2] == 13.0 and np.isnan(s.values[1])


def test_hj75_long_gap_takes_the_maximum_of_the_720_valid_hours_before():
    v, valid, operating = _series(1000)
    v[100] = 50.0               # more than 720 valid hours before the gap: outside the lookback
    v[900] = 30.0               # inside
    valid[950:975] = False      # 25 h gap
    s = hj75_substitute(_hours(1000), v, valid, operating)
    assert set(s.modc[950:975]) == {"H2"}
    assert np.all(s.values[950:975] == 30.0)


def test_hj75_capture_rate_between_75_and_90_takes_the_2160_hour_maximum():
    v, valid, operating = _series(121)
    v[5] = 40.0
    valid[80:100] = False       # gap A: 20 h, capture before it 80/80 = 100 % -> mean around
    valid[120] = False          # gap B: capture before it 100/120 = 83.3 % -> maximum of 2160
    s = hj75_substitute(_hours(121), v, valid, operating)
    assert set(s.modc[80:100]) == {"H1"} and s.values[80] == (v[79] + v[100]) / 2
    assert s.modc[120] == "H3" and s.values[120] == 40.0


def test_hj75_capture_below_75_has_no_rule_and_is_marked_as_ours():
    v, valid, operating = _series(10)
    valid[2:5] = False          # 3 h: capture 100 % -> H1
    valid[6] = False            # capture before it: 3/6 = 50 %
    s = hj75_substitute(_hours(10), v, valid, operating)
    assert s.modc[6] == "H9" and s.values[6] == 15.0                 # max of valid 10, 11, 15
    assert "no HJ 75-2017 rule" in MODC["H9"]


def test_hj75_capture_rate_restarts_each_quarter():
    hours = np.datetime64("2026-03-31T20", "h") + np.arange(10).astype("timedelta64[h]")
    v = 10.0 + np.arange(10)
    valid = np.ones(10, bool)
    valid[0:3] = False          # Q1: first hours lost (capture 100 % at their start: no earlier hour)
    valid[5] = False            # Q2 starts at index 4: capture 1/1 -> H1 around it
    s = hj75_substitute(hours, v, valid, np.ones(10, bool))
    assert s.modc[5] == "H1" and s.values[5] == (v[4] + v[6]) / 2


def test_hj75_out_of_control_takes_the_maximum_before_the_last_calibration():
    v, valid, operating = _series(300)
    v[30] = 25.0                # 180 valid hours before the last passing check (hour 200): counts
    v[210] = 99.0               # after that calibration: does not
    valid[250:260] = False
    ooc = np.zeros(300, bool)
    ooc[250:260] = True
    period = OutOfControlPeriod(start=H0 + np.timedelta64(250, "h"), end=H0 + np.timedelta64(260, "h"),
                                last_passed=H0 + np.timedelta64(200, "h"))
    s = hj75_substitute(_hours(300), v, valid, operating, ooc, [period])
    assert set(s.modc[250:260]) == {"H4"}
    assert np.all(s.values[250:260] == 25.0)
    # the 180 hours before hour 200 are hours 20..199: hour 19's 60 would not count
    v[19] = 60.0
    assert hj75_substitute(_hours(300), v, valid, operating, ooc, [period]).values[250] == 25.0


def test_hj75_long_out_of_control_period_uses_720_hours():
    v, valid, operating = _series(1200)
    v[250] = 33.0               # 750 hours before the calibration at hour 1000: outside 720
    v[400] = 31.0
    valid[1000:1030] = False
    ooc = ~valid
    period = OutOfControlPeriod(H0 + np.timedelta64(1000, "h"), None, H0 + np.timedelta64(1000, "h"))
    s = hj75_substitute(_hours(1200), v, valid, operating, ooc, [period])
    assert set(s.modc[1000:1030]) == {"H5"} and s.values[1000] == 31.0


# ---------- US 40 CFR Part 75 ----------

def test_part75_initial_procedure_before_720_quality_assured_hours():
    v, valid, operating = _series(100)
    valid[50:60] = False
    s = part75_substitute(v, valid, operating, part75_co2(20.0))
    assert set(s.modc[50:60]) == {"07"}
    assert s.values[50] == (v[49] + v[60]) / 2


def test_part75_high_availability_short_gap_is_hour_before_and_after():
    v, valid, operating = _series(1000)
    valid[990:995] = False
    s = part75_substitute(v, valid, operating, part75_co2(20.0))
    assert set(s.modc[990:995]) == {"06"} and s.values[990] == (v[989] + v[995]) / 2


def test_part75_high_availability_long_gap_takes_the_greater_of_p90_and_hbha():
    v, valid, operating = _series(1040)
    valid[1000:1030] = False    # 30 h, PMA 100 %
    v[1030] = 11.0              # HB/HA = (19 + 11) / 2 = 15
    # lookback: the 720 QA hours 280..999, 72 of each 10..19; p90 at rank 0.9*719 = 647.1 -> 18 + 0.1 = 18.1
    s = part75_substitute(v, valid, operating, part75_co2(20.0))
    assert set(s.modc[1000:1030]) == {"08"} and s.values[1000] == pytest.approx(18.1)
    v[1030] = 19.0              # HB/HA 19 > 18.1: the average wins, code 06
    s = part75_substitute(v, valid, operating, part75_co2(20.0))
    assert set(s.modc[1000:1030]) == {"06"} and s.values[1000] == 19.0


def test_part75_availability_90_to_95_short_and_long_gaps():
    v, valid, operating = _series(1020)
    valid[0:60] = False         # an old gap (substituted by the initial procedure)
    valid[1000:1008] = False    # 8 h, PMA 940/1000 = 94 %: HB/HA
    s = part75_substitute(v, valid, operating, part75_co2(20.0))
    assert set(s.modc[0:60]) == {"07"} and s.values[0] == v[60]       # nothing before: the hour after
    assert set(s.modc[1000:1008]) == {"06"}
    valid[1008] = False         # 9 h: the greater of p95 and HB/HA
    v[1009] = 12.0              # HB/HA (19 + 12) / 2 = 15.5; p95 of 280..999: rank 683.05 -> 19
    s = part75_substitute(v, valid, operating, part75_co2(20.0))
    assert set(s.modc[1000:1009]) == {"09"} and s.values[1000] == pytest.approx(19.0)


def test_part75_availability_80_to_90_takes_the_lookback_maximum():
    v, valid, operating = _series(1010)
    valid[0:150] = False        # PMA at the gap: 850/1000 = 85 %
    valid[1000:1002] = False
    s = part75_substitute(v, valid, operating, part75_co2(20.0))
    assert set(s.modc[1000:1002]) == {"10"} and s.values[1000] == 19.0


def test_part75_availability_below_80_takes_the_maximum_potential_value():
    v, valid, operating = _series(1010)
    valid[0:250] = False        # PMA 750/1000 = 75 %
    valid[1000] = False
    s = part75_substitute(v, valid, operating, part75_co2(16.5))
    assert s.modc[1000] == "12" and s.values[1000] == 16.5


def test_part75_load_bins_restrict_the_lookback():
    v, valid, operating = _series(3000)
    bins = np.where(np.arange(3000) % 2 == 0, 3, 9)
    v[bins == 3] = 100.0
    valid[2950:2980] = False    # 30 h at PMA 100 %: p90 at the hour's own load bin
    v[2980] = 11.0              # HB/HA = (19 + 11) / 2 = 15, below both bins' p90
    s = part75_substitute(v, valid, operating, Part75Parameter(2160, 2160, 1e7), load_bin=bins)
    # bin 3: all 100; bin 9 (odd hours): 11, 13, 15, 17, 19, 432 of each; rank 0.9*2159 = 1943.1 -> 19
    assert s.values[2950] == 100.0 and s.values[2951] == pytest.approx(19.0)
    assert set(s.modc[2950:2980]) == {"08"}
