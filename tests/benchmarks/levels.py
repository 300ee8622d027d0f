"""Benchmark: what versioned data levels cost the aggregator and the minute export.

A station's 30 days of inlet minutes (43,200 minute records, 3 species) in a fresh SQLite store;
then, in the same run and in rounds (fastest of each kept: this VM's speed drifts):

- `aggregation_minutes` over the 30 days (one aggregation pass after a 30-day replay loads them
  all): the old ranking over station copies only (copied here as it was) against the versioned one,
  before and after a central reprocess run gave every minute a second version;
- a whole aggregation of the 720 hours, and the part of it the hours' versions take;
- the minute read of an export: `minutes()` (every stored row, what the export read before) against
  `minute_versions(..., "latest")`.

Run: flock /tmp/ghgnet-cpu.lock .venv/bin/python tests/benchmarks/levels.py [rounds]
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from central.aggregation.worker import aggregate_all
from central.config import CentralConfig
from central.store import open_store
from central.store.levels import NewMinuteVersion
from central.store.species import load_species
from ghgnet.wire import MinuteWire, ParsedBatch, SpeciesStats

T0 = datetime(2026, 3, 1, tzinfo=UTC)
N = 43_200


def old_aggregation_minutes(store, station, start, end):
    """aggregation_minutes before data levels (central/store/hourly.py at e6adeeb)."""
    rows = store._query(
        "SELECT seq, time, device, stream, flag, species, received_at FROM minute "
        "WHERE station = ? AND time >= ? AND time < ? AND stream LIKE ? ORDER BY time, seq",
        (station, store._t(start), store._t(end), "inlet:%"))
    rank = [0] * len(rows)
    for k, i in enumerate(sorted(range(len(rows)), key=lambda i: (rows[i][6], rows[i][0]))):
        rank[i] = k
    out = []
    for i, r in enumerate(rows):
        t = store._from_t(r[1])
        for sp, v in load_species(r[5]).items():
            out.append((rank[i], t, r[2], r[3], r[4], sp, v.cal_mean, v.std, v.n))
    return out


def fill(store) -> None:
    sp = {"co2": SpeciesStats(mean=420.1, std=0.05, n=55, raw_mean=419.8, cal_mean=420.1),
          "ch4": SpeciesStats(mean=2000.1, std=0.5, n=55, raw_mean=1999.0, cal_mean=2000.1),
          "co": SpeciesStats(mean=150.0, std=2.0, n=55, raw_mean=149.0, cal_mean=150.0)}
    for k in range(0, N, 5000):
        recs = [MinuteWire(seq=i + 1, time=T0 + timedelta(minutes=i), device="pic-1", stream="inlet:top",
                           species=sp, flag="U", n_total=60, calibration_id="cal-pic-1-a")
                for i in range(k, min(N, k + 5000))]
        store.store_batch(ParsedBatch("st-a", "minute", T0, recs), T0 + timedelta(days=31))


def timed(fn, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main(rounds: int = 3) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store("sqlite", path=Path(tmp) / "c.sqlite")
        fill(store)
        end = T0 + timedelta(minutes=N)
        old = timed(lambda: old_aggregation_minutes(store, "st-a", T0, end), rounds)
        new = timed(lambda: store.aggregation_minutes("st-a", T0, end), rounds)
        read_old = timed(lambda: list(store.minutes("st-a", T0, end)), rounds)
        read_new = timed(lambda: list(store.minute_versions("st-a", T0, end, "latest")), rounds)
        print(f"aggregation_minutes, {N} minutes, station copies only: before {old * 1e6 / N:.2f} us/minute, "
              f"versioned {new * 1e6 / N:.2f} us/minute ({new / old:.2f}x)")
        print(f"export read, station copies only: minutes() {read_old * 1e6 / N:.2f} us/minute, "
              f"minute_versions(latest) {read_new * 1e6 / N:.2f} us/minute ({read_new / read_old:.2f}x)")
        hours = [T0 + timedelta(hours=h) for h in range(N // 60)]
        heads = timed(lambda: store._hour_versions("st-a", hours), rounds)
        store.mark_dirty("st-a", T0, end)
        t = time.perf_counter()
        aggregate_all(store, CentralConfig(), lambda: T0 + timedelta(days=31))
        full = time.perf_counter() - t
        print(f"an aggregation of the {len(hours)} hours: {full:.2f} s, of which the hours' versions "
              f"(_hour_versions, once) {heads:.2f} s ({heads / full:.0%})")
        versions = [NewMinuteVersion("pic-1", m.time, m.stream, m.seq, m.store, "U", (), ("a", "b"),
                                     {sp: {"mean": v.mean, "std": v.std, "n": v.n, "raw_mean": v.raw_mean,
                                           "cal_mean": v.cal_mean} for sp, v in m.species.items()})
                    for m in store.minutes("st-a", T0, end)]
        store.add_reprocess_run("st-a", T0, end, "bench", "bench", "bench", [], T0, versions)
        new2 = timed(lambda: store.aggregation_minutes("st-a", T0, end), rounds)
        read2 = timed(lambda: list(store.minute_versions("st-a", T0, end, "latest")), rounds)
        print(f"after a reprocess run (2 versions a minute): aggregation_minutes {new2 * 1e6 / N:.2f} us/minute "
              f"({new2 / old:.2f}x the copies-only figure before), minute_versions(latest) "
              f"{read2 * 1e6 / N:.2f} us/minute")
        store.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
