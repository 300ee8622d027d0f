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
    ignored; O(n) with cumulative sums."""
    n = x.size
    valid = ~np.isnan(x)
    xv = np.where(valid, x, 0.0)
    c0 = np.concatenate(([0.0], np.cumsum(valid, dtype=np.float64)))
    c1 = np.concatenate(([0.0], np.cumsum(xv)))
    c2 = np.concatenate(([0.0], np.cumsum(xv * xv)))
    half = window // 2
    idx = np.arange(n)
    lo = np.clip(idx - half, 0, n)
    hi = np.clip(idx - half + window, 0, n)
    cnt = c0[hi] - c0[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (c1[hi] - c1[lo]) / cnt
        var = (c2[hi] - c2[lo]) / cnt - mean * mean
    return mean, np.sqrt(np.maximum(var, 0.0))


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
