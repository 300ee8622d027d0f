"""Despiking after Vickers and Mahrt (1997), J. Atmos. Oceanic Technol. 14, 512-526, section 3a.

A point is a spike candidate when it lies more than `k` standard deviations from the mean of a
moving window (5 min in the paper, moved point by point); a run of at most `max_run` (3) consecutive
candidates is a spike and is replaced by linear interpolation, a longer run is kept (a real
feature). The pass repeats with the same window until no spike is found, the threshold widening
by 0.1 SD each pass (3.5 SD for scalars and horizontal wind, 5 SD for w: the EddyPro defaults of
the paper's method, DOMAIN.md), at most `max_passes` passes.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def moving_mean_std(x: NDArray[np.float64], window: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Centred moving mean and standard deviation over `window` points (shrunk at the ends), NaNs
    ignored; O(n) with cumulative sums: point i spans [max(i - window // 2, 0),
    min(i - window // 2 + window, n)), read from the sums by slicing (no index arrays)."""
    n = x.size
    valid = ~np.isnan(x)
    xv = np.where(valid, x, 0.0)
    c0 = np.zeros(n + 1, dtype=np.int64)  # counts: integers, exact
    np.cumsum(valid, out=c0[1:])
    c1 = np.zeros(n + 1)
    np.cumsum(xv, out=c1[1:])
    np.multiply(xv, xv, out=xv)
    c2 = np.zeros(n + 1)
    np.cumsum(xv, out=c2[1:])
    half = window // 2
    ahead = window - half  # >= 1: point i's span ends at min(i + ahead, n)
    cnt = _span(c0, n, half, ahead)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = _span(c1, n, half, ahead) / cnt
        var = _span(c2, n, half, ahead) / cnt - mean * mean
    return mean, np.sqrt(np.maximum(var, 0.0))


def _span(c: NDArray, n: int, half: int, ahead: int) -> NDArray:
    """c[min(i + ahead, n)] - c[max(i - half, 0)] for i in 0..n-1 (c holds n + 1 cumulative sums)."""
    top = np.empty(n, dtype=c.dtype)
    k = max(n - ahead, 0)
    top[:k] = c[ahead:n]
    top[k:] = c[n]
    bottom = np.empty(n, dtype=c.dtype)
    m = min(half, n)
    bottom[:m] = c[0]
    bottom[m:] = c[: n - m]
    return top - bottom


def _short_runs(mask: NDArray[np.bool_], max_run: int) -> NDArray[np.bool_]:
    """The True points of `mask` that belong to runs of at most `max_run` consecutive points."""
    if not mask.any():
        return mask
    padded = np.concatenate(([False], mask, [False])).astype(np.int8)
    edges = np.diff(padded)
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    keep = (ends - starts) <= max_run
    out = np.zeros_like(mask)
    for s, e in zip(starts[keep], ends[keep]):
        out[s:e] = True
    return out


def despike(x: NDArray[np.float64], fs_hz: float, *, k: float = 3.5, window_s: float = 300.0,
            max_run: int = 3, step: float = 0.1, max_passes: int = 20) -> tuple[NDArray[np.float64], int]:
    """The series with its spikes replaced by linear interpolation, and the number replaced.
    NaNs (missing or filtered records) stay NaN and are ignored by the window statistics."""
    y = np.array(x, dtype=np.float64, copy=True)
    window = max(int(round(window_s * fs_hz)), 3)
    total = 0
    for p in range(max_passes):
        mean, std = moving_mean_std(y, window)
        with np.errstate(invalid="ignore"):
            cand = np.abs(y - mean) > (k + step * p) * std
        spikes = _short_runs(cand & ~np.isnan(y), max_run)
        count = int(spikes.sum())
        if count == 0:
            break
        total += count
        y[spikes] = np.nan
        good = ~np.isnan(y) & ~spikes
        y = _interpolate_over(y, spikes, good)
    return y, total


def _interpolate_over(y: NDArray[np.float64], holes: NDArray[np.bool_], good: NDArray[np.bool_]) -> NDArray[np.float64]:
    """`y` with the `holes` filled by linear interpolation between the nearest good points."""
    if good.sum() < 2:
        return y
    idx = np.arange(y.size)
    y[holes] = np.interp(idx[holes], idx[good], y[good])
    return y
