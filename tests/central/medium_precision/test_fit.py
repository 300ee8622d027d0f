"""The medium-precision sensor model fitted to constructed hourly data whose coefficients are
known: the fit finds them, the correction recovers the truth, the uncertainty covers the error, a
term that did not vary is left out, and too few hours are refused by name."""

from __future__ import annotations

import numpy as np
import pytest

from central.medium_precision.fit import FitError, correct, fit_sensor_model, residual_stats

TRUE = {"offset": -5.0, "gain": 1.02, "temperature": 1.5, "humidity": -0.4, "pressure": 0.0016 * 1.02,
        "drift": 1.0}


def constructed(hours: int = 24 * 5, noise: float = 0.0, seed: int = 1):
    rng = np.random.default_rng(seed)
    t = np.arange(hours) / 24.0  # days
    x = 430 + 20 * np.cos(2 * np.pi * t) + 5 * rng.standard_normal(hours)
    env = {"temperature": 18 + 5 * np.cos(2 * np.pi * (t - 0.3)) + 3 * rng.standard_normal(hours),
           "humidity": 65 - 12 * np.cos(2 * np.pi * (t - 0.3)) + 10 * rng.standard_normal(hours),
           "pressure": 1005 + 4 * rng.standard_normal(hours)}
    c = {q: float(v.mean()) for q, v in env.items()}
    y = (TRUE["offset"] + TRUE["gain"] * x + TRUE["temperature"] * (env["temperature"] - c["temperature"])
         + TRUE["humidity"] * (env["humidity"] - c["humidity"]) + TRUE["pressure"] * x * (env["pressure"] - c["pressure"])
         + TRUE["drift"] * t + noise * rng.standard_normal(hours))
    return x, y, env, t


def test_the_fit_finds_the_known_coefficients_exactly_without_noise():
    x, y, env, t = constructed()
    model = fit_sensor_model(y, x, env, t)
    for name, value in TRUE.items():
        assert model.coefficients[name] == pytest.approx(value, rel=1e-8, abs=1e-8), name
    assert model.dropped == {} and model.n == t.size
    corrected, u = correct(model, y, env, t)
    assert np.max(np.abs(corrected - x)) < 1e-8


def test_with_noise_the_corrected_hours_recover_the_truth_within_their_uncertainty():
    x, y, env, t = constructed(noise=0.3)
    model = fit_sensor_model(y, x, env, t)
    corrected, u = correct(model, y, env, t)
    err = corrected - x
    stats = residual_stats(corrected, x)
    print(f"constructed: RMSE {stats.rmse:.3f} ppm, max {stats.max_abs:.3f} ppm, median u {np.median(u):.3f} ppm")
    assert stats.rmse < 0.35 and abs(stats.bias) < 0.05
    assert 0.25 < np.median(u) < 0.4  # the hourly noise (0.3 ppm / gain) plus the coefficients' share
    assert np.mean(np.abs(err) < 2 * u) > 0.9
    sd = np.sqrt(np.diag(model.covariance))
    for i, name in enumerate(model.names):
        assert abs(model.coefficients[name] - TRUE[name]) < 4 * sd[i], name
    raw = residual_stats(y, x)
    assert raw.rmse > 5  # uncorrected: the gain, offset, drift and air are all in it


def test_the_uncertainty_grows_when_extrapolating_the_drift():
    x, y, env, t = constructed(noise=0.3)
    model = fit_sensor_model(y[:72], x[:72], {q: v[:72] for q, v in env.items()}, t[:72])
    _, u = correct(model, y, env, t)
    assert u[-1] > u[36]


def test_a_term_that_did_not_vary_is_left_out_and_said_so():
    x, y, env, t = constructed()
    env = dict(env, pressure=np.full_like(t, 1005.0))
    model = fit_sensor_model(y, x, env, t)
    assert "pressure" in model.dropped and "pressure" not in model.names
    assert "not identifiable" in model.dropped["pressure"]


def test_without_a_gain_it_is_held_at_one():
    x, y, env, t = constructed()
    y = y - (TRUE["gain"] - 1.0) * x - TRUE["pressure"] * x * (env["pressure"] - env["pressure"].mean())
    model = fit_sensor_model(y, x, env, t, terms=("temperature", "humidity", "drift"), fit_gain=False)
    assert model.coefficients["gain"] == 1.0 and "gain" not in model.names
    assert model.coefficients["temperature"] == pytest.approx(TRUE["temperature"], abs=1e-8)
    corrected, _ = correct(model, y, env, t)
    assert np.max(np.abs(corrected - x)) < 1e-8


def test_too_few_hours_and_missing_environment_are_refused_by_name():
    x, y, env, t = constructed(hours=5)  # 5 hours: the drift cannot be fitted either (0.06 day apart)
    with pytest.raises(FitError, match="5 paired hours for 5 coefficients: need at least 7"):
        fit_sensor_model(y, x, env, t)
    with pytest.raises(FitError, match="no humidity values"):
        fit_sensor_model(y, x, {"temperature": env["temperature"], "pressure": env["pressure"]}, t)


def test_hours_with_a_missing_value_are_left_out_of_the_fit():
    x, y, env, t = constructed()
    x = x.copy()
    x[5] = np.nan
    model = fit_sensor_model(y, x, env, t)
    assert model.n == t.size - 1
    assert model.coefficients["drift"] == pytest.approx(TRUE["drift"], abs=1e-8)


def test_no_environment_values_at_all_is_refused_not_fitted():
    x, y, env, t = constructed()
    env = dict(env, temperature=np.full_like(t, np.nan))
    with pytest.raises(FitError, match="0 paired hours with every value the terms need"):
        fit_sensor_model(y, x, env, t)
