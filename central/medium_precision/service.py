"""The I/O edge of the medium-precision calibration: minutes read from the store, the fit run, the
model and corrected hours written back, the report and the export built from what is stored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from central.config import CentralConfig
from central.store.medium_precision import MpHourRow, MpModelRow
from ghgnet.timeutil import iso_utc

from .config import MediumPrecisionSite
from .fit import FitError, SensorModel, correct, fit_sensor_model, residual_stats
from .hours import PairedHours, as_datetime, hourly_means, local_hour_mask, period_key, sensor_hours

INVALID_FLAGS = ("N", "K")
EXPORT_COLUMNS = ("hour_utc", "station", "device", "species", "level", "raw_mean", "corrected", "uncertainty",
                  "n_minutes", "reference", "temperature", "humidity", "pressure", "model_id")
LEVEL = "medium_precision"


def site_label(m: MediumPrecisionSite) -> str:
    return f"{m.site}/{m.device}/{m.species}"


def find_site(config: CentralConfig, site: str | None) -> list[MediumPrecisionSite]:
    """The configured sites (all, or those of station or label `site`); a name not configured is a
    ValueError that lists the configured ones."""
    sites = config.medium_precision
    if site is None:
        return list(sites)
    chosen = [m for m in sites if site in (m.site, site_label(m))]
    if not chosen:
        known = ", ".join(site_label(m) for m in sites) or "(none: add [[medium_precision]])"
        raise ValueError(f"no [[medium_precision]] for {site!r}; configured: {known}")
    return chosen


def read_hours(store: Any, m: MediumPrecisionSite, start: datetime, end: datetime) -> PairedHours:
    """The sensor's hours in [start, end) with their environment and reference means, these over
    the minutes the sensor has. An environment source "met-1:humidity" is read from either of:
    the minute diagnostic `humidity` of device met-1's own minutes (a T/RH/P transmitter read as an
    analyzer), or the diagnostic named "met-1:humidity" on any minute of the site (the station's
    `[processing] auxiliary`: an auxiliary device's minute mean carried on the analyzers' minutes);
    one value per minute, the sensor's own minute's first."""
    sensor: list[tuple[float, float]] = []
    env: dict[str, dict[float, float]] = {q: {} for q in m.environment}
    sources = {q: tuple(s.split(":", 1)) for q, s in m.environment.items()}
    reference: list[tuple[float, float]] = []

    def take_reference(rec: Any) -> None:
        sp = rec.species.get(m.species)
        if sp is None or sp.mean is None or rec.flag in INVALID_FLAGS:
            return
        if (m.reference_device is None and rec.device != m.device) or rec.device == m.reference_device:
            reference.append((rec.time.timestamp(), sp.mean))

    for rec in store.minutes(m.site, start, end):
        t = rec.time.timestamp()
        if rec.device == m.device:
            sp = rec.species.get(m.species)
            value = None if sp is None else (sp.raw_mean if sp.raw_mean is not None else sp.mean)
            if value is not None and rec.flag not in INVALID_FLAGS:
                sensor.append((t, value))
        for q, (dev, qty) in sources.items():
            if rec.device == dev and qty in rec.diagnostics:
                env[q][t] = rec.diagnostics[qty]
            elif (carried := rec.diagnostics.get(m.environment[q])) is not None and \
                    (t not in env[q] or rec.device == m.device):
                env[q][t] = carried
        if m.reference == m.site:
            take_reference(rec)
    if m.reference != m.site:
        for rec in store.minutes(m.reference, start, end):
            take_reference(rec)
    # the reference and the air averaged over the sensor's own minutes: an hour the sensor saw in
    # part is compared with the same part of it (CO2 moves a few ppm an hour)
    minutes = {t for t, _ in sensor}
    ref = hourly_means(p for p in reference if p[0] in minutes).as_dict(m.min_minutes_per_hour)
    return sensor_hours(hourly_means(sensor), {q: hourly_means(p for p in v.items() if p[0] in minutes)
                                               for q, v in env.items()},
                        m.min_minutes_per_hour, ref)


def fit_mask(config: CentralConfig, m: MediumPrecisionSite, hours: PairedHours) -> np.ndarray:
    """The hours the fit may use: paired with the reference and, in background mode, well mixed."""
    keep = np.isfinite(hours.reference)
    if m.mode == "background":
        a, b = m.well_mixed_hours or (config.aggregate.afternoon_start_h, config.aggregate.afternoon_end_h)
        keep &= local_hour_mask(hours.hours, config.station(m.site).timezone, a, b)
    return keep


def residual_report(hours: PairedHours, corrected: np.ndarray, keep: np.ndarray, period: str) -> dict[str, Any]:
    """Corrected and uncorrected minus reference over the fit hours: in all and per period."""
    periods: dict[str, list[int]] = {}
    for i in np.flatnonzero(keep):
        periods.setdefault(period_key(int(hours.hours[i]), period), []).append(int(i))
    return {
        "period": period,
        "corrected": residual_stats(corrected[keep], hours.reference[keep]).to_json(),
        "uncorrected": residual_stats(hours.sensor[keep], hours.reference[keep]).to_json(),
        "by_period": {p: {"corrected": residual_stats(corrected[ix], hours.reference[ix]).to_json(),
                          "uncorrected": residual_stats(hours.sensor[ix], hours.reference[ix]).to_json()}
                      for p, ix in sorted(periods.items())},
    }


@dataclass(frozen=True)
class Calibration:
    site: MediumPrecisionSite
    model_id: str
    model: SensorModel
    residuals: dict[str, Any]
    hours: int


def calibrate(config: CentralConfig, store: Any, m: MediumPrecisionSite, start: datetime, end: datetime,
              now: datetime) -> Calibration:
    """Fit the site's model over [start, end), store it and the corrected hours of the window.
    Raises FitError when the data cannot give a fit."""
    hours = read_hours(store, m, start, end)
    keep = fit_mask(config, m, hours)
    if not keep.any():
        raise FitError(f"{site_label(m)}: no hour from {iso_utc(start)} to {iso_utc(end)} pairs with reference "
                       f"{m.reference} ({hours.hours.size} sensor hours)")
    fit_hours = hours.select(keep)
    model = fit_sensor_model(fit_hours.sensor, fit_hours.reference, fit_hours.env, fit_hours.days,
                             tuple(m.terms), m.fit_gain)
    corrected, u = correct(model, hours.sensor, hours.env, hours.days)
    residuals = residual_report(hours, corrected, keep, m.report_period)
    model_id = f"{site_label(m)}@{iso_utc(now)}"
    store.put_mp_model(MpModelRow(model_id, m.site, m.device, m.species, m.reference, m.mode, start, end,
                                  model.to_json(), residuals, now))

    def env_at(q: str, i: int) -> float | None:
        v = hours.env.get(q)
        return None if v is None or not np.isfinite(v[i]) else float(v[i])

    rows = [MpHourRow(m.site, m.device, m.species, as_datetime(int(h)), float(hours.sensor[i]),
                      float(corrected[i]) if np.isfinite(corrected[i]) else None,
                      float(u[i]) if np.isfinite(u[i]) else None, int(hours.n_minutes[i]),
                      float(hours.reference[i]) if np.isfinite(hours.reference[i]) else None,
                      env_at("temperature", i), env_at("humidity", i), env_at("pressure", i), model_id, now)
            for i, h in enumerate(hours.hours)]
    store.replace_mp_hours(m.site, m.device, m.species, start, end, rows)
    return Calibration(m, model_id, model, residuals, len(rows))


def latest_models(store: Any, sites: list[MediumPrecisionSite]) -> list[tuple[MediumPrecisionSite, MpModelRow | None]]:
    out = []
    for m in sites:
        rows = [r for r in store.mp_models(m.site) if r.device == m.device and r.species == m.species]
        out.append((m, rows[-1] if rows else None))
    return out


def export_rows(store: Any, m: MediumPrecisionSite, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """The stored corrected hours of the site, as the export's CSV rows."""
    return [{"hour_utc": iso_utc(r.hour), "station": r.station, "device": r.device, "species": r.species,
             "level": LEVEL, "raw_mean": r.raw_mean, "corrected": r.corrected, "uncertainty": r.uncertainty,
             "n_minutes": r.n_minutes, "reference": r.reference, "temperature": r.temperature,
             "humidity": r.humidity, "pressure": r.pressure, "model_id": r.model_id}
            for r in store.mp_hours(m.site, start, end, m.device) if r.species == m.species]
