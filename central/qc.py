"""Network-wide quality control: pure numpy functions, arrays in, results out, no I/O.

- spikes in minute data (a standard-deviation method in the spirit of the ICOS SD algorithm,
  El Yazidi et al. 2018, AMT 11, 1599);
- target-gas bias, calibration drift and fit residuals judged against the compatibility goals
  (WMO/GAW: CO2 0.1 ppm, CH4 2 ppb; configurable);
- station health from its status messages;
- cross-station consistency of background stations' afternoon means.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from ghgnet import species

DEFAULT_GOALS: dict[str, float] = species.goals()
"""WMO/GAW network compatibility goals (CO2 ppm; CH4, CO, N2O ppb)."""

DEFAULT_REFERENCE: dict[str, float] = species.references()
"""Ambient levels at which calibration drift is evaluated (CO2 ppm; others ppb)."""


# ---------------------------------------------------------------------------------------------
# Spikes


@dataclass(frozen=True, slots=True)
class SpikeParams:
    """A minute is a spike when |x - m| > alpha * s + beta, where m and s are the mean and standard
    deviation of the other non-spike minutes within +-half_window_min minutes. Iterated: spikes
    found are left out of m and s, and the test is repeated until the set no longer changes.

    `beta` (in the species' unit) keeps the test from flagging the instrument noise of a very calm
    hour; `min_neighbours`: with fewer non-spike minutes around, nothing is flagged."""

    alpha: float = 2.5
    beta: float = 0.1
    half_window_min: int = 30
    max_iterations: int = 10
    min_neighbours: int = 10
    positive_only: bool = False


def detect_spikes(time_s: np.ndarray, value: np.ndarray, params: SpikeParams = SpikeParams()) -> np.ndarray:
    """Boolean spike mask of a minute series (one value per minute, sorted by time; gaps allowed:
    the window is in time, not in rows). NaN values are never spikes and never used."""
    t = np.asarray(time_s, dtype=np.int64)
    x = np.asarray(value, dtype=float)
    finite = np.isfinite(x)
    spikes = np.zeros(x.size, dtype=bool)
    if x.size == 0:
        return spikes
    if np.any(np.diff(t) < 0):
        raise ValueError("detect_spikes needs times sorted ascending")
    half = params.half_window_min * 60
    lo = np.searchsorted(t, t - half, side="left")
    hi = np.searchsorted(t, t + half, side="right")
    xf = np.where(finite, x, 0.0)
    # Remove the series' own offset before cumulative sums, or sum(x^2) loses the variance.
    x0 = xf - (np.mean(xf[finite]) if finite.any() else 0.0)
    for _ in range(params.max_iterations):
        w = (finite & ~spikes).astype(float)
        c_n = np.concatenate(([0.0], np.cumsum(w)))
        c_s = np.concatenate(([0.0], np.cumsum(w * x0)))
        c_q = np.concatenate(([0.0], np.cumsum(w * x0 * x0)))
        # leave-one-out: the minute itself is not part of its own reference
        n = c_n[hi] - c_n[lo] - w
        s = c_s[hi] - c_s[lo] - w * x0
        q = c_q[hi] - c_q[lo] - w * x0 * x0
        with np.errstate(invalid="ignore", divide="ignore"):
            m = s / n
            var = np.maximum(q / n - m * m, 0.0) * n / np.maximum(n - 1, 1)
            d = x0 - m
            if params.positive_only:
                out = d > params.alpha * np.sqrt(var) + params.beta
            else:
                out = np.abs(d) > params.alpha * np.sqrt(var) + params.beta
        new = finite & (n >= params.min_neighbours) & out
        if np.array_equal(new, spikes):
            break
        spikes = new
    return spikes


# ---------------------------------------------------------------------------------------------
# Targets, calibrations


@dataclass(frozen=True, slots=True)
class BiasSummary:
    """Target bias (measured - assigned) of one station, cylinder and species over a period."""

    n: int
    mean: float
    std: float
    latest: float
    drift_per_year: float
    """Slope of a linear fit of bias against time (unit per year); NaN with < 2 points."""
    n_outside_goal: int
    goal: float
    within_goal: bool
    """|mean bias| within the goal."""


def bias_summary(time_s: np.ndarray, bias: np.ndarray, goal: float) -> BiasSummary:
    t = np.asarray(time_s, dtype=float)
    b = np.asarray(bias, dtype=float)
    ok = np.isfinite(b)
    t, b = t[ok], b[ok]
    if b.size == 0:
        return BiasSummary(0, np.nan, np.nan, np.nan, np.nan, 0, goal, False)
    std = float(np.std(b, ddof=1)) if b.size > 1 else np.nan
    slope = np.nan
    if b.size > 1 and np.ptp(t) > 0:
        slope = float(np.polyfit((t - t[0]) / (365.25 * 86400), b, 1)[0])
    mean = float(np.mean(b))
    return BiasSummary(int(b.size), mean, std, float(b[-1]), slope, int(np.sum(np.abs(b) > goal)), goal,
                       bool(abs(mean) <= goal))


def target_terms(target_s: np.ndarray, cylinders: list[str], calibration_end_s: np.ndarray,
                 long_term: set[str] | None = None, window_s: float = 2 * 3600) -> list[str]:
    """'long' or 'short' for each target run. A cylinder named in `long_term` is the long-term
    target; without that list, a run that starts within `window_s` after a calibration ended is
    taken as the long-term target (measured with each calibration, ICOS), any other as short-term."""
    if long_term:
        return ["long" if c in long_term else "short" for c in cylinders]
    ends = np.sort(np.asarray(calibration_end_s, dtype=float))
    t = np.asarray(target_s, dtype=float)
    if ends.size == 0:
        return ["short"] * t.size
    i = np.searchsorted(ends, t, side="right") - 1  # the latest calibration that ended by t
    since = t - ends[np.maximum(i, 0)]
    return np.where((i >= 0) & (since >= 0) & (since <= window_s), "long", "short").tolist()


def _horner(coefficients: list[float], x: float) -> float:
    """evaluate_fit in plain floats, in numpy polyval's order (Horner from the highest order): the
    same float."""
    v = 0.0
    for c in reversed(coefficients):
        v = float(c) + v * x
    return v


def evaluate_fit(coefficients: list[float], x: float) -> float:
    """A calibration fit (coefficients lowest order first) evaluated at x."""
    return float(np.polynomial.polynomial.polyval(x, np.asarray(coefficients, dtype=float)))


@dataclass(frozen=True, slots=True)
class CalibrationCheck:
    time_s: int
    value_at_reference: float
    drift: float
    """Change of the calibrated value at the reference level since the previous calibration."""
    max_abs_residual: float
    rmse: float
    drift_ok: bool
    residuals_ok: bool


def calibration_checks(time_s: np.ndarray, coefficients: list[list[float]], residuals: list[list[float]],
                       rmse: list[float | None], reference: float, goal: float) -> list[CalibrationCheck]:
    """Drift of successive calibrations (each fit evaluated at `reference`) and the size of their
    residuals, against the compatibility goal. The first calibration has no drift (NaN, ok)."""
    out: list[CalibrationCheck] = []
    prev = np.nan
    for t, c, r, e in zip(time_s, coefficients, residuals, rmse):
        v = _horner(c, reference) if c else np.nan
        drift = v - prev
        # plain floats: numpy's per-call overhead is most of the time on a year's few-point fits
        res = [np.nan if x is None else abs(float(x)) for x in r]
        mx = (np.nan if any(x != x for x in res) else max(res)) if res else np.nan  # NaN propagates, as np.max
        rm = float(e) if e is not None else (float(np.sqrt(np.mean(np.asarray(r, dtype=float)**2))) if r else np.nan)
        out.append(CalibrationCheck(int(t), v, float(drift), mx, rm,
                                    bool(not np.isfinite(drift) or abs(drift) <= goal),
                                    bool(not np.isfinite(mx) or mx <= goal)))
        prev = v
    return out


# ---------------------------------------------------------------------------------------------
# Station health


@dataclass(frozen=True, slots=True)
class HealthState:
    state: str
    """'up', 'down' or 'unknown' (never sent a status)."""
    reason: str


def station_state(status_state: str | None, status_received: datetime | None, interval_s: float | None,
                  now: datetime, down_after_intervals: float = 2.0,
                  default_interval_s: float = 60.0) -> HealthState:
    """Down when the station said so (its last will: the broker publishes it when the agent's
    connection drops), or when no status arrived for `down_after_intervals` status intervals (the
    agent hangs, or the link is gone without the broker noticing yet)."""
    if status_state is None or status_received is None:
        return HealthState("unknown", "no status received")
    if status_state == "down":
        return HealthState("down", "agent reported down (last will or clean stop)")
    interval = interval_s or default_interval_s
    age = (now - status_received).total_seconds()
    if age > down_after_intervals * interval:
        return HealthState("down", f"no status for {age:.0f} s (> {down_after_intervals:g} x {interval:g} s)")
    return HealthState("up", "status current")


# ---------------------------------------------------------------------------------------------
# Cross-station consistency


@dataclass(frozen=True, slots=True)
class Offset:
    station: str
    other: str
    n_days: int
    mean: float
    std: float
    beyond_goal: bool


def pairwise_offsets(days: dict[str, np.ndarray], values: dict[str, np.ndarray], goal: float,
                     min_days: int = 1) -> list[Offset]:
    """Mean offset station - other over the days both have a value (afternoon means of background
    stations), for every ordered pair once (station < other); flagged beyond the goal."""
    names = sorted(days)
    out: list[Offset] = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            common, ia, ib = np.intersect1d(days[a], days[b], return_indices=True)
            if common.size < min_days:
                continue
            d = np.asarray(values[a], dtype=float)[ia] - np.asarray(values[b], dtype=float)[ib]
            mean = float(np.mean(d))
            std = float(np.std(d, ddof=1)) if d.size > 1 else float("nan")
            out.append(Offset(a, b, int(d.size), mean, std, bool(abs(mean) > goal)))
    return out
