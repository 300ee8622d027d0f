"""What archiving the raw readings (L0) at central costs on the link: compressed bytes per raw
reading and per day for a 1 Hz three-species Picarro station (CO2, CH4, CO, H2O and the cavity
diagnostics), against the uncompressed JSON rows, measured in the same run.

A day of readings is made by the real parts: the simulated G2401 (simulators/picarro/g2401.py, one
record a second, its noise, an ambient series with a diurnal cycle and variability from
simulators/gas.py) gives its wire lines, the G2401 driver parses them into Readings, a sampling
cycle tags them (three inlets of 20 minutes each, 60 s flushing after each switch), the station
store keeps them (StationStore.insert_raw) and reads them back as the uploader does
(StationStore.raw_rows), and each window becomes a chunk (ghgnet/wire/raw.py) as the uploader makes
it. Printed, one line per figure: rows, the JSON rows (compact, what raw_rows yields), those rows
zlib-compressed as they are (the naive way), the chunks (frames, and with the MQTT overhead the
bandwidth cap counts), per reading and per day; encode and decode time per reading.

    .venv/bin/python tests/benchmarks/raw_archive.py [--hours 24] [--chunk-minutes 10]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

from drivers.picarro.g2401 import PicarroStatus
from drivers.registry import load_driver
from ghgnet.clock import ManualClock
from ghgnet.wire.raw import RAW_CONTENT_TYPE, encode_chunk
from simulators.gas import AmbientInlet, AmbientModel
from simulators.picarro.g2401 import PicarroSimConfig, PicarroSimulator
from station_agent.forwarding.forwarder import mqtt_packet_overhead
from station_agent.storage.store import StationStore

START = datetime(2026, 6, 1, tzinfo=UTC)
INLETS = ("inlet:10m", "inlet:50m", "inlet:100m")
STATUS = PicarroStatus(963)


def readings(hours: float):
    """A day of 1 Hz G2401 readings, through the simulator's wire lines and the driver's parser."""
    model = AmbientModel(base={"co2": 420.0, "ch4": 1950.0, "co": 120.0, "h2o": 1.2},
                         diurnal_amplitude={"co2": 8.0, "ch4": 30.0, "co": 20.0, "h2o": 0.2}, peak_hour_utc=4.0,
                         synoptic_std={"co2": 3.0, "ch4": 15.0, "co": 10.0, "h2o": 0.3}, synoptic_timescale_h=48.0,
                         variability_std={"co2": 1.5, "ch4": 8.0, "co": 5.0, "h2o": 0.05},
                         variability_timescale_s=300.0)
    inlets = {name: AmbientInlet(name, h, model) for name, h in zip(INLETS, (10.0, 50.0, 100.0))}
    clock = ManualClock(START)
    state = {"inlet": INLETS[0]}
    sim = PicarroSimulator(clock, PicarroSimConfig(record_interval_s=(1.0, 1.0), seed=7),
                           gas=lambda t: inlets[state["inlet"]](t))
    cls = load_driver("picarro.g2401")
    cfg = cls.Config.model_validate({"id": "picarro-1", "driver": "picarro.g2401", "url": "socket://x:1"})
    driver = cls(cfg, None)
    out = []
    seen = 0
    for s in range(int(hours * 3600)):
        slot = (s // 1200) % 3
        state["inlet"] = INLETS[slot]
        clock.advance(1.0)
        sim._advance()
        for entry in sim.ledger[seen:]:
            r = driver._parse_record(sim._record_line(entry), STATUS, [])
            since_switch = (entry.time - START).total_seconds() % 1200
            out.append(type(r)(time=r.time, device=r.device, values=r.values, status=r.status, status_ok=r.status_ok,
                               status_flags=r.status_flags, stream=state["inlet"], flushing=since_switch < 60))
        seen = len(sim.ledger)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--chunk-minutes", type=int, default=10)
    args = ap.parse_args()
    made = time.perf_counter()
    rs = readings(args.hours)
    made = time.perf_counter() - made
    with tempfile.TemporaryDirectory() as tmp:
        store = StationStore(Path(tmp) / "station.sqlite")
        for i in range(0, len(rs), 5000):
            store.insert_raw(rs[i:i + 5000])
        windows = []
        t = START
        end = START + timedelta(hours=args.hours)
        while t < end:
            w = t + timedelta(minutes=args.chunk_minutes)
            windows.append((t, w, list(store.raw_rows(t, w, "picarro-1"))))
            t = w
        store.close()
    rows = [r for _, _, part in windows for r in part]
    n = len(rows)
    json_bytes = sum(len(json.dumps(r, separators=(",", ":"))) for r in rows)
    naive = sum(len(zlib.compress(json.dumps(part, separators=(",", ":")).encode(), 9)) for _, _, part in windows)
    overhead = mqtt_packet_overhead("ghg/v1/" + "x" * 12 + "/raw", RAW_CONTENT_TYPE)
    t0 = time.perf_counter()
    chunks = [encode_chunk("st-bench", "0" * 32, "picarro-1", a, b, part) for a, b, part in windows if part]
    encode_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    back = [r for c in chunks for r in c.rows()]
    decode_s = time.perf_counter() - t0
    assert back == rows, "chunks do not give the rows back"
    frames = sum(len(c.frame) for c in chunks)
    sent = frames + overhead * len(chunks)
    per_day = 86400.0 / (args.hours * 3600.0)
    print(f"readings: {n} in {args.hours:g} h ({n / (args.hours * 3600):.2f} Hz), "
          f"{len(rows[0]['values'])} values each; made in {made:.1f} s")
    print(f"chunks: {len(chunks)} of {args.chunk_minutes} min, {frames / len(chunks):.0f} bytes each on average")
    for name, total in (("JSON rows (uncompressed)", json_bytes), ("JSON rows, zlib per window", naive),
                        ("chunks (frames)", frames), ("chunks + MQTT overhead (what the cap counts)", sent)):
        print(f"{name:<46} {total / n:8.1f} bytes/reading  {total * per_day / 1e6:8.2f} MB/day  "
              f"{json_bytes / total:6.1f}x smaller than JSON")
    print(f"encode {encode_s / n * 1e6:.1f} us/reading, decode and check {decode_s / n * 1e6:.1f} us/reading")
    print(f"at the default cap of 25000 B/s a day's chunks take {sent * per_day / 25000.0:.0f} s of link time")


if __name__ == "__main__":
    main()
