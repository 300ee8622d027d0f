"""A scale revision triggers reprocessing: central finds a cylinder whose assigned (value, scale)
changed between a station's calibrations, records a pending reprocess, and runs it on demand.

Detection (`detect_revisions`, a pass over every station's calibrations in the store, run by
`central-receiver reprocess --pending`): per station, the calibrations in time order (one copy per
calibration id, whichever store holds it) and per (cylinder, species) of their standards the
assigned value and its scale (canonical name, ghgnet.processing.scales.resolve: "" is the current
scale). A change from one calibration to the next (value by more than `SAME_VALUE`, or scale)
records a pending revision (central/store/revisions.py): old and new value and scale, the new value
converted to the species' current scale (`scales.to_current`: the published X2007 -> X2019 for CO2;
an older scale without a checked conversion leaves it None with a note, and the run is refused), and
the affected period [first calibration on the old value, first calibration on the new one) by
their start times. A revision already recorded (same station, cylinder, species and period end)
is not recorded twice; each new one is logged as a warning (`scale_revision_pending`).

Running (`run_pending`): each pending revision goes through `reprocess_period` over its period with
the revised value on the current scale as the cylinder's value (the calibrations bracketing the
period are refitted with it too; the first calibration on the new value already carries it).
A run clears the revision (run id, time); one that fails (no minutes in the period, a value that
cannot be converted) stays pending with the reason as its note.

A value the station changed back and forth makes one revision per change.

An operator records a revision the calibrations do not show (a cylinder re-certified after the
fact) with `record_revisions` (`central-receiver reprocess --record --station --from --to
--cylinders FILE`): each revised value becomes a pending revision of that period, its old value and
scale the last the station's calibrations in the period used, run like the detected ones.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from ghgnet.processing import scales

from ..config import CentralConfig
from ..store.base import StoredCalibration
from ..store.revisions import ScaleRevision
from .cylinders import RevisedValue
from .period import reprocess_period

log = structlog.get_logger(component="reprocess")

SAME_VALUE = 1e-6
"""Assigned values closer than this (species units) are the same value."""
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
END = datetime(2200, 1, 1, tzinfo=UTC)


def _canonical(species: str, scale: str) -> str:
    try:
        return scales.resolve(species, scale or "")
    except ValueError:
        return scale


def find_revisions(station: str, calibrations: Iterable[StoredCalibration], now: datetime) -> list[ScaleRevision]:
    """The (value, scale) changes of `station`'s calibrations (module docstring): pure."""
    seen: set[str] = set()
    first_of: dict[tuple[str, str], tuple[float, str, datetime]] = {}
    out: list[ScaleRevision] = []
    for cal in sorted(calibrations, key=lambda c: (c.time_start, c.id)):
        if cal.id in seen:
            continue
        seen.add(cal.id)
        for s in cal.standards:
            cyl = s.get("cylinder")
            for sp, v in (s.get("assigned") or {}).items():
                if cyl is None or v is None:
                    continue
                value, scale = float(v), _canonical(sp, (s.get("scale") or {}).get(sp, ""))
                prev = first_of.get((cyl, sp))
                if prev is not None and abs(prev[0] - value) <= SAME_VALUE and prev[1] == scale:
                    continue
                first_of[(cyl, sp)] = (value, scale, cal.time_start)
                if prev is None:
                    continue
                note = None
                try:
                    revised, _u, revised_scale = scales.to_current(sp, value, scale)
                except ValueError as exc:
                    revised, revised_scale, note = None, None, str(exc)
                out.append(ScaleRevision(station, cyl, sp, prev[0], prev[1], value, scale, revised, revised_scale,
                                         prev[2], cal.time_start, now, note))
    return out


def detect_revisions(store, now: datetime) -> list[ScaleRevision]:
    """Every station's revisions recorded as pending where new; returns the new ones (logged)."""
    new: list[ScaleRevision] = []
    for station in store.calibration_stations():
        found = find_revisions(station, store.calibrations(station, EPOCH, END), now)
        known = {(r.station, r.cylinder, r.species, r.time_to) for r in store.scale_revisions(pending_only=False)}
        fresh = [r for r in found if (r.station, r.cylinder, r.species, r.time_to) not in known]
        if fresh:
            store.add_scale_revisions(fresh)
        for r in fresh:
            log.warning("scale_revision_pending", station=r.station, cylinder=r.cylinder, species=r.species,
                        old=f"{r.old_value:g} {r.old_scale}", new=f"{r.new_value:g} {r.new_scale}",
                        revised=r.revised_value, time_from=r.time_from.isoformat(), time_to=r.time_to.isoformat(),
                        note=r.note)
        new += fresh
    return new


