"""`central-receiver reprocess`: a station's period processed again at central, as a new version.

What a run does, in order:

1. Reads the revised cylinder values (central/reprocess/cylinders.py) and every calibration of the
   station from a month before the period to a month after it (the bracketing ones of the period's
   first and last minutes), and refits each with the revised values (calibrations.py). A revised
   value that matches no standard of those calibrations (a mistyped cylinder id) is an error, as is
   a period without minutes: nothing is written then.
2. Takes the period's minutes (`minute_inputs`): rebuilt from the raw archive (L0) where it holds
   the minute's raw rows (central/reprocess/raw.py: the station's grouping, minute_record with the
   station's limits, the operators' K flags excluding the raw samples they cover), otherwise each
   minute's latest stored version, its raw dry means (`source`: "auto" the default, "raw" requires
   the archive, "stored" ignores it); and applies, per analyzer, coefficients interpolated linearly in
   time between the bracketing calibrations to each minute's raw (uncalibrated dry) mean, and the
   fits' covariance interpolated the same way for each minute's `u` (calibrations.py). Flags and
   reason codes are the station's (its automatic QC; recomputed with its limits when rebuilt from
   raw), `uncalibrated` set as the station sets it.
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
from ..archive import raw_readings
from ..config import CentralConfig
from ..store.hourly import floor_hour
from ..store.levels import NewMinuteVersion
from .calibrations import CalibrationTimeline, calibrated_species, calibration_device, refit_calibration
from .cylinders import RevisedValue
from .raw import StationProcessing, minutes_from_rows

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
    """Per species: mean, std, n, raw_mean, cal_mean (the latest version's, or rebuilt from raw)."""
    previous: tuple[str, tuple[str, ...], dict[str, dict[str, Any]]] | None = None
    """The latest stored version's flag, reasons and species when these values were rebuilt from
    raw (None: they are the stored ones)."""
    h2o: float | None = None
    """The minute's water vapour (%), for the water part of its u."""

    def before(self) -> tuple[str, tuple[str, ...], dict[str, dict[str, Any]]]:
        return self.previous if self.previous is not None else (self.flag, self.reasons, self.species)


def stored_minutes(store, station: str, start: datetime, end: datetime) -> list[MinuteInput]:
    """The period's minutes as stored: each minute's latest version (its raw means are the
    station's, whichever version)."""
    return [MinuteInput(m.device, m.time, m.stream, m.seq, m.store, m.flag, tuple(m.reasons), m.calibration_ids,
                        {sp: {"mean": v.mean, "std": v.std, "n": v.n, "raw_mean": v.raw_mean, "cal_mean": v.cal_mean,
                              "u": v.u}
                         for sp, v in m.species.items()}, h2o=m.h2o)
            for m in store.minute_versions(station, start, end, "latest")]


SOURCES = ("auto", "raw", "stored")
MINUTE = timedelta(minutes=1)


def _coverage(chunks) -> list[tuple[datetime, datetime]]:
    """The spans the archived chunks cover, merged where they touch (every store of the station)."""
    out: list[list[datetime]] = []
    for c in sorted(chunks, key=lambda c: c.start):
        if out and c.start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], c.end)
        else:
            out.append([c.start, c.end])
    return [(lo, hi) for lo, hi in out]


@dataclass(frozen=True, slots=True)
class Inputs:
    minutes: list[MinuteInput]
    from_raw: int
    from_stored: int
    raw_only: int
    """Minutes the raw rows make that central never had from the station (no version to follow)."""
    processing: str

    def describe(self) -> str:
        if not self.from_raw:
            return "stored minutes (no raw rows in the archive for the period)" if self.processing else "stored minutes"
        where = "raw archive (L0)" if not self.from_stored else "raw archive (L0) and stored minutes"
        return (f"{where}: {self.from_raw} minute(s) rebuilt from raw rows with {self.processing}, "
                f"{self.from_stored} from stored minutes, {self.raw_only} raw-only minute(s) left out")


