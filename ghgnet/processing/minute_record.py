"""One analyzer, one minute: samples in, a flagged `MinuteRecord` out.

Exclusion, per sample (a sample excluded for several conditions lists each of them):
- `flush`: the engine tagged the sample as flushing after a valve switch: the first minutes after
  a switch are excluded from means (UUCON, uataq/data-pipeline docs; NOAA's Aeris code; TUM ACROPOLIS).
- `status`: the instrument did not call itself healthy (`status_ok` False).
- `cavity_pressure` / `cavity_temp`: the diagnostic lies outside its window (Picarro holds about
  140 Torr / 45 C). A NaN diagnostic is no evidence either way and excludes nothing.
- `out_of_range`: for a species, its dry value outside `ranges[species]` excludes that species'
  value only (the other species of the sample stay valid); for any other quantity named in
  `ranges` (h2o, flow, ...) the whole sample is excluded, because every dry value depends on it.
A NaN species value is missing, not excluded: it only lowers n.

Judgement, per minute (the flag is one ICOS letter for the whole record):
- `no_data`: no samples at all, or no species column: flag N.
- `too_few_samples`: a species has fewer than `min_samples` valid values: flag N.
- `std_too_high`: a species' std exceeds `max_std[species]`: flag N.
Otherwise the flag is U, even when samples were excluded: their reasons are kept so that the
record says what happened to it. `reasons` lists each code once, in the order of `REASONS`.

Statistics: mean and sample standard deviation (ddof=1, None for n < 2) of the valid dry values.
`raw_mean` is that mean, uncalibrated; `cal_mean` stays None and `mean` = `raw_mean` until
`apply_calibration` runs. `h2o` is the mean H2O (%) of the samples not excluded as a whole.
`diagnostics` holds the mean over ALL samples of every other quantity (cavity_pressure,
cavity_temp, ...), so an excursion that excluded data stays visible, plus `h2o_low_fraction`, the
share of those H2O values below 0.5 % where the water correction is biased (Reum et al. 2019).

Dry values: the analyzer's `<species>_dry` where it is a number, otherwise the wet value corrected
with the configured water coefficients (`water.dry_from_wet`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ghgnet import species
from ghgnet.processing.calibration import CalibrationFit, Coefficients, calibrate
from ghgnet.processing.uncertainty import WATER_RELATIVE_U, minute_parts
from ghgnet.processing.water import (
    G2401_FACTORY,
    WaterCoefficients,
    as_water_coefficients,
    dry_from_wet,
    in_low_h2o_bias_domain,
)
from ghgnet.records import FLAG_INVALID, FLAG_VALID, REASONS, MinuteRecord, SpeciesMinute
from ghgnet.timeutil import from_epoch

SPECIES = species.calibrated()

Window = tuple[float, float]
_REASON_ORDER = {code: i for i, code in enumerate(REASONS)}
_NOT_DIAGNOSTIC = frozenset(SPECIES) | {f"{sp}_dry" for sp in SPECIES} | {"h2o"}


@dataclass(frozen=True, slots=True)
class MinuteLimits:
    """The limits a minute is judged by: the fields of `ProcessingConfig` plus water coefficients.

    min_samples: fewer valid values of a species -> too_few_samples.
    max_std: species -> largest acceptable std (species units); species not named are not checked.
    ranges: quantity -> (low, high) plausible window, bounds included as valid.
    cavity_pressure_torr, cavity_temp_c: windows (Torr, degC), bounds included; None: no check.
    water: species -> coefficients, used only for species whose analyzer gives no dry value.
    """

    min_samples: int = 10
    max_std: Mapping[str, float] = field(default_factory=dict)
    ranges: Mapping[str, Window] = field(default_factory=dict)
    cavity_pressure_torr: Window | None = None
    cavity_temp_c: Window | None = None
    water: Mapping[str, WaterCoefficients] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.min_samples < 1:
            raise ValueError(f"min_samples must be >= 1, got {self.min_samples}")

    @classmethod
    def from_config(cls, processing: Any, water: Mapping[str, Any] | None = None) -> MinuteLimits:
        """From a `station_agent.config.ProcessingConfig` (or anything with its fields) and the
        analyzer's water coefficients (species -> WaterCoefficients, (a, b) or {"a", "b"})."""
        return cls(
            min_samples=int(processing.min_samples),
            max_std=dict(processing.max_std),
            ranges={k: (float(lo), float(hi)) for k, (lo, hi) in processing.ranges.items()},
            cavity_pressure_torr=tuple(processing.cavity_pressure_torr),
            cavity_temp_c=tuple(processing.cavity_temp_c),
            water={sp: as_water_coefficients(c) for sp, c in (water or {}).items()},
        )


