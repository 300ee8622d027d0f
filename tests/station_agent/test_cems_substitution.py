"""Substituted gaps of each rule (HJ 75-2017 and US Part 75), computed by hand, with their codes."""

from __future__ import annotations

import numpy as np
import pytest

from station_agent.processing.cems import MODC, OutOfControlPeriod
from station_agent.processing.cems.hourly import hourly_mean
from station_agent.processing.cems.substitution import (
    Part75Parameter,
    hj75_substitute,
    load_ranges,
    part75_co2,
    part75_flow_substitute,
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


# ---------- Part 75 flow: load ranges (section 75.33(c), appendix C section 2) ----------

def test_load_ranges_are_tenths_of_the_maximum_hourly_gross_load():
    # 600 MW: range k holds (60(k-1), 60k] MW, range 1 from 0; above the maximum: 10; unknown: 0
    load = [0.0, 60.0, 60.1, 300.0, 301.0, 599.9, 600.0, 650.0, -5.0, np.nan]
    assert load_ranges(load, 600.0).tolist() == [1, 1, 2, 5, 6, 10, 10, 10, 1, 0]
    # a common stack may use up to 20 ranges (section 75.57(b)(4)): 30 MW each
    assert load_ranges([30.0, 30.1, 300.0], 600.0, 20).tolist() == [1, 2, 10]
    with pytest.raises(ValueError, match="maximum_load"):
        load_ranges([1.0], 0.0)
    with pytest.raises(ValueError, match="n_ranges"):
        load_ranges([1.0], 600.0, 21)


def _flow(lookback: int = 4, max_potential: float = 999.0) -> Part75Parameter:
    """Small lookback and initial period (4 QA hours) so the pools can be counted by hand."""
    return Part75Parameter(lookback, lookback, max_potential)


def test_part75_flow_initial_procedure_averages_earlier_hours_of_the_load_range_or_a_higher_one():
    v = np.array([100.0, 200.0, 110.0, np.nan, np.nan, np.nan])
    ranges = np.array([3, 7, 3, 3, 5, 9])
    s = part75_flow_substitute(v, np.isfinite(v), np.ones(6, bool), Part75Parameter(2160, 2160, 999.0), ranges)
    # range 3: (100 + 110) / 2; range 5 has no hour: the next higher with data, 7: 200; above 7: none
    assert s.values[3:].tolist() == [105.0, 200.0, 999.0]
    assert s.modc[3:].tolist() == ["07", "07", "12"]


def test_part75_flow_short_gap_is_the_load_range_average_over_the_lookback():
    v = np.array([100.0, 200.0, 120.0, 220.0, 140.0, 240.0, np.nan, np.nan, 150.0])
    ranges = np.array([3, 7, 3, 7, 3, 7, 3, 7, 3])
    s = part75_flow_substitute(v, np.isfinite(v), np.ones(9, bool), _flow(), ranges)
    # lookback: the 4 QA hours before the gap (2..5); hour 0's 100 is outside it
    assert s.values[6:8].tolist() == [130.0, 230.0]            # (120 + 140) / 2, (220 + 240) / 2
    assert s.modc[6:8].tolist() == ["11", "11"]


def test_part75_flow_long_gap_takes_the_greater_of_the_range_p90_and_hbha():
    v = np.concatenate([[100.0, 200.0, 120.0, 220.0, 140.0, 240.0, 160.0, 260.0], np.full(25, np.nan), [50.0]])
    ranges = np.concatenate([[3, 7] * 4, np.full(26, 3)])
    s = part75_flow_substitute(v, np.isfinite(v), np.ones(34, bool), _flow(), ranges)
    # 25 h at PMA 100 %: range 3 in the lookback (hours 4..7) is 140, 160: p90 = 140 + 0.9 * 20 = 158;
    # HB/HA = (260 + 50) / 2 = 155 < 158
    assert set(s.modc[8:33]) == {"08"} and s.values[8] == pytest.approx(158.0)
    v[33] = 100.0               # HB/HA = (260 + 100) / 2 = 180 > 158: the average, code 06
    s = part75_flow_substitute(v, np.isfinite(v), np.ones(34, bool), _flow(), ranges)
    assert set(s.modc[8:33]) == {"06"} and s.values[8] == 180.0


def _twenty(invalid_first: int, gap: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hours 0..19: even ones range 3 (100 + i), odd ones range 7 (200 + i), the first
    `invalid_first` lost; then a gap of `gap` range-3 hours and one valid range-3 hour of 0."""
    i = np.arange(20)
    v = np.concatenate([np.where(i % 2 == 0, 100.0 + i, 200.0 + i), np.full(gap, np.nan), [0.0]])
    ranges = np.concatenate([np.where(i % 2 == 0, 3, 7), np.full(gap + 1, 3)])
    valid = np.isfinite(v)
    valid[:invalid_first] = False
    return v, valid, ranges


def test_part75_flow_availability_90_to_95_short_and_long_gaps():
    # PMA 18/20 = 90 %; lookback (hours 16..19) range 3: 116, 118
    v, valid, ranges = _twenty(2, 8)
    s = part75_flow_substitute(v, valid, np.ones(len(v), bool), _flow(), ranges)
    assert set(s.modc[20:28]) == {"11"} and s.values[20] == 117.0        # 8 h: the range average
    v, valid, ranges = _twenty(2, 9)
    s = part75_flow_substitute(v, valid, np.ones(len(v), bool), _flow(), ranges)
    # 9 h: p95 = 116 + 0.95 * 2 = 117.9 > HB/HA (219 + 0) / 2 = 109.5
    assert set(s.modc[20:29]) == {"09"} and s.values[20] == pytest.approx(117.9)


def test_part75_flow_availability_80_to_90_takes_the_range_maximum():
    v, valid, ranges = _twenty(3, 1)
    ranges[20] = 7              # PMA 17/20 = 85 %: range 7 in hours 16..19: 217, 219
    s = part75_flow_substitute(v, valid, np.ones(len(v), bool), _flow(), ranges)
    assert s.modc[20] == "10" and s.values[20] == 219.0


def test_part75_flow_availability_below_80_takes_the_maximum_potential_flow():
    v, valid, ranges = _twenty(5, 1)    # PMA 15/20 = 75 %
    s = part75_flow_substitute(v, valid, np.ones(len(v), bool), _flow(max_potential=3.1e6), ranges)
    assert s.modc[20] == "12" and s.values[20] == 3.1e6


def test_part75_flow_unknown_load_is_filled_from_the_highest_range():
    v = np.array([100.0, 200.0, 120.0, 220.0, np.nan, 150.0])
    ranges = np.array([3, 7, 3, 7, 0, 3])
    s = part75_flow_substitute(v, np.isfinite(v), np.ones(6, bool), _flow(), ranges)
    assert s.modc[4] == "11" and s.values[4] == 210.0           # (200 + 220) / 2


def test_hourly_mean_load_over_the_running_minutes():
    t = np.datetime64("2026-01-01T00:00") + np.arange(180).astype("timedelta64[m]")
    load = np.where(np.arange(180) < 60, 300.0, 500.0)
    load[90] = np.nan           # a minute without a reading
    running = np.ones(180, bool)
    running[120:150] = False    # the unit stopped: those minutes' readings do not count
    load[120:150] = 0.0
    hours = np.array(["2026-01-01T00", "2026-01-01T01", "2026-01-01T02", "2026-01-01T03"], "datetime64[h]")
    assert hourly_mean(t, running, load, hours)[:3].tolist() == [300.0, 500.0, 500.0]
    assert np.isnan(hourly_mean(t, running, load, hours)[3])
