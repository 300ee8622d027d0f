"""Daily zero/span checks: drift against limits, out-of-control periods and the minutes in them."""

from __future__ import annotations

import numpy as np
import pytest

from station_agent.processing.cems import HJ75_LIMITS, PART75_CO2_LIMITS, DailyCheck, DriftLimits
from station_agent.processing.cems.drift import drift, out_of_control_mask, out_of_control_periods


def _check(day: int, zero: float = 0.0, span: float = 15.0) -> DailyCheck:
    return DailyCheck(time=np.datetime64("2026-03-01T02:00") + np.timedelta64(day, "D"), zero_reading=zero,
                      span_reading=span, span_reference=15.0, full_scale=20.0)


def test_drift_in_percent_of_full_scale_and_absolute():
    # span reads 15.4 on a 0-20 % analyzer: +0.4 / 20 = +2.0 % FS, inside 2.5; 15.6: 3.0 % FS, outside
    assert drift(_check(0, span=15.4), HJ75_LIMITS).span_drift == pytest.approx(2.0)
    assert drift(_check(0, span=15.4), HJ75_LIMITS).passed
    assert not drift(_check(0, span=15.6), HJ75_LIMITS).passed
    assert not drift(_check(0, zero=-0.6), HJ75_LIMITS).passed         # -3.0 % FS
    # Part 75: absolute % CO2, 1.0 allowed
    assert drift(_check(0, span=15.9), PART75_CO2_LIMITS).passed
    assert not drift(_check(0, span=16.1), PART75_CO2_LIMITS).passed
    with pytest.raises(ValueError, match="drift limits"):
        DriftLimits(zero=0.0, span=1.0)


def test_out_of_control_from_the_failed_check_until_a_passing_one():
    checks = [_check(0), _check(1), _check(2, span=16.0), _check(3, span=16.0), _check(4), _check(5, zero=1.0)]
    periods = out_of_control_periods(list(reversed(checks)), HJ75_LIMITS)   # order does not matter
    assert len(periods) == 2
    assert periods[0].start == checks[2].time and periods[0].end == checks[4].time
    assert periods[0].last_passed == checks[1].time
    assert periods[1].start == checks[5].time and periods[1].end is None
    assert periods[1].last_passed == checks[4].time


def test_minutes_inside_a_period_are_marked():
    periods = out_of_control_periods([_check(0), _check(1, span=17.0), _check(2)], HJ75_LIMITS)
    times = np.array(["2026-03-02T01:59", "2026-03-02T02:00", "2026-03-03T01:59", "2026-03-03T02:00"],
                     dtype="datetime64[m]")
    assert out_of_control_mask(times, periods).tolist() == [False, True, True, False]
