"""The sensor model of a medium-precision CO2 sensor and its least-squares fit against a reference:
pure numpy, hourly means in, coefficients, covariance and corrected values out.

Forward model (what the sensor reads, hourly means; x the reference's mole fraction):

    y = a0 + a1 * x + aT * (T - T0) + aH * (RH - RH0) + aP * x * (P - P0) + aD * d

T in degC, RH in %RH, P in hPa, d in days since the fit's epoch; T0, RH0, P0 the means over the fit
hours (so a0 and a1 are the sensor's offset and gain at the site's usual conditions). Pressure
scales the reading (an NDIR cell counts molecules: its reading is proportional to the number
density), temperature and humidity shift its zero (the temperature-dependent zero offset that
Delaria et al. 2021, AMT 14, 5487, correct for the GMP343; the humidity dependence Müller et al.
2020, AMT 13, 3815, find in the LP8), and the drift is linear in time over the fit window (Müller
et al. correct drift against references at intervals; a window short enough for a line is the
caller's choice). The model is linear in its coefficients, so ordinary least squares fits it with
the reference as a regressor: the reference's own error (a high-precision analyzer, 0.1 ppm or
less) is negligible beside the sensor's. Without `fit_gain` a1 is held at 1 (a background
reference in well-mixed hours spans too little CO2 to pin a gain).

Correction inverts it: x^ = (y - a0 - aT dT - aH dRH - aD d) / (a1 + aP dP).

Uncertainty of a corrected hour, u(x^)^2 = J C J' + (s / g)^2: J the derivatives of x^ in the
coefficients, C their covariance (s^2 (X'X)^-1), g = a1 + aP dP, s the standard deviation of the
fit's hourly residuals (the sensor's hourly noise and whatever the model misses).

A term whose regressor barely varied over the fit hours (`MIN_SPREAD`) cannot be told from the
offset: it is left out and said so (`dropped`), not fitted to noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

TERMS = ("temperature", "humidity", "pressure", "drift")
ENVIRONMENT = ("temperature", "humidity", "pressure")
MIN_SPREAD = {"temperature": 0.5, "humidity": 2.0, "pressure": 1.0, "drift": 1.0}
"""Least standard deviation over the fit hours for a term to be fitted: degC, %RH, hPa, days."""


class FitError(ValueError):
    """The data cannot give a fit (too few hours, a singular design); the message says why."""


@dataclass(frozen=True)
class SensorModel:
    """A fitted sensor model. `coefficients` by name (offset, gain, temperature, humidity,
    pressure, drift; the terms fitted), `covariance` in the order of `names`, `conditions` the
    reference conditions (T0, RH0, P0 and the epoch's day number), `s` the residual std (ppm)."""

    names: tuple[str, ...]
    coefficients: dict[str, float]
    covariance: NDArray[np.float64]
    conditions: dict[str, float]
    s: float
    n: int
    dropped: dict[str, str] = field(default_factory=dict)

    def coefficient(self, name: str) -> float:
        return self.coefficients.get(name, 0.0)

    def to_json(self) -> dict:
        return {"names": list(self.names), "coefficients": dict(self.coefficients),
                "covariance": self.covariance.tolist(), "conditions": dict(self.conditions), "s": self.s,
                "n": self.n, "dropped": dict(self.dropped)}

    @classmethod
    def from_json(cls, d: dict) -> "SensorModel":
        return cls(tuple(d["names"]), dict(d["coefficients"]), np.asarray(d["covariance"], float),
                   dict(d["conditions"]), float(d["s"]), int(d["n"]), dict(d.get("dropped", {})))


def _deviations(env: dict[str, NDArray[np.float64]], days: NDArray[np.float64],
                conditions: dict[str, float]) -> dict[str, NDArray[np.float64]]:
    out = {q: np.asarray(env[q], float) - conditions[q] for q in ENVIRONMENT if q in conditions}
    out["drift"] = np.asarray(days, float) - conditions.get("drift", 0.0)
    return out


def fit_sensor_model(sensor: ArrayLike, reference: ArrayLike, env: dict[str, ArrayLike], days: ArrayLike,
                     terms: tuple[str, ...] = TERMS, fit_gain: bool = True) -> SensorModel:
    """Fit the forward model to hourly means: the sensor's `sensor`, the reference's `reference`
    (ppm), `env` the hourly temperature/humidity/pressure (those the terms need), `days` the hours'
    times in days. NaN anywhere in an hour leaves that hour out."""
    y, x, d = (np.asarray(a, float) for a in (sensor, reference, days))
    missing = [q for q in ENVIRONMENT if q in terms and q not in env]
    if missing:
        raise FitError(f"no {', '.join(missing)} values for the term(s) asked for")
    envs = {q: np.asarray(env[q], float) for q in ENVIRONMENT if q in terms}
    ok = np.isfinite(y) & np.isfinite(x) & np.isfinite(d)
    for v in envs.values():
        ok &= np.isfinite(v)
    y, x, d = y[ok], x[ok], d[ok]
    envs = {q: v[ok] for q, v in envs.items()}
    if y.size < 3:
        raise FitError(f"{y.size} paired hours with every value the terms need: too few to fit")
    conditions = {q: float(v.mean()) for q, v in envs.items()}
    conditions["drift"] = float(d.min())
    dropped: dict[str, str] = {}
    kept: list[str] = []
    spreads = {q: float(v.std()) for q, v in envs.items()} | {"drift": float(d.std())}
    for term in terms:
        if term not in TERMS:
            raise FitError(f"unknown term {term!r}; known: {', '.join(TERMS)}")
        if spreads.get(term, 0.0) < MIN_SPREAD[term]:
            dropped[term] = f"spread {spreads.get(term, 0.0):.3g} below {MIN_SPREAD[term]:g}: not identifiable"
        else:
            kept.append(term)
    dev = _deviations(envs, d, conditions)
    columns = {"offset": np.ones_like(y)}
    if fit_gain:
        columns["gain"] = x
    for term in kept:
        columns[term] = x * dev["pressure"] if term == "pressure" else dev[term]
    names = tuple(columns)
    if y.size < len(names) + 2:
        raise FitError(f"{y.size} paired hours for {len(names)} coefficients: need at least {len(names) + 2}")
    design = np.column_stack([columns[n] for n in names])
    target = y if fit_gain else y - x
    beta, *_ = np.linalg.lstsq(design, target, rcond=None)
    resid = target - design @ beta
    dof = y.size - len(names)
    s = float(np.sqrt(resid @ resid / dof))
    try:
        cov = s**2 * np.linalg.inv(design.T @ design)
    except np.linalg.LinAlgError:
        raise FitError("the design is singular (terms that vary together)") from None
    coefficients = dict(zip(names, map(float, beta)))
    if not fit_gain:
        coefficients["gain"] = 1.0
    return SensorModel(names, coefficients, cov, conditions, s, int(y.size), dropped)


def correct(model: SensorModel, sensor: ArrayLike, env: dict[str, ArrayLike], days: ArrayLike
            ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(corrected values, their standard uncertainty), ppm, for the sensor's hourly means."""
    y, d = np.asarray(sensor, float), np.asarray(days, float)
    nan = np.full_like(y, np.nan)
    envs = {q: np.asarray(env.get(q, nan), float) for q in ENVIRONMENT}
    dev = _deviations(envs, d, model.conditions)
    c = model.coefficient
    zero = c("offset") + sum(c(t) * dev[t] for t in ("temperature", "humidity", "drift") if t in model.names)
    g = c("gain") + (c("pressure") * dev["pressure"] if "pressure" in model.names else 0.0)
    xhat = (y - zero) / g
    partial = {"offset": np.ones_like(y), "gain": xhat, "pressure": xhat * dev.get("pressure", nan)}
    jac = np.column_stack([-(partial[n] if n in partial else dev[n]) / g for n in model.names])
    var = np.einsum("ij,jk,ik->i", jac, model.covariance, jac) + (model.s / g) ** 2
    return xhat, np.sqrt(var)


@dataclass(frozen=True)
class ResidualStats:
    """Corrected minus reference over some hours: n, bias (mean), RMSE, max |difference| (ppm)."""

    n: int
    bias: float | None
    rmse: float | None
    max_abs: float | None

    def to_json(self) -> dict:
        return {"n": self.n, "bias": self.bias, "rmse": self.rmse, "max_abs": self.max_abs}


def residual_stats(corrected: ArrayLike, reference: ArrayLike) -> ResidualStats:
    diff = np.asarray(corrected, float) - np.asarray(reference, float)
    diff = diff[np.isfinite(diff)]
    if diff.size == 0:
        return ResidualStats(0, None, None, None)
    return ResidualStats(int(diff.size), float(diff.mean()), float(np.sqrt(np.mean(diff**2))),
                         float(np.abs(diff).max()))
