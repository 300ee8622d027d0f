"""Benchmark: the operations center's API on a year of hourly data of 50 stations in PostgreSQL.

Loads (COPY) into a schema of its own: 50 stations x 8,760 hours x 3 inlets x 2 species of hourly
aggregates (2.6 M rows), a calibration a day (two species' fits), four target runs a day, a
status and the latest minute per station. Then serves central/web in-process (uvicorn on a free
loopback port, PostgreSQL backend) and times, over HTTP with an API token, the calls each page makes
as the UI makes them (central/web/static/app.js):

  station page   /api/hourly, /api/targets, /api/calibrations, /api/events, /api/completeness
                 (days=30, the UI's default; and days=365, its longest window), /api/flags?station=
                 (the minute table holds one minute a station: completeness is not exercised)
  station table  /api/fleet (every station)    map  /api/fleet

For each call: p50/p95/max latency over ROUNDS random stations and the SQL statements it ran
(counted at the store's `_execute`). Target: p95 < 200 ms for the station page's calls. The
365-day page is loaded twice per round, interleaved on the same station: its daily means summed
from the hourly table (as before the daily table) and read from the daily table the aggregator
keeps (central/store/daily.py, filled here after the COPY as the aggregator fills it), so the two
see the same load; the machine's load average is printed with the figures. A fourth page, also
interleaved, serves /api/targets and /api/calibrations as they were before they read only the
columns they need (store.target_biases, calibration_fit_rows) and before /api/targets answered a
long window by day: every run's and calibration's record (store.targets, store.calibrations, JSON
of standards decoded), formatted by strftime and parsed back, every run sent
(`_before_targets`, `_before_calibrations` below, the code as it was; their answers are checked
equal to views.targets/calibrations by run on three stations first). Prints the
figures; asserts nothing about speed. Drops its schema at the end.

  .venv/bin/python tests/benchmarks/web_api.py [--rounds 30] [--dsn postgresql://...]
"""

from __future__ import annotations

import argparse
import functools
import http.client
import io
import json
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import numpy as np
import psycopg
from psycopg import sql

from central import views
from central.config import CentralConfig
from central.qc import CalibrationCheck, bias_summary
from central.store.postgres import PostgresStore
from central.users import Accounts
from central.web import WebServer, daily
from ghgnet.timeutil import iso_utc

STATIONS = 50
HOURS = 8760
INLETS = ("inlet:10m", "inlet:50m", "inlet:100m")
SPECIES = {"co2": 420.0, "ch4": 2000.0}
SCHEMA = f"bench_web_{os.getpid()}"  # of its own: another run may share the server


