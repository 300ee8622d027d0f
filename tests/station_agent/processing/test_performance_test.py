"""The performance-test analysis on hand-made minutes: CMR, short-term drift, LTR, drift, water test."""

import math

import numpy as np
import pytest

from ghgnet.processing.performance_test import MinuteSeries, Phases, infer_phases, performance_test

DAY = 86400.0


def _series():
    times, streams, co2, h2o = [], [], [], []

    def add(t, stream, value, h=0.0):
        times.append(t)
        streams.append(stream)
        co2.append(value)
        h2o.append(h)

    # continuous: 2 settling minutes (skipped), then 4 minutes in one hour
    for i, v in enumerate([431.0, 430.5, 430.00, 430.02, 430.01, 430.03]):
        add(i * 60.0, "target:T", v)
    # cycles on day 0, 1, 2: A then B, 2 minutes each (the last one counts)
    for d in range(3):
        base = 1000.0 + d * DAY
        add(base, "cal:A", 379.0)
        add(base + 60, "cal:A", 380.0 + 0.1 * d)
        add(base + 120, "cal:B", 419.0)
        add(base + 180, "cal:B", 420.0)
    # the humidified T
    w0 = 3 * DAY
    add(w0, "target:T-wet", 430.01, 2.0)
    add(w0 + 60, "target:T-wet", 429.99, 1.0)
    return MinuteSeries.of(times, streams, [True] * len(times), {"co2": co2}, h2o)


def test_hand_computed_figures():
    m = _series()
    rep = performance_test("g", m, Phases("target:T", ("cal:A", "cal:B"), "target:T-wet", "target:T"),
                           last_minutes=1, skip_minutes=2)
    c = rep.continuous[0]
    dev = [0.0, 0.02, 0.01, 0.03]
    assert c.n_minutes == 4 and c.mean == pytest.approx(430.015)
    assert c.cmr_1min == pytest.approx(np.std(dev, ddof=1))  # 0.012910
    assert c.drift_p2p_1min == pytest.approx(0.03)
    assert c.cmr_1h is None and c.drift_p2p_1h is None  # one hour only
    # least-squares slope of (0, .02, .01, .03) at minutes 2..5: 0.008 per minute
    assert c.drift_per_day == pytest.approx(0.008 * 1440)
    a = next(r for r in rep.long_term if r.stream == "cal:A")
    assert a.injection_means == pytest.approx((380.0, 380.1, 380.2))
    assert a.ltr == pytest.approx(0.1) and a.drift_per_day == pytest.approx(0.1)
    b = next(r for r in rep.long_term if r.stream == "cal:B")
    assert b.ltr == 0.0 and b.drift_per_day == pytest.approx(0.0, abs=1e-9)
    w = rep.water[0]
    assert (w.h2o_min, w.h2o_max) == (1.0, 2.0)
    assert w.slope_per_h2o == pytest.approx(0.02)
    assert w.dry_reference == pytest.approx(430.03)  # the last minute of T's (only) injection
    assert w.max_abs_deviation == pytest.approx(0.04)
    assert math.isfinite(w.slope_per_h2o)


def test_phases_are_inferred_from_the_streams():
    ph = infer_phases(_series())
    assert ph == Phases("target:T", ("cal:A", "cal:B"), "target:T-wet", "target:T")


def test_minutes_without_a_cylinder_are_refused():
    m = MinuteSeries.of([0.0, 60.0], ["inlet:a", "inlet:a"], [True, True], {"co2": [1.0, 2.0]})
    with pytest.raises(ValueError, match="nothing to test"):
        performance_test("g", m)
