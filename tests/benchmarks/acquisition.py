"""Benchmark: the station agent's CPU and memory while acquiring from simulated analyzers.

Runs `station-sim` and `station-agent run` as real processes at --speed X for a given real
duration, then reads the agent's CPU time and peak RSS from /proc. Two stations:

  five-families  (default) a Picarro G2401 (TCP stream, a record every 1-2 s), a LI-COR LI-7820
                 (MQTT from its own mosquitto, 1 Hz), an LGR UGGA (streamed CSV, 1 Hz), a LI-COR
                 LI-850 (XML serial, streaming at 1 Hz) and a Vaisala GMP343 (polled every 2 s),
                 all behind one VICI valve with three standards and a target, calibrated as a
                 station would be (the schedule compressed so a run holds a calibration).
  three-picarro  three Picarro G2401 on TCP, no valve (the benchmark's first form).

Prints one line per figure with the targets: the agent's CPU seconds per simulated hour, its peak
RSS and, measured in the same run, the peak RSS of a bare interpreter that only imports the agent's
modules (what the agent's own state adds on top); per analyzer the records the simulator made and
the records the store holds (read through the store's API), and their ratio, which must be close
to 1 for the figures to mean anything (the agent kept up).

    .venv/bin/python tests/benchmarks/acquisition.py [--station five-families] [--speed 30] [--seconds 60]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

COLUMNS = '["CO2", "CO2_dry", "CH4", "CH4_dry", "CO", "H2O", "CavityPressure", "CavityTemp"]'
TICKS = os.sysconf("SC_CLK_TCK")
TARGET_CPU_S_PER_HOUR = 100.0
TARGET_RSS_MB = 80.0
# Below this share of the simulators' records stored, the agent did not keep up: the run fails.
MIN_STORED_RATIO = 0.95


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def control(address: str, request: dict) -> dict:
    """One request to the bench's JSON-lines control port (`address` HOST:PORT)."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(json.dumps(request).encode() + b"\n")
        reply = json.loads(conn.makefile().readline())
    if not reply.get("ok"):
        raise RuntimeError(f"bench control {request}: {reply}")
    return reply


# --------------------------------------------------------------------------- three Picarro

def three_picarro_bench() -> str:
    return "[control]\nport = 0\n" + "".join(
        f'\n[[instruments]]\nid = "picarro-{i}"\nmodel = "picarro.g2401"\nport = 0\nseed = {i}\ncolumns = {COLUMNS}\n'
        for i in range(1, 4)
    )


def three_picarro_station(endpoints: dict) -> str:
    station = '[station]\nid = "bench-tower"\n[storage]\npath = "station.sqlite"\n[logging]\nformat = "json"\n'
    for dev, ep in endpoints.items():
        station += (f'\n[[analyzers]]\nid = "{dev}"\ndriver = "picarro.g2401"\nurl = "{ep["tcp"]}"\n'
                    f"poll_interval_s = 5\ncolumns = {COLUMNS}\n")
    return station


# --------------------------------------------------------------------------- five families

# Valve ports: 1 inlet, 2-4 standards, 5 target (values for every species the analyzers measure).
CYLINDERS = [
    ("CAL-1", 2, "standard", {"co2": 390.0, "ch4": 1850.0, "co": 80.0, "n2o": 325.0}),
    ("CAL-2", 3, "standard", {"co2": 430.0, "ch4": 2000.0, "co": 200.0, "n2o": 337.0}),
    ("CAL-3", 4, "standard", {"co2": 470.0, "ch4": 2200.0, "co": 350.0, "n2o": 350.0}),
    ("TGT-1", 5, "target", {"co2": 420.0, "ch4": 1950.0, "co": 150.0, "n2o": 333.0}),
]


def _inline(d: dict) -> str:
    return "{ " + ", ".join(f"{k} = {v}" for k, v in d.items()) + " }"


def five_families_bench() -> str:
    bench = f"""[control]
port = 0

[[instruments]]
id = "picarro-1"
model = "picarro.g2401"
port = 0
seed = 1
columns = {COLUMNS}
record_interval_s = [1.0, 2.0]

[[instruments]]
id = "li7820-1"
model = "licor.li7820"
port = 0
seed = 2
serial = "TG20-01079"
record_interval_s = 1.0
diagnostics_every_s = 10.0

[[instruments]]
id = "ugga-1"
model = "lgr.ugga"
port = 0
seed = 3
layout = "2019"
date_order = "dmy"
record_interval_s = 1.0

[[instruments]]
id = "li850-1"
model = "licor.li850"
port = 0
seed = 4

[[instruments]]
id = "gmp343-1"
model = "vaisala.gmp343"
port = 0
seed = 5

[valve]
id = "valve-1"
model = "vici.multiposition"
port = 0
positions = 8
position = 1
seed = 1

[gas]
seed = 7

[[gas.inlets]]
name = "main"
port = 1
height_m = 20.0
"""
    for name, port, role, values in CYLINDERS:
        bench += f'\n[[gas.cylinders]]\nname = "{name}"\nport = {port}\nrole = "{role}"\n'
        bench += "".join(f"{k} = {v}\n" for k, v in values.items())
    return bench


