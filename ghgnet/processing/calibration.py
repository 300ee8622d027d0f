"""Calibration maths: standards' injections -> fits of assigned = f(measured), targets, drift.

Practice followed (each with its source):
- ICOS measures 3-4 standards, each for 30 min, in 4 cycles, and keeps the end of each injection
  (the line and the cavity are still settling at its start); a target tank checks the result
  (Yver-Kwok et al. 2021, AMT 14, 89).
- Urban networks (UUCON, uataq/data-pipeline docs) fit by ordinary least squares and keep slope,
  intercept, n, R2 and RMSE with every row; in reprocessing the calibration is interpolated
  linearly in time between calibrations.
- Compatibility goals (WMO/GAW; Rella et al. 2013, AMT 6, 837): CO2 0.1 ppm, CH4 2 ppb; CO 2 ppb
  and N2O 0.1 ppb *(unconfirmed, GAW report 255)*. All of them are configurable defaults.

Weighting (`fit_species`): when every standard's assigned value has a known standard uncertainty,
the fit is weighted by them and by the standard errors of the measured means (the scatter of each
standard's injections; unknown counts as 0), with errors in both axes:
- linear: York regression (York et al. 2004, Am. J. Phys. 72, 367, Section III: the iteration for
  the slope with W_i = 1/(u_y,i^2 + b^2 u_x,i^2), and their eqs. for the standard errors of slope
  and intercept; uncorrelated x and y errors). Checked on Pearson's data with York's weights
  (York 1966): slope -0.48053, intercept 5.47991 as in Williamson 1968, Reed 1992 and Lybanon 1984
  (table in the kapteyn package documentation, stored copy).
- quadratic: weighted least squares with the effective variance u_y^2 + f'(x)^2 u_x^2 (Orear 1982,
  Am. J. Phys. 50, 912), iterated until the coefficients settle.
A missing uncertainty counts as 0 in its axis; a standard with none in either axis cannot be
weighted (ValueError). The covariance of the coefficients is the one the input uncertainties imply
((A^T W A)^-1; York's sigma_a, sigma_b and cov(a, b) = -x_bar sigma_b^2), not scaled by the fit's
reduced chi-square, which is kept as `mswd` so a reader sees whether the scatter agrees with the
stated uncertainties.
Without any uncertainty the fit is ordinary least squares as before, and its covariance comes from
the residuals: s^2 (A^T A)^-1 with s^2 = SS_res / (n - p); None when n = p (no degree of freedom).

Scales: assigned values are converted to the species' current scale before the fit
(ghgnet.processing.scales); each fit records the scale it was made on (`CalibrationFit.scale`).

Conventions used throughout:
- Units are the species' units (CO2 ppm; CH4, CO, N2O ppb), for measured and assigned values alike.
- Polynomial coefficients are stored LOWEST ORDER FIRST: (c0, c1) means assigned = c0 + c1*x,
  (c0, c1, c2) means c0 + c1*x + c2*x^2 (x = measured, uncalibrated dry mole fraction). So index 0
  is always the intercept and index 1 the slope, whatever the degree.
- Residuals are fitted minus assigned, f(measured_i) - assigned_i: the same sign as a target's bias
  (calibrated - assigned).
- Times are timezone-aware UTC datetimes in results; arrays of times are epoch seconds (float64),
  minute records stamped at the START of their minute.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from math import comb
from typing import Union

import numpy as np
from numpy.polynomial import Polynomial
from numpy.typing import ArrayLike, NDArray

from ghgnet import species
from ghgnet.processing import scales, uncertainty
from ghgnet.timeutil import from_epoch

COMPATIBILITY_GOALS: dict[str, float] = species.goals()
"""WMO/GAW network compatibility goals, species units (see module docstring for sources)."""

DRIFT_LIMITS: dict[str, float] = dict(COMPATIBILITY_GOALS)
"""Default limit on the change between consecutive calibrations at the reference level. The
compatibility goal by default: a larger step means data between the two calibrations can be off by
more than the goal, whichever calibration they use. Configurable."""

REFERENCE_LEVELS: dict[str, float] = species.references()
"""Typical ambient (measured) levels at which drift is evaluated, species units. Configurable:
a station should pass its own ambient levels."""

MAX_DEGREE = 2


@dataclass(frozen=True, slots=True)
class AssignedValue:
    """A cylinder's assigned mole fraction for one species, on a named scale (e.g. "WMO X2019"),
    with its standard uncertainty when known. Species units."""

    value: float
    scale: str = ""
    uncertainty: float | None = None


@dataclass(frozen=True, slots=True)
class CalibrationFit:
    """assigned = f(measured) for one species from one calibration run.

    coefficients: lowest order first (intercept, slope[, quadratic term]).
    cylinders, measured, assigned, residuals: per standard, in the same order; residual =
    f(measured) - assigned, species units.
    r2: 1 - SS_res / SS_tot of the assigned values. rmse: sqrt(mean(residual^2)) (divided by n,
    not n - p, so that a fit with as many standards as parameters reports 0, as it is).
    covariance: covariance matrix of the coefficients (same order, species units squared over the
    powers of x), None when it cannot be known (an unweighted fit with n = p).
    method: "ols" (unweighted), "york" (linear, weighted) or "wls-ev" (quadratic, weighted with the
    effective variance). mswd: weighted sum of squared residuals / (n - p) of a weighted fit
    (None for OLS or n = p). scale: the calibration scale the assigned values were on ("" unknown).
    """

    species: str
    coefficients: tuple[float, ...]
    cylinders: tuple[str, ...]
    measured: tuple[float, ...]
    assigned: tuple[float, ...]
    residuals: tuple[float, ...]
    r2: float
    rmse: float
    n: int
    covariance: tuple[tuple[float, ...], ...] | None = None
    method: str = "ols"
    mswd: float | None = None
    scale: str = ""

    @property
    def degree(self) -> int:
        return len(self.coefficients) - 1

    @property
    def intercept(self) -> float:
        return self.coefficients[0]

    @property
    def slope(self) -> float:
        """Linear coefficient c1 (for a quadratic, the slope at measured = 0, not at ambient)."""
        return self.coefficients[1]


Coefficients = Union[CalibrationFit, Sequence[float], NDArray[np.float64]]
"""What `calibrate` accepts: a fit, or coefficients lowest order first (shape (k,) or (..., k))."""


@dataclass(frozen=True, slots=True)
class StandardUsed:
    """One standard cylinder in a calibration: its measured (uncalibrated, averaged over cycles) and
    assigned values per species."""

    cylinder: str
    measured: dict[str, float]
    assigned: dict[str, AssignedValue]


@dataclass(frozen=True, slots=True)
class CalibrationResult:
    """A finished calibration: its id, time window [start, end), standards and fits per species."""

    id: str
    start: datetime
    end: datetime
    standards: tuple[StandardUsed, ...]
    fits: dict[str, CalibrationFit]

    @property
    def time(self) -> datetime:
        """The time a calibration represents: the middle of its window. Interpolation in time
        between calibrations is anchored here."""
        return self.start + (self.end - self.start) / 2

    def coefficients(self) -> dict[str, tuple[float, ...]]:
        """Coefficients per species, lowest order first."""
        return {sp: fit.coefficients for sp, fit in self.fits.items()}


@dataclass(frozen=True, slots=True)
class InjectionMeans:
    """One cylinder's measured values from one run, per species (species units).

    mean: mean over the cycles of each cycle's mean of its last minutes.
    std_between_cycles: sample std (ddof=1) of those cycle means, None with a single cycle.
    n_cycles / n_minutes: cycles and minutes that contributed.
    standard_error: standard error of `mean`: std_between_cycles / sqrt(n_cycles) with two cycles
    or more; with one cycle, the std of its minute means / sqrt(minutes) (two minutes or more);
    else None. The measured scatter that weights a calibration fit.
    """

    cylinder: str
    mean: dict[str, float]
    std_between_cycles: dict[str, float | None]
    n_cycles: dict[str, int]
    n_minutes: dict[str, int]
    standard_error: dict[str, float | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TargetSpecies:
    """One species of a target run: measured (raw) mean, calibrated mean, assigned value,
    bias = calibrated - assigned, the goal and whether |bias| <= goal. Species units.

    u: combined standard uncertainty of the bias (GUM, JCGM 100:2008, eq. 10, inputs independent):
    the calibrated mean's (calibration part from the fit's covariance at the measured mean, and the
    run's repeatability) and the target cylinder's assigned uncertainty, in quadrature; None when a
    part is unknown (no covariance). within_u: |bias| <= 2u (coverage factor 2, about 95 %), None
    without u. A bias outside 2u says the calibration or the target's value is off by more than
    the stated uncertainties allow, whatever the goal."""

    measured: float
    calibrated: float
    assigned: float
    scale: str
    bias: float
    goal: float
    within_goal: bool
    u: float | None = None
    within_u: bool | None = None


@dataclass(frozen=True, slots=True)
class TargetResult:
    """A target-tank run checked against its assigned values with the calibration in force."""

    cylinder: str
    start: datetime
    end: datetime
    calibration_id: str | None
    species: dict[str, TargetSpecies] = field(default_factory=dict)

    @property
    def within_goal(self) -> bool:
        """True when every species is within its goal."""
        return all(s.within_goal for s in self.species.values())


@dataclass(frozen=True, slots=True)
class DriftResult:
    """Change of the calibrated value of the same measured `reference` between two consecutive
    calibrations: drift = f_current(reference) - f_previous(reference), species units."""

    species: str
    reference: float
    previous: float
    current: float
    drift: float
    limit: float
    exceeded: bool


def _to_epoch(t: datetime | float) -> float:
    if isinstance(t, datetime):
        if t.tzinfo is None:
            raise ValueError(f"naive datetime {t!r}: ghgnet times are timezone-aware UTC")
        return t.timestamp()
    return float(t)


def coefficient_array(coefficients: Coefficients) -> NDArray[np.float64]:
    """Coefficients as a float64 array, lowest order first, last axis = order."""
    if isinstance(coefficients, CalibrationFit):
        return np.asarray(coefficients.coefficients, dtype=np.float64)
    c = np.asarray(coefficients, dtype=np.float64)
    if c.ndim == 0 or c.shape[-1] == 0:
        raise ValueError("calibration coefficients must hold at least one value")
    return c


def calibrate(values: ArrayLike, coefficients: Coefficients) -> NDArray[np.float64]:
    """Calibrated values c0 + c1*x + c2*x^2 ... of measured `values` (species units), by Horner.

    `coefficients` of shape (k,) apply to every value; of shape (..., k) they broadcast against
    `values` (one set per value, e.g. from `interpolated_coefficients` at each minute). NaN stays
    NaN.
    """
    x = np.asarray(values, dtype=np.float64)
    c = coefficient_array(coefficients)
    result = np.broadcast_to(c[..., -1], np.broadcast_shapes(x.shape, c.shape[:-1])).astype(np.float64)
    for k in range(c.shape[-1] - 2, -1, -1):
        result = result * x + c[..., k]
    return result


def _to_x_basis(d: NDArray[np.float64], cov_d: NDArray[np.float64] | None, m: float, s: float
                ) -> tuple[NDArray[np.float64], NDArray[np.float64] | None]:
    """Coefficients (and their covariance) of a fit in t = (x - m)/s, expressed in x."""
    k = d.size
    t = np.zeros((k, k))
    for j in range(k):
        for i in range(j + 1):
            t[i, j] = comb(j, i) * (-m) ** (j - i) / s**j
    c = t @ d
    return c, None if cov_d is None else t @ cov_d @ t.T


def _design(x: NDArray[np.float64], degree: int) -> NDArray[np.float64]:
    return np.vander(x, degree + 1, increasing=True)


def _york(x: NDArray[np.float64], y: NDArray[np.float64], ux: NDArray[np.float64], uy: NDArray[np.float64],
          max_iter: int = 100, rtol: float = 1e-15) -> tuple[NDArray[np.float64], NDArray[np.float64], float]:
    """York et al. 2004 (Am. J. Phys. 72, 367), Section III, uncorrelated errors (r_i = 0):
    (intercept, slope), their covariance and chi^2 = sum W_i (y_i - a - b x_i)^2.

    Steps 1-7 of their Section III: start from the OLS slope; W_i = 1/(uy_i^2 + b^2 ux_i^2); weighted
    means X_bar, Y_bar; U_i = x_i - X_bar, V_i = y_i - Y_bar; beta_i = W_i (U_i uy_i^2 + b V_i ux_i^2);
    b = sum W beta V / sum W beta U until it settles; a = Y_bar - b X_bar. Standard errors: the
    adjusted x_i = X_bar + beta_i, u_i = x_i - x_bar (W-weighted mean of the adjusted x),
    sigma_b^2 = 1 / sum W u^2, sigma_a^2 = 1/sum W + x_bar^2 sigma_b^2, cov(a, b) = -x_bar sigma_b^2.
    With ux = 0 everywhere this is weighted least squares in y."""
    b = float(np.polyfit(x, y, 1)[0])
    for _ in range(max_iter):
        w = 1.0 / (uy**2 + b**2 * ux**2)
        xb = float(np.sum(w * x) / np.sum(w))
        yb = float(np.sum(w * y) / np.sum(w))
        u = x - xb
        v = y - yb
        beta = w * (u * uy**2 + b * v * ux**2)
        new = float(np.sum(w * beta * v) / np.sum(w * beta * u))
        done = abs(new - b) <= rtol * max(abs(new), 1.0)
        b = new
        if done:
            break
    w = 1.0 / (uy**2 + b**2 * ux**2)
    xb = float(np.sum(w * x) / np.sum(w))
    yb = float(np.sum(w * y) / np.sum(w))
    a = yb - b * xb
    beta = w * ((x - xb) * uy**2 + b * (y - yb) * ux**2)
    adjusted = xb + beta
    x_bar = float(np.sum(w * adjusted) / np.sum(w))
    var_b = 1.0 / float(np.sum(w * (adjusted - x_bar) ** 2))
    var_a = 1.0 / float(np.sum(w)) + x_bar**2 * var_b
    cov = np.array([[var_a, -x_bar * var_b], [-x_bar * var_b, var_b]])
    chi2 = float(np.sum(w * (y - a - b * x) ** 2))
    return np.array([a, b]), cov, chi2


def _effective_variance_wls(x: NDArray[np.float64], y: NDArray[np.float64], ux: NDArray[np.float64],
                            uy: NDArray[np.float64], degree: int, max_iter: int = 100
                            ) -> tuple[NDArray[np.float64], NDArray[np.float64], float]:
    """Weighted least squares of a polynomial with the effective variance uy^2 + f'(x)^2 ux^2
    (Orear 1982), iterated from the fit weighted by uy alone until the coefficients settle.
    Solved on t = (x - m)/s for conditioning; returns coefficients in x, their covariance
    (A^T W A)^-1 carried to x, and chi^2."""
    m = float(np.mean(x))
    s = float(np.ptp(x)) / 2.0 or 1.0
    a_t = _design((x - m) / s, degree)
    c = np.zeros(degree + 1)
    cov_d = np.eye(degree + 1)
    for i in range(max_iter):
        slope = np.polynomial.Polynomial(c).deriv()(x) if i else np.zeros_like(x)
        w = 1.0 / (uy**2 + slope**2 * ux**2)
        normal = a_t.T @ (w[:, None] * a_t)
        cov_d = np.linalg.inv(normal)
        d = cov_d @ (a_t.T @ (w * y))
        new, _ = _to_x_basis(d, None, m, s)
        done = i > 0 and np.allclose(new, c, rtol=1e-13, atol=0.0)
        c = new
        if done:
            break
    c, cov = _to_x_basis(d, cov_d, m, s)
    chi2 = float(np.sum(w * (y - calibrate(x, c)) ** 2))
    return c, cov, chi2  # type: ignore[return-value]


def _ols_covariance(x: NDArray[np.float64], residuals: NDArray[np.float64], degree: int
                    ) -> NDArray[np.float64] | None:
    """s^2 (A^T A)^-1, s^2 = SS_res / (n - p), computed on t = (x - m)/s and carried to x; None
    when n = p."""
    dof = x.size - (degree + 1)
    if dof <= 0:
        return None
    m = float(np.mean(x))
    s = float(np.ptp(x)) / 2.0 or 1.0
    a_t = _design((x - m) / s, degree)
    cov_d = float(np.sum(residuals**2)) / dof * np.linalg.inv(a_t.T @ a_t)
    _, cov = _to_x_basis(np.zeros(degree + 1), cov_d, m, s)
    return cov


def _uncertainties(values: ArrayLike | None, n: int, label: str, what: str) -> NDArray[np.float64] | None:
    """Per-standard uncertainties as an array with NaN for unknown; None when none is known."""
    if values is None:
        return None
    u = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)  # type: ignore[union-attr]
    if u.size != n:
        raise ValueError(f"{label}{u.size} {what} uncertainties for {n} standards")
    if np.any(u[np.isfinite(u)] < 0) or np.isinf(u).any():
        raise ValueError(f"{label}{what} uncertainties must be finite and >= 0, got {u.tolist()}")
    return None if np.isnan(u).all() else u


def fit_species(
    measured: ArrayLike,
    assigned: ArrayLike,
    degree: int = 1,
    species: str = "",
    cylinders: Sequence[str] | None = None,
    u_measured: Sequence[float | None] | None = None,
    u_assigned: Sequence[float | None] | None = None,
    scale: str = "",
) -> CalibrationFit:
    """Fit of assigned = f(measured), polynomial of `degree` 1 or 2 (see the module docstring for
    the weighting rules).

    u_measured: standard error of each standard's measured mean (its scatter over the injections);
    u_assigned: each standard's assigned standard uncertainty; species units, None for unknown.
    Without any known uncertainty: ordinary least squares (numpy Polynomial.fit, on a centred,
    scaled abscissa for conditioning, then converted to plain coefficients in measured units).
    A linear fit needs >= 2 standards, a quadratic >= 3 (with 3 it passes exactly through them).
    Raises ValueError for NaN inputs, too few standards, degenerate values (measured values not
    distinct enough to determine the polynomial, or all assigned values equal), and a weighted
    fit with a standard of no uncertainty in either axis.
    """
    x = np.asarray(measured, dtype=np.float64).ravel()
    y = np.asarray(assigned, dtype=np.float64).ravel()
    names = tuple(cylinders) if cylinders is not None else tuple(f"#{i}" for i in range(x.size))
    label = f"{species}: " if species else ""
    if degree not in (1, 2):
        raise ValueError(f"{label}fit degree must be 1 (linear) or 2 (quadratic), got {degree}")
    if x.size != y.size or len(names) != x.size:
        raise ValueError(
            f"{label}{x.size} measured values, {y.size} assigned values and {len(names)} cylinders"
            " must match one to one"
        )
    bad = [names[i] for i in np.flatnonzero(~(np.isfinite(x) & np.isfinite(y)))]
    if bad:
        raise ValueError(f"{label}measured or assigned value is NaN/inf for standard(s) {', '.join(bad)}")
    need = degree + 1
    kind = "linear" if degree == 1 else "quadratic"
    if x.size < need:
        raise ValueError(f"{label}too few standards for a {kind} fit: need >= {need}, got {x.size}")
    if np.unique(x).size < need:
        raise ValueError(
            f"{label}degenerate standards: measured values {x.tolist()} have fewer than {need}"
            f" distinct values, a {kind} fit is undetermined"
        )
    if np.ptp(y) == 0.0:
        raise ValueError(f"{label}degenerate standards: all assigned values equal {y[0]}")
    ux = _uncertainties(u_measured, x.size, label, "measured")
    uy = _uncertainties(u_assigned, x.size, label, "assigned")
    weighted = uy is not None and not np.isnan(uy).any()
    covariance: NDArray[np.float64] | None
    mswd: float | None = None
    if weighted:
        ux0 = np.zeros(x.size) if ux is None else np.nan_to_num(ux)
        uy0 = np.zeros(x.size) if uy is None else np.nan_to_num(uy)
        zero = [names[i] for i in np.flatnonzero((ux0 == 0) & (uy0 == 0))]
        if zero:
            raise ValueError(f"{label}standard(s) {', '.join(zero)} have no uncertainty in either axis:"
                             " a weighted fit would give them infinite weight")
        if degree == 1:
            coefficients, covariance, chi2 = _york(x, y, ux0, uy0)
            method = "york"
        else:
            coefficients, covariance, chi2 = _effective_variance_wls(x, y, ux0, uy0, degree)
            method = "wls-ev"
        if x.size > need:
            mswd = chi2 / (x.size - need)
    else:
        coef = Polynomial.fit(x, y, degree).convert().coef
        coefficients = np.zeros(need)
        coefficients[: coef.size] = coef
        method = "ols"
    residuals = calibrate(x, coefficients) - y
    if not weighted:
        covariance = _ols_covariance(x, residuals, degree)
    ss_res = float(np.sum(residuals**2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return CalibrationFit(
        species=species,
        coefficients=tuple(float(c) for c in coefficients),
        cylinders=names,
        measured=tuple(float(v) for v in x),
        assigned=tuple(float(v) for v in y),
        residuals=tuple(float(r) for r in residuals),
        r2=1.0 - ss_res / ss_tot,
        rmse=float(np.sqrt(ss_res / x.size)),
        n=int(x.size),
        covariance=None if covariance is None else tuple(tuple(float(v) for v in row) for row in covariance),
        method=method,
        mswd=mswd,
        scale=scale,
    )


def _assigned(value: AssignedValue | float) -> AssignedValue:
    return value if isinstance(value, AssignedValue) else AssignedValue(float(value))


def fit_calibration(
    calibration_id: str,
    start: datetime,
    end: datetime,
    measured: Mapping[str, Mapping[str, float]],
    assigned: Mapping[str, Mapping[str, AssignedValue | float]],
    degree: int | Mapping[str, int] = 1,
    species: Sequence[str] | None = None,
    u_measured: Mapping[str, Mapping[str, float | None]] | None = None,
) -> CalibrationResult:
    """Fit every species of a calibration run.

    measured: cylinder -> species -> measured mean (e.g. `InjectionMeans.mean`).
    assigned: cylinder -> species -> assigned value (AssignedValue, or a bare number without scale).
    degree: one degree for all species, or per species (missing species: linear).
    species: which species to fit; by default every species that has both a measured and an
    assigned value for at least one standard. For each species, the standards used are those with
    both values. u_measured: cylinder -> species -> standard error of the measured mean (e.g.
    `InjectionMeans.standard_error`), weighting the fit with the assigned uncertainties.
    Assigned values are converted to the species' current scale first (`scales.to_current`); the
    standards in the result carry the converted values. Raises ValueError (see `fit_species`) when
    a species cannot be fitted, when an assigned value's scale is unknown or cannot be converted
    (naming the cylinder), and when a measured cylinder has no assigned values at all (a
    configuration error worth stopping for).
    """
    unknown = [c for c in measured if c not in assigned]
    if unknown:
        raise ValueError(f"no assigned values for measured cylinder(s) {', '.join(unknown)}")
    cylinders = list(measured)
    if species is None:
        species = sorted({sp for c in cylinders for sp in measured[c] if sp in assigned[c]})
    if not species:
        raise ValueError("no species with both measured and assigned values: nothing to calibrate")
    converted: dict[str, dict[str, AssignedValue]] = {}
    for c in cylinders:
        converted[c] = {}
        for sp, v in assigned[c].items():
            av = _assigned(v)
            try:
                value, u, scale = scales.to_current(sp, av.value, av.scale, av.uncertainty)
            except ValueError as exc:
                raise ValueError(f"cylinder {c}: scale.{sp}: {exc}") from None
            converted[c][sp] = AssignedValue(value, scale, u)
    fits: dict[str, CalibrationFit] = {}
    for sp in species:
        used = [c for c in cylinders if sp in measured[c] and sp in converted[c]]
        deg = degree if isinstance(degree, int) else int(degree.get(sp, 1))
        used_scales = {converted[c][sp].scale for c in used}
        fits[sp] = fit_species(
            [measured[c][sp] for c in used],
            [converted[c][sp].value for c in used],
            degree=deg,
            species=sp,
            cylinders=used,
            u_measured=None if u_measured is None else [(u_measured.get(c) or {}).get(sp) for c in used],
            u_assigned=[converted[c][sp].uncertainty for c in used],
            scale=used_scales.pop() if len(used_scales) == 1 else "",
        )
    standards = tuple(
        StandardUsed(
            cylinder=c,
            measured={sp: float(v) for sp, v in measured[c].items() if sp in fits},
            assigned={sp: v for sp, v in converted[c].items() if sp in fits},
        )
        for c in cylinders
    )
    return CalibrationResult(id=calibration_id, start=start, end=end, standards=standards, fits=fits)


def injection_means(
    times: ArrayLike,
    cylinders: Sequence[str] | NDArray[np.str_],
    cycles: ArrayLike,
    values: Mapping[str, ArrayLike],
    last_minutes: int,
    valid: ArrayLike | None = None,
    skip_first_cycles: int = 0,
) -> dict[str, InjectionMeans]:
    """Average the end of each injection over cycles, per cylinder and species.

    Inputs are one row per minute record of the run: `times` (minute starts, epoch s), `cylinders`
    (which cylinder was sampled), `cycles` (cycle number), `values` species -> (raw, uncalibrated)
    minute means, `valid` (optional: False for minutes flagged invalid).
    An injection is the set of rows of one (cylinder, cycle). Of each injection the `last_minutes`
    latest rows are taken first and only then are invalid or NaN minutes dropped, so a bad minute
    never pulls in an earlier, still-settling one. The `skip_first_cycles` lowest cycle numbers of
    the run are discarded (conditioning cycles). Each cycle's mean is the mean of its remaining
    minutes; the cylinder's mean is the mean over cycles (equal weight per cycle). A species with
    no usable minute in any cycle gets NaN, which `fit_species` refuses by name.
    """
    if last_minutes < 1:
        raise ValueError(f"last_minutes must be >= 1, got {last_minutes}")
    t = np.asarray(times, dtype=np.float64)
    cyl = np.asarray(cylinders, dtype=object)
    cyc = np.asarray(cycles)
    ok = np.ones(t.size, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    arrays = {sp: np.asarray(v, dtype=np.float64) for sp, v in values.items()}
    for name, arr in (("cylinders", cyl), ("cycles", cyc), ("valid", ok), *arrays.items()):
        if arr.shape != t.shape:
            raise ValueError(f"{name} has shape {arr.shape}, times has {t.shape}: one row per minute")
    kept_cycles = np.unique(cyc)[skip_first_cycles:]
    result: dict[str, InjectionMeans] = {}
    for c in dict.fromkeys(cyl.tolist()):
        cycle_means: dict[str, list[float]] = {sp: [] for sp in arrays}
        minute_values: dict[str, list[float]] = {sp: [] for sp in arrays}
        n_minutes = dict.fromkeys(arrays, 0)
        for k in kept_cycles:
            rows = np.flatnonzero((cyl == c) & (cyc == k))
            if rows.size == 0:
                continue
            rows = rows[np.argsort(t[rows], kind="stable")][-last_minutes:]
            rows = rows[ok[rows]]
            for sp, arr in arrays.items():
                v = arr[rows]
                v = v[np.isfinite(v)]
                if v.size:
                    cycle_means[sp].append(float(v.mean()))
                    minute_values[sp].extend(v.tolist())
                    n_minutes[sp] += int(v.size)
        means: dict[str, float] = {}
        stds: dict[str, float | None] = {}
        errors: dict[str, float | None] = {}
        for sp, cm in cycle_means.items():
            means[sp] = float(np.mean(cm)) if cm else float("nan")
            stds[sp] = float(np.std(cm, ddof=1)) if len(cm) > 1 else None
            mv = minute_values[sp]
            if len(cm) > 1:
                errors[sp] = stds[sp] / np.sqrt(len(cm))  # type: ignore[operator]
            elif len(mv) > 1:
                errors[sp] = float(np.std(mv, ddof=1) / np.sqrt(len(mv)))
            else:
                errors[sp] = None
        result[str(c)] = InjectionMeans(
            cylinder=str(c),
            mean=means,
            std_between_cycles=stds,
            n_cycles={sp: len(cm) for sp, cm in cycle_means.items()},
            n_minutes=n_minutes,
            standard_error=errors,
        )
    return result


def calibration_from_minutes(
    calibration_id: str,
    times: ArrayLike,
    cylinders: Sequence[str] | NDArray[np.str_],
    cycles: ArrayLike,
    values: Mapping[str, ArrayLike],
    assigned: Mapping[str, Mapping[str, AssignedValue | float]],
    last_minutes: int,
    valid: ArrayLike | None = None,
    skip_first_cycles: int = 0,
    degree: int | Mapping[str, int] = 1,
) -> CalibrationResult:
    """`injection_means` then `fit_calibration`, for a whole run given as minute rows (see there);
    the fit is weighted by the standards' assigned uncertainties and the standard errors of their
    measured means. The window runs from the first minute's start to the last minute's end
    (start + 60 s)."""
    t = np.asarray(times, dtype=np.float64)
    if t.size == 0:
        raise ValueError("no minutes in the calibration run")
    means = injection_means(t, cylinders, cycles, values, last_minutes, valid, skip_first_cycles)
    return fit_calibration(
        calibration_id,
        from_epoch(float(t.min())),
        from_epoch(float(t.max()) + 60.0),
        {c: m.mean for c, m in means.items()},
        assigned,
        degree=degree,
        u_measured={c: m.standard_error for c, m in means.items()},
    )


def interpolated_coefficients(
    t: datetime | float | ArrayLike,
    before: CalibrationResult,
    after: CalibrationResult,
) -> dict[str, NDArray[np.float64]]:
    """Coefficients at time(s) `t`, linear in time between two bracketing calibrations.

    Anchored at each calibration's `time` (middle of its window): t = before.time gives before's
    coefficients, t = after.time after's. `t` is a datetime or epoch seconds (scalar or array);
    the result per species has shape (k,) for a scalar t and (len(t), k) for an array, ready for
    `calibrate`. Interpolating coefficients is the same as interpolating the calibrated value:
    (1-w) f_before(x) + w f_after(x). A linear and a quadratic fit mix by padding the linear one
    with a zero quadratic term. Only species fitted in both calibrations are returned (the others
    stay uncalibrated). Raises ValueError when t lies outside [before.time, after.time] or the
    calibrations are out of order.
    """
    tb = before.time.timestamp()
    ta = after.time.timestamp()
    if ta < tb:
        raise ValueError(f"calibration {after.id!r} is older than {before.id!r}: pass them in time order")
    if isinstance(t, datetime):
        tt: NDArray[np.float64] = np.asarray(_to_epoch(t))
    else:
        tt = np.asarray(t, dtype=np.float64)
    if tt.size and (np.nanmin(tt) < tb or np.nanmax(tt) > ta or np.isnan(tt).any()):
        raise ValueError(
            f"time outside [{before.time.isoformat()}, {after.time.isoformat()}]"
            f" (between calibrations {before.id!r} and {after.id!r}): cannot interpolate"
        )
    w = np.zeros_like(tt) if ta == tb else (tt - tb) / (ta - tb)
    out: dict[str, NDArray[np.float64]] = {}
    for sp in before.fits.keys() & after.fits.keys():
        cb = coefficient_array(before.fits[sp])
        ca = coefficient_array(after.fits[sp])
        k = max(cb.size, ca.size)
        cb = np.pad(cb, (0, k - cb.size))
        ca = np.pad(ca, (0, k - ca.size))
        out[sp] = (1.0 - w)[..., None] * cb + w[..., None] * ca
    return out


def _covariance_of(coefficients: Coefficients) -> NDArray[np.float64] | None:
    if isinstance(coefficients, CalibrationFit) and coefficients.covariance is not None:
        return np.asarray(coefficients.covariance, dtype=np.float64)
    return None


def evaluate_target(
    cylinder: str,
    start: datetime,
    end: datetime,
    measured: Mapping[str, float],
    assigned: Mapping[str, AssignedValue | float],
    coefficients: Mapping[str, Coefficients],
    calibration_id: str | None,
    goals: Mapping[str, float] = COMPATIBILITY_GOALS,
    u_measured: Mapping[str, float | None] | None = None,
) -> TargetResult:
    """Check a target run: per species with a measured value, an assigned value and coefficients,
    calibrated = f(measured), bias = calibrated - assigned, within_goal = |bias| <= goal, and
    the bias' standard uncertainty u with within_u = |bias| <= 2u (see `TargetSpecies`).

    measured: raw (uncalibrated) means of the run, species units. u_measured: their standard
    errors (the run's repeatability; unknown counts as 0). The calibration part of u comes from a
    `CalibrationFit`'s covariance (bare coefficients: u None); the assigned value's uncertainty
    counts as 0 when unknown. The assigned value is converted to the species' current scale
    first. Species lacking an assigned value or coefficients are left out (nothing to compare).
    Raises ValueError for a NaN measured mean, a species with no goal, and an unknown scale.
    """
    species: dict[str, TargetSpecies] = {}
    for sp, raw in measured.items():
        if sp not in assigned or sp not in coefficients:
            continue
        if not np.isfinite(raw):
            raise ValueError(f"{sp}: target {cylinder} has no valid measured mean (NaN)")
        if sp not in goals:
            raise ValueError(f"{sp}: no compatibility goal configured for the target check")
        av = _assigned(assigned[sp])
        try:
            value, u_assigned, scale = scales.to_current(sp, av.value, av.scale, av.uncertainty)
        except ValueError as exc:
            raise ValueError(f"target {cylinder}: scale.{sp}: {exc}") from None
        cal = float(calibrate(raw, coefficients[sp]))
        bias = cal - value
        u_cal = uncertainty.calibration_u(raw, _covariance_of(coefficients[sp]))
        u = None
        if u_cal is not None:
            u_rep = (u_measured or {}).get(sp) or 0.0
            u = uncertainty.combine(u_cal, u_rep, u_assigned or 0.0)
        species[sp] = TargetSpecies(
            measured=float(raw),
            calibrated=cal,
            assigned=value,
            scale=scale,
            bias=bias,
            goal=float(goals[sp]),
            within_goal=bool(abs(bias) <= goals[sp]),
            u=u,
            within_u=None if u is None else bool(abs(bias) <= 2.0 * u),
        )
    return TargetResult(cylinder=cylinder, start=start, end=end, calibration_id=calibration_id, species=species)


def target_from_minutes(
    cylinder: str,
    times: ArrayLike,
    values: Mapping[str, ArrayLike],
    assigned: Mapping[str, AssignedValue | float],
    coefficients: Mapping[str, Coefficients],
    calibration_id: str | None,
    last_minutes: int,
    valid: ArrayLike | None = None,
    cycles: ArrayLike | None = None,
    goals: Mapping[str, float] = COMPATIBILITY_GOALS,
) -> TargetResult:
    """A target run given as minute rows: the last `last_minutes` of each injection (one injection
    unless `cycles` says otherwise) averaged as in `injection_means`, then `evaluate_target`."""
    t = np.asarray(times, dtype=np.float64)
    if t.size == 0:
        raise ValueError(f"no minutes in the target run of {cylinder}")
    cyc = np.zeros(t.size, dtype=int) if cycles is None else np.asarray(cycles)
    means = injection_means(t, [cylinder] * t.size, cyc, values, last_minutes, valid)[cylinder]
    return evaluate_target(
        cylinder,
        from_epoch(float(t.min())),
        from_epoch(float(t.max()) + 60.0),
        means.mean,
        assigned,
        coefficients,
        calibration_id,
        goals,
        u_measured=means.standard_error,
    )


def calibration_drift(
    previous: CalibrationResult,
    current: CalibrationResult,
    reference: Mapping[str, float] = REFERENCE_LEVELS,
    limits: Mapping[str, float] = DRIFT_LIMITS,
) -> dict[str, DriftResult]:
    """Drift between consecutive calibrations, per species fitted in both that has a reference level.

    reference: the measured (raw) level at which both fits are evaluated, species units (by default
    typical ambient levels). exceeded = |f_current(ref) - f_previous(ref)| > limit. Raises
    ValueError for an evaluated species without a limit.
    """
    out: dict[str, DriftResult] = {}
    for sp in sorted(previous.fits.keys() & current.fits.keys() & reference.keys()):
        if sp not in limits:
            raise ValueError(f"{sp}: no drift limit configured")
        ref = float(reference[sp])
        before = float(calibrate(ref, previous.fits[sp]))
        now = float(calibrate(ref, current.fits[sp]))
        drift = now - before
        out[sp] = DriftResult(
            species=sp,
            reference=ref,
            previous=before,
            current=now,
            drift=drift,
            limit=float(limits[sp]),
            exceeded=bool(abs(drift) > limits[sp]),
        )
    return out
