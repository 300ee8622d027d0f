"""Calibrations refitted with revised cylinder values, and the coefficients at each minute: pure.

Each stored calibration (central/store: its standards' measured means and assigned values, and the
fit the station made) is fitted again with ghgnet.processing.calibration.fit_calibration, the same
code the station ran, the assigned values replaced by the revised ones where a (cylinder, species)
is revised; the degree per species stays the station's. A minute between two calibrations of its
analyzer gets coefficients interpolated linearly in time between them (anchored at each
calibration's middle, `interpolated_coefficients`), the station's own rule for `recalibrate`
(station_agent/storage/calibration_results.py); before the first or after the last calibration
known, the nearest one alone; with none, it stays uncalibrated.

Uncertainty: the fits' covariance is interpolated the same way, (1-w) C_before + w C_after with the
coefficients' weight w (the station's `reprocessed_coefficients`: the two fits share their
standards, so their errors are taken as fully correlated rather than averaging down), and each
minute's `u` is ghgnet.processing.uncertainty.minute_parts of it, the minute's repeatability and
its water correction, as ghgnet.processing.minute_record.apply_calibration computes it; a fit
without covariance (two standards, no assigned uncertainty) leaves u None (unknown).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from ghgnet.processing.calibration import (
    AssignedValue,
    CalibrationResult,
    calibrate,
    fit_calibration,
    interpolated_coefficients,
)
from ghgnet.processing.uncertainty import WATER_RELATIVE_U, minute_parts
from ghgnet.processing.water import G2401_FACTORY, as_water_coefficients

from ..store.base import StoredCalibration
from .cylinders import RevisedValue


def calibration_device(calibration_id: str, devices: Iterable[str]) -> str | None:
    """The analyzer a calibration belongs to: the station names a calibration `cal-<device>-<time>`
    (station_agent/storage/calibration_results.py), so the longest device named after `cal-`; a
    station with one analyzer owns all its calibrations. None when it cannot be told."""
    devices = sorted(set(devices), key=len, reverse=True)
    for d in devices:
        if calibration_id.startswith(f"cal-{d}-"):
            return d
    return devices[0] if len(devices) == 1 else None


def refit_calibration(cal: StoredCalibration, revised: Mapping[tuple[str, str], RevisedValue]) -> CalibrationResult:
    """`cal` fitted again from its standards' measured means with the revised assigned values
    (module docstring). Raises ValueError naming the calibration when it cannot be fitted."""
    measured: dict[str, dict[str, float]] = {}
    assigned: dict[str, dict[str, AssignedValue]] = {}
    for s in cal.standards:
        cyl = s["cylinder"]
        measured[cyl] = {sp: float(v) for sp, v in (s.get("measured") or {}).items() if v is not None}
        scales = s.get("scale") or {}
        values = {}
        for sp, v in (s.get("assigned") or {}).items():
            r = revised.get((cyl, sp))
            values[sp] = (AssignedValue(r.value, r.scale or scales.get(sp, ""), r.uncertainty) if r is not None
                          else AssignedValue(float(v), scales.get(sp, "")))
        assigned[cyl] = values
    species = sorted(cal.fits)
    degree = {sp: max(1, len(f.coefficients) - 1) for sp, f in cal.fits.items()}
    try:
        return fit_calibration(cal.id, cal.time_start, cal.time_end, measured, assigned, degree, species)
    except ValueError as exc:
        raise ValueError(f"calibration {cal.id} ({cal.time_start.isoformat()}): {exc}") from None


@dataclass(frozen=True, slots=True)
class CalibrationTimeline:
    """One analyzer's refitted calibrations in time order."""

    calibrations: Sequence[CalibrationResult]

    def bracketing(self, t: datetime) -> tuple[CalibrationResult | None, CalibrationResult | None]:
        times = [c.time for c in self.calibrations]
        i = bisect.bisect_right(times, t)
        return (self.calibrations[i - 1] if i > 0 else None), (self.calibrations[i] if i < len(times) else None)

    def coefficients_at(self, t: datetime) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
        """Coefficients per species at `t` and the ids of the calibrations they come from."""
        before, after = self.bracketing(t)
        if before is not None and after is not None:
            return interpolated_coefficients(t, before, after), (before.id, after.id)
        one = before or after
        if one is None:
            return {}, ()
        return {sp: np.asarray(c, dtype=float) for sp, c in one.coefficients().items()}, (one.id,)

    def covariances_at(self, t: datetime) -> dict[str, np.ndarray | None]:
        """The coefficients' covariance per species at `t`, interpolated linearly in time as the
        coefficients are (module docstring); None for a species whose fit(s) have none."""
        before, after = self.bracketing(t)
        if before is None or after is None:
            one = before or after
            if one is None:
                return {}
            return {sp: None if f.covariance is None else np.asarray(f.covariance, dtype=float)
                    for sp, f in one.fits.items()}
        tb, ta = before.time.timestamp(), after.time.timestamp()
        w = 0.0 if ta == tb else (t.timestamp() - tb) / (ta - tb)
        out: dict[str, np.ndarray | None] = {}
        for sp in before.fits.keys() & after.fits.keys():
            cb, ca = before.fits[sp].covariance, after.fits[sp].covariance
            if cb is None or ca is None:
                out[sp] = None
                continue
            cb, ca = np.asarray(cb, dtype=float), np.asarray(ca, dtype=float)
            k = max(len(cb), len(ca))
            out[sp] = ((1.0 - w) * np.pad(cb, (0, k - len(cb))) + w * np.pad(ca, (0, k - len(ca))))
        return out


def calibrated_species(species: Mapping[str, Mapping[str, float | int | None]],
                       coefficients: Mapping[str, np.ndarray],
                       covariances: Mapping[str, np.ndarray | None] | None = None,
                       h2o: float | None = None,
                       water: Mapping[str, object] | None = None) -> tuple[dict[str, dict], bool]:
    """A minute's species values (mean, std, n, raw_mean, cal_mean, u) with cal_mean = f(raw_mean)
    and u from the covariance, repeatability and water parts, as
    ghgnet.processing.minute_record.apply_calibration does it (`water`: the analyzer's water
    coefficients, default the G2401 factory ones as there); and whether a species with data stayed
    uncalibrated."""
    out: dict[str, dict] = {}
    missing = False
    covariances = covariances or {}
    water_coefficients = {s: as_water_coefficients(c) for s, c in (water or G2401_FACTORY).items()}
    for sp, v in species.items():
        raw = v.get("raw_mean")
        if raw is None:
            out[sp] = {"mean": None, "std": v.get("std"), "n": v.get("n"), "raw_mean": None, "cal_mean": None}
        elif sp in coefficients:
            cal = float(calibrate(raw, coefficients[sp]))
            cov = covariances.get(sp)
            u = None
            if cov is not None and v.get("n"):
                u = minute_parts(float(raw), v.get("std"), int(v["n"]), cov, h2o, water_coefficients.get(sp),
                                 WATER_RELATIVE_U).combined
            out[sp] = {"mean": cal, "std": v.get("std"), "n": v.get("n"), "raw_mean": raw, "cal_mean": cal, "u": u}
        else:
            out[sp] = {"mean": raw, "std": v.get("std"), "n": v.get("n"), "raw_mean": raw, "cal_mean": None}
            missing = True
    return out, missing
