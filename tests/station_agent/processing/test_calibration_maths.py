"""Calibration maths against numbers worked out by hand."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from ghgnet.processing.calibration import (
    AssignedValue,
    CalibrationResult,
    calibrate,
    calibration_drift,
    calibration_from_minutes,
    evaluate_target,
    fit_calibration,
    fit_species,
    injection_means,
    interpolated_coefficients,
    target_from_minutes,
)

T0 = datetime(2026, 11, 22, 0, 0, tzinfo=UTC)


# ------------------------------------------------------------------------------------- fits


def test_linear_fit_with_residuals_r2_and_rmse():
    # x = 400, 410, 420 ; y = 400, 410, 430. In units u = (v - 400) / 10: x = 0,1,2, y = 0,1,3.
    # OLS: mean x 1, mean y 4/3, Sxy = 3, Sxx = 2 -> slope 1.5, u-intercept 4/3 - 1.5 = -1/6.
    # In ppm: y = 400 + 10 * (-1/6 + 1.5 * (x - 400) / 10) = 1.5 x - 201.666...
    # fitted u: -1/6, 4/3, 17/6 -> residuals (fitted - assigned) 10 * (-1/6, 1/3, -1/6)
    # SS_res = 100 * 6/36, SS_tot = 100 * 42/9 -> R2 = 1 - (1/6)/(14/3) = 27/28
    # RMSE = sqrt(SS_res / 3) = 10 * sqrt(1/18)
    fit = fit_species([400.0, 410.0, 420.0], [400.0, 410.0, 430.0], species="co2", cylinders=["A", "B", "C"])
    assert fit.coefficients == pytest.approx((-201.0 - 2.0 / 3.0, 1.5), abs=1e-9)
    assert fit.intercept == fit.coefficients[0] and fit.slope == pytest.approx(1.5)
    assert fit.residuals == pytest.approx((-10 / 6, 10 / 3, -10 / 6), abs=1e-9)
    assert fit.r2 == pytest.approx(27 / 28, abs=1e-12)
    assert fit.rmse == pytest.approx(10 * math.sqrt(1 / 18), abs=1e-12)
    assert fit.n == 3 and fit.degree == 1 and fit.cylinders == ("A", "B", "C")


def test_two_standard_linear_fit_is_exact():
    # assigned = 2 + 0.5 * measured
    fit = fit_species([380.0, 460.0], [192.0, 232.0])
    assert fit.coefficients == pytest.approx((2.0, 0.5))
    assert fit.rmse == pytest.approx(0.0, abs=1e-12) and fit.r2 == pytest.approx(1.0)


def test_quadratic_with_three_standards_reproduces_a_known_curve():
    # f(x) = 5 + 0.9 x + 0.0002 x^2 at 380, 420, 500 -> 375.88, 418.28, 505.0
    x = np.array([380.0, 420.0, 500.0])
    y = 5.0 + 0.9 * x + 0.0002 * x**2
    assert y.tolist() == pytest.approx([375.88, 418.28, 505.0])
    fit = fit_species(x, y, degree=2, species="co2")
    assert fit.degree == 2
    assert fit.coefficients == pytest.approx((5.0, 0.9, 0.0002), rel=1e-6)
    assert fit.residuals == pytest.approx((0.0, 0.0, 0.0), abs=1e-9)
    assert calibrate(450.0, fit) == pytest.approx(5.0 + 405.0 + 40.5)  # 450.5


def test_quadratic_needs_three_standards_linear_two():
    with pytest.raises(ValueError, match=r"co2: too few standards for a quadratic fit: need >= 3, got 2"):
        fit_species([380.0, 420.0], [380.0, 420.0], degree=2, species="co2")
    with pytest.raises(ValueError, match="too few standards for a linear fit: need >= 2, got 1"):
        fit_species([380.0], [380.0])
    with pytest.raises(ValueError, match="degree must be 1"):
        fit_species([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0], degree=3)


def test_degenerate_measured_or_assigned_values_are_refused():
    with pytest.raises(ValueError, match="degenerate standards: measured values"):
        fit_species([400.0, 400.0, 400.0], [380.0, 420.0, 460.0], species="co2")
    with pytest.raises(ValueError, match="degenerate"):
        fit_species([380.0, 380.0, 460.0], [380.0, 381.0, 460.0], degree=2)  # 2 distinct for 3 params
    with pytest.raises(ValueError, match="all assigned values equal"):
        fit_species([380.0, 420.0], [400.0, 400.0])


def test_nan_is_refused_naming_the_standard():
    with pytest.raises(ValueError, match="NaN/inf for standard\\(s\\) CAL-B"):
        fit_species([380.0, np.nan, 460.0], [380.0, 420.0, 460.0], cylinders=["CAL-A", "CAL-B", "CAL-C"])


def test_calibrate_vectorised_nan_and_per_value_coefficients():
    out = calibrate([400.0, np.nan, 410.0], (1.0, 2.0))
    assert out[0] == 801.0 and np.isnan(out[1]) and out[2] == 821.0
    # one coefficient set per value: 0 + 1*10 and 1 + 2*10
    per_value = calibrate([10.0, 10.0], np.array([[0.0, 1.0], [1.0, 2.0]]))
    assert per_value.tolist() == [10.0, 21.0]


# ------------------------------------------------------------------------ injections and runs


def _run_rows():
    """Two cylinders x 2 cycles, 5 minutes per injection. Minutes 1-2 of an injection settle (off by
    +5); minutes 3-5 read the plateau. A: 400 + cycle*0.2 ; B: 450 + cycle*0.2."""
    times, cyl, cyc, co2 = [], [], [], []
    t = 0.0
    for k in (1, 2):
        for c, plateau in (("A", 400.0), ("B", 450.0)):
            for m in range(5):
                times.append(t)
                cyl.append(c)
                cyc.append(k)
                co2.append(plateau + 0.2 * k + (5.0 if m < 2 else 0.0))
                t += 60.0
    return np.array(times), cyl, np.array(cyc), {"co2": np.array(co2)}


def test_injection_means_use_the_last_minutes_averaged_over_cycles():
    times, cyl, cyc, values = _run_rows()
    means = injection_means(times, cyl, cyc, values, last_minutes=3)
    # A: cycle 1 400.2, cycle 2 400.4 -> 400.3; std of (400.2, 400.4) = 0.1414
    assert means["A"].mean["co2"] == pytest.approx(400.3)
    assert means["A"].std_between_cycles["co2"] == pytest.approx(math.sqrt(0.02))
    assert means["B"].mean["co2"] == pytest.approx(450.3)
    assert means["A"].n_cycles["co2"] == 2 and means["A"].n_minutes["co2"] == 6
    # taking 4 minutes pulls in one settling minute per cycle: (3*400.2 + 405.2)/4 = 401.45, etc.
    four = injection_means(times, cyl, cyc, values, last_minutes=4)
    assert four["A"].mean["co2"] == pytest.approx(((3 * 400.2 + 405.2) / 4 + (3 * 400.4 + 405.4) / 4) / 2)


def test_an_invalid_minute_is_dropped_without_reaching_back_into_the_settling_ones():
    times, cyl, cyc, values = _run_rows()
    valid = np.ones(times.size, bool)
    values["co2"][4] = 999.0  # last minute of A, cycle 1 ...
    valid[4] = False  # ... flagged invalid
    means = injection_means(times, cyl, cyc, values, last_minutes=3, valid=valid)
    assert means["A"].mean["co2"] == pytest.approx(400.3)  # cycle 1 still 400.2 from two minutes
    assert means["A"].n_minutes["co2"] == 5


def test_skipping_the_first_cycle():
    times, cyl, cyc, values = _run_rows()
    means = injection_means(times, cyl, cyc, values, last_minutes=3, skip_first_cycles=1)
    assert means["A"].mean["co2"] == pytest.approx(400.4) and means["A"].n_cycles["co2"] == 1
    assert means["A"].std_between_cycles["co2"] is None


def test_calibration_from_minutes_recovers_an_analyzer_gain_and_offset():
    # analyzer reads measured = 1.02 * true - 3; standards 380, 420, 460 -> 384.6, 425.4, 466.2.
    # assigned = (measured + 3) / 1.02 -> intercept 3/1.02 = 2.941176..., slope 1/1.02 = 0.980392...
    true = {"CAL-1": 380.0, "CAL-2": 420.0, "CAL-3": 460.0}
    times, cyl, cyc, co2 = [], [], [], []
    t = T0.timestamp()
    for k in range(4):
        for c, v in true.items():
            for _ in range(3):
                times.append(t)
                cyl.append(c)
                cyc.append(k)
                co2.append(1.02 * v - 3.0)
                t += 60.0
    assigned = {c: {"co2": AssignedValue(v, "WMO X2019", 0.02)} for c, v in true.items()}
    result = calibration_from_minutes("cal-1", times, cyl, cyc, {"co2": co2}, assigned, last_minutes=2)
    fit = result.fits["co2"]
    assert fit.coefficients == pytest.approx((3.0 / 1.02, 1.0 / 1.02), rel=1e-9)
    assert fit.rmse == pytest.approx(0.0, abs=1e-9)
    assert result.start == T0 and result.end == T0 + timedelta(minutes=36)  # 4 * 3 * 3 minutes
    assert result.time == T0 + timedelta(minutes=18)
    assert [s.cylinder for s in result.standards] == ["CAL-1", "CAL-2", "CAL-3"]
    assert result.standards[1].measured["co2"] == pytest.approx(425.4)
    assert result.standards[1].assigned["co2"] == AssignedValue(420.0, "WMO-CO2-X2019", 0.02)  # the canonical name


def test_fit_calibration_per_species_standards_and_degrees():
    measured = {"A": {"co2": 380.0, "ch4": 1800.0}, "B": {"co2": 420.0, "ch4": 2000.0},
                "C": {"co2": 460.0, "ch4": 2200.0}}
    # CO is assigned on A and B only, and the analyzer measures it on neither: no CO fit.
    assigned = {"A": {"co2": 381.0, "ch4": 1801.0, "co": 100.0}, "B": {"co2": 421.0, "ch4": 2001.0, "co": 200.0},
                "C": {"co2": 461.0, "ch4": 2201.0}}
    result = fit_calibration("c", T0, T0 + timedelta(hours=1), measured, assigned, degree={"ch4": 2})
    assert set(result.fits) == {"co2", "ch4"}
    assert result.fits["co2"].coefficients == pytest.approx((1.0, 1.0))
    assert result.fits["ch4"].coefficients == pytest.approx((1.0, 1.0, 0.0), abs=1e-9)
    assert result.coefficients()["co2"] == result.fits["co2"].coefficients
    with pytest.raises(ValueError, match="no assigned values for measured cylinder\\(s\\) D"):
        fit_calibration("c", T0, T0, {**measured, "D": {"co2": 1.0}}, assigned)


def test_a_standard_lost_in_every_cycle_is_named():
    measured = {"A": {"co2": 380.0}, "B": {"co2": float("nan")}, "C": {"co2": 460.0}}
    assigned = {"A": {"co2": 380.0}, "B": {"co2": 420.0}, "C": {"co2": 460.0}}
    with pytest.raises(ValueError, match="co2: .*standard\\(s\\) B"):
        fit_calibration("c", T0, T0, measured, assigned)


# --------------------------------------------------------------------------------- interpolation


def _calibration(cal_id: str, start: datetime, coefficients: dict[str, tuple[float, ...]]) -> CalibrationResult:
    """A calibration whose fits have exactly `coefficients` (built from exact points)."""
    fits = {}
    for sp, c in coefficients.items():
        x = np.array([380.0, 420.0, 460.0])
        y = calibrate(x, c)
        fits[sp] = fit_species(x, y, degree=len(c) - 1, species=sp)
    return CalibrationResult(cal_id, start, start + timedelta(hours=1), (), fits)


BEFORE = _calibration("c1", T0, {"co2": (0.0, 1.0), "ch4": (0.0, 1.0)})  # time = T0 + 30 min
AFTER = _calibration("c2", T0 + timedelta(hours=6), {"co2": (1.0, 1.1)})  # time = T0 + 6 h 30 min


def test_interpolation_at_the_ends_and_in_the_middle():
    tb, ta = BEFORE.time, AFTER.time
    assert interpolated_coefficients(tb, BEFORE, AFTER)["co2"] == pytest.approx([0.0, 1.0], abs=1e-9)
    assert interpolated_coefficients(ta, BEFORE, AFTER)["co2"] == pytest.approx([1.0, 1.1], abs=1e-9)
    mid = tb + (ta - tb) / 2
    assert interpolated_coefficients(mid, BEFORE, AFTER)["co2"] == pytest.approx([0.5, 1.05], abs=1e-9)
    quarter = tb.timestamp() + (ta - tb).total_seconds() / 4  # epoch seconds work too
    assert interpolated_coefficients(quarter, BEFORE, AFTER)["co2"] == pytest.approx([0.25, 1.025], abs=1e-9)


def test_interpolation_over_an_array_of_times_calibrates_each_minute():
    tb, ta = BEFORE.time.timestamp(), AFTER.time.timestamp()
    t = np.array([tb, (tb + ta) / 2, ta])
    coef = interpolated_coefficients(t, BEFORE, AFTER)["co2"]
    assert coef.shape == (3, 2)
    # raw 400 at each: 400, 0.5 + 1.05*400 = 420.5, 1 + 1.1*400 = 441
    assert calibrate(np.full(3, 400.0), coef) == pytest.approx([400.0, 420.5, 441.0], abs=1e-7)


def test_species_missing_from_one_calibration_is_not_interpolated():
    assert set(interpolated_coefficients(BEFORE.time, BEFORE, AFTER)) == {"co2"}


def test_linear_and_quadratic_mix_by_padding():
    quad = _calibration("c3", T0 + timedelta(hours=6), {"co2": (0.0, 1.0, 0.001)})
    mid = BEFORE.time + (quad.time - BEFORE.time) / 2
    assert interpolated_coefficients(mid, BEFORE, quad)["co2"] == pytest.approx([0.0, 1.0, 0.0005], abs=1e-9)


def test_interpolation_outside_the_bracket_or_out_of_order_is_refused():
    with pytest.raises(ValueError, match="cannot interpolate"):
        interpolated_coefficients(BEFORE.time - timedelta(seconds=1), BEFORE, AFTER)
    with pytest.raises(ValueError, match="cannot interpolate"):
        interpolated_coefficients(AFTER.time + timedelta(seconds=1), BEFORE, AFTER)
    with pytest.raises(ValueError, match="older than"):
        interpolated_coefficients(BEFORE.time, AFTER, BEFORE)


# ----------------------------------------------------------------------------- targets and drift


GAIN_OFFSET = {"co2": (3.0 / 1.02, 1.0 / 1.02), "ch4": (-15.0, 1.0)}


def test_target_bias_within_and_outside_the_goal():
    # co2 raw 425.4 -> (425.4 + 3) / 1.02 = 420.0; assigned 420.05 -> bias -0.05, within 0.1
    # ch4 raw 2015 -> 2000; assigned 1997.5 -> bias +2.5, outside 2
    res = evaluate_target("TGT-1", T0, T0 + timedelta(minutes=20), {"co2": 425.4, "ch4": 2015.0},
                          {"co2": AssignedValue(420.05, "WMO X2019"), "ch4": 1997.5}, GAIN_OFFSET, "cal-1")
    co2, ch4 = res.species["co2"], res.species["ch4"]
    assert co2.calibrated == pytest.approx(420.0) and co2.bias == pytest.approx(-0.05)
    assert co2.within_goal and co2.goal == 0.1 and co2.scale == "WMO-CO2-X2019"
    assert ch4.bias == pytest.approx(2.5) and not ch4.within_goal and ch4.goal == 2.0
    assert not res.within_goal and res.calibration_id == "cal-1"


def test_target_goals_are_configurable():
    res = evaluate_target("T", T0, T0, {"ch4": 2015.0}, {"ch4": 1997.5}, GAIN_OFFSET, "c", goals={"ch4": 5.0})
    assert res.within_goal


def test_target_from_minutes_uses_the_last_minutes():
    # 5 minutes: 2 settling at 430, then 425.4 -> calibrated 420.0
    co2 = [430.0, 430.0, 425.4, 425.4, 425.4]
    times = T0.timestamp() + 60.0 * np.arange(5)
    res = target_from_minutes("TGT-1", times, {"co2": co2}, {"co2": 420.0}, GAIN_OFFSET, "cal-1", last_minutes=3)
    assert res.species["co2"].measured == pytest.approx(425.4)
    assert res.species["co2"].bias == pytest.approx(0.0, abs=1e-9)
    assert res.end == T0 + timedelta(minutes=5)


def test_target_without_valid_data_is_refused():
    with pytest.raises(ValueError, match="co2: target T has no valid measured mean"):
        evaluate_target("T", T0, T0, {"co2": float("nan")}, {"co2": 420.0}, GAIN_OFFSET, "c")


def test_drift_between_consecutive_calibrations_at_the_reference_level():
    # previous f(x) = x; current f(x) = 0.05 + 1.0005 x. At 420: 420 -> 0.05 + 420.21 = 420.26
    prev = _calibration("c1", T0, {"co2": (0.0, 1.0), "ch4": (0.0, 1.0)})
    cur = _calibration("c2", T0 + timedelta(days=15), {"co2": (0.05, 1.0005), "ch4": (1.0, 1.0)})
    drift = calibration_drift(prev, cur, reference={"co2": 420.0, "ch4": 2000.0})
    assert drift["co2"].drift == pytest.approx(0.26, abs=1e-9) and drift["co2"].exceeded
    assert drift["co2"].previous == pytest.approx(420.0) and drift["co2"].current == pytest.approx(420.26)
    assert drift["ch4"].drift == pytest.approx(1.0, abs=1e-9) and not drift["ch4"].exceeded  # limit 2 ppb
    looser = calibration_drift(prev, cur, reference={"co2": 420.0}, limits={"co2": 0.3})
    assert set(looser) == {"co2"} and not looser["co2"].exceeded
    with pytest.raises(ValueError, match="ch4: no drift limit"):
        calibration_drift(prev, cur, limits={"co2": 0.1})