def species_in(names: Iterable[str]) -> list[str]:
    """The species (in SPECIES order) that a set of quantity names carries, wet or dry."""
    present = set(names)
    return [sp for sp in SPECIES if sp in present or f"{sp}_dry" in present]


def check_quantities(names: Iterable[str], limits: MinuteLimits) -> None:
    """Raise ValueError if some species could never get a dry value from these quantity names:
    wet only and no water coefficients, or no h2o to correct with. The engine can call this once
    per analyzer at start-up instead of meeting the error at the first minute."""
    present = set(names)
    problems = []
    for sp in species_in(present):
        if f"{sp}_dry" in present:
            continue
        if sp not in limits.water:
            problems.append(f"{sp}: the analyzer gives no {sp}_dry and no water coefficients are configured")
        elif "h2o" not in present:
            problems.append(f"{sp}: only wet values and no h2o to correct them with")
    if problems:
        raise ValueError("; ".join(problems))


def _outside(values: NDArray[np.float64], window: Window) -> NDArray[np.bool_]:
    """True where a value lies outside [low, high]; NaN is never outside."""
    lo, hi = window
    return (values < lo) | (values > hi)


def _dry_values(sp: str, values: Mapping[str, NDArray[np.float64]], limits: MinuteLimits) -> NDArray[np.float64]:
    """Dry values of one species. Wet-only without coefficients is a configuration error (raised);
    wet-only without an h2o column this minute is missing data (NaN), like a NaN h2o sample."""
    dry = values.get(f"{sp}_dry")
    wet = values.get(sp)
    if wet is None or sp not in limits.water:
        if dry is None:
            check_quantities(values, limits)
        return dry  # type: ignore[return-value]
    h2o = values.get("h2o")
    computed = np.full(wet.shape, np.nan) if h2o is None else dry_from_wet(wet, h2o, limits.water[sp])
    return computed if dry is None else np.where(np.isfinite(dry), dry, computed)


def _ordered(reasons: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(reasons), key=_REASON_ORDER.__getitem__))


