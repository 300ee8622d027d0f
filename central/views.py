"""What operators see: JSON-ready reports built from the store with central.aggregation.hourly_stats and
central.qc. Shared by `central-receiver status/qc/export` and the HTTP API (central/web/),
so the table in a terminal and the operations center never disagree."""

from __future__ import annotations

import math
import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from ghgnet.timeutil import iso_utc

from .aggregation.hourly_stats import afternoon_means, completeness_per_day, day_start, month_start, monthly_means
from .config import CentralConfig
from .qc import bias_summary, calibration_checks, pairwise_offsets, station_state, target_terms

VALID_HOURLY = ("U", "O")


def _f(v: float | None) -> float | None:
    """A float for JSON: NaN and inf become null."""
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def intake_height(config: CentralConfig, station: str, stream: str) -> float | None:
    """Intake height (m) of an inlet stream: configured, else read from a name like inlet:100m."""
    inlet = stream.removeprefix("inlet:")
    meta = config.station(station)
    if inlet in meta.inlet_heights_m:
        return meta.inlet_heights_m[inlet]
    found = re.search(r"(\d+(?:\.\d+)?)\s*m\b", inlet)
    return float(found.group(1)) if found else None


def instrument_status(details: dict[str, Any]) -> str:
    """One line from the status details the agent sends: ok, or what is wrong."""
    problems = []
    for dev, d in (details.get("devices") or {}).items():
        if isinstance(d, dict):
            if d.get("connected") is False:
                problems.append(f"{dev}: disconnected")
            elif d.get("faults"):
                problems.append(f"{dev}: {', '.join(map(str, d['faults']))}")
    if details.get("maintenance"):
        problems.append("maintenance")
    if problems:
        return "; ".join(problems)
    return "ok" if details.get("devices") else "-"


def completeness(store, station: str, start: datetime, end: datetime) -> dict[str, Any]:
    """Per UTC day: fraction of minutes received, and of minutes with a valid ambient value."""
    rows = store.minute_presence(station, start, end)
    seen: dict[int, bool] = {}
    for t, stream, flag in rows:
        k = int(t.timestamp())
        seen[k] = seen.get(k, False) or (stream.startswith("inlet:") and flag in ("U", "O", "R"))
    times = np.array(sorted(seen), dtype=np.int64)
    days, received, valid = completeness_per_day(times, np.array([seen[t] for t in times.tolist()], dtype=bool))
    return {"days": [iso_utc(day_start(d))[:10] for d in days.tolist()],
            "received": [round(float(x), 4) for x in received],
            "valid_ambient": [round(float(x), 4) for x in valid]}


def station_health(store, config: CentralConfig, now: datetime) -> list[dict[str, Any]]:
    """One row per station known from data or config: state, last seen, latency, backlog, ..."""
    summaries = {s.station: s for s in store.stations()}
    names = sorted(set(summaries) | set(config.stations))
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    out = []
    for name in names:
        s = summaries.get(name)
        st = s.status if s else None
        h = station_state(st.state if st else None, st.received_at if st else None,
                          st.interval_s if st else None, now, config.health.down_after_intervals,
                          config.health.default_interval_s)
        meta = config.station(name)
        last_minute = store.latest_minute_time(name) if s else None
        comp = completeness(store, name, today, today + timedelta(days=1)) if s else None
        elapsed_min = max(1.0, (now - today).total_seconds() / 60.0)
        out.append({
            "station": name, "name": meta.name or name, "role": meta.role, "state": h.state,
            "reason": h.reason,
            "last_seen": iso_utc(s.last_seen) if s else None,
            "last_seen_age_s": _f((now - s.last_seen).total_seconds()) if s else None,
            "status_time": iso_utc(st.time) if st else None,
            "status_age_s": _f((now - st.received_at).total_seconds()) if st else None,
            # a will's time is the agent's start (central/store/status.py): no latency to tell
            "latency_s": _f((st.received_at - st.time).total_seconds()) if st and st.state == "up" else None,
            "interval_s": st.interval_s if st else None,
            "backlog": st.backlog if st else None,
            "oldest_unacked_age_s": st.oldest_unacked_age_s if st else None,
            "agent_version": st.agent_version if st else None,
            "instrument": instrument_status(st.details) if st else "-",
            "stream": (st.details or {}).get("stream") if st else None,
            "last_minute": iso_utc(last_minute) if last_minute else None,
            "data_lag_s": _f((now - last_minute).total_seconds()) if last_minute else None,
            "completeness_today": (
                round(min(1.0, comp["received"][0] * 1440 / elapsed_min), 4) if comp and comp["days"] else 0.0
            ) if s else None,
            "minutes": s.minutes if s else 0, "calibrations": s.calibrations if s else 0,
            "targets": s.targets if s else 0, "duplicates": s.duplicates if s else 0,
            "dead_letters": s.dead_letters if s else 0, "last_seq": s.last_seq if s else None,
            "emissions": s.emissions if s else 0, "fluxes": s.fluxes if s else 0,
            # the station database its last batch came from (None: a station older than store ids)
            "store": s.store if s else None,
            **alarm_summary(store, name),
            "latitude": meta.latitude, "longitude": meta.longitude, "timezone": meta.timezone,
        })
    return out


