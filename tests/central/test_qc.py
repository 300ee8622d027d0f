"""Network QC (pure functions): spikes on synthetic data with injected spikes, target terms and
bias, calibration drift and residuals, cross-station offsets, station state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from central.qc import (
    SpikeParams,
    bias_summary,
    calibration_checks,
    detect_spikes,
    pairwise_offsets,
    station_state,
    target_terms,
)


def synthetic(seed: int, days: int, n_events: int, noise: float, amp: tuple[float, float]):
    """Diurnal + synoptic CO2 with AR(1) noise (ppm), gaps, and 1-3 minute spikes injected."""
    rng = np.random.default_rng(seed)
    n = days * 1440
    t = np.arange(n, dtype=np.int64) * 60 + 1_772_323_200
    x = 420 + 8 * np.sin(2 * np.pi * t / 86400) + 3 * np.sin(2 * np.pi * t / (5 * 86400))
    e = rng.normal(0, noise * np.sqrt(1 - 0.7**2), n)
    ar = np.zeros(n)
    for i in range(1, n):
        ar[i] = 0.7 * ar[i - 1] + e[i]
    x = x + ar
    truth = np.zeros(n, dtype=bool)
    for s in rng.choice(np.arange(60, n - 60), n_events, replace=False):
        length = int(rng.integers(1, 4))
        x[s:s + length] += rng.uniform(*amp) * rng.choice([1, 1, 1, -1])
        truth[s:s + length] = True
    keep = rng.random(n) > 0.3  # 30 % of minutes are calibrations, targets, other inlets: gaps
    return t[keep], x[keep], truth[keep]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_spike_detection_recall_and_false_positives(seed):
    t, x, truth = synthetic(seed, days=10, n_events=250, noise=0.2, amp=(1.5, 10.0))
    found = detect_spikes(t, x, SpikeParams(alpha=2.5, beta=0.1))
    recall = (found & truth).sum() / truth.sum()
    false_rate = (found & ~truth).sum() / (~truth).sum()
    print(f"seed {seed}: {truth.sum()} spike minutes, recall {recall:.3f}, "
          f"clean minutes flagged {100 * false_rate:.3f} %")
    assert recall >= 0.9
    assert false_rate <= 0.01


def test_no_spikes_are_found_in_clean_data_nor_in_a_short_series():
    t, x, truth = synthetic(4, days=3, n_events=0, noise=0.2, amp=(1, 1))
    assert not truth.any() and detect_spikes(t, x).mean() <= 0.01
    assert not detect_spikes(t[:5], x[:5] + np.array([0, 0, 50, 0, 0])).any()  # too few neighbours


def test_target_terms_from_the_config_or_the_calibration_schedule():
    assert target_terms(np.array([1.0, 2.0]), ["LT", "ST"], np.array([]), {"LT"}) == ["long", "short"]
    cal_end = np.array([10_000.0])
    assert target_terms(np.array([10_600.0, 30_000.0, 5_000.0]), ["A", "A", "A"], cal_end) == [
        "long", "short", "short"]


def test_bias_summary_judges_the_mean_against_the_goal():
    day = 86400
    s = bias_summary(np.array([0, day, 2 * day]), np.array([0.05, 0.08, 0.20]), 0.1)
    assert s.n == 3 and s.mean == pytest.approx(0.11) and not s.within_goal and s.n_outside_goal == 1
    assert s.drift_per_year == pytest.approx(0.075 * 365.25)
    assert bias_summary(np.array([0]), np.array([np.nan]), 0.1).n == 0


def test_calibration_drift_and_residuals_against_the_goal():
    checks = calibration_checks(np.array([0, 10]), [[0.30, 1.0], [0.45, 1.0]], [[0.01, -0.02], [0.2, 0.0]],
                                [None, 0.1], reference=420.0, goal=0.1)
    assert checks[0].value_at_reference == pytest.approx(420.30) and checks[0].drift_ok
    assert checks[1].drift == pytest.approx(0.15) and not checks[1].drift_ok
    assert checks[0].residuals_ok and not checks[1].residuals_ok and checks[0].rmse == pytest.approx(np.sqrt(0.00025))


def test_background_offsets_beyond_the_goal_are_flagged():
    days = {"a": np.array([1, 2, 3]), "b": np.array([2, 3, 4]), "c": np.array([1, 2, 3])}
    vals = {"a": np.array([420.0, 421.0, 422.0]), "b": np.array([421.05, 422.05, 0.0]),
            "c": np.array([420.5, 421.5, 422.5])}
    got = {(o.station, o.other): (o.n_days, round(o.mean, 6), o.beyond_goal) for o in pairwise_offsets(days, vals, 0.1)}
    assert got == {("a", "b"): (2, -0.05, False), ("a", "c"): (3, -0.5, True), ("b", "c"): (2, -0.45, True)}


def test_station_state_down_on_will_or_after_two_intervals():
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert station_state(None, None, None, now).state == "unknown"
    assert station_state("down", now, 30.0, now).state == "down"
    assert station_state("up", now - timedelta(seconds=59), 30.0, now).state == "up"
    assert station_state("up", now - timedelta(seconds=61), 30.0, now).state == "down"
    assert station_state("up", now - timedelta(seconds=100), None, now, default_interval_s=60).state == "up"


def test_target_terms_take_the_latest_calibration_before_each_run():
    ends = np.array([50_000.0, 10_000.0])  # not in order
    runs = np.array([9_999.0, 10_000.0, 17_200.0, 17_201.0, 50_100.0, 49_999.0])
    assert target_terms(runs, ["A"] * 6, ends) == ["short", "long", "long", "short", "long", "short"]
    assert target_terms(runs[:2], ["A", "A"], np.array([])) == ["short", "short"]
    assert target_terms(np.array([]), [], ends) == []


def test_calibration_checks_evaluate_the_fit_as_numpy_and_keep_nan_residuals():
    coefs = [[0.1, 1.0002, -3e-7], [0.12, 0.9999, 1e-7]]
    checks = calibration_checks(np.array([0, 10]), coefs, [[0.01, float("nan"), -0.03], []], [None, None],
                                reference=420.0, goal=0.1)
    assert [k.value_at_reference for k in checks] == [
        float(np.polynomial.polynomial.polyval(420.0, np.array(c))) for c in coefs]
    assert np.isnan(checks[0].max_abs_residual) and checks[0].residuals_ok
    assert np.isnan(checks[1].max_abs_residual) and np.isnan(checks[1].rmse)
