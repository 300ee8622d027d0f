"""From finished runs to calibration and target results, and the calibration in force.

Lives in the writer thread (it reads and writes the store): a finished run waits until every
analyzer has closed its minutes past the run's end, then its minute records are cut into
injections (the engine's segments: cylinder, cycle, start, end; only minutes wholly inside an
injection count), averaged over the configured last minutes and fitted (station_agent.processing).
Near-real-time minutes use the latest calibration that ended before them; `reprocess` re-applies
coefficients interpolated in time between the bracketing calibrations.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from ghgnet import species
from ghgnet.processing.calibration import (
    AssignedValue,
    CalibrationFit,
    CalibrationResult,
    StandardUsed,
    calibration_drift,
    calibration_from_minutes,
    interpolated_coefficients,
    target_from_minutes,
)
from ghgnet.records import Event
from ghgnet.timeutil import iso_utc, parse_utc
from station_agent.sequencing.engine import RunRecord
from station_agent.sequencing.sampling_config import SamplingConfig
from station_agent.storage.store import StationStore

SPECIES = species.calibrated()


@dataclass(frozen=True)
class InForce:
    id: str
    end: datetime
    coefficients: dict[str, tuple[float, ...]]
    result: CalibrationResult


def result_to_wire(res: CalibrationResult) -> dict[str, Any]:
    return {
        "record_type": "calibration",
        "id": res.id,
        "time_start": iso_utc(res.start),
        "time_end": iso_utc(res.end),
        "standards": [
            {"cylinder": s.cylinder, "measured": dict(s.measured),
             "assigned": {sp: a.value for sp, a in s.assigned.items()},
             "scale": {sp: a.scale for sp, a in s.assigned.items() if a.scale}}
            for s in res.standards
        ],
        "fits": {
            sp: {"coefficients": list(f.coefficients), "residuals": list(f.residuals), "r2": f.r2,
                 "rmse": f.rmse, "n": f.n, "method": f.method}
            | ({} if f.covariance is None else {"covariance": [list(row) for row in f.covariance]})
            | ({} if f.mswd is None else {"mswd": f.mswd})
            | ({"scale": f.scale} if f.scale else {})
            for sp, f in res.fits.items()
        },
    }


def result_from_wire(p: dict[str, Any]) -> CalibrationResult:
    standards = tuple(
        StandardUsed(s["cylinder"], dict(s["measured"]),
                     {sp: AssignedValue(v, s.get("scale", {}).get(sp, "")) for sp, v in s["assigned"].items()})
        for s in p["standards"]
    )
    fits = {}
    for sp, f in p["fits"].items():
        order = [s for s in standards if sp in s.measured and sp in s.assigned]
        cov = f.get("covariance")
        fits[sp] = CalibrationFit(sp, tuple(f["coefficients"]), tuple(s.cylinder for s in order),
                                  tuple(s.measured[sp] for s in order), tuple(s.assigned[sp].value for s in order),
                                  tuple(f["residuals"]), f["r2"], f["rmse"], f["n"],
                                  covariance=None if cov is None else tuple(tuple(row) for row in cov),
                                  method=f.get("method", "ols"), mswd=f.get("mswd"), scale=f.get("scale", ""))
    return CalibrationResult(p["id"], parse_utc(p["time_start"]), parse_utc(p["time_end"]), standards, fits)


class CalibrationBook:
    def __init__(self, sampling: SamplingConfig | None, devices: list[str],
                 emit: Callable[[StationStore, Event], None], log,
                 clock_offset_s: Callable[[str], float] = lambda device: 0.0) -> None:
        self.sampling = sampling
        self.devices = devices
        self.clock_offset_s = clock_offset_s
        self.emit = emit
        self.log = log.bind(component="calibration")
        self.pending: list[RunRecord] = []
        self._in_force: dict[str, list[InForce]] = {}

    # -- the calibration in force -------------------------------------------------------------
    def load(self, store: StationStore) -> None:
        for row in store.calibrations():
            self._remember(row["device"], result_from_wire(row))

    def _remember(self, device: str, res: CalibrationResult) -> None:
        lst = self._in_force.setdefault(device, [])
        lst.append(InForce(res.id, res.end, res.coefficients(), res))
        lst.sort(key=lambda c: c.end)

    def in_force(self, device: str, t: datetime) -> InForce | None:
        """The latest calibration of `device` that ended at or before `t`."""
        lst = self._in_force.get(device, [])
        i = bisect.bisect_right([c.end for c in lst], t) - 1
        return lst[i] if i >= 0 else None

    def has_any(self) -> bool:
        return any(self._in_force.values())

    def bracketing(self, device: str, t: datetime) -> tuple[InForce | None, InForce | None]:
        lst = self._in_force.get(device, [])
        times = [c.result.time for c in lst]
        i = bisect.bisect_right(times, t)
        return (lst[i - 1] if i > 0 else None), (lst[i] if i < len(lst) else None)

    # -- finished runs --------------------------------------------------------------------------
    def add_run(self, run: RunRecord) -> None:
        self.pending.append(run)

    def process(self, store: StationStore, closed_until: Callable[[str], datetime | None], now: datetime) -> None:
        """Compute every pending run whose minutes are all closed (or that waited an hour)."""
        keep = []
        for run in self.pending:
            ready = all((closed_until(d) or datetime.min.replace(tzinfo=run.end.tzinfo))
                        >= run.end + timedelta(seconds=self.clock_offset_s(d)) for d in self.devices)
            if not ready and now - run.end < timedelta(hours=1):
                keep.append(run)
                continue
            for device in self.devices:
                try:
                    self._compute(store, run, device, now)
                except (ValueError, KeyError) as exc:
                    self.emit(store, Event(now, f"{run.kind}.failed", "error",
                                           f"{run.kind} {run.name} on {device}: {exc}", device,
                                           {"run": run.name, "start": iso_utc(run.start)}))
        self.pending = keep

    def _segment_minutes(self, store: StationStore, run: RunRecord, device: str, prefix: str):
        """(cylinder, cycle, minute start, row) of the minutes wholly inside the run's injections.
        Segments are on the agent's clock, minutes on the analyzer's: shift by its offset."""
        shift = timedelta(seconds=self.clock_offset_s(device))
        rows = list(store.minute_rows(run.start + shift, run.end + shift + timedelta(minutes=1), device))
        out = []
        for stream, cycle, a, b in run.segments:
            if not stream.startswith(prefix):
                continue
            a, b = a + shift, b + shift
            for r in rows:
                t = parse_utc(r["time"])
                if r["stream"] == stream and t >= a and t + timedelta(minutes=1) <= b:
                    out.append((stream.split(":", 1)[-1], cycle, t, r))
        return out

    def _assigned(self, store: StationStore) -> dict[str, dict[str, AssignedValue]]:
        out = {}
        for c in store.cylinders():
            out[c["id"]] = {sp: AssignedValue(v, c["scale"].get(sp, ""), c["uncertainty"].get(sp))
                            for sp, v in c["assigned"].items()}
        return out

    @staticmethod
    def _arrays(items, species):
        times = np.array([t.timestamp() for _, _, t, _ in items])
        values = {sp: np.array([(r["species"].get(sp) or {}).get("raw_mean") or np.nan for *_, r in items],
                               dtype=float) for sp in species}
        valid = np.array([r["flag"] == "U" for *_, r in items], dtype=bool)
        return times, values, valid

    def _compute(self, store: StationStore, run: RunRecord, device: str, now: datetime) -> None:
        assigned = self._assigned(store)
        stamp = run.start.strftime("%Y%m%dT%H%MZ")
        if run.kind == "calibration":
            cfg = run.config
            items = self._segment_minutes(store, run, device, "cal:")
            if not items:
                raise ValueError("no complete minute inside any injection")
            missing = sorted({c for c, *_ in items} - set(assigned))
            if missing:
                raise KeyError(f"cylinder(s) {missing} not in the registry (station-agent cylinders add)")
            species = [sp for sp in SPECIES if all(sp in assigned[c] for c, *_ in items)
                       and any((r["species"].get(sp) or {}).get("raw_mean") is not None for *_, r in items)]
            times, values, valid = self._arrays(items, species)
            res = calibration_from_minutes(
                f"cal-{device}-{stamp}", times, [c for c, *_ in items], [k for _, k, *_ in items], values,
                {c: {sp: assigned[c][sp] for sp in species} for c in {c for c, *_ in items}},
                cfg.use_last_minutes, valid, cfg.skip_first_cycles, cfg.degree)
            previous = self.in_force(device, now)
            store.insert_calibration(device, result_to_wire(res), now)
            self._remember(device, res)
            self.log.info("calibration_stored", id=res.id, device=device,
                          rmse={sp: round(f.rmse, 4) for sp, f in res.fits.items()})
            if previous is not None and self.sampling is not None:
                common = [sp for sp in res.fits if sp in previous.result.fits]
                limits = {sp: self.sampling.drift_limits.get(sp, np.inf) for sp in common}
                drift = calibration_drift(previous.result, res,
                                          limits=limits) if common else {}
                bad = {sp: d.drift for sp, d in drift.items() if d.exceeded}
                if bad:
                    self.emit(store, Event(now, "calibration.drift", "warning",
                                           f"calibration {res.id} drifted beyond the limit: "
                                           + ", ".join(f"{sp} {v:+.3f}" for sp, v in bad.items()), device,
                                           {"drift": bad, "previous": previous.id}))
            if cfg.long_term_target:
                self._target(store, run, device, now, cfg.long_term_target, cfg.use_last_minutes, assigned, stamp)
        elif run.kind == "target":
            cfg = run.config
            self._target(store, run, device, now, cfg.cylinder, cfg.use_last_minutes, assigned, stamp)
        elif run.kind == "check":
            items = self._segment_minutes(store, run, device, run.config.stream)
            species = [sp for sp in SPECIES if any((r["species"].get(sp) or {}).get("mean") is not None
                                                   for *_, r in items)]
            last = items[-run.config.use_last_minutes:]
            means = {sp: float(np.nanmean([(r["species"].get(sp) or {}).get("mean") or np.nan for *_, r in last]))
                     for sp in species}
            self.emit(store, Event(now, f"check.{run.config.stream}", "info",
                                   f"{run.config.stream} check {run.name}: "
                                   + ", ".join(f"{sp} {v:.3f}" for sp, v in means.items()), device, {"means": means}))

    def _target(self, store, run, device, now, cylinder, last_minutes, assigned, stamp) -> None:
        items = [i for i in self._segment_minutes(store, run, device, "target:") if i[0] == cylinder]
        if not items:
            raise ValueError(f"no complete minute of target {cylinder}")
        if cylinder not in assigned:
            raise KeyError(f"cylinder {cylinder!r} not in the registry (station-agent cylinders add)")
        cal = self.in_force(device, items[0][2])
        if cal is None:
            self.emit(store, Event(now, "target.uncalibrated", "warning",
                                   f"target {cylinder} measured before any calibration: no bias computed", device))
            return
        species = [sp for sp in SPECIES if sp in assigned[cylinder] and sp in cal.coefficients
                   and any((r["species"].get(sp) or {}).get("raw_mean") is not None for *_, r in items)]
        times, values, valid = self._arrays(items, species)
        goals = self.sampling.goals if self.sampling else {}
        res = target_from_minutes(cylinder, times, values, {sp: assigned[cylinder][sp] for sp in species},
                                  {sp: cal.result.fits[sp] for sp in species}, cal.id, last_minutes, valid,
                                  np.array([k for _, k, *_ in items]), goals)
        payload = {
            "record_type": "target",
            "id": f"tgt-{device}-{cylinder}-{stamp}",
            "time": iso_utc(res.start),
            "cylinder": cylinder,
            "measured": {sp: s.calibrated for sp, s in res.species.items()},
            "assigned": {sp: s.assigned for sp, s in res.species.items()},
            "bias": {sp: s.bias for sp, s in res.species.items()},
            "within_goal": {sp: s.within_goal for sp, s in res.species.items()},
            "u": {sp: s.u for sp, s in res.species.items()},
            "within_u": {sp: s.within_u for sp, s in res.species.items()},
        }
        store.insert_target(device, payload, now)
        self.log.info("target_stored", id=payload["id"], bias={sp: round(b, 4) for sp, b in payload["bias"].items()})
        if not res.within_goal:
            self.emit(store, Event(now, "target.outside_goal", "warning",
                                   f"target {cylinder}: bias " + ", ".join(
                                       f"{sp} {s.bias:+.3f} (goal {s.goal:g})" for sp, s in res.species.items()
                                       if not s.within_goal), device, {"bias": payload["bias"]}))

    # -- reprocessing -------------------------------------------------------------------------------
    def reprocessed_coefficients(self, device: str, t: datetime) -> tuple[dict[str, Any], str] | None:
        """Fits interpolated linearly in time between the calibrations bracketing `t` (the nearest
        one alone at the ends of the record), as CalibrationFits so that `apply_calibration` sets
        each minute's u: coefficients by `interpolated_coefficients`, covariance interpolated
        linearly too ((1-w) C_before + w C_after: the two fits share their standards, so their
        errors are treated as fully correlated rather than averaging down)."""
        before, after = self.bracketing(device, t)
        if before and after:
            coeffs = interpolated_coefficients(t, before.result, after.result)
            tb, ta = before.result.time.timestamp(), after.result.time.timestamp()
            w = 0.0 if ta == tb else (t.timestamp() - tb) / (ta - tb)
            out = {}
            for sp, c in coeffs.items():
                cb, ca = before.result.fits[sp].covariance, after.result.fits[sp].covariance
                cov = None
                if cb is not None and ca is not None:
                    k = len(c)
                    pad = lambda m: np.pad(np.asarray(m), (0, k - len(m)))  # noqa: E731
                    cov = tuple(tuple(row) for row in ((1 - w) * pad(cb) + w * pad(ca)).tolist())
                out[sp] = replace(before.result.fits[sp], coefficients=tuple(np.atleast_1d(c).tolist()),
                                  covariance=cov)
            return out, f"{before.id}~{after.id}"
        one = before or after
        return (dict(one.result.fits), one.id) if one else None