def alarm_summary(store, station: str) -> dict[str, Any]:
    """A station's alarms (central/store/identity.py): how many, and the latest."""
    latest = store.alarms(limit=1, station=station)
    return {"alarms": store.alarm_count(station),
            "last_alarm": {"time": iso_utc(latest[0].time), "kind": latest[0].kind, "message": latest[0].message}
            if latest else None}


def alarms(store, limit: int = 20) -> list[dict[str, Any]]:
    """The newest alarms of every station, JSON-ready."""
    return [{"id": a.id, "time": iso_utc(a.time), "station": a.station, "store": a.store, "kind": a.kind,
             "message": a.message, "data": a.data} for a in store.alarms(limit=limit)]


def hourly_series(store, station: str, start: datetime, end: datetime, stream: str | None = None,
                  species: str | None = None) -> list[dict[str, Any]]:
    """Hourly data grouped by (stream, species), as parallel lists."""
    groups: dict[tuple[str, str], dict[str, list]] = {}
    for r in store.hourly(station, start, end, stream, species):
        g = groups.setdefault((r.stream, r.species), defaultdict(list))
        g["time"].append(iso_utc(r.hour))
        for k in ("mean", "std", "repeatability", "mean_all", "std_all"):
            g[k].append(_f(getattr(r, k)))
        for k in ("n", "n_all", "n_spikes"):
            g[k].append(getattr(r, k))
        g["flag"].append(r.flag)
    return [{"stream": k[0], "species": k[1], **v} for k, v in sorted(groups.items())]


