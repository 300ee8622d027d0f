"""Fluctuations about the period's mean: block average (the default) or a least-squares linear trend
(Gash and Culf 1996; both options of EddyPro, DOMAIN.md). NaNs stay NaN and are ignored."""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import NDArray

Detrending = Literal["block", "linear"]


def fluctuations(x: NDArray[np.float64], method: Detrending = "block") -> NDArray[np.float64]:
    """x - mean (block) or x - its least-squares line (linear), over the non-NaN points."""
    if method == "block":
        return x - np.nanmean(x)
    if method != "linear":
        raise ValueError(f"detrending {method!r} is not one of 'block', 'linear'")
    t = np.arange(x.size, dtype=np.float64)
    ok = ~np.isnan(x)
    tm, xm = t[ok].mean(), x[ok].mean()
    slope = np.sum((t[ok] - tm) * (x[ok] - xm)) / np.sum((t[ok] - tm) ** 2)
    return x - (xm + slope * (t - tm))


def covariance(a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
    """Mean product of two fluctuation series over the points where both exist."""
    ok = ~(np.isnan(a) | np.isnan(b))
    return float(np.mean(a[ok] * b[ok])) if ok.any() else float("nan")