def minute_record(
    minute: datetime | float,
    device: str,
    stream: str,
    times: ArrayLike,
    values: Mapping[str, ArrayLike],
    status_ok: ArrayLike,
    flushing: ArrayLike,
    limits: MinuteLimits | Any,
    water: Mapping[str, Any] | None = None,
) -> MinuteRecord:
    """Close one minute of one analyzer (see the module docstring for every rule).

    minute: start of the minute (UTC datetime or epoch seconds); the record is stamped there.
    times: sample times, epoch seconds, all within [minute, minute + 60).
    values: quantity name -> float64 array, one value per sample, NaN = missing (names and units
    as in drivers.reading: co2 ppm, ch4/co/n2o ppb, h2o %, cavity_pressure Torr, ...).
    status_ok, flushing: bool per sample. stream: what was sampled (`inlet:<name>`, `cal:<id>`, ...).
    limits: a MinuteLimits, or a `ProcessingConfig` (anything with its fields), converted here.
    water: species -> water coefficients ((a, b), WaterCoefficients, ...), e.g. the analyzer's
    `water_correction`; when given it replaces `limits.water`.
    Raises ValueError for inconsistent array lengths, samples outside the minute, or a species that
    the analyzer gives wet only while no water coefficients are configured for it (a configuration
    error; `check_quantities` finds it at start-up). A wet-only species in a minute without h2o
    values has no dry values: it ends as too_few_samples, not as an error.
    """
    if not isinstance(limits, MinuteLimits):
        limits = MinuteLimits.from_config(limits, water)
    elif water is not None:
        limits = replace(limits, water={sp: as_water_coefficients(c) for sp, c in water.items()})
    start = minute if isinstance(minute, datetime) else from_epoch(float(minute))
    t0 = start.timestamp()
    t = np.asarray(times, dtype=np.float64)
    n_total = int(t.size)
    arrays = {name: np.asarray(v, dtype=np.float64) for name, v in values.items()}
    ok_status = np.asarray(status_ok, dtype=bool)
    flush = np.asarray(flushing, dtype=bool)
    for name, arr in (("status_ok", ok_status), ("flushing", flush), *arrays.items()):
        if arr.shape != t.shape:
            raise ValueError(f"{name} has {arr.size} values for {n_total} sample times")
    if n_total and (t.min() < t0 or t.max() >= t0 + 60.0):
        raise ValueError(f"sample times outside the minute starting {start.isoformat()}")
    species = species_in(arrays)

    if n_total == 0 or not species:
        return MinuteRecord(
            time=start,
            device=device,
            stream=stream,
            species={sp: SpeciesMinute(mean=None, std=None, n=0, raw_mean=None) for sp in species},
            h2o=None,
            flag=FLAG_INVALID,
            reasons=("no_data",),
            n_total=n_total,
            diagnostics=_sample_means(arrays),  # a T/RH/P sensor's minute: no species, its means still count
        )

    reasons: list[str] = []
    sample_ok = np.ones(n_total, dtype=bool)
    conditions: list[tuple[str, NDArray[np.bool_]]] = [("flush", flush), ("status", ~ok_status)]
    for code, name, window in (
        ("cavity_pressure", "cavity_pressure", limits.cavity_pressure_torr),
        ("cavity_temp", "cavity_temp", limits.cavity_temp_c),
    ):
        if window is not None and name in arrays:
            conditions.append((code, _outside(arrays[name], window)))
    for name, window in limits.ranges.items():
        if name not in SPECIES and name in arrays:
            conditions.append(("out_of_range", _outside(arrays[name], window)))
    for code, excluded in conditions:
        if excluded.any():
            reasons.append(code)
            sample_ok &= ~excluded

    result: dict[str, SpeciesMinute] = {}
    invalid = False
    for sp in species:
        dry = _dry_values(sp, arrays, limits)
        valid = sample_ok & np.isfinite(dry)
        if sp in limits.ranges:
            out = _outside(dry, limits.ranges[sp])
            if out.any():
                reasons.append("out_of_range")
                valid &= ~out
        n = int(np.count_nonzero(valid))
        if n == 0:
            result[sp] = SpeciesMinute(mean=None, std=None, n=0, raw_mean=None)
        else:
            v = dry[valid]
            mean = float(v.mean())
            std = float(np.sqrt(np.sum((v - mean) ** 2) / (n - 1))) if n > 1 else None
            result[sp] = SpeciesMinute(mean=mean, std=std, n=n, raw_mean=mean)
            if std is not None and sp in limits.max_std and std > limits.max_std[sp]:
                reasons.append("std_too_high")
                invalid = True
        if n < limits.min_samples:
            reasons.append("too_few_samples")
            invalid = True

    h2o_mean: float | None = None
    diagnostics: dict[str, float] = {}
    if "h2o" in arrays:
        h = arrays["h2o"][sample_ok]
        h = h[np.isfinite(h)]
        if h.size:
            h2o_mean = float(h.mean())
            diagnostics["h2o_low_fraction"] = float(np.count_nonzero(in_low_h2o_bias_domain(h)) / h.size)
    diagnostics.update(_sample_means(arrays))

    return MinuteRecord(
        time=start,
        device=device,
        stream=stream,
        species=result,
        h2o=h2o_mean,
        flag=FLAG_INVALID if invalid else FLAG_VALID,
        reasons=_ordered(reasons),
        n_total=n_total,
        diagnostics=diagnostics,
    )


