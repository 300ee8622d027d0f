"""Benchmark: half-hourly eddy-covariance processing against reading the same block from a file.

1. One 30-minute 20 Hz block of the simulated flux site (36,000 records, 9 columns) is written as
   TOA5; the time to read it back (read_toa5) is measured next to the time to turn its columns
   into a FluxBlock and process it (process_half_hour), best of --repeats each. Target: processing
   at most twice the read time. The TOB1 read time of the same block is printed too.
2. A year of half hours (17,520): --half-hours blocks of a simulated day (diurnal cycle) are
   read from TOA5 and processed, one after the other and then on two worker processes (this
   machine has 2 cores), and the year is extrapolated from the measured rate (--year runs all
   17,520 instead). Target: under an hour. The machine is shared, so the CPU seconds a half hour
   (process_time, each pool worker its own) are printed beside the wall times, with the year
   they project on the 2 cores, and the load average at each figure.

    flock /tmp/ghgnet-cpu.lock .venv/bin/python tests/benchmarks/flux.py [--repeats 5] [--half-hours 48] [--year] [--pool-only]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from drivers.campbell.toa5 import read_toa5, write_toa5
from drivers.campbell.tob1 import read_tob1, write_tob1
from drivers.rawtable import RawTable
from simulators.flux_site import FluxSiteSpec, simulate_day, simulate_half_hour
from station_agent.processing.flux import FluxSettings, LagWindow, block_from_columns, process_half_hour

HALF_HOURS_A_YEAR = 17520
TARGET_RATIO = 2.0
TARGET_YEAR_S = 3600.0
UNITS = {"u": "m/s", "v": "m/s", "w": "m/s", "ts": "K", "co2": "mmol/m^3", "h2o": "mmol/m^3",
         "pressure_pa": "Pa", "sonic_diag": "", "gas_diag": ""}
SETTINGS = FluxSettings(co2_lag=LagWindow(0.0, 2.0, 0.3), h2o_lag=LagWindow(0.0, 2.0, 0.3))


def as_table(sim) -> RawTable:
    n = len(sim.columns["w"])
    start = np.datetime64(sim.start.replace(tzinfo=None), "ns")
    time_ = start + (np.arange(n) * int(1e9 / sim.fs_hz)).astype("timedelta64[ns]")
    return RawTable(list(UNITS), list(UNITS.values()), {k: sim.columns[k] for k in UNITS}, time_)


def read_and_process(path: str) -> float:
    """Read one TOA5 half hour and process it; the CO2 flux (so the work is not optimised away)."""
    table = read_toa5(path)
    start = table.time[0].astype("datetime64[us]").item().replace(tzinfo=timezone.utc)
    return process_half_hour(block_from_columns(start, 20.0, table.columns), SETTINGS).co2_flux_umol_m2_s


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--half-hours", type=int, default=48)
    ap.add_argument("--year", action="store_true", help="process all 17,520 half hours of a year")
    ap.add_argument("--pool-only", action="store_true",
                    help="only the two-process run (with --year: the year as a site would process it, ~1/3 the time)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        sim = simulate_half_hour(FluxSiteSpec(), seed=1)
        table = as_table(sim)
        toa5, tob1 = Path(tmp) / "block.dat", Path(tmp) / "block.tob1"
        write_toa5(toa5, table)
        write_tob1(tob1, table, {k: "IEEE4" for k in UNITS})
        read_s = best(lambda: read_toa5(toa5), args.repeats)
        tob1_s = best(lambda: read_tob1(tob1), args.repeats)
        cols = read_toa5(toa5).columns
        proc_s = best(lambda: process_half_hour(block_from_columns(sim.start, 20.0, cols), SETTINGS), args.repeats)
        print(f"block: 36,000 records x {len(UNITS)} columns, TOA5 {toa5.stat().st_size / 1e6:.1f} MB")
        print(f"read TOA5 block: {read_s * 1000:.0f} ms (best of {args.repeats})")
        print(f"read TOB1 block: {tob1_s * 1000:.1f} ms (best of {args.repeats})")
        print(f"process block: {proc_s * 1000:.0f} ms (best of {args.repeats})")
        print(f"process / read TOA5: {proc_s / read_s:.2f} (target <= {TARGET_RATIO:.0f})"
              f" {'OK' if proc_s / read_s <= TARGET_RATIO else 'MISSED'}")

        count = HALF_HOURS_A_YEAR if args.year else args.half_hours
        day = datetime(2026, 6, 1, tzinfo=timezone.utc)
        paths = []
        for i in range(min(count, 12)):  # a few files of a simulated day, cycled through
            p = Path(tmp) / f"hh{i:02d}.dat"
            write_toa5(p, as_table(simulate_day(FluxSiteSpec(), 7, day + timedelta(hours=2 * i), 1)[0]))
            paths.append(str(p))
        work = [paths[i % len(paths)] for i in range(count)]
        blocks = [read_toa5(p).columns for p in paths]
        figures = []  # (label, wall s, CPU s, processes, load average after)
        if not args.pool_only:
            t0, c0 = time.perf_counter(), time.process_time()
            for i in range(count):
                process_half_hour(block_from_columns(day, 20.0, blocks[i % len(blocks)]), SETTINGS)
            figures.append(("process only, 1 process", time.perf_counter() - t0, time.process_time() - c0, 1,
                            os.getloadavg()[0]))
            t0, c0 = time.perf_counter(), time.process_time()
            for p in work:
                read_and_process(p)
            figures.append(("read TOA5 + process, 1 process", time.perf_counter() - t0, time.process_time() - c0,
                            1, os.getloadavg()[0]))
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(2) as pool:
            start_cpu = pool.map(worker_cpu_s, [0.2, 0.2])  # start-up (imports) outside the timing
            t0 = time.perf_counter()
            pool.map(read_and_process, work, chunksize=4)
            wall = time.perf_counter() - t0
            end_cpu = pool.map(worker_cpu_s, [0.2, 0.2])
        # each worker reports its own CPU time; the two calls may land on one worker, so take the
        # workers' totals by pid (a pid seen only once: its start value is the first it reported)
        figures.append(("read TOA5 + process, 2 processes", wall, _pool_cpu(start_cpu, end_cpu), 2,
                        os.getloadavg()[0]))
        how = "measured" if args.year else f"extrapolated from {count}"
        for label, wall, cpu, procs, load in figures:
            year = wall / count * HALF_HOURS_A_YEAR
            year_cpu = cpu / count * HALF_HOURS_A_YEAR / min(procs, os.cpu_count() or 1)
            print(f"year of half hours, {label}: {year / 60:.1f} min wall ({how}; {wall / count * 1000:.0f} ms a half"
                  f" hour) (target < {TARGET_YEAR_S / 60:.0f} min) {'OK' if year < TARGET_YEAR_S else 'MISSED'};"
                  f" CPU {cpu / count * 1000:.0f} ms a half hour = {year_cpu / 60:.1f} min on {procs} core(s)"
                  f" {'OK' if year_cpu < TARGET_YEAR_S else 'MISSED'}; load average {load:.1f}")
        print(f"load average at the end (1/5/15 min): {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
              f" on {os.cpu_count()} cores")


def worker_cpu_s(wait_s: float) -> tuple[int, float]:
    """(pid, CPU seconds so far) of a pool worker; the short wait lets both workers take one call."""
    time.sleep(wait_s)
    return os.getpid(), time.process_time()


def _pool_cpu(start: list[tuple[int, float]], end: list[tuple[int, float]]) -> float:
    first: dict[int, float] = {}
    for pid, cpu in start:
        first.setdefault(pid, cpu)
    last = dict(end)
    return sum(cpu - first.get(pid, 0.0) for pid, cpu in last.items())

if __name__ == "__main__":
    main()