def minute_inputs(store, station: str, start: datetime, end: datetime, source: str = "auto",
                  processing: StationProcessing | None = None) -> Inputs:
    """Where a run's minutes come from (module docstring, step 2).

    Stored: each minute's latest version (`stored_minutes`). From raw: per device of the stored
    minutes, `central.archive.raw_readings` gives the station's raw rows; each (minute, stream) is
    rebuilt (central/reprocess/raw.py) and takes the key (`base_seq`, `base_store`) of the stored
    minute of that device, time and stream, so the new version sits after the copy it replaces. A
    minute is rebuilt only when the archived chunks cover the whole of it and it lies in the period
    (a chunk not uploaded yet leaves a minute half there); a stored minute without raw rows keeps
    its stored raw means ("auto"). Raises ValueError for
    `source="raw"` when the archive holds no raw rows of the period, and for an unknown source."""
    if source not in SOURCES:
        raise ValueError(f"source {source!r}: choose one of {', '.join(SOURCES)}")
    stored = stored_minutes(store, station, start, end)
    if source == "stored":
        return Inputs(stored, 0, len(stored), 0, "")
    processing = processing or StationProcessing()
    flags = store.manual_flags(station, start, end)
    by_key = {(m.device, m.time, m.stream): m for m in stored}
    rebuilt: dict[tuple, MinuteInput] = {}
    raw_only = 0
    for device in sorted({m.device for m in stored}):
        covered = _coverage(store.raw_chunk_index(station, start, end, device))
        for rec in minutes_from_rows(raw_readings(store, station, start, end, device), processing, flags):
            if not (start <= rec.time and rec.time + MINUTE <= end
                    and any(lo <= rec.time and rec.time + MINUTE <= hi for lo, hi in covered)):
                continue  # a minute the archive holds only part of (a chunk not uploaded yet, the period's edge)
            base = by_key.get((rec.device, rec.time, rec.stream))
            if base is None:
                raw_only += 1
                continue
            rebuilt[(rec.device, rec.time, rec.stream)] = MinuteInput(
                base.device, base.time, base.stream, base.base_seq, base.base_store, rec.flag, tuple(rec.reasons),
                base.calibration_ids,
                {sp: {"mean": v.raw_mean, "std": v.std, "n": v.n, "raw_mean": v.raw_mean, "cal_mean": None}
                 for sp, v in rec.species.items()},
                previous=(base.flag, base.reasons, base.species), h2o=rec.h2o)
    if source == "raw" and not rebuilt:
        raise ValueError(f"the raw archive holds no raw rows of station {station!r}'s minutes from "
                         f"{start.isoformat()} to {end.isoformat()} (--from-raw)")
    out = [rebuilt.get((m.device, m.time, m.stream), m) for m in stored]
    return Inputs(out, len(rebuilt), len(stored) - len(rebuilt), raw_only, processing.source)


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
    source: str = ""
    """Where the minutes came from (`Inputs.describe`)."""
    minute_shift: dict[str, float] = field(default_factory=dict)
    """Per species, mean of (new - previous) calibrated minute means over the minutes written."""
    hourly_shift: dict[str, float] = field(default_factory=dict)
    """Per species, mean of (new - previous) hourly means over the hours given a new version."""

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "station": self.station, "from": self.start.isoformat(),
                "to": self.end.isoformat(), "processing": self.processing, "calibrations": self.calibrations,
                "minutes": self.minutes, "unchanged": self.unchanged, "uncalibrated": self.uncalibrated,
                "hours": self.hours, "source": self.source, "minute_shift": self.minute_shift, "hourly_shift": self.hourly_shift}

    def text(self) -> str:
        def shifts(d: dict[str, float]) -> str:
            return ", ".join(f"{sp} {v:+.4f}" for sp, v in sorted(d.items())) or "none"

        return (f"reprocess run {self.run_id} of {self.station} {self.start.isoformat()} .. {self.end.isoformat()} "
                f"({self.processing}): minutes from {self.source}; {self.calibrations} calibration(s) refitted; "
                f"{self.minutes} minute(s) "
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
        if a[sp].get("n") != b[sp].get("n"):
            return False
        for key in ("cal_mean", "raw_mean", "u"):
            x, y = a[sp].get(key), b[sp].get(key)
            if (x is None) != (y is None) or (x is not None and abs(x - y) > SAME):
                return False
    return True


def reprocess_period(store, config: CentralConfig, station: str, start: datetime, end: datetime,
                     revised: Sequence[RevisedValue], reason: str, operator: str, now: datetime,
                     source: str = "auto", station_processing: StationProcessing | None = None) -> ReprocessSummary:
    """One run (module docstring). `source`: "auto", "raw" or "stored" (`minute_inputs`);
    `station_processing`: the station's limits for minutes rebuilt from raw (default: the station's
    defaults, central/reprocess/raw.py). Raises ValueError on input that cannot be used (nothing
    written)."""
    if end <= start:
        raise ValueError("--to must be after --from")
    if not reason.strip():
        raise ValueError("a reprocess run needs a reason")
    wanted = {(r.cylinder, r.species): r for r in revised}
    inputs = minute_inputs(store, station, start, end, source, station_processing)
    minutes = inputs.minutes
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
        covariances = line.covariances_at(m.time) if line is not None else {}
        water = station_processing.water.get(m.device) if station_processing is not None else None
        values, missing = calibrated_species(m.species, coefficients, covariances, m.h2o, water)
        reasons = tuple(sorted(set(m.reasons) - {"uncalibrated"} | ({"uncalibrated"} if missing else set())))
        uncalibrated += int(not ids)
        flag_before, reasons_before, species_before = m.before()
        if (_same(values, species_before) and tuple(ids) == tuple(m.calibration_ids) and m.flag == flag_before
                and reasons == tuple(sorted(reasons_before))):
            unchanged += 1
            continue
        for sp, v in values.items():
            old = species_before.get(sp, {}).get("cal_mean")
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
                               uncalibrated, hours, inputs.describe(), {sp: float(np.mean(v)) for sp, v in sorted(shifts.items())},
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