def record_revisions(store, station: str, start: datetime, end: datetime, revised: Iterable[RevisedValue],
                     now: datetime) -> list[ScaleRevision]:
    """Operators' revisions as pending (module docstring); returns those recorded (one already
    recorded for the same station, cylinder, species and period end is not recorded again).
    Raises ValueError, recording nothing, for a cylinder no calibration of the period used or a
    value that cannot be converted to the current scale."""
    if end <= start:
        raise ValueError("--to must be after --from")
    last: dict[tuple[str, str], tuple[float, str]] = {}
    for cal in sorted(store.calibrations(station, start, end), key=lambda c: (c.time_start, c.id)):
        for s in cal.standards:
            for sp, v in (s.get("assigned") or {}).items():
                if v is not None:
                    last[(s.get("cylinder"), sp)] = (float(v), _canonical(sp, (s.get("scale") or {}).get(sp, "")))
    rows: list[ScaleRevision] = []
    for r in revised:
        old = last.get((r.cylinder, r.species))
        if old is None:
            raise ValueError(f"{r.cylinder} {r.species}: no calibration of station {station!r} from "
                             f"{start.isoformat()} to {end.isoformat()} used this cylinder")
        scale = _canonical(r.species, r.scale)
        value, _u, current = scales.to_current(r.species, r.value, scale, r.uncertainty)
        rows.append(ScaleRevision(station, r.cylinder, r.species, old[0], old[1], r.value, scale, value, current,
                                  start, end, now, "recorded by an operator"))
    known = {(x.station, x.cylinder, x.species, x.time_to) for x in store.scale_revisions(pending_only=False)}
    fresh = [x for x in rows if (x.station, x.cylinder, x.species, x.time_to) not in known]
    if fresh:
        store.add_scale_revisions(fresh)
    for x in fresh:
        log.warning("scale_revision_pending", station=x.station, cylinder=x.cylinder, species=x.species,
                    old=f"{x.old_value:g} {x.old_scale}", new=f"{x.new_value:g} {x.new_scale}",
                    revised=x.revised_value, time_from=x.time_from.isoformat(), time_to=x.time_to.isoformat(),
                    note=x.note)
    return fresh


def describe(r: ScaleRevision) -> str:
    value = f"{r.revised_value:.4f} {r.revised_scale}" if r.revised_value is not None else "none"
    state = f"done (run {r.run_id})" if r.done_at is not None else "pending"
    return (f"#{r.id} {r.station} {r.cylinder} {r.species}: {r.old_value:g} {r.old_scale} -> {r.new_value:g} "
            f"{r.new_scale}; reprocess {r.time_from.isoformat()} .. {r.time_to.isoformat()} with {value}; {state}"
            + (f" ({r.note})" if r.note else ""))


@dataclass(frozen=True, slots=True)
class PendingResult:
    revision: ScaleRevision
    run_id: int | None
    error: str | None


def run_pending(store, config: CentralConfig, operator: str, now: datetime) -> list[PendingResult]:
    """Each pending revision reprocessed (module docstring); several revisions of one station and
    period end (e.g. CO2 and CH4 of a cylinder) run together."""
    groups: dict[tuple[str, datetime, datetime], list[ScaleRevision]] = defaultdict(list)
    for r in store.scale_revisions(pending_only=True):
        groups[(r.station, r.time_from, r.time_to)].append(r)
    out: list[PendingResult] = []
    for (station, start, end), revs in sorted(groups.items()):
        bad = [r for r in revs if r.revised_value is None]
        if bad:
            for r in revs:
                why = f"not run: {bad[0].cylinder} {bad[0].species}: {bad[0].note or 'no value on the current scale'}"
                store.finish_scale_revision(r.id, None, None, why)
                out.append(PendingResult(r, None, why))
            continue
        revised = [RevisedValue(r.cylinder, r.species, float(r.revised_value), r.revised_scale or "") for r in revs]
        reason = "scale revision: " + "; ".join(f"{r.cylinder} {r.species} {r.old_value:g} {r.old_scale} -> "
                                                 f"{r.new_value:g} {r.new_scale}" for r in revs)
        try:
            summary = reprocess_period(store, config, station, start, end, revised, reason, operator, now)
        except ValueError as exc:
            for r in revs:
                store.finish_scale_revision(r.id, None, None, f"not run: {exc}")
                out.append(PendingResult(r, None, str(exc)))
            log.warning("scale_revision_not_run", station=station, error=str(exc))
            continue
        for r in revs:
            store.finish_scale_revision(r.id, summary.run_id, now, r.note)
            out.append(PendingResult(r, summary.run_id, None))
    return out