def _hour_arrays(rows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = np.array([int(r.hour.timestamp()) for r in rows], dtype=np.int64)
    v = np.array([np.nan if r.mean is None else r.mean for r in rows], dtype=float)
    ok = np.array([r.flag in VALID_HOURLY for r in rows], dtype=bool)
    return t, v, ok


def afternoon(store, config: CentralConfig, station: str, stream: str, species: str, start: datetime,
              end: datetime) -> dict[str, Any]:
    a = config.aggregate
    t, v, ok = _hour_arrays(store.hourly(station, start, end, stream, species))
    pm = afternoon_means(t, v, ok, config.station(station).timezone, a.afternoon_start_h, a.afternoon_end_h,
                         a.afternoon_min_hours)
    return {"station": station, "stream": stream, "species": species,
            "window_local_h": [a.afternoon_start_h, a.afternoon_end_h],
            "timezone": config.station(station).timezone,
            "days": [iso_utc(day_start(d))[:10] for d in pm.period.tolist()],
            "mean": [_f(x) for x in pm.mean], "std": [_f(x) for x in pm.std], "n_hours": pm.n_hours.tolist()}


def monthly(store, station: str, stream: str, species: str, start: datetime, end: datetime) -> dict[str, Any]:
    t, v, ok = _hour_arrays(store.hourly(station, start, end, stream, species))
    mm = monthly_means(t, v, ok)
    return {"station": station, "stream": stream, "species": species,
            "months": [iso_utc(month_start(c))[:7] for c in mm.period.tolist()],
            "mean": [_f(x) for x in mm.mean], "std": [_f(x) for x in mm.std], "n_hours": mm.n_hours.tolist()}


def _iso_ms(t: datetime) -> str:
    """iso_utc(t) for an aware datetime (`2026-11-22T02:53:12.345Z`), by isoformat: 5x faster than
    its strftime on the thousands of points of a year's target and calibration history."""
    return t.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def targets(store, config: CentralConfig, station: str, start: datetime, end: datetime,
            by_day: bool = False) -> dict[str, Any]:
    """Target bias per cylinder and species, short- or long-term, against the goal.

    Reads the four columns it needs (store.target_biases), and calibration ends only when the
    station names no long-term cylinder (qc.target_terms decides the term by them). `by_day`
    (the web page's long windows): each series' `time`/`bias` are UTC days (their start) and the
    mean bias of the day's runs, `n` the runs; the `summary` is of every run either way."""
    rows = store.target_biases(station, start, end)
    long_term = set(config.station(station).long_term_targets)
    ends = [] if long_term else store.calibration_ends(station, start - timedelta(days=1), end)
    run_s = np.array([r[0].timestamp() for r in rows], dtype=float)
    terms = target_terms(run_s, [r[1] for r in rows], np.array([t.timestamp() for t in ends], dtype=float), long_term)
    series: dict[tuple[str, str, str], tuple[list[datetime], list[float], list[float]]] = {}
    for (t, cyl, sp, bias), ts, term in zip(rows, run_s.tolist(), terms):
        g = series.get((cyl, sp, term))
        if g is None:
            g = series[(cyl, sp, term)] = ([], [], [])
        g[0].append(t)
        g[1].append(ts)
        g[2].append(bias)
    text: dict[datetime, str] = {}  # a run's species share its time: format it once
    out = []
    for (cyl, sp, term), (t, ts, bias) in sorted(series.items()):
        goal = config.qc.goals.get(sp, float("nan"))
        ts_a, bias_a = np.array(ts), np.array(bias, dtype=float)
        s = bias_summary(ts_a, bias_a, goal)
        if by_day:
            days, at, n = np.unique(np.floor(ts_a / 86400.0), return_inverse=True, return_counts=True)
            points = {"time": [_iso_ms(datetime.fromtimestamp(d * 86400.0, UTC)) for d in days.tolist()],
                      "bias": (np.bincount(at, weights=bias_a) / n).tolist(), "n": n.tolist()}
        else:
            points = {"time": [text.get(x) or text.setdefault(x, _iso_ms(x)) for x in t], "bias": bias}
        out.append({"cylinder": cyl, "species": sp, "term": term, "goal": _f(goal), **points,
                    "summary": {"n": s.n, "mean": _f(s.mean), "std": _f(s.std), "latest": _f(s.latest),
                                "drift_per_year": _f(s.drift_per_year), "n_outside_goal": s.n_outside_goal,
                                "within_goal": s.within_goal}})
    return {"station": station, "targets": out}


def calibrations(store, config: CentralConfig, station: str, start: datetime, end: datetime) -> dict[str, Any]:
    """Drift between successive calibrations at the reference level, and fit residuals, per species.

    Reads only the fits' columns it needs (store.calibration_fit_rows: no standards)."""
    by_species: dict[str, list] = {}
    for row in store.calibration_fit_rows(station, start, end):
        by_species.setdefault(row[2], []).append(row)
    out = []
    text: dict[datetime, str] = {}  # the species of a calibration share its time: format it once
    for sp, rows in sorted(by_species.items()):
        goal = config.qc.goals.get(sp, float("nan"))
        ref = config.qc.drift_reference.get(sp, float("nan"))
        checks = calibration_checks(np.array([int(r[0].timestamp()) for r in rows]), [r[3] for r in rows],
                                    [r[4] for r in rows], [r[5] for r in rows], ref, goal)
        out.append({"species": sp, "goal": _f(goal), "reference": _f(ref),
                    "time": [text.get(r[0]) or text.setdefault(r[0], _iso_ms(r[0])) for r in rows],
                    "id": [r[1] for r in rows],
                    "value_at_reference": [_f(k.value_at_reference) for k in checks],
                    "drift": [_f(k.drift) for k in checks], "max_abs_residual": [_f(k.max_abs_residual) for k in checks],
                    "rmse": [_f(k.rmse) for k in checks], "drift_ok": [k.drift_ok for k in checks],
                    "residuals_ok": [k.residuals_ok for k in checks]})
    return {"station": station, "calibrations": out}


def top_inlet(store, config: CentralConfig, station: str, species: str) -> str | None:
    """The highest inlet with hourly data for the species (background comparisons use it)."""
    streams = [s for s, sp in store.hourly_series(station) if sp == species]
    if not streams:
        return None
    return max(streams, key=lambda s: (intake_height(config, station, s) or -1.0, s))


def consistency(store, config: CentralConfig, species: str, start: datetime, end: datetime) -> dict[str, Any]:
    """Background stations compared with each other: afternoon means of their highest inlets,
    mean offset per pair over common days, flagged beyond the compatibility goal."""
    goal = config.qc.goals.get(species, float("nan"))
    days: dict[str, np.ndarray] = {}
    values: dict[str, np.ndarray] = {}
    for name, meta in sorted(config.stations.items()):
        if meta.role != "background":
            continue
        stream = top_inlet(store, config, name, species)
        if stream is None:
            continue
        a = afternoon(store, config, name, stream, species, start, end)
        days[name] = np.array([np.datetime64(d).astype(np.int64) for d in a["days"]], dtype=np.int64)
        values[name] = np.array([np.nan if x is None else x for x in a["mean"]], dtype=float)
    offsets = pairwise_offsets(days, values, goal)
    return {"species": species, "goal": _f(goal), "stations": sorted(days),
            "offsets": [{"station": o.station, "other": o.other, "n_days": o.n_days, "mean": _f(o.mean),
                         "std": _f(o.std), "beyond_goal": o.beyond_goal} for o in offsets]}


def flags(store, station: str | None = None) -> list[dict[str, Any]]:
    return [{"id": f.id, "station": f.station, "from": iso_utc(f.time_from), "to": iso_utc(f.time_to),
             "flag": f.flag, "reason": f.reason, "operator": f.operator, "created_at": iso_utc(f.created_at),
             "stream": f.stream, "species": f.species} for f in store.manual_flags(station)]


def now_utc() -> datetime:
    return datetime.now(UTC)