def five_families_station(endpoints: dict) -> str:
    url = {dev: ep["url"] for dev, ep in endpoints.items()}
    station = f"""[station]
id = "bench-five"

[storage]
path = "station.sqlite"

[logging]
format = "json"

[processing]
min_samples = 10
close_after_s = 20
cavity_pressure_torr = [139.0, 141.0]
cavity_temp_c = [0.0, 50.0]

[[analyzers]]
id = "picarro-1"
driver = "picarro.g2401"
url = "{url['picarro-1']}"
poll_interval_s = 5
columns = {COLUMNS}

[[analyzers]]
id = "li7820-1"
driver = "licor.li7820"
url = "{url['li7820-1']}"
poll_interval_s = 5

[[analyzers]]
id = "ugga-1"
driver = "lgr.ugga"
url = "{url['ugga-1']}"
poll_interval_s = 5
date_order = "dmy"
analyzer_timezone = "UTC"
silent_s = 600

[[analyzers]]
id = "li850-1"
driver = "licor.li850"
url = "{url['li850-1']}"
mode = "stream"
outrate_s = 1
poll_interval_s = 5
co2_basis = "wet"
water_correction = {{ co2 = [-0.01, 0.0] }}

[[analyzers]]
id = "gmp343-1"
driver = "vaisala.gmp343"
url = "{url['gmp343-1']}"
poll_interval_s = 2

[[valves]]
id = "valve-1"
driver = "vici.multiposition"
url = "{url['valve-1']}"
positions = 8
safe_position = 1

[sampling]
valve = "valve-1"
safe_stream = "inlet:main"
calibrate_at_start = true
settle_s = 2
streams = [
  {{ name = "inlet:main", port = 1, flush_s = 180 }},
"""
    for name, port, role, _ in CYLINDERS:
        prefix = "cal" if role == "standard" else "target"
        station += f'  {{ name = "{prefix}:{name}", port = {port}, flush_s = 240 }},\n'
    station += """]
ambient = [{ stream = "inlet:main", duration_s = 1200 }]

[[sampling.calibrations]]
name = "calibration"
standards = ["CAL-1", "CAL-2", "CAL-3"]
measure_s = 300
cycles = 1
use_last_minutes = 3
schedule = { interval_hours = 4 }

[[sampling.targets]]
name = "target"
cylinder = "TGT-1"
measure_s = 300
use_last_minutes = 3
schedule = { interval_hours = 2, offset_hours = 1 }
"""
    for name, _, role, values in CYLINDERS:
        station += f'\n[[cylinders]]\nid = "{name}"\nrole = "{role}"\nassigned = {_inline(values)}\npressure_bar = 120\n'
    return station


STATIONS = {
    # name: (bench TOML, station TOML from the bench's endpoints, analyzers, driver modules to import)
    "three-picarro": (three_picarro_bench, three_picarro_station, ["picarro-1", "picarro-2", "picarro-3"],
                      ["drivers.picarro.g2401"]),
    "five-families": (five_families_bench, five_families_station,
                      ["picarro-1", "li7820-1", "ugga-1", "li850-1", "gmp343-1"],
                      ["drivers.picarro.g2401", "drivers.licor.li78xx", "drivers.lgr.ugga", "drivers.licor.li8x0",
                       "drivers.vaisala.gmp343", "drivers.vici.multiposition"]),
}


def made_counts(address: str, analyzers: list[str]) -> dict[str, int]:
    """Per analyzer the records its simulator has made so far (a polled one: the polls it answered)."""
    stats = control(address, {"cmd": "stats"})["stats"]
    return {dev: int(stats[dev]["produced"]) for dev in analyzers}