def _sample_means(arrays: Mapping[str, NDArray[np.float64]]) -> dict[str, float]:
    """The mean over all finite samples of every quantity that is not a species nor h2o."""
    out: dict[str, float] = {}
    for name, arr in arrays.items():
        if name in _NOT_DIAGNOSTIC:
            continue
        finite = arr[np.isfinite(arr)]
        if finite.size:
            out[name] = float(finite.mean())
    return out


def apply_calibration(
    record: MinuteRecord,
    coefficients_by_species: Mapping[str, Coefficients] | None,
    calibration_id: str | None,
    covariances: Mapping[str, ArrayLike | None] | None = None,
    water: Mapping[str, Any] | None = None,
    water_relative_u: float = WATER_RELATIVE_U,
) -> MinuteRecord:
    """A new record with each species' `cal_mean` = f(raw_mean), `mean` = `cal_mean` and `u` its
    standard uncertainty.

    Always starts from `raw_mean`, so re-applying (reprocessing with interpolated coefficients)
    replaces an earlier calibration rather than stacking on it. `coefficients_by_species` maps a
    species to a `CalibrationFit` or coefficients lowest order first; None or {} means no valid
    calibration.

    Uncertainty (ghgnet.processing.uncertainty): the fit's covariance at raw_mean, the minute's
    repeatability std/sqrt(n) and the water correction's part, in quadrature. The covariance is the
    CalibrationFit's own, or `covariances[species]` for bare coefficients (e.g. interpolated ones);
    without one, u stays None (unknown, never understated). `water`: species -> the water
    coefficients the dry values were made with (default: the G2401 factory values, a fair measure
    of the correction's size for any analyzer); `water_relative_u`: the correction's relative
    standard uncertainty. A record without h2o (a dried sample) has no water part.

    Uncalibrated: a species that has data (raw_mean not None) but no coefficients keeps
    cal_mean None and mean = raw_mean, and the record gets the reason `uncalibrated`. The flag is
    NOT changed: the raw value is a valid measurement that a later calibration (reprocessing) can
    still make usable, and ICOS near-real-time processing keeps such data with its flag and says
    why in the reason; consumers that need calibrated data select on cal_mean / the reason.
    `uncalibrated` is removed when every species with data is calibrated. `calibration_id` is kept
    only when at least one species was calibrated.
    """
    coefficients = coefficients_by_species or {}
    water_coefficients = {sp: as_water_coefficients(c) for sp, c in (water or G2401_FACTORY).items()}
    species: dict[str, SpeciesMinute] = {}
    missing = False
    calibrated_any = False
    for sp, m in record.species.items():
        if m.raw_mean is None:
            species[sp] = replace(m, mean=None, cal_mean=None, u=None)
        elif sp in coefficients:
            coef = coefficients[sp]
            cal = float(calibrate(m.raw_mean, coef))
            if isinstance(coef, CalibrationFit):
                cov = coef.covariance
            else:
                cov = (covariances or {}).get(sp)
            parts = minute_parts(m.raw_mean, m.std, m.n, cov, record.h2o, water_coefficients.get(sp),
                                 water_relative_u)
            species[sp] = replace(m, mean=cal, cal_mean=cal, u=parts.combined)
            calibrated_any = True
        else:
            species[sp] = replace(m, mean=m.raw_mean, cal_mean=None, u=None)
            missing = True
    reasons = set(record.reasons) - {"uncalibrated"}
    if missing:
        reasons.add("uncalibrated")
    return replace(
        record,
        species=species,
        reasons=_ordered(reasons),
        calibration_id=calibration_id if calibrated_any else None,
    )
