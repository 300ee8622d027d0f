"""Quality tests of a flux and its 0/1/2 flag.

- Steady-state test (Foken and Wichura 1996, Agric. For. Meteorol. 78, 83-105): the mean of the
  covariances of 6 sub-intervals (5 min each in a half hour) against the covariance of the whole
  period, RN = |(mean(cov_i) - cov) / cov| in %.
- Integral turbulence characteristics (Foken et al. 2004, Handbook of Micrometeorology, ch. 9;
  Goeckede et al. 2004, Agric. For. Meteorol. 127, Table 1; Thomas and Foken 2002 for the neutral
  range, z+ = 1 m): sigma_w / u* against its model,
    z/L < -0.2:          1.3 (1 - 2 z/L)^(1/3)
    z/L >= -0.2:         0.21 ln(f z+ / u*) + 3.1   (f the Coriolis parameter)
  ITC = |(model - measured) / model| in % (the stable range uses the neutral form, as EddyPro does).
  Checked against EddyPro's DevelopedTurbulenceTest (LI-COR-Environmental/eddypro-engine,
  src/src_rp/developed_turbulence_test.f90): same forms, coefficients and ranges; EddyPro takes
  Omega = 2 pi / 86400 s, this module the sidereal 7.2921e-5 s-1 (0.3 % in f, 0.0006 in the model).
- Each test's percentage gives a partial class 1..9: [0, 15) 1, [15, 30) 2, [30, 50) 3,
  [50, 75) 4, [75, 100) 5, [100, 250) 6, [250, 500) 7, [500, 1000) 8, above 9 (Foken et al. 2004,
  as tabulated in Campbell's CPEC300 manual, appendix E, Table E-1; EddyPro truncates the
  percentage to a whole number first, so 15.x % is class 1 there and 2 here).
- The 0/1/2 flag is Mauder and Foken (2004, Documentation and instruction manual of the eddy
  covariance software package TK2, Univ. Bayreuth, Arbeitsergebnisse 26), as EddyPro implements it
  (qc_flags_subs.f90, GTK2Flag): 0 when both partial classes are 1-2 (both tests under 30 %),
  1 when both are 1-5 (under 100 %), 2 otherwise. (An earlier version of this module mapped Foken's
  overall classes 1-3/4-6/7-9 to 0/1/2; that scheme gives 0 to a flux whose ITC deviates by 30-75 %,
  which Mauder and Foken flag 1.)
- Foken et al. (2004) Table 9.4's overall class 1..9 is kept for the record (`overall_class`), as
  EddyPro transcribes it (FokenFlag): the first row below whose limits hold. The search tools
  hold only the first pages of the book's chapter and of the TK2 manual, not their tables:
  EddyPro's code (checked above) and the CPEC300 table are the sources checked.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

CLASS_LIMITS_PCT = (15.0, 30.0, 50.0, 75.0, 100.0, 250.0, 500.0, 1000.0)
"""Upper limits (exclusive) of classes 1..8 of either test; above the last: class 9."""

OVERALL = (
    # (overall class, highest steady-state class, highest ITC class)
    (1, 1, 2),
    (2, 2, 2),
    (3, 2, 4),
    (4, 4, 2),
    (5, 4, 5),
    (6, 5, 5),
    (7, 6, 6),
    (8, 8, 8),
)
"""Foken et al. (2004) Table 9.4 overall class: the first row whose steady-state and ITC classes are
both at or below its limits; none: class 9."""

FLAG0_MAX_CLASS = 2
"""Mauder and Foken (2004): flag 0 needs both partial classes at or below 2 (under 30 %)."""
FLAG1_MAX_CLASS = 5
"""Mauder and Foken (2004): flag 1 needs both partial classes at or below 5 (under 100 %)."""


def percent_class(percent: float) -> int:
    """Class 1..9 of a test result in % (NaN: 9, nothing could be tested)."""
    if not np.isfinite(percent):
        return 9
    return int(np.searchsorted(CLASS_LIMITS_PCT, percent, side="right")) + 1


def overall_class(steady_pct: float, itc_pct: float) -> int:
    """Foken et al. (2004) overall quality class 1..9 from the two tests."""
    st, itc = percent_class(steady_pct), percent_class(itc_pct)
    for cls, st_max, itc_max in OVERALL:
        if st <= st_max and itc <= itc_max:
            return cls
    return 9


def flag_012(steady_pct: float, itc_pct: float) -> int:
    """Mauder and Foken (2004): 0 when both partial classes are 1-2, 1 when both are 1-5, else 2."""
    worst = max(percent_class(steady_pct), percent_class(itc_pct))
    return 0 if worst <= FLAG0_MAX_CLASS else 1 if worst <= FLAG1_MAX_CLASS else 2


def steady_state_pct(a: NDArray[np.float64], b: NDArray[np.float64], parts: int = 6) -> float:
    """Foken and Wichura (1996) relative non-stationarity (%) of cov(a, b) over `parts` sub-intervals."""
    n = (a.size // parts) * parts
    ok = ~(np.isnan(a[:n]) | np.isnan(b[:n]))
    a2 = np.where(ok, a[:n], np.nan).reshape(parts, -1)
    b2 = np.where(ok, b[:n], np.nan).reshape(parts, -1)
    da = a2 - np.nanmean(a2, axis=1, keepdims=True)
    db = b2 - np.nanmean(b2, axis=1, keepdims=True)
    sub = np.nanmean(da * db, axis=1)
    aw, bw = a[:n][ok], b[:n][ok]
    whole = np.mean((aw - aw.mean()) * (bw - bw.mean()))
    if whole == 0 or not np.isfinite(whole):
        return float("nan")
    return float(abs((np.mean(sub) - whole) / whole) * 100.0)


def coriolis(latitude_deg: float) -> float:
    """|f| = 2 Omega |sin(latitude)| (s-1)."""
    return abs(2 * 7.2921e-5 * np.sin(np.radians(latitude_deg)))


def sigma_w_model(z_over_l: float, ustar: float, latitude_deg: float) -> float:
    """Foken et al. (2004) model of sigma_w / u* (see the module's docstring)."""
    if not np.isfinite(z_over_l) or ustar <= 0:
        return float("nan")
    if z_over_l < -0.2:
        return 1.3 * (1 - 2 * z_over_l) ** (1 / 3)
    f = max(coriolis(latitude_deg), 1e-6)
    return 0.21 * np.log(f * 1.0 / ustar) + 3.1


def itc_pct(sigma_w: float, ustar: float, z_over_l: float, latitude_deg: float) -> float:
    """ITC deviation (%) of the measured sigma_w / u* from its model."""
    model = sigma_w_model(z_over_l, ustar, latitude_deg)
    if not np.isfinite(model) or model == 0 or ustar <= 0:
        return float("nan")
    return float(abs((model - sigma_w / ustar) / model) * 100.0)