def load(dsn: str, end: datetime) -> list[str]:
    """Create the store's tables (PostgresStore migrates) and COPY a year of data into them."""
    names = [f"st-{i:02d}" for i in range(STATIONS)]
    PostgresStore(dsn, SCHEMA).close()
    start = end - timedelta(hours=HOURS)
    hours = [start + timedelta(hours=h) for h in range(HOURS)]
    rng = np.random.default_rng(1)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(SCHEMA)))
        t0 = time.perf_counter()
        for k, name in enumerate(names):
            buf = io.StringIO()
            for stream in INLETS:
                for sp, base in SPECIES.items():
                    values = base + rng.normal(0, 2, HOURS) + np.sin(np.arange(HOURS) / 24 * 2 * np.pi) * 5
                    flags = rng.random(HOURS) < 0.03
                    for h, v, bad in zip(hours, values.tolist(), flags.tolist()):
                        buf.write(f"{name}\t{stream}\t{sp}\t{h.isoformat()}\t55\t{v:.4f}\t0.5\t0.05\t58\t{v:.4f}\t0.6\t"
                                  f"0.06\t0\t{'N' if bad else 'U'}\t{end.isoformat()}\n")
            with conn.cursor().copy("COPY hourly (station, stream, species, hour, n, mean, std, repeatability, n_all, "
                                    "mean_all, std_all, repeatability_all, n_spikes, flag, computed_at) FROM STDIN") as cp:
                cp.write(buf.getvalue())
            seq = 0
            cal, fit, tgt, tv = io.StringIO(), io.StringIO(), io.StringIO(), io.StringIO()
            for day in range(HOURS // 24):
                t = start + timedelta(days=day, hours=2)
                seq += 1
                cal.write(f"{name}\t{seq}\tcal-{seq}\t{t.isoformat()}\t{(t + timedelta(minutes=40)).isoformat()}\t[]\t"
                          f"{t.isoformat()}\t\n")
                for sp in SPECIES:
                    fit.write(f"{name}\t{seq}\t{sp}\t[0.01, 1.0002]\t[0.01, -0.02, 0.01]\t0.99999\t0.015\t3\t\n")
                for j in range(4):
                    seq += 1
                    tt = t + timedelta(hours=1 + 6 * j)
                    tgt.write(f"{name}\t{seq}\ttgt-{seq}\t{tt.isoformat()}\t{'TGT-LT' if j == 0 else 'TGT-ST'}\t"
                              f"{tt.isoformat()}\t\n")
                    for sp, base in SPECIES.items():
                        bias = float(rng.normal(0, 0.05))
                        tv.write(f"{name}\t{seq}\t{sp}\t{base + bias}\t{base}\t{bias}\t{str(abs(bias) < 0.1).lower()}\t\n")
            for table, cols, data in (
                    ("calibration", "station, seq, id, time_start, time_end, standards, received_at, store", cal),
                    ("calibration_fit", "station, seq, species, coefficients, residuals, r2, rmse, n, store", fit),
                    ("target", "station, seq, id, time, cylinder, received_at, store", tgt),
                    ("target_value", "station, seq, species, measured, assigned, bias, within_goal, store", tv)):
                with conn.cursor().copy(f"COPY {table} ({cols}) FROM STDIN") as cp:
                    cp.write(data.getvalue())
            last = end - timedelta(minutes=2)
            conn.execute("INSERT INTO minute (station, seq, time, device, stream, flag, reasons, n_total, diagnostics, "
                         "received_at, species, store) VALUES (%s, %s, %s, 'g2401', 'inlet:100m', 'U', '[]', 60, '{}', "
                         "%s, '{}', '')", (name, seq + 1, last, end))
            conn.execute("INSERT INTO station (station, first_seen, last_seen, last_seq, minutes, calibrations, targets, "
                         "store) VALUES (%s, %s, %s, %s, %s, %s, %s, '')",
                         (name, start, end, seq + 1, HOURS * 60, HOURS // 24, HOURS // 6))
            conn.execute("INSERT INTO status (station, state, time, received_at, backlog, agent_version, interval_s, "
                         "details) VALUES (%s, 'up', %s, %s, 0, '0.1.0', 60, %s)",
                         (name, end, end, json.dumps({"devices": {"g2401": {"connected": True, "clock_offset_s": 0.4}}})))
            if k % 10 == 9:
                print(f"  loaded {k + 1} stations ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
        t0 = time.perf_counter()
        store = PostgresStore(dsn, SCHEMA)
        with store.aggregation_transaction():
            for name in names:
                store.refresh_daily(name, hours)  # as the aggregator does after replacing hours
        store.close()
        print(f"  daily table of {STATIONS} stations built in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        conn.execute("ANALYZE")
    return names


# -- /api/targets and /api/calibrations as they were (the "before" page): every record, then strftime --


def _before_target_terms(target_s, cylinders, calibration_end_s, long_term=None, window_s=2 * 3600.0):
    if long_term:
        return ["long" if c in long_term else "short" for c in cylinders]
    ends = np.sort(np.asarray(calibration_end_s, dtype=float))
    out = []
    for t in np.asarray(target_s, dtype=float):
        i = np.searchsorted(ends, t, side="right") - 1
        out.append("long" if i >= 0 and 0 <= t - ends[i] <= window_s else "short")
    return out


def _before_calibration_checks(time_s, coefficients, residuals, rmse, reference, goal):
    out, prev = [], np.nan
    for t, c, r, e in zip(time_s, coefficients, residuals, rmse):
        v = float(np.polynomial.polynomial.polyval(reference, np.asarray(c, dtype=float))) if c else np.nan
        drift = v - prev
        res = np.abs(np.asarray(r, dtype=float))
        mx = float(res.max()) if res.size else np.nan
        rm = float(e) if e is not None else (float(np.sqrt(np.mean(res**2))) if res.size else np.nan)
        out.append(CalibrationCheck(int(t), v, float(drift), mx, rm,
                                          bool(not np.isfinite(drift) or abs(drift) <= goal),
                                          bool(not np.isfinite(mx) or mx <= goal)))
        prev = v
    return out


def _before_targets(store, config, station, start, end, by_day=False):  # before: every run, whatever the window
    _f = views._f
    runs = store.targets(station, start, end)
    cals = store.calibrations(station, start - timedelta(days=1), end)
    terms = _before_target_terms(np.array([r.time.timestamp() for r in runs]), [r.cylinder for r in runs],
                                 np.array([c.time_end.timestamp() for c in cals]),
                                 set(config.station(station).long_term_targets))
    series: dict = {}
    for run, term in zip(runs, terms):
        for sp, v in run.values.items():
            if v.bias is None:
                continue
            g = series.setdefault((run.cylinder, sp, term), {"time": [], "bias": []})
            g["time"].append(iso_utc(run.time))
            g["bias"].append(v.bias)
    out = []
    for (cyl, sp, term), g in sorted(series.items()):
        goal = config.qc.goals.get(sp, float("nan"))
        t = np.array([datetime.fromisoformat(x.replace("Z", "+00:00")).timestamp() for x in g["time"]])
        s = bias_summary(t, np.array(g["bias"]), goal)
        out.append({"cylinder": cyl, "species": sp, "term": term, "goal": _f(goal), **g,
                    "summary": {"n": s.n, "mean": _f(s.mean), "std": _f(s.std), "latest": _f(s.latest),
                                "drift_per_year": _f(s.drift_per_year), "n_outside_goal": s.n_outside_goal,
                                "within_goal": s.within_goal}})
    return {"station": station, "targets": out}


def _before_calibrations(store, config, station, start, end):
    _f = views._f
    cals = store.calibrations(station, start, end)
    out = []
    for sp in sorted({sp for c in cals for sp in c.fits}):
        with_fit = [c for c in cals if sp in c.fits]
        goal = config.qc.goals.get(sp, float("nan"))
        ref = config.qc.drift_reference.get(sp, float("nan"))
        checks = _before_calibration_checks(np.array([int(c.time_start.timestamp()) for c in with_fit]),
                                            [c.fits[sp].coefficients for c in with_fit],
                                            [c.fits[sp].residuals for c in with_fit],
                                            [c.fits[sp].rmse for c in with_fit], ref, goal)
        out.append({"species": sp, "goal": _f(goal), "reference": _f(ref),
                    "time": [iso_utc(c.time_start) for c in with_fit], "id": [c.id for c in with_fit],
                    "value_at_reference": [_f(k.value_at_reference) for k in checks],
                    "drift": [_f(k.drift) for k in checks], "max_abs_residual": [_f(k.max_abs_residual) for k in checks],
                    "rmse": [_f(k.rmse) for k in checks], "drift_ok": [k.drift_ok for k in checks],
                    "residuals_ok": [k.residuals_ok for k in checks]})
    return {"station": station, "calibrations": out}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--dsn", default=os.environ.get("GHGNET_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test"))
    args = ap.parse_args()
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    with psycopg.connect(args.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
    try:
        t0 = time.perf_counter()
        names = load(args.dsn, end)
        print(f"loaded {STATIONS} stations x {HOURS} h x {len(INLETS)} inlets x {len(SPECIES)} species "
              f"= {STATIONS * HOURS * len(INLETS) * len(SPECIES):,} hourly rows in {time.perf_counter() - t0:.0f} s")
        run(args, names)
    finally:
        with psycopg.connect(args.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))


def run(args, names: list[str]) -> None:
    config = CentralConfig.model_validate({
        "storage": {"backend": "postgresql", "dsn": args.dsn, "schema": SCHEMA},
        "stations": {n: {"latitude": 30 + i % 10, "longitude": 100 + i // 10} for i, n in enumerate(names)}})
    store = PostgresStore(args.dsn, SCHEMA)
    token = Accounts(store).new_token(Accounts(store).add("bench", "viewer", "bench-pass-1").name)
    statements = [0]
    execute = store._execute

    def counted(*a, **k):
        statements[0] += 1
        return execute(*a, **k)

    store._execute = counted
    server = WebServer(config, "127.0.0.1", 0, store=store).start()
    u = urlsplit(server.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)

    def get(path: str) -> tuple[float, int, int]:
        before = statements[0]
        t = time.perf_counter()
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        res = conn.getresponse()
        body = res.read()
        took = time.perf_counter() - t
        assert res.status == 200, (path, res.status, body[:300])
        return took, statements[0] - before - 1, len(body)  # less the token's own lookup (1 statement)

    year = ["/api/hourly?station={s}&days=365", "/api/targets?station={s}&days=365",
            "/api/calibrations?station={s}&days=365", "/api/flags?station={s}",
            "/api/events?station={s}&days=365", "/api/completeness?station={s}&days=365"]
    pages = {  # name: (calls, daily means from the daily table, target/calibration history as now)
        "station page (30 days)": (["/api/hourly?station={s}&days=30", "/api/targets?station={s}&days=30",
                                    "/api/calibrations?station={s}&days=30", "/api/flags?station={s}",
                                    "/api/events?station={s}&days=30", "/api/completeness?station={s}&days=30"],
                                   True, True),
        "station page (365 days), daily means summed from the hourly table (before)": (year, False, True),
        "station page (365 days), target/calibration history from every record (before)": (year, True, False),
        "station page (365 days), as now": (year, True, True),
        "station table / map": (["/api/fleet"], True, True),
    }
    summed = daily.daily_series
    history = views.targets, views.calibrations
    rng = random.Random(2)
    times = {p: {c: [] for c in calls} for p, (calls, *_) in pages.items()}
    queries = {p: {c: [] for c in calls} for p, (calls, *_) in pages.items()}
    sizes = {p: {c: [] for c in calls} for p, (calls, *_) in pages.items()}
    page_times: dict[str, list[float]] = {p: [] for p in pages}
    end = datetime.now(UTC)
    for s in names[:3]:  # the answers are the same before and now
        for now, before in zip(history, (_before_targets, _before_calibrations)):
            a, b = (f(store, config, s, end - timedelta(days=365), end) for f in (now, before))
            assert a == b, (now.__name__, s)
    print("/api/targets and /api/calibrations: the same answers as before (3 stations, 365 days)")
    load_before = os.getloadavg()
    try:
        get(pages["station page (30 days)"][0][0].format(s=names[0]))  # warm
        for k in range(args.rounds):
            s = rng.choice(names)
            for page, (calls, from_table, history_now) in pages.items():
                if "fleet" in calls[0] and k % 3:
                    continue  # the table and map: a third of the rounds
                # before the daily table: every day summed from the hours (central/web/daily.py)
                daily.daily_series = summed if from_table else functools.partial(summed, from_table=False)
                # before: every target run's and calibration's record (answers.py calls views.*)
                views.targets, views.calibrations = history if history_now else (_before_targets,
                                                                                 _before_calibrations)
                total = 0.0
                for c in calls:
                    took, n, size = get(c.format(s=s))
                    times[page][c].append(took)
                    queries[page][c].append(n)
                    sizes[page][c].append(size)
                    total += took
                page_times[page].append(total)
        daily.daily_series = summed
        views.targets, views.calibrations = history
        load_after = os.getloadavg()
        print(f"\nload average (1, 5, 15 min) before {' '.join(f'{x:.2f}' for x in load_before)}, after "
              f"{' '.join(f'{x:.2f}' for x in load_after)}, on {os.cpu_count()} cores")
        for page, (calls, *_) in pages.items():
            pt = page_times[page]
            print(f"\n{page}: {len(pt)} loads, SQL statements per load {sum(max(q) for q in queries[page].values())}, "
                  f"page p50 {statistics.median(pt) * 1000:.0f} ms, "
                  f"p95 {np.percentile(pt, 95) * 1000:.0f} ms (calls one after another)")
            print(f"  {'call':<44} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} {'queries':>8} {'kB':>7}")
            for c in calls:
                t = np.array(times[page][c]) * 1000
                print(f"  {c.split('?')[0] + '?' + c.split('?')[1].replace('{s}', 'S') if '?' in c else c:<44} "
                      f"{np.percentile(t, 50):7.1f} {np.percentile(t, 95):7.1f} {t.max():7.1f} "
                      f"{max(queries[page][c]):8d} {statistics.mean(sizes[page][c]) / 1000:7.0f}")
    finally:
        conn.close()
        server.stop()
        store.close()


if __name__ == "__main__":
    main()
