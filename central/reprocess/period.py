"""`central-receiver reprocess`: a station's period processed again at central, as a new version.

What a run does, in order:

1. Reads the revised cylinder values (central/reprocess/cylinders.py) and every calibration of the
   station from a month before the period to a month after it (the bracketing ones of the period's
   first and last minutes), and refits each with the revised values (calibrations.py). A revised
   value that matches no standard of those calibrations (a mistyped cylinder id) is an error, as is
   a period without minutes: nothing is written then.
2. Takes the period's minutes (`minute_inputs`: today each minute's latest stored version, its raw
   dry means; later the L0 archive) and applies, per analyzer, coefficients interpolated linearly in
   time between the bracketing calibrations to each minute's raw (uncalibrated dry) mean. Flags and
   reason codes stay the station's (its automatic QC), `uncalibrated` set as the station sets it.
3. Writes the minutes whose values, flag or calibrations differ from their latest version as a new
   version (central/store/levels.py), with the run (who, why, when, the revised values, the
   processing version) in one transaction; the hours they touch are marked dirty.
4. Aggregates those hours again (central/aggregation/worker.py, the operators' manual flags applied
   as for every hour): an hour whose minutes got a new version gets a new hourly version; the
   previous one is kept.
5. Reports minutes written and unchanged, hours, and the mean shift per species of the minutes
   and of the hours against the versions they replace; logged and kept with the run.

A rerun with nothing changed (the same revised values, no new calibration or minute since) makes
no new version: every minute equals its latest version, so none is written and no hour changes;
the run is still recorded (0 minutes) for the audit trail.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib import metadata
from typing import Any

import numpy as np
import structlog

from ..aggregation.worker import aggregate_all
from ..config import CentralConfig
from ..store.hourly import floor_hour
from ..store.levels import NewMinuteVersion
from .calibrations import CalibrationTimeline, calibrated_species, calibration_device, refit_calibration
from .cylinders import RevisedValue

log = structlog.get_logger(component="reprocess")

PROCESSING_METHOD = 1
"""Bumped whenever what a run computes changes (the method, not the data): part of each version's
processing version."""
CALIBRATION_MARGIN = timedelta(days=31)
"""How far before and after the period calibrations are looked for, to bracket its ends."""
SAME = 1e-9
"""Values closer than this (species units) count as unchanged."""


def processing_version() -> str:
    try:
        version = metadata.version("ghgnet")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return f"central-reprocess/{PROCESSING_METHOD} ghgnet {version}"


@dataclass(frozen=True, slots=True)
class MinuteInput:
    """A minute to reprocess: its key, the station copy it comes from, and its raw values."""

    device: str
    time: datetime
    stream: str
    base_seq: int
    base_store: str | None
    flag: str
    reasons: tuple[str, ...]
    calibration_ids: tuple[str, ...]
    species: dict[str, dict[str, Any]]
    """Per species: mean, std, n, raw_mean, cal_mean (the latest version's)."""


def stored_minutes(store, station: str, start: datetime, end: datetime) -> list[MinuteInput]:
    """The period's minutes as stored: each minute's latest version (its raw means are the
    station's, whichever version)."""
    return [MinuteInput(m.device, m.time, m.stream, m.seq, m.store, m.flag, tuple(m.reasons), m.calibration_ids,
                        {sp: {"mean": v.mean, "std": v.std, "n": v.n, "raw_mean": v.raw_mean, "cal_mean": v.cal_mean}
                         for sp, v in m.species.items()})
            for m in store.minute_versions(station, start, end, "latest")]


def minute_inputs(store, station: str, start: datetime, end: datetime) -> list[MinuteInput]:
    """Where a run's minutes come from: the one place to wire the L0 archive in.

    Now: the stored minutes' raw means (`stored_minutes`). With the L0 archive: for each device,
    `central.archive.raw_readings(store, station, start, end, device)` yields the station's raw-row
    dicts; group them by minute and stream as the station does, run each group through
    ghgnet.processing.minute_record.minute_record with the station's limits, and give each result
    the key (`base_seq`, `base_store`) of the stored minute with its device, time and stream
    (`stored_minutes`), so the new version sits after the copy it replaces."""
    return stored_minutes(store, station, start, end)


@dataclass
class ReprocessSummary:
    run_id: int
    station: str
    start: datetime
    end: datetime
    processing: str
    calibrations: int
    minutes: int
    unchanged: int
    uncalibrated: int
    hours: int
    minute_shift: dict[str, float] = field(default_factory=dict)
    """Per species, mean of (new - previous) calibrated minute means over the minutes written."""
    hourly_shift: dict[str, float] = field(default_factory=dict)
    """Per species, mean of (new - previous) hourly means over the hours given a new version."""

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "station": self.station, "from": self.start.isoformat(),
                "to": self.end.isoformat(), "processing": self.processing, "calibrations": self.calibrations,
                "minutes": self.minutes, "unchanged": self.unchanged, "uncalibrated": self.uncalibrated,
                "hours": self.hours, "minute_shift": self.minute_shift, "hourly_shift": self.hourly_shift}

    def text(self) -> str:
        def shifts(d: dict[str, float]) -> str:
            return ", ".join(f"{sp} {v:+.4f}" for sp, v in sorted(d.items())) or "none"

        return (f"reprocess run {self.run_id} of {self.station} {self.start.isoformat()} .. {self.end.isoformat()} "
                f"({self.processing}): {self.calibrations} calibration(s) refitted; {self.minutes} minute(s) "
                f"written as a new version, {self.unchanged} unchanged, {self.uncalibrated} without a calibration; "
                f"{self.hours} hourly value(s) in a new version; mean shift of the minutes: "
                f"{shifts(self.minute_shift)}; of the hours: {shifts(self.hourly_shift)}")


