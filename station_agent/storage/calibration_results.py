"""From finished runs to calibration and target results, and the calibration in force.

Lives in the writer thread (it reads and writes the store): a finished run waits until every
analyzer has closed its minutes past the run's end, then its minute records are cut into
injections (the engine's segments: cylinder, cycle, start, end; only minutes wholly inside an
injection count), averaged over the configured last minutes and fitted (station_agent.processing).
Near-real-time minutes use the latest calibration that ended before them, with the zero/span
corrections made since (ghgnet.processing.check_correction: a full calibration supersedes the
corrections before it; corrections after it stack in time order, each with its own id on the
minutes); `reprocess` re-applies coefficients interpolated in time between the bracketing
calibrations. A value-assignment run (`station-agent cylinders assign`) writes the candidate's
assigned values, uncertainty and chain of references into the cylinder registry.
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
from ghgnet.processing.check_correction import check_correction
from ghgnet.processing.value_assignment import ReferenceStandard, value_assignment
from ghgnet.records import Event
from ghgnet.timeutil import iso_utc, parse_utc
from station_agent.sequencing.engine import RunRecord
from station_agent.sequencing.sampling_config import SamplingConfig
from station_agent.storage.store import StationStore

SPECIES = species.calibrated()
CORRECTIONS_STATE = "check_corrections"
"""The state key holding the zero/span corrections (the newest MAX_CORRECTIONS per device)."""
MAX_CORRECTIONS = 500


@dataclass(frozen=True)
class InForce:
    id: str
    end: datetime
    coefficients: dict[str, tuple[float, ...]]
    result: CalibrationResult | None
    """The full calibration (for a zero/span correction: the one it corrects, None if none)."""

    @property
    def fits(self) -> dict[str, Any]:
        """What minutes are calibrated with: a full calibration's fits; for a zero/span correction
        its coefficients, each with the covariance of the calibration it corrects (the check's own
        repeatability is not added), or bare coefficients (u unknown) when it corrects none."""
        base = self.result.fits if self.result is not None else {}
        return {sp: replace(base[sp], coefficients=tuple(c)) if sp in base else tuple(c)
                for sp, c in self.coefficients.items()}


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
        self._corrections: dict[str, list[InForce]] = {}

    # -- the calibration in force -------------------------------------------------------------
    def load(self, store: StationStore) -> None:
        self._in_force, self._corrections = {}, {}
        for row in store.calibrations():
            self._remember(row["device"], result_from_wire(row))
        got = store.get_state(CORRECTIONS_STATE)
        for device, rows in (got[0] if got else {}).items():
            for c in rows:
                base = self._by_id(device, c["base"])
                self._corrections.setdefault(device, []).append(InForce(
                    c["id"], parse_utc(c["end"]), {sp: tuple(v) for sp, v in c["coefficients"].items()},
                    base.result if base else None))

    def _by_id(self, device: str, cal_id: str | None) -> InForce | None:
        return next((c for c in self._in_force.get(device, []) if c.id == cal_id), None)

    def _remember(self, device: str, res: CalibrationResult) -> None:
        lst = self._in_force.setdefault(device, [])
        lst.append(InForce(res.id, res.end, res.coefficients(), res))
        lst.sort(key=lambda c: c.end)

    def calibration_in_force(self, device: str, t: datetime) -> InForce | None:
        """The latest full calibration of `device` that ended at or before `t`."""
        lst = self._in_force.get(device, [])
        i = bisect.bisect_right([c.end for c in lst], t) - 1
        return lst[i] if i >= 0 else None

    def in_force(self, device: str, t: datetime) -> InForce | None:
        """What the minutes at `t` use: the latest full calibration that ended at or before `t`, or
        the latest zero/span correction made after it (its coefficients already hold the
        calibration and the corrections before it)."""
        cal = self.calibration_in_force(device, t)
        lst = self._corrections.get(device, [])
        i = bisect.bisect_right([c.end for c in lst], t) - 1
        if i >= 0 and (cal is None or lst[i].end > cal.end):
            return lst[i]
        return cal

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
            previous = self.calibration_in_force(device, now)
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
            if run.config.correct != "none":
                self._correct(store, run, device, now, items, assigned, stamp)
        elif run.kind == "performance":
            self.emit(store, Event(now, "performance_test.finished", "info",
                                   f"performance test {run.name} on {device} ran from {iso_utc(run.start)} to "
                                   f"{iso_utc(run.end)}: build its report at central (central-receiver "
                                   "instrument-test)", device,
                                   {"run": run.name, "start": iso_utc(run.start), "end": iso_utc(run.end),
                                    "segments": [[st, k, iso_utc(a), iso_utc(b)] for st, k, a, b in run.segments]}))
        elif run.kind == "assignment" and run.config.device in (None, device):
            self._assign(store, run, device, now, assigned)

    def _check_gas(self, store: StationStore, run: RunRecord, assigned) -> dict[str, float]:
        """The assigned values of the gas on a check's stream (see CheckRun.cylinder)."""
        cfg = run.config
        if cfg.cylinder is not None:
            if cfg.cylinder not in assigned:
                raise KeyError(f"check {run.name}: cylinder {cfg.cylinder!r} not in the registry")
            return {sp: a.value for sp, a in assigned[cfg.cylinder].items()}
        ofrole = [c["id"] for c in store.cylinders() if c["role"] == cfg.stream]
        if len(ofrole) == 1:
            return {sp: a.value for sp, a in assigned[ofrole[0]].items()}
        if len(ofrole) > 1:
            raise ValueError(f"check {run.name}: {len(ofrole)} active {cfg.stream} cylinders {ofrole}: name one"
                             " with `cylinder`")
        if cfg.stream == "zero":
            return dict.fromkeys(SPECIES, 0.0)
        raise KeyError(f"check {run.name}: no active span cylinder in the registry (station-agent cylinders add"
                       " --role span)")

    def _correct(self, store, run: RunRecord, device, now, items, assigned, stamp) -> None:
        """A zero check corrects the offset, a span check the gain, from the check's end on."""
        kind = run.config.correct
        last = [i for i in items if i[3]["flag"] == "U"][-run.config.use_last_minutes:]
        if not last:
            raise ValueError(f"check {run.name}: no valid minute to correct with")
        raw = {}
        for sp in SPECIES:
            vals = [(r["species"].get(sp) or {}).get("raw_mean") for *_, r in last]
            vals = [v for v in vals if v is not None]
            if vals:
                raw[sp] = float(np.mean(vals))
        base = self.in_force(device, run.end)
        got = check_correction(kind, raw, self._check_gas(store, run, assigned),
                               base.coefficients if base else None)
        cal_id = f"{run.config.stream}-{device}-{stamp}"
        coefficients = dict(base.coefficients) if base else {}
        coefficients.update({sp: c.coefficients for sp, c in got.items()})
        base_cal = self.calibration_in_force(device, run.end)
        entry = InForce(cal_id, run.end, coefficients, base_cal.result if base_cal else None)
        lst = self._corrections.setdefault(device, [])
        lst.append(entry)
        lst.sort(key=lambda c: c.end)
        del lst[:-MAX_CORRECTIONS]
        store.put_state(CORRECTIONS_STATE, {
            d: [{"id": c.id, "end": iso_utc(c.end), "base": c.result.id if c.result else None,
                 "coefficients": {sp: list(v) for sp, v in c.coefficients.items()}} for c in cs]
            for d, cs in self._corrections.items()}, now)
        data = {"id": cal_id, "kind": kind, "from": iso_utc(run.end), "base": base.id if base else None,
                "calibration": base_cal.id if base_cal else None,
                "species": {sp: {"raw": c.raw, "before": c.before, "assigned": c.assigned, "offset": c.offset,
                                 "gain": c.gain, "coefficients": list(c.coefficients)} for sp, c in got.items()}}
        what = ", ".join(f"{sp} {'offset %+.4g' % c.offset if kind == 'offset' else 'gain %.6f' % c.gain}"
                         for sp, c in got.items())
        self.emit(store, Event(now, f"check.{kind}_corrected", "info",
                               f"{run.config.stream} check {run.name} corrects the {kind} from {iso_utc(run.end)} "
                               f"on ({cal_id}, on top of {base.id if base else 'no calibration'}): {what}",
                               device, data))
        self.log.info("check_correction", id=cal_id, kind=kind, device=device)

    def _assign(self, store: StationStore, run: RunRecord, device: str, now: datetime, assigned) -> None:
        """The candidate's values from a value-assignment run, written to the registry with their chain."""
        cfg = run.config
        rows = {c["id"]: c for c in store.cylinders()}
        missing = [r for r in cfg.references if r not in rows]
        if missing:
            raise KeyError(f"reference(s) {missing} not in the registry")
        refs = {r: {sp: ReferenceStandard(r, a.value, a.uncertainty or 0.0, a.scale,
                                          (rows[r].get("traceability") or {},) if rows[r].get("traceability") else ())
                    for sp, a in assigned[r].items()} for r in cfg.references}
        shift = timedelta(seconds=self.clock_offset_s(device))
        minutes = list(store.minute_rows(run.start + shift, run.end + shift + timedelta(minutes=1), device))
        injections = []
        for stream, cycle, a, b in run.segments:
            a, b = a + shift, b + shift
            inside = [r for r in minutes if r["stream"] == stream and r["flag"] == "U"
                      and parse_utc(r["time"]) >= a and parse_utc(r["time"]) + timedelta(minutes=1) <= b]
            last = inside[-cfg.use_last_minutes:]
            if not last:
                continue
            means = {}
            for sp in SPECIES:
                vals = [(r["species"].get(sp) or {}).get("raw_mean") for r in last]
                vals = [v for v in vals if v is not None]
                if vals:
                    means[sp] = float(np.mean(vals))
            mid = float(np.mean([parse_utc(r["time"]).timestamp() + 30.0 for r in last]))
            injections.append((stream.split(":", 1)[-1], mid, means))
        res = value_assignment(cfg.candidate, injections, refs, cfg.degree)
        old = rows.get(cfg.candidate)
        trace = {
            "method": "bracketed value assignment (ghgnet.processing.value_assignment)",
            "run": run.name, "device": device, "start": iso_utc(run.start), "end": iso_utc(run.end),
            "cycles": cfg.cycles, "assigned_at": iso_utc(now),
            # counted as 0 in u_references: the registry gives them no uncertainty
            "references_without_uncertainty": sorted({r for r in cfg.references for a in assigned[r].values()
                                                      if a.uncertainty is None}),
            "budget": {sp: {"u_references": s.u_references, "u_fit": s.u_fit, "u_repeatability": s.u_repeatability,
                            "cycle_values": list(s.cycle_values)} for sp, s in res.species.items()},
            "references": list(res.chain),
        }
        cyl = {"id": cfg.candidate, "role": old["role"] if old else "standard", "serial": old["serial"] if old else "",
               "assigned": res.assigned(), "uncertainty": res.uncertainty(), "scale": res.scales(),
               "fill_date": old["fill_date"] if old else None, "pressure_bar": old["pressure_bar"] if old else None,
               "low_pressure_bar": old["low_pressure_bar"] if old else 20.0, "traceability": trace}
        store.upsert_cylinder(cyl, now)
        self.emit(store, Event(now, "cylinder.assigned", "info",
                               f"cylinder {cfg.candidate} assigned against {', '.join(cfg.references)}: " + ", ".join(
                                   f"{sp} {s.value:.4f} +- {s.uncertainty:.4f} ({s.scale})"
                                   for sp, s in res.species.items()), device,
                               {"cylinder": cfg.candidate, "assigned": res.assigned(), "uncertainty": res.uncertainty(),
                                "scale": res.scales(), "method": trace["method"], "budget": trace["budget"],
                                "start": trace["start"], "end": trace["end"],
                                "chain": flat_chain(cfg.candidate, trace)}))

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
                                  {sp: cal.fits[sp] for sp in species}, cal.id, last_minutes, valid,
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


def flat_chain(cylinder: str, trace: dict) -> list[dict]:
    """A cylinder's chain of references as a flat list of links, nearest first: each reference's
    values, uncertainties and scales and the ids it traces to (the registry keeps the nested form;
    the wire's JSON is bounded in depth, so the event carries this one)."""
    out: list[dict] = [{"id": cylinder, "traces_to": [r["id"] for r in trace.get("references", [])]}]
    todo = list(trace.get("references", []))
    seen = {cylinder}
    while todo:
        ref = todo.pop(0)
        if ref["id"] in seen:
            continue
        seen.add(ref["id"])
        inner = [r for t in ref.get("chain") or [] for r in t.get("references", [])]
        out.append({"id": ref["id"], "assigned": ref["assigned"], "uncertainty": ref["uncertainty"],
                    "scale": ref["scale"], "traces_to": [r["id"] for r in inner]})
        todo += inner
    return out
