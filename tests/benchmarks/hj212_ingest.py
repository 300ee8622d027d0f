"""Benchmark: 1,000 simulated HJ 212 data loggers on loopback into central's HJ 212 listener, and
central's MQTT path in the same run.

HJ 212: central's real `Hj212Listener` (asyncio, its own SQLite store, synchronous=FULL) in this
process; the loggers (`simulators/hj212_logger.py`) in a child process, each its own TCP connection,
sending minute packets (Flag 5), one in flight per logger (a logger waits for its answer; `--window`
for more). Two runs: paced (the loggers together offer `--rate` packets/s, each at a random phase)
and saturated (each logger sends its next packet as soon as its 9014 is back: with N loggers the
latency is then N / throughput by Little's law, so only the paced run's p99 says how fast an answer
comes at a given load). Figures: packets stored per second at central (from the first stored packet
to the last), the loggers' send -> 9014 latencies (p50, p99; stamped when the answer's bytes are
read, and again without each logger's first packet, which meets the cold start), CPU per packet of
central and loggers. When central stores less than the paced rate (a busy machine), the paced run
is a saturated one too and its latencies are the backlog's: the line says so. `--loop uvloop`
runs the listener on uvloop's loop instead of asyncio's (the default); the loggers take uvloop's
whenever it is installed (half their CPU per packet: the load generator shares the cores).

MQTT: `tests/benchmarks/replay.py`'s end-to-end replay (a station's real Forwarder in a child
process, a real mosquitto, central's real Receiver): records stored per second, in the same run.

    .venv/bin/python tests/benchmarks/hj212_ingest.py [--loggers 1000] [--packets 30] [--rate 5000]
        [--window 1] [--mqtt-records 20000] [--rounds 1] [--loop auto|asyncio|uvloop] [--commit-max N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

PW = "123456"
PREFIX = "GHG"


def thread_cpu(thread) -> float:
    """CPU seconds a thread of this process has used (0 when it is gone)."""
    try:
        return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
    except (OSError, TypeError):
        return 0.0


def hj212_round(tmp: Path, loggers: int, packets: int, window: int, speed: float | None, loop: str = "asyncio",
                commit_max: int | None = None) -> dict:
    from datetime import UTC, datetime

    from central.config import CentralConfig
    from central.hj212.listener import Hj212Listener
    from simulators.hj212_logger import logger_mn

    config = CentralConfig.model_validate({
        "storage": {"backend": "sqlite", "path": str(tmp / "central-hj212.sqlite")},
        "hj212": {"listen": "127.0.0.1:0", "timezone": "UTC", "max_connections": loggers + 10, "event_loop": loop,
                  **({"commit_max_packets": commit_max} if commit_max else {}),
                  "loggers": [{"mn": logger_mn(PREFIX, i), "pw": PW, "station": f"lg-{i}"} for i in range(loggers)]},
    })
    expected = loggers * packets
    # the loggers' minutes are in the past of this clock (a logger sending its backlog)
    listener = Hj212Listener(config, now=lambda: datetime(2026, 6, 1, tzinfo=UTC)).start()
    try:
        host, port = listener.address
        cpu0 = time.process_time()
        self0 = resource.getrusage(resource.RUSAGE_SELF)
        loop_cpu0 = thread_cpu(listener._thread)
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        child_cpu0 = ru0.ru_utime + ru0.ru_stime
        child = subprocess.Popen(
            [sys.executable, "-m", "simulators.hj212_logger", "--host", host, "--port", str(port), "--loggers",
             str(loggers), "--packets", str(packets), "--mn-prefix", PREFIX, "--pw", PW, "--window", str(window),
             "--start", "2026-03-01T00:00:00", "--overtime", "10",  # the loggers: uvloop's loop when installed
             *(["--speed", str(speed)] if speed else [])],
            stdout=subprocess.PIPE, text=True, cwd=REPO)
        first_at = first_n = None
        deadline = time.monotonic() + 600
        while listener.stats["packets_stored"] < expected:
            n = listener.stats["packets_stored"]
            if first_at is None and n > 0:
                first_at, first_n = time.monotonic(), n
            if child.poll() is not None and listener.stats["packets_stored"] < expected:
                time.sleep(0.5)
                if listener.stats["packets_stored"] < expected:
                    break
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        done_at = time.monotonic()
        central_cpu = time.process_time() - cpu0
        self1 = resource.getrusage(resource.RUSAGE_SELF)
        central_sys = self1.ru_stime - self0.ru_stime
        loop_cpu = thread_cpu(listener._thread) - loop_cpu0
        store_cpu = sum(thread_cpu(t) for t in listener._executor._threads)
        out = child.communicate(timeout=120)[0]
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        child_cpu = ru.ru_utime + ru.ru_stime - child_cpu0
        loggers_summary = json.loads(out.strip().splitlines()[-1])
        stored = listener.stats["packets_stored"]
    finally:
        listener.stop()
    if first_at is None or first_n is None:
        raise SystemExit(f"nothing stored: {dict(listener.stats)}")
    return {"stored": stored, "expected": expected, "rate": (stored - first_n) / max(1e-9, done_at - first_at),
            "loggers": loggers_summary, "central_cpu_us_per_packet": 1e6 * central_cpu / max(1, stored),
            "loggers_cpu_us_per_packet": 1e6 * child_cpu / max(1, stored),
            "loggers_send_cpu_us_per_packet": 1e6 * loggers_summary["cpu_s"]["send"] / max(1, stored),
            "loggers_prepare_cpu_us_per_packet": 1e6 * loggers_summary["cpu_s"]["prepare"] / max(1, stored),
            "load": os.getloadavg()[0],
            "central_sys_us_per_packet": 1e6 * central_sys / max(1, stored),
            "loop_cpu_us_per_packet": 1e6 * loop_cpu / max(1, stored),
            "store_cpu_us_per_packet": 1e6 * store_cpu / max(1, stored),
            "stats": dict(listener.stats)}


def mqtt_round(tmp: Path, n: int) -> dict:
    import replay  # tests/benchmarks/replay.py: the MQTT path's end-to-end measurement, reused

    from simulators.broker import MosquittoBroker
    from station_agent.forwarding.forwarder import ForwardingConfig

    filled = tmp / "station-filled.sqlite"
    replay.fill_station(filled, n)
    defaults = ForwardingConfig()
    broker = MosquittoBroker(tmp / "mosquitto").start()
    try:
        e2e = replay.end_to_end(broker, tmp, filled, n, defaults.batch_size, defaults.window_records, True)
    finally:
        broker.stop()
    return {"stored_rate": n / e2e["stored_s"], "acked_rate": n / e2e["acked_s"]}


def print_hj212(title: str, hj: dict) -> None:
    lat = hj["loggers"]["latency_ms"]
    print(f"  {title}: {hj['stored']}/{hj['expected']} stored, lost {hj['loggers']['lost']}, "
          f"resent {hj['loggers']['resent']}" + (f", sent late (window full at their time) {hj['loggers']['late']}"
                                                  if hj['loggers'].get('late') else ""))
    print(f"    packets stored at central:  {hj['rate']:8,.0f} packets/s   target >= 5,000")
    print(f"    time to 9014:               p50 {lat['p50']} ms, p90 {lat['p90']} ms, p99 {lat['p99']} ms, "
          f"max {lat['max']} ms   target p99 < 100 ms")
    warm = hj["loggers"]["latency_ms_after_first"]
    print(f"      after each logger's first: p50 {warm['p50']} ms, p90 {warm['p90']} ms, p99 {warm['p99']} ms, "
          f"max {warm['max']} ms (the first packets meet the cold start: the store's first commit, the connections)")
    print(f"    CPU per packet:             central {hj['central_cpu_us_per_packet']:.0f} us (of which "
          f"{hj['central_sys_us_per_packet']:.0f} in the kernel; event loop "
          f"{hj['loop_cpu_us_per_packet']:.0f}, store thread {hj['store_cpu_us_per_packet']:.0f}), loggers "
          f"{hj['loggers_send_cpu_us_per_packet']:.0f} us sending (+ "
          f"{hj['loggers_prepare_cpu_us_per_packet']:.0f} us building the frames beforehand; child process in "
          f"all {hj['loggers_cpu_us_per_packet']:.0f} us)   load average at the end {hj['load']:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--loggers", type=int, default=1000)
    ap.add_argument("--packets", type=int, default=30, help="minute packets per logger")
    ap.add_argument("--rate", type=float, default=5000.0,
                    help="offered packets/s of the paced run (all loggers together); 0: skip it")
    ap.add_argument("--window", type=int, default=1, help="packets in flight per logger")
    ap.add_argument("--mqtt-records", type=int, default=20_000, help="0: skip the MQTT path")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--loop", choices=("asyncio", "uvloop", "auto"), default="asyncio",
                    help="the listener's event loop ([hj212] event_loop; the loggers use uvloop's when installed)")
    ap.add_argument("--commit-max", type=int, default=None, help="[hj212] commit_max_packets (default: the config's)")
    args = ap.parse_args()

    from central.receiver import tune_for_ingest
    from ghgnet.logs import configure_logging

    configure_logging(None, "warning", "json", stream=sys.stderr)
    tune_for_ingest()  # as the daemon does
    # paced: each logger one minute packet every loggers/rate seconds, i.e. a simulated speed of
    # 60 * rate / loggers minutes per minute; saturated: as fast as the 9014s come back
    speed = 60.0 * args.rate / args.loggers if args.rate else None
    rounds = []
    with tempfile.TemporaryDirectory(prefix="ghgnet-hj212-") as d:
        for k in range(args.rounds):
            tmp = Path(d) / f"round-{k}"
            tmp.mkdir()
            paced = hj212_round(tmp / "paced", args.loggers, args.packets, args.window, speed, args.loop,
                                args.commit_max) if speed else None
            saturated = hj212_round(tmp / "saturated", args.loggers, args.packets, args.window, None, args.loop,
                                    args.commit_max)
            mq = mqtt_round(tmp, args.mqtt_records) if args.mqtt_records else None
            rounds.append((paced, saturated, mq))
    for k, (paced, saturated, mq) in enumerate(rounds, 1):
        print(f"round {k}: HJ 212, {args.loggers} loggers x {args.packets} minute packets (Flag 5, window "
              f"{args.window}), central's SQLite store (synchronous=FULL), event loop {args.loop}")
        if paced:
            print_hj212(f"paced, offered {args.rate:,.0f} packets/s (simulated speed {speed:g})", paced)
            if paced["rate"] < 0.9 * args.rate:
                print(f"    (central stored {paced['rate']:,.0f}/s of the {args.rate:,.0f}/s offered: it was "
                      "saturated, so these latencies are its backlog's, not those of the paced load)")
        print_hj212("saturated, each logger sends its next packet on the 9014", saturated)
        if mq:
            print(f"  MQTT replay ({args.mqtt_records} minute records, tests/benchmarks/replay.py): stored "
                  f"{mq['stored_rate']:,.0f} records/s, acked back {mq['acked_rate']:,.0f} records/s")
    print(f"cpus {os.cpu_count()}; load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