def _timelines(store, station: str, start: datetime, end: datetime, devices: set[str],
               revised: dict[tuple[str, str], RevisedValue]) -> tuple[dict[str, CalibrationTimeline], int]:
    by_device: dict[str, list] = defaultdict(list)
    n = 0
    for cal in store.calibrations(station, start - CALIBRATION_MARGIN, end + CALIBRATION_MARGIN):
        device = calibration_device(cal.id, devices)
        if device is None or not cal.fits:
            log.warning("calibration_skipped", station=station, calibration=cal.id,
                        why="no fits" if device is not None else "its analyzer cannot be told from its id")
            continue
        by_device[device].append(refit_calibration(cal, revised))
        n += 1
    return {d: CalibrationTimeline(sorted(cals, key=lambda c: c.time)) for d, cals in by_device.items()}, n


def _same(a: dict[str, dict], b: dict[str, dict]) -> bool:
    if a.keys() != b.keys():
        return False
    for sp in a:
        x, y = a[sp].get("cal_mean"), b[sp].get("cal_mean")
        if (x is None) != (y is None) or (x is not None and abs(x - y) > SAME):
            return False
    return True


def reprocess_period(store, config: CentralConfig, station: str, start: datetime, end: datetime,
                     revised: Sequence[RevisedValue], reason: str, operator: str, now: datetime) -> ReprocessSummary:
    """One run (module docstring). Raises ValueError on input that cannot be used (nothing written)."""
    if end <= start:
        raise ValueError("--to must be after --from")
    if not reason.strip():
        raise ValueError("a reprocess run needs a reason")
    wanted = {(r.cylinder, r.species): r for r in revised}
    minutes = minute_inputs(store, station, start, end)
    if not minutes:
        raise ValueError(f"station {station!r} has no minutes from {start.isoformat()} to {end.isoformat()}")
    timelines, n_cals = _timelines(store, station, start, end, {m.device for m in minutes}, wanted)
    used = {(s.cylinder, sp) for line in timelines.values() for c in line.calibrations for s in c.standards
            for sp in s.assigned}
    unused = sorted(set(wanted) - used)
    if unused:  # a typo in a cylinder's id would otherwise change nothing, silently
        raise ValueError("revised value(s) for " + ", ".join(f"{c} {sp}" for c, sp in unused)
                         + " match no standard of the station's calibrations around the period "
                         + f"({', '.join(sorted({c for c, _ in used})) or 'none'})")
    versions: list[NewMinuteVersion] = []
    shifts: dict[str, list[float]] = defaultdict(list)
    unchanged = uncalibrated = 0
    for m in minutes:
        line = timelines.get(m.device)
        coefficients, ids = line.coefficients_at(m.time) if line is not None else ({}, ())
        values, missing = calibrated_species(m.species, coefficients)
        reasons = tuple(sorted(set(m.reasons) - {"uncalibrated"} | ({"uncalibrated"} if missing else set())))
        uncalibrated += int(not ids)
        if _same(values, m.species) and tuple(ids) == tuple(m.calibration_ids):
            unchanged += 1
            continue
        for sp, v in values.items():
            old = m.species.get(sp, {}).get("cal_mean")
            if v["cal_mean"] is not None and old is not None:
                shifts[sp].append(v["cal_mean"] - old)
        versions.append(NewMinuteVersion(m.device, m.time, m.stream, m.base_seq, m.base_store, m.flag, reasons,
                                         ids, values))
    processing = processing_version()
    run_id = store.add_reprocess_run(station, start, end, reason, operator, processing,
                                     [r.as_dict() for r in revised], now, versions)
    hours = 0
    hourly_shift: dict[str, float] = {}
    if versions:
        aggregate_all(store, config, lambda: now)
        hours, hourly_shift = _hourly_shift(store, station, floor_hour(min(v.time for v in versions)),
                                            max(v.time for v in versions) + timedelta(hours=1), run_id)
    summary = ReprocessSummary(run_id, station, start, end, processing, n_cals, len(versions), unchanged,
                               uncalibrated, hours, {sp: float(np.mean(v)) for sp, v in sorted(shifts.items())},
                               hourly_shift)
    store.finish_reprocess_run(run_id, hours, summary.as_dict())
    log.info("reprocessed", **summary.as_dict())
    return summary


def _hourly_shift(store, station: str, start: datetime, end: datetime, run_id: int) -> tuple[int, dict[str, float]]:
    """Hourly rows the run gave a new version, and per species the mean of (new - previous version)."""
    series: dict[tuple[str, str, datetime], list] = defaultdict(list)
    for r in store.hourly_versions(station, start, end, "all"):
        series[(r.stream, r.species, r.hour)].append(r)
    n = 0
    shifts: dict[str, list[float]] = defaultdict(list)
    for (_stream, sp, _hour), rows in series.items():
        new = [r for r in rows if r.latest and r.run_id == run_id]
        if not new:
            continue
        n += 1
        before = [r for r in rows if r.version < new[0].version]
        if before and new[0].mean is not None and before[-1].mean is not None:
            shifts[sp].append(new[0].mean - before[-1].mean)
    return n, {sp: float(np.mean(v)) for sp, v in sorted(shifts.items())}
