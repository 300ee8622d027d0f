"""Benchmark: the station agent's CPU and memory while acquiring from three simulated analyzers.

Runs `station-sim` (three Picarro G2401 on TCP) and `station-agent run` as real processes at
--speed X for a given real duration, then reads the agent's CPU time and peak RSS from /proc.
Prints one line per figure, with the targets and, measured in the same run, the peak RSS of a bare
interpreter that only imports the agent's modules (what the agent's own state adds on top).

    .venv/bin/python tests/benchmarks/acquisition.py [--speed 60] [--seconds 60]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COLUMNS = '["CO2", "CO2_dry", "CH4", "CH4_dry", "CO", "H2O", "CavityPressure", "CavityTemp"]'
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--speed", type=float, default=60.0)
    ap.add_argument("--seconds", type=float, default=60.0, help="real seconds to acquire")
    args = ap.parse_args()
    bindir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bench = "[control]\nport = 0\n" + "".join(
            f'\n[[instruments]]\nid = "picarro-{i}"\nmodel = "picarro.g2401"\nport = 0\nseed = {i}\ncolumns = {COLUMNS}\n'
            for i in range(1, 4)
        )
        (tmp / "bench.toml").write_text(bench)
        sim = subprocess.Popen([bindir / "station-sim", "run", "--config", tmp / "bench.toml", "--speed", str(args.speed)],
                               stdout=subprocess.PIPE, text=True)
        try:
            endpoints = json.loads(sim.stdout.readline())["instruments"]
            station = '[station]\nid = "bench-tower"\n[storage]\npath = "station.sqlite"\n[logging]\nformat = "json"\n'
            for dev, ep in endpoints.items():
                station += (f'\n[[analyzers]]\nid = "{dev}"\ndriver = "picarro.g2401"\nurl = "{ep["tcp"]}"\n'
                            f"poll_interval_s = 5\ncolumns = {COLUMNS}\n")
            (tmp / "station.toml").write_text(station)
            agent = subprocess.Popen([bindir / "station-agent", "run", "--config", tmp / "station.toml",
                                      "--speed", str(args.speed)], stdout=subprocess.DEVNULL)
            time.sleep(3)  # start-up (imports, database creation) is not acquisition
            cpu0, t0 = cpu_seconds(agent.pid), time.monotonic()
            time.sleep(args.seconds)
            cpu1, t1 = cpu_seconds(agent.pid), time.monotonic()
            rss = peak_rss_mb(agent.pid)
            agent.send_signal(signal.SIGTERM)
            agent.wait(30)
        finally:
            sim.send_signal(signal.SIGTERM)
            sim.wait(30)
        import sqlite3

        db = sqlite3.connect(tmp / "station.sqlite")
        raw, minutes = (db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("raw", "minute"))
    sim_hours = (t1 - t0) * args.speed / 3600
    bare = subprocess.run([sys.executable, "-c",
                           "import station_agent.agent, station_agent.cli, drivers.picarro.g2401, resource;"
                           "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"],
                          capture_output=True, text=True, check=True)
    bare_mb = int(bare.stdout) / 1024
    per_hour = (cpu1 - cpu0) / sim_hours
    print(f"acquisition: 3 analyzers, speed {args.speed:g}x, {sim_hours:.2f} simulated hours in {t1 - t0:.1f} s")
    print(f"acquisition: records stored {raw} raw, {minutes} minute")
    print(f"acquisition: agent CPU {per_hour:.1f} s per simulated hour (target < 100 s, i.e. {per_hour / 36:.2f} % of one core)")
    print(f"acquisition: agent peak RSS {rss:.1f} MB (target < 80 MB); bare interpreter with the same imports {bare_mb:.1f} MB")


if __name__ == "__main__":
    main()