def stored_counts(path: Path, analyzers: list[str]) -> dict[str, tuple[int, int]]:
    """Per analyzer (raw readings, minute records) the store holds, through its read-only API (the
    agent may be running)."""
    from station_agent.storage.store import StationStore

    store = StationStore(path, read_only=True)
    try:
        start, end = datetime(2000, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC)
        return {dev: (sum(1 for _ in store.raw_rows(start, end, dev)), sum(1 for _ in store.minute_rows(start, end, dev)))
                for dev in analyzers}
    finally:
        store.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--station", choices=sorted(STATIONS), default="five-families")
    ap.add_argument("--speed", type=float, default=30.0)
    ap.add_argument("--seconds", type=float, default=60.0, help="real seconds to acquire")
    ap.add_argument("--log", type=Path, help="keep the agent's log (JSON lines) in this file")
    args = ap.parse_args()
    bench_toml, station_toml, analyzers, modules = STATIONS[args.station]
    bindir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "bench.toml").write_text(bench_toml())
        sim = subprocess.Popen([bindir / "station-sim", "run", "--config", tmp / "bench.toml", "--speed", str(args.speed)],
                               stdout=subprocess.PIPE, text=True)
        try:
            started = json.loads(sim.stdout.readline())
            db = tmp / "station.sqlite"
            (tmp / "station.toml").write_text(station_toml(started["instruments"]))
            log = (tmp / "agent.log").open("w")
            agent = subprocess.Popen([bindir / "station-agent", "run", "--config", tmp / "station.toml",
                                      "--speed", str(args.speed)], stdout=log, stderr=subprocess.STDOUT)
            time.sleep(3)  # start-up (imports, database creation) is not acquisition
            # Made and stored are both counted at the window's two ends while the agent runs, so the
            # records still on their way at either end (up to a poll interval) cancel out.
            made0, stored0 = made_counts(started["control"], analyzers), stored_counts(db, analyzers)
            cpu0, t0 = cpu_seconds(agent.pid), time.monotonic()
            time.sleep(args.seconds)
            cpu1, t1 = cpu_seconds(agent.pid), time.monotonic()
            rss = peak_rss_mb(agent.pid)
            made1, stored1 = made_counts(started["control"], analyzers), stored_counts(db, analyzers)
            agent.send_signal(signal.SIGTERM)
            stopping = time.monotonic()
            try:
                agent.wait(60)
            except subprocess.TimeoutExpired:
                agent.kill()
                sys.exit("acquisition: the agent did not stop within 60 s of SIGTERM; its log ends:\n"
                         + "".join((tmp / "agent.log").read_text().splitlines(True)[-20:]))
            stop_s = time.monotonic() - stopping
        finally:
            sim.send_signal(signal.SIGTERM)
            sim.wait(30)
        stored = stored_counts(db, analyzers)
        if args.log:
            args.log.write_text((tmp / "agent.log").read_text())
    sim_hours = (t1 - t0) * args.speed / 3600
    bare = subprocess.run([sys.executable, "-c",
                           f"import station_agent.agent, station_agent.cli, {', '.join(modules)}, resource;"
                           "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"],
                          capture_output=True, text=True, check=True)
    bare_mb = int(bare.stdout) / 1024
    per_hour = (cpu1 - cpu0) / sim_hours
    print(f"acquisition: station {args.station}, {len(analyzers)} analyzers, speed {args.speed:g}x, "
          f"{sim_hours:.2f} simulated hours in {t1 - t0:.1f} s")
    short = []
    for dev in analyzers:
        made_n, stored_n = made1[dev] - made0[dev], stored1[dev][0] - stored0[dev][0]
        ratio = stored_n / made_n if made_n else 0.0
        raw, minutes = stored[dev]
        print(f"acquisition: {dev:<10} in the window made {made_n:6d}, stored {stored_n:6d} ({ratio:6.1%}); "
              f"store holds {raw:6d} raw, {minutes:4d} minute")
        if ratio < MIN_STORED_RATIO or minutes == 0:
            short.append(f"{dev} {stored_n}/{made_n}, {minutes} minutes")
    print(f"acquisition: records stored {sum(r for r, _ in stored.values())} raw, "
          f"{sum(m for _, m in stored.values())} minute")
    print(f"acquisition: agent CPU {per_hour:.1f} s per simulated hour (target < {TARGET_CPU_S_PER_HOUR:g} s, "
          f"i.e. {per_hour / 36:.2f} % of one core)")
    print(f"acquisition: agent stopped {stop_s:.1f} s after SIGTERM")
    print(f"acquisition: agent peak RSS {rss:.1f} MB (target < {TARGET_RSS_MB:g} MB); "
          f"bare interpreter with the same imports {bare_mb:.1f} MB")
    if short:
        sys.exit(f"acquisition: the agent did not keep up (stored/made below {MIN_STORED_RATIO:.0%}): {', '.join(short)}")


if __name__ == "__main__":
    main()
