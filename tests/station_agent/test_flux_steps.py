"""Each step of the flux processing on constructed signals whose answer is known: despiking,
rotations, lags, detrending."""

from __future__ import annotations

import numpy as np
import pytest

from station_agent.processing.flux.despike import despike
from station_agent.processing.flux.detrend import covariance, fluctuations
from station_agent.processing.flux.rotation import double_rotation, fit_planar, planar_fit_rotation
from station_agent.processing.flux.timelag import find_lag, shift

FS = 20.0


def test_despike_replaces_short_spikes_and_keeps_a_long_step():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(36000)
    clean = x.copy()
    where = rng.choice(36000, 30, replace=False)
    x[where] += 20.0
    x[20000:20003] -= 25.0  # a run of three: still a spike
    x[30000:30010] += 12.0  # a run of ten: a real feature, kept
    y, n = despike(x, FS)
    assert n >= 33
    assert np.all(np.abs(y[where]) < 5.0)
    assert np.all(np.abs(y[20000:20003]) < 5.0)
    np.testing.assert_array_equal(y[30000:30010], x[30000:30010])
    # what was not a spike is (almost all) left alone
    untouched = np.ones(36000, bool)
    untouched[where] = False
    untouched[20000:20003] = False
    assert np.mean(y[untouched] == clean[untouched]) > 0.995


def test_despike_leaves_missing_records_missing():
    x = np.random.default_rng(2).standard_normal(6000)
    x[100:150] = np.nan
    y, _ = despike(x, FS)
    assert np.isnan(y[100:150]).all()
    assert not np.isnan(y[:100]).any()


def _tilted(pitch_deg: float, yaw_deg: float, roll_deg: float = 0.0, n: int = 20000, seed: int = 0):
    """A wind with known streamline-frame statistics (mean U along x, w'c' known), seen by a
    sonic rotated by yaw, roll and pitch."""
    rng = np.random.default_rng(seed)
    w = 0.5 * rng.standard_normal(n)
    u = 3.0 + 1.0 * rng.standard_normal(n) - 0.4 * w
    v = 0.8 * rng.standard_normal(n)
    c = 0.6 * w - 0.5 * (u - 3.0) + rng.standard_normal(n)
    y, p, r = np.radians([yaw_deg, pitch_deg, roll_deg])
    rz = np.array([[np.cos(y), -np.sin(y), 0], [np.sin(y), np.cos(y), 0], [0, 0, 1]])
    ry = np.array([[np.cos(p), 0, np.sin(p)], [0, 1, 0], [-np.sin(p), 0, np.cos(p)]])
    rx = np.array([[1, 0, 0], [0, np.cos(r), -np.sin(r)], [0, np.sin(r), np.cos(r)]])
    m = ry @ rx @ rz @ np.vstack([u, v, w])
    return (u, v, w, c), m


def test_double_rotation_recovers_the_streamline_frame():
    (u, v, w, c), (um, vm, wm) = _tilted(pitch_deg=6.0, yaw_deg=40.0)
    rot = double_rotation(um, vm, wm)
    assert abs(np.mean(rot.v)) < 1e-9 and abs(np.mean(rot.w)) < 1e-9
    assert rot.yaw_deg == pytest.approx(40.0, abs=0.5)
    np.testing.assert_allclose(covariance(fluctuations(rot.w), fluctuations(c)),
                               covariance(fluctuations(w), fluctuations(c)), rtol=0.01)
    # unrotated, the tilt mixes u' into w': the covariance is off
    assert abs(covariance(fluctuations(wm), fluctuations(c)) / covariance(fluctuations(w), fluctuations(c)) - 1) > 0.1


def test_planar_fit_finds_the_sonic_tilt_and_its_z_axis_is_the_planes_normal():
    means, periods = [], []
    for i, yaw in enumerate(range(0, 360, 30)):
        truth, m = _tilted(pitch_deg=4.0, roll_deg=-3.0, yaw_deg=yaw, n=4000, seed=i)
        means.append([x.mean() for x in m])
        periods.append((truth, m))
    mu, mv, mw = np.array(means).T
    fit = fit_planar(mu, mv, mw)
    normal = np.array([-fit.b1, -fit.b2, 1.0]) / np.sqrt(fit.b1**2 + fit.b2**2 + 1)
    for (u, v, w, c), m in periods:
        rot = planar_fit_rotation(*m, fit)
        # the rotated w is the projection on the normal: mean w ~ 0 in every period (not forced)
        assert abs(np.mean(rot.w)) < 0.02
        np.testing.assert_allclose(rot.w, normal @ np.vstack([m[0], m[1], m[2] - fit.b0]), atol=1e-12)
        np.testing.assert_allclose(covariance(fluctuations(rot.w), fluctuations(c)),
                                   covariance(fluctuations(w), fluctuations(c)), rtol=0.02)


def test_planar_fit_refuses_too_few_periods():
    with pytest.raises(ValueError, match="at least 3 periods"):
        fit_planar(np.array([1.0, 2.0]), np.array([0.0, 1.0]), np.array([0.0, 0.1]))


def test_lag_found_by_covariance_maximisation():
    rng = np.random.default_rng(3)
    w = np.convolve(rng.standard_normal(36000), np.ones(10) / 10, mode="same")
    c = 0.5 * w + 0.1 * rng.standard_normal(36000)
    delayed = np.roll(c, 37)  # the analyzer sees c 1.85 s late
    lag = find_lag(w, delayed, FS, min_s=0.0, max_s=4.0, nominal_s=1.0)
    assert lag.samples == 37 and not lag.nominal_used
    np.testing.assert_allclose(shift(delayed, lag.samples)[:-37], c[:-37])


def test_lag_falls_back_to_the_nominal_when_the_peak_is_outside_the_window():
    rng = np.random.default_rng(4)
    w = np.convolve(rng.standard_normal(36000), np.ones(10) / 10, mode="same")
    delayed = np.roll(w, 100)  # 5 s: outside a 0-4 s window
    lag = find_lag(w, delayed, FS, min_s=0.0, max_s=4.0, nominal_s=1.5)
    assert lag.nominal_used and lag.samples == 30


def test_lag_falls_back_to_the_nominal_without_correlation():
    rng = np.random.default_rng(5)
    lag = find_lag(rng.standard_normal(36000), rng.standard_normal(36000), FS, min_s=0, max_s=4, nominal_s=0.5)
    assert lag.nominal_used and lag.samples == 10


def test_linear_detrending_removes_a_trend_block_averaging_keeps_it():
    t = np.arange(36000.0)
    rng = np.random.default_rng(6)
    w = rng.standard_normal(36000) + 0.001 * t / 36  # both drift over the period
    c = rng.standard_normal(36000) + 0.002 * t / 36
    assert covariance(fluctuations(w, "linear"), fluctuations(c, "linear")) == pytest.approx(0.0, abs=0.02)
    assert covariance(fluctuations(w), fluctuations(c)) > 0.1
    with pytest.raises(ValueError, match="not one of"):
        fluctuations(w, "quadratic")
