"""Time lag between the sonic's w and a gas analyzer's signal by covariance maximisation
(e.g. Fan et al. 1990; the EddyPro default, DOMAIN.md): the lag within [min, max] that maximises
|cov(w(t), c(t + lag))|, with the nominal lag used instead when the maximum sits on the window's
edge (no peak inside the window) or the best correlation is too weak to trust.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True, slots=True)
class Lag:
    """The lag applied (samples; c is read `samples` later than w) and whether it is the nominal."""

    samples: int
    nominal_used: bool
    correlation: float


def cross_covariance(w: NDArray[np.float64], c: NDArray[np.float64], lags: NDArray[np.int_]) -> NDArray[np.float64]:
    """cov(w(t), c(t + lag)) for each lag (NaNs count as the mean, i.e. zero fluctuation): by dot
    products for a window of up to 256 lags (a few ms at 20 Hz), by FFT beyond."""
    a = np.nan_to_num(w - np.nanmean(w))
    b = np.nan_to_num(c - np.nanmean(c))
    n = a.size
    lags = np.asarray(lags)
    if lags.size <= 256:
        # einsum's own loop, not np.dot: a BLAS dot starts OpenBLAS's threads, whose spinning after
        # each of the window's calls cost more CPU than the products (4x the half hour's CPU time)
        out = np.empty(lags.size)
        for i, k in enumerate(lags):
            x, y = (a[: n - k], b[k:]) if k >= 0 else (a[-k:], b[: n + k])
            out[i] = np.einsum("i,i->", x, y)
        return out / (n - np.abs(lags))
    size = 1 << int(np.ceil(np.log2(2 * n)))
    spec = np.fft.irfft(np.conj(np.fft.rfft(a, size)) * np.fft.rfft(b, size), size)
    # spec[k] = sum_t a[t] b[t + k]; negative k wraps to the end
    return spec[np.asarray(lags) % size] / (n - np.abs(lags))


def find_lag(w: NDArray[np.float64], c: NDArray[np.float64], fs_hz: float, *, min_s: float, max_s: float,
             nominal_s: float, min_correlation: float = 0.05) -> Lag:
    """The lag (samples) in [min_s, max_s] at the largest |cov(w, c(t + lag))|; the nominal when the
    peak is at an edge of the window or |correlation| there is below `min_correlation`."""
    lo, hi = int(round(min_s * fs_hz)), int(round(max_s * fs_hz))
    nominal = int(round(nominal_s * fs_hz))
    if hi <= lo:
        return Lag(nominal, True, float("nan"))
    lags = np.arange(lo, hi + 1)
    cov = cross_covariance(w, c, lags)
    best = int(np.argmax(np.abs(cov)))
    denom = np.nanstd(w) * np.nanstd(c)
    corr = float(cov[best] / denom) if denom > 0 else 0.0
    if best in (0, lags.size - 1) or abs(corr) < min_correlation:
        return Lag(nominal, True, corr)
    return Lag(int(lags[best]), False, corr)


def shift(c: NDArray[np.float64], samples: int) -> NDArray[np.float64]:
    """c advanced by `samples` (out[t] = c[t + samples]), NaN where no sample exists."""
    out = np.full_like(c, np.nan, dtype=np.float64)
    if samples >= 0:
        out[: c.size - samples] = c[samples:]
    else:
        out[-samples:] = c[: c.size + samples]
    return out
