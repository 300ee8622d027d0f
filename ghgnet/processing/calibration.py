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
from typing import Union

import numpy as np
from numpy.polynomial import Polynomial
from numpy.typing import ArrayLike, NDArray

from ghgnet import species
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
    """

    cylinder: str
    mean: dict[str, float]
    std_between_cycles: dict[str, float | None]
    n_cycles: dict[str, int]
    n_minutes: dict[str, int]


@dataclass(frozen=True, slots=True)
class TargetSpecies:
    """One species of a target run: measured (raw) mean, calibrated mean, assigned value,
    bias = calibrated - assigned, the goal and whether |bias| <= goal. Species units."""

    measured: float
    calibrated: float
    assigned: float
    scale: str
    bias: float
    goal: float
    within_goal: bool


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


def fit_species(
    measured: ArrayLike,
    assigned: ArrayLike,
    degree: int = 1,
    species: str = "",
    cylinders: Sequence[str] | None = None,
) -> CalibrationFit:
    """Ordinary least-squares fit of assigned = f(measured), polynomial of `degree` 1 or 2.

    A linear fit needs >= 2 standards, a quadratic >= 3 (with 3 it passes exactly through them).
    Raises ValueError for NaN inputs, too few standards, or degenerate values (measured values not
    distinct enough to determine the polynomial, or all assigned values equal).
    The fit runs on a centred, scaled abscissa (numpy Polynomial.fit) for conditioning and is then
    converted to plain coefficients in measured units.
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
    coef = Polynomial.fit(x, y, degree).convert().coef
    coefficients = np.zeros(need)
    coefficients[: coef.size] = coef
    residuals = calibrate(x, coefficients) - y
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
) -> CalibrationResult:
    """Fit every species of a calibration run.

    measured: cylinder -> species -> measured mean (e.g. `InjectionMeans.mean`).
    assigned: cylinder -> species -> assigned value (AssignedValue, or a bare number without scale).
    degree: one degree for all species, or per species (missing species: linear).
    species: which species to fit; by default every species that has both a measured and an
    assigned value for at least one standard. For each species, the standards used are those with
    both values. Raises ValueError (see `fit_species`) when a species cannot be fitted, and when a
    measured cylinder has no assigned values at all (a configuration error worth stopping for).
    """
    unknown = [c for c in measured if c not in assigned]
    if unknown:
        raise ValueError(f"no assigned values for measured cylinder(s) {', '.join(unknown)}")
    cylinders = list(measured)
    if species is None:
        species = sorted({sp for c in cylinders for sp in measured[c] if sp in assigned[c]})
    if not species:
        raise ValueError("no species with both measured and assigned values: nothing to calibrate")
    fits: dict[str, CalibrationFit] = {}
    for sp in species:
        used = [c for c in cylinders if sp in measured[c] and sp in assigned[c]]
        deg = degree if isinstance(degree, int) else int(degree.get(sp, 1))
        fits[sp] = fit_species(
            [measured[c][sp] for c in used],
            [_assigned(assigned[c][sp]).value for c in used],
            degree=deg,
            species=sp,
            cylinders=used,
        )
    standards = tuple(
        StandardUsed(
            cylinder=c,
            measured={sp: float(v) for sp, v in measured[c].items() if sp in fits},
            assigned={sp: _assigned(v) for sp, v in assigned[c].items() if sp in fits},
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
                    n_minutes[sp] += int(v.size)
        means: dict[str, float] = {}
        stds: dict[str, float | None] = {}
        for sp, cm in cycle_means.items():
            means[sp] = float(np.mean(cm)) if cm else float("nan")
            stds[sp] = float(np.std(cm, ddof=1)) if len(cm) > 1 else None
        result[str(c)] = InjectionMeans(
            cylinder=str(c),
            mean=means,
            std_between_cycles=stds,
            n_cycles={sp: len(cm) for sp, cm in cycle_means.items()},
            n_minutes=n_minutes,
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
    """`injection_means` then `fit_calibration`, for a whole run given as minute rows (see there).
    The window runs from the first minute's start to the last minute's end (start + 60 s)."""
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


def evaluate_target(
    cylinder: str,
    start: datetime,
    end: datetime,
    measured: Mapping[str, float],
    assigned: Mapping[str, AssignedValue | float],
    coefficients: Mapping[str, Coefficients],
    calibration_id: str | None,
    goals: Mapping[str, float] = COMPATIBILITY_GOALS,
) -> TargetResult:
    """Check a target run: per species with a measured value, an assigned value and coefficients,
    calibrated = f(measured), bias = calibrated - assigned, within_goal = |bias| <= goal.

    measured: raw (uncalibrated) means of the run, species units. Species lacking an assigned value
    or coefficients are left out (nothing to compare). Raises ValueError for a NaN measured mean and
    for a species with no goal.
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
        cal = float(calibrate(raw, coefficients[sp]))
        bias = cal - av.value
        species[sp] = TargetSpecies(
            measured=float(raw),
            calibrated=cal,
            assigned=av.value,
            scale=av.scale,
            bias=bias,
            goal=float(goals[sp]),
            within_goal=bool(abs(bias) <= goals[sp]),
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
