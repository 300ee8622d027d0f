"""Benchmark: a 30-day backlog (43,200 minute records) replayed from a station to central.

All real parts: a real mosquitto (MosquittoBroker: persistence, set_tcp_nodelay), the station's
real Forwarder and StoreWriter in a child process (the station and central never share a GIL in
the field either), central's real Receiver into its SQLite store (synchronous=FULL) in this
process. Three figures, measured in the same run:

- end to end: from the forwarder's start until central has stored every record, and until the
  station has central's ack for every record (its outbox is empty);
- (a) a naive baseline: one record per MQTT message, waiting for each PUBACK (paho's
  `wait_for_publish`, a client built as the station's), into the same receiver and store;
- (b) the central store's raw bulk-insert rate for the same rows (already built tuples, the
  store's own bulk insert, one transaction) into a fresh store.

The three are measured in rounds (default 3), each round all three in turn with a fresh broker,
station database and central stores, and each figure is the fastest of its rounds: this VM's
speed drifts by a third within a minute, and a single run of one figure against a single run
of another compared two moments as much as two designs. Interleaving puts every figure in every
phase of the drift, and the fastest of each is the hardest yardstick for the ratios. Every
round's figures are printed too.

The end to end replay runs twice a round, the station sending today's JSON batches and then the
lean ones (`[forwarding] encoding = "lean"`, ghgnet/wire/lean.py): records/s for both, in the same
run. And bytes on the wire (MQTT PUBLISH packets: fixed header, topic, packet id, properties with
the lean content type, payload) per minute record for both encodings, counted in the replay and
computed for a live minute sent alone, for this benchmark's records and for field-like ones (a 1 Hz
analyzer's means: every float at full precision); then the monthly volume of a three-species 1 Hz
station (`monthly_volume`: its assumptions are printed).

And the CPU time central, the station and the broker used during each end-to-end run (us per
record), with the load average: on a shared machine the rates move with the neighbours' load,
the CPU per record much less. The benchmark watches without polling where it can: central's
ingest threads are bound by one GIL, and a poll every 2 ms cost them 3-4 %.

    .venv/bin/python tests/benchmarks/replay.py [--records 43200] [--naive-records 3000] [--rounds 3] [--decode-in-thread]
        [--no-lean]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

T0 = datetime(2026, 1, 1, tzinfo=UTC)
STATION = "bench-tower"


def minute_records(n: int):
    """n plausible minute records, one a minute from T0 (three species, diagnostics)."""
    from ghgnet.records import MinuteRecord, SpeciesMinute

    out = []
    for i in range(n):
        co2 = 420.0 + 5.0 * ((i % 1440) / 1440.0) + 0.001 * i
        flagged = i % 61 == 0
        out.append(MinuteRecord(
            time=T0 + timedelta(minutes=i), device="picarro-1", stream=("inlet:top", "inlet:mid", "inlet:low")[i % 3],
            species={
                "co2": SpeciesMinute(co2, 0.05, 55, co2 - 0.31, co2),
                "ch4": SpeciesMinute(2001.5, 0.8, 55, 1998.2, 2001.5),
                "co": SpeciesMinute(151.0, 4.9, 55, 150.3, 151.0),
            },
            h2o=1.234, flag="N" if flagged else "U", reasons=("flush",) if flagged else (),
            n_total=60, calibration_id="cal-20260101T000000Z",
            diagnostics={"cavity_pressure": 140.01, "cavity_temp": 45.0},
        ))
    return out


def fill_station(path: Path, n: int) -> None:
    from station_agent.storage.store import StationStore

    store = StationStore(path)
    try:
        recs = minute_records(n)
        for i in range(0, n, 5000):
            store.insert_minutes(recs[i:i + 5000], T0 + timedelta(minutes=i))
    finally:
        store.close()


# -- the station side, in a child process ------------------------------------------------------

def station_child(db: str, port: int, batch_size: int, window: int, encoding: str = "json") -> None:
    """Run the real Forwarder (+ the StoreWriter that applies acks) until the outbox is empty.
    Prints JSON lines: {"started": t}, then {"acked": t, ...} (time.monotonic, system-wide), with
    the PUBLISH packet bytes of its data messages (`wire_bytes`)."""
    from ghgnet.clock import ScaledClock
    from ghgnet.logs import configure_logging, get_logger
    from ghgnet.mqttlink import MqttConfig
    from station_agent.forwarding.forwarder import Forwarder, ForwardingConfig
    from station_agent.processing.minute_bins import MinuteAssembler
    from station_agent.storage.store import StationStore
    from station_agent.storage.writer import StoreWriter

    configure_logging(STATION, "warning", "json", stream=sys.stderr)
    log = get_logger(component="bench")
    clock = ScaledClock()
    writer = StoreWriter(db, clock, MinuteAssembler(20), lambda b: None, log, dict, timedelta(days=30))
    writer.start()
    fw = Forwarder(
        STATION, MqttConfig(host="127.0.0.1", port=port), ForwardingConfig(
            batch_size=batch_size, window_records=window, replay_rate=0, status_interval_s=3600, encoding=encoding),
        db, clock, writer.submit_ack, writer.submit_event, log,
    )
    wire = {"bytes": 0}
    publish = fw.client.publish

    def counted(topic, payload=None, qos=0, retain=False, properties=None):
        if not topic.endswith("/status"):
            wire["bytes"] += publish_packet_bytes(topic, len(payload), getattr(properties, "ContentType", None))
        return publish(topic, payload, qos=qos, retain=retain, properties=properties)

    fw.client.publish = counted
    reader = StationStore(db, read_only=True)
    minutes = reader.conn.execute("SELECT COUNT(*) FROM outbox WHERE kind = 'minute'").fetchone()[0]
    cpu0 = time.process_time()  # the station's set-up (imports, opening the store) is not replay work
    print(json.dumps({"started": time.monotonic()}), flush=True)
    fw.start()
    try:
        # Is any minute record left? The writer's count of deleted outbox rows says when to look
        # (a query every 2 ms took 4 % of a core from the station it measures); the query decides.
        while (writer.stats.acked < minutes
               or reader.conn.execute("SELECT 1 FROM outbox WHERE kind = 'minute' LIMIT 1").fetchone()):
            time.sleep(0.002)
        print(json.dumps({"acked_at": time.monotonic(), "cpu_s": time.process_time() - cpu0, "wire_bytes": wire["bytes"],
                          **fw.stats}), flush=True)
    finally:
        reader.close()
        fw.stop()
        writer.stop()


# -- central and the measurements ----------------------------------------------------------------

def central_config(port: int, db: Path, decode_process: bool):
    from central.config import CentralConfig

    return CentralConfig.model_validate({
        "mqtt": {"host": "127.0.0.1", "port": port, "client_id": f"central-{db.stem}"},
        "storage": {"backend": "sqlite", "path": str(db)},
        "ingest": {"decode_process": decode_process},
    })


def watch_stored(receiver, n: int) -> Callable[[float], float]:
    """wait(timeout_s) -> when central had stored n new records (time.monotonic). Told by the
    storage thread as it counts them, not polled: polling the stats every 2 ms took 0.7-0.9 us a
    record of the receiver's GIL, which its ingest threads are bound by."""
    done = threading.Event()
    stored_at: list[float] = []
    count = receiver._count

    def counting(key: str, k: int = 1) -> None:
        count(key, k)
        if key == "records_new" and not done.is_set() and receiver.stats["records_new"] >= n:
            stored_at.append(time.monotonic())
            done.set()

    receiver._count = counting

    def wait(timeout_s: float) -> float:
        if not done.wait(timeout_s):
            raise SystemExit(f"central stored {receiver.stats['records_new']} of {n} in {timeout_s} s")
        return stored_at[0]

    return wait


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far (Linux /proc; 0.0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def end_to_end(broker, tmp: Path, filled: Path, n: int, batch_size: int, window: int, decode_process: bool,
               encoding: str = "json") -> dict:
    """One replay of the station database `filled` (copied: each round starts from the same backlog),
    the station sending `encoding` batches."""
    import shutil

    from central.receiver import Receiver

    db = tmp / f"station-{encoding}.sqlite"
    shutil.copyfile(filled, db)
    receiver = Receiver(central_config(broker.port, tmp / f"central-e2e-{encoding}.sqlite", decode_process)).start()
    wait_stored = watch_stored(receiver, n)
    try:
        assert receiver.subscribed.wait(10)
        child = subprocess.Popen(
            [sys.executable, __file__, "--station-child", str(db), str(broker.port), str(batch_size), str(window),
             encoding],
            stdout=subprocess.PIPE, text=True, cwd=REPO,
        )
        decoder = receiver.decoder
        if decoder is not None:  # its start-up (imports) is not replay work either
            assert decoder.wait_ready(30), "central's decode process did not start"
        started = json.loads(child.stdout.readline())["started"]
        decoder_pid = decoder.pid if decoder is not None else None
        central_cpu, broker_cpu = time.process_time(), process_cpu_s(broker.pid)
        decoder_cpu = process_cpu_s(decoder_pid) if decoder_pid else 0.0
        stored = wait_stored(300)
        acked = json.loads(child.stdout.readline())
        central_cpu, broker_cpu = time.process_time() - central_cpu, process_cpu_s(broker.pid) - broker_cpu
        decoder_cpu = process_cpu_s(decoder_pid) - decoder_cpu if decoder_pid else 0.0
        child.wait(60)
    finally:
        receiver.stop()
    cpu = {"central": central_cpu, "central's decoder": decoder_cpu, "station": acked["cpu_s"], "broker": broker_cpu}
    if decoder_pid is None:
        del cpu["central's decoder"]
    return {"stored_s": stored - started, "acked_s": acked["acked_at"] - started,
            "messages": acked["published_messages"], "resent": acked["resent"], "cpu_s": cpu,
            "wire_bytes": acked["wire_bytes"], "published_records": acked["published_records"]}


def encoded_batches(n: int, batch_size: int, encoding: str) -> list[bytes]:
    """The replay's batches (n minute records, `batch_size` a message) as the forwarder encodes them."""
    from ghgnet.wire import BatchEncoder, LeanEncoder

    store = uuid.UUID(int=54321).hex
    rows = outbox_rows(minute_records(n))
    out = []
    for i in range(0, n, batch_size):
        body = BatchEncoder(STATION, store).encode_rows("minute", T0, rows[i:i + batch_size])
        if encoding == "lean":
            body = LeanEncoder(STATION, store).encode_rows("minute", T0, rows[i:i + batch_size], body)
        out.append(body)
    return out


def publish_child(port: int, path: str, content_type: str) -> None:
    """Publish the length-prefixed payloads in `path` to the minute topic, QoS 1, as fast as the
    broker takes them (a window of 32 in flight, as the forwarder's default), then exit."""
    import struct

    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from ghgnet.mqttlink import MqttConfig, make_client
    from ghgnet.wire import topic_for

    data = Path(path).read_bytes()
    payloads, i = [], 0
    while i < len(data):
        (k,) = struct.unpack_from("<I", data, i)
        payloads.append(data[i + 4:i + 4 + k])
        i += 4 + k
    props = None
    if content_type != "-":
        props = Properties(PacketTypes.PUBLISH)
        props.ContentType = content_type
    client = make_client(MqttConfig(host="127.0.0.1", port=port), "central-only-publisher")
    client.max_inflight_messages_set(32)
    client.connect("127.0.0.1", port)
    client.loop_start()
    print(json.dumps({"started": time.monotonic()}), flush=True)  # after the imports and the connection
    infos = [client.publish(topic_for(STATION, "minute"), p, qos=1, properties=props) for p in payloads]
    for info in infos:
        info.wait_for_publish(60)
    client.disconnect()
    client.loop_stop()


def central_only(broker, tmp: Path, n: int, batches: list[bytes], encoding: str, decode_process: bool) -> float:
    """Central alone on the replay's batches, already encoded (no station CPU beside it): records/s
    from the first publish until central has stored them all."""
    import struct

    from central.receiver import Receiver
    from ghgnet.wire import ENCODINGS

    path = tmp / f"batches-{encoding}.bin"
    path.write_bytes(b"".join(struct.pack("<I", len(b)) + b for b in batches))
    receiver = Receiver(central_config(broker.port, tmp / f"central-only-{encoding}.sqlite", decode_process)).start()
    wait_stored = watch_stored(receiver, n)
    try:
        assert receiver.subscribed.wait(10)
        if receiver.decoder is not None:
            assert receiver.decoder.wait_ready(30)
        child = subprocess.Popen([sys.executable, __file__, "--publish-child", str(broker.port), str(path),
                                  ENCODINGS[encoding] or "-"], cwd=REPO, stdout=subprocess.PIPE, text=True)
        t0 = json.loads(child.stdout.readline())["started"]
        stored = wait_stored(300)
        child.wait(60)
    finally:
        receiver.stop()
    return n / (stored - t0)


def naive(broker, tmp: Path, n: int, decode_process: bool) -> float:
    """One record per message, publish and wait for its PUBACK, until central has stored them."""
    from central.receiver import Receiver
    from ghgnet.mqttlink import MqttConfig, make_client
    from ghgnet.records import minute_to_dict
    from ghgnet.timeutil import iso_utc
    from ghgnet.wire import topic_for

    payloads = []
    for seq, rec in enumerate(minute_records(n), 1):
        body = {"schema": 1, "station": STATION, "kind": "minute", "sent": iso_utc(T0),
                "records": [{"seq": seq, **minute_to_dict(rec)}]}
        payloads.append(json.dumps(body, separators=(",", ":")).encode())
    receiver = Receiver(central_config(broker.port, tmp / "central-naive.sqlite", decode_process)).start()
    wait_stored = watch_stored(receiver, n)
    # the project's client builder, as the Forwarder's: MQTT v5, the same socket options
    client = make_client(MqttConfig(host=broker.host, port=broker.port), "naive-station")
    try:
        assert receiver.subscribed.wait(10)
        client.connect(broker.host, broker.port)
        client.loop_start()
        topic = topic_for(STATION, "minute")
        t0 = time.monotonic()
        for p in payloads:
            client.publish(topic, p, qos=1).wait_for_publish(10)
        stored = wait_stored(300)
    finally:
        client.disconnect()
        client.loop_stop()
        receiver.stop()
    return n / (stored - t0)


def wire_records(n: int) -> list:
    """The same n minute records as validated wire models (what central's store is given)."""
    from ghgnet.records import minute_to_dict
    from ghgnet.wire import MinuteWire

    return [MinuteWire.model_validate_json(json.dumps({"seq": seq, **minute_to_dict(r)}))
            for seq, r in enumerate(minute_records(n), 1)]


def raw_insert(tmp: Path, recs: list) -> float:
    """The store's bulk insert of the same rows: tuples built beforehand, one transaction, into
    a fresh store (records/s)."""
    from central.store import open_store
    from central.store.base import minute_rows

    store = open_store("sqlite", path=tmp / "central-raw.sqlite")
    try:
        rows = minute_rows(STATION, recs, store._t, store._t(datetime.now(UTC)))
        t0 = time.monotonic()
        store._begin()
        store._insert("minute", rows, uuid.uuid4().hex)  # a station database's identity, as stations send it
        store._commit()
        return len(recs) / (time.monotonic() - t0)
    finally:
        store.close()



# -- bytes on the wire ------------------------------------------------------------------------------

def publish_packet_bytes(topic: str, payload_bytes: int, content_type: str | None = None) -> int:
    """Bytes of an MQTT 5 QoS 1 PUBLISH packet: fixed header byte, remaining length (varint),
    topic (2 + its bytes), packet id (2), properties length (varint) and properties (the content
    type: 1 + 2 + its bytes), payload."""
    def varint(v: int) -> int:
        return 1 if v < 128 else 2 if v < 16_384 else 3 if v < 2_097_152 else 4

    props = 0 if content_type is None else 3 + len(content_type.encode())
    remaining = 2 + len(topic.encode()) + 2 + varint(props) + props + payload_bytes
    return 1 + varint(remaining) + remaining


def field_minutes(n: int, seed: int = 1) -> list:
    """n minute records as a three-species 1 Hz analyzer makes them (G2401: CO2, CH4, CO): means of
    60 samples, so every float at full precision, as in the example station's own records."""
    import random

    from ghgnet.records import MinuteRecord, SpeciesMinute

    rng = random.Random(seed)

    def species(level: float, noise: float, slope: float, offset: float) -> SpeciesMinute:
        raw = sum(rng.gauss(level, noise) for _ in range(60)) / 60
        cal = raw * slope + offset
        return SpeciesMinute(cal, rng.uniform(0.7, 1.3) * noise, 60, raw, cal)

    return [MinuteRecord(
        time=T0 + timedelta(minutes=i), device="picarro-1", stream=("inlet:top", "inlet:mid", "inlet:low")[i // 10 % 3],
        species={"co2": species(420 + rng.gauss(0, 3), 0.05, 0.98036, 2.9539),
                 "ch4": species(2000 + rng.gauss(0, 20), 0.6, 0.98041, -14.719),
                 "co": species(150 + rng.gauss(0, 10), 4.8, 1.00045, 0.2204)},
        h2o=rng.uniform(0.5, 2.5), flag="U", reasons=(), n_total=60, calibration_id="cal-picarro-1-20260101T0000Z",
        diagnostics={"h2o_low_fraction": 0.0, "cavity_pressure": rng.gauss(140, 0.01), "cavity_temp": rng.gauss(45, 0.001)},
    ) for i in range(n)]


def field_results(seed: int = 2) -> tuple[dict, dict]:
    """A calibration (four standards, three species, linear fits) and a target result of the
    example station's schedule, full precision, in their wire form (without seq)."""
    import random

    rng = random.Random(seed)
    sp = {"co2": (380.0, 40.0), "ch4": (1800.0, 200.0), "co": (80.0, 140.0)}
    standards = [{"cylinder": f"CAL-{k + 1}", "measured": {s: a + k * d + rng.gauss(0, 1) for s, (a, d) in sp.items()},
                  "assigned": {s: a + k * d for s, (a, d) in sp.items()}, "scale": {}} for k in range(4)]
    fits = {s: {"coefficients": [rng.gauss(0, 3), rng.gauss(1, 0.02)], "residuals": [rng.gauss(0, 0.01) for _ in range(4)],
                "r2": 1 - rng.uniform(0, 1e-6), "rmse": rng.uniform(0.001, 0.2), "n": 4} for s in sp}
    calibration = {"record_type": "calibration", "id": "cal-picarro-1-20260101T0000Z", "time_start": "2026-01-01T00:00:00.000Z",
                   "time_end": "2026-01-01T00:39:00.000Z", "standards": standards, "fits": fits}
    target = {"record_type": "target", "id": "tgt-picarro-1-TGT-1-20260101T0100Z", "time": "2026-01-01T01:09:00.000Z",
              "cylinder": "TGT-1", "measured": {s: a + rng.gauss(0, 0.1) for s, (a, _) in sp.items()},
              "assigned": {s: a for s, (a, _) in sp.items()}, "bias": {s: rng.gauss(0, 0.1) for s in sp},
              "within_goal": {s: True for s in sp}}
    return calibration, target


def message_bytes(kind: str, rows: list, encoding: str, sent: datetime, store: str) -> int:
    """PUBLISH packet bytes of one batch of outbox rows (seq, kind, JSON bytes) as the forwarder sends it."""
    from ghgnet.wire import ENCODINGS, BatchEncoder, LeanEncoder, topic_for

    body = BatchEncoder(STATION, store).encode_rows(kind, sent, rows)
    if encoding == "lean":
        body = LeanEncoder(STATION, store).encode_rows(kind, sent, rows, body)
    return publish_packet_bytes(topic_for(STATION, kind), len(body), ENCODINGS[encoding])


def outbox_rows(records: list, kind: str = "minute") -> list:
    from ghgnet.records import minute_to_dict

    return [(seq, kind, json.dumps(minute_to_dict(r) if kind == "minute" else r, separators=(",", ":")).encode())
            for seq, r in enumerate(records, 1)]


def per_record_bytes(records: list, batch_size: int) -> dict:
    """{(encoding, "alone"|"backlog"): PUBLISH bytes per minute record}: each record sent alone (a
    live link: one minute a minute), and in batches of `batch_size` (a backlog)."""
    store = uuid.UUID(int=12345).hex
    rows = outbox_rows(records)
    out = {}
    for enc in ("json", "lean"):
        alone = [message_bytes("minute", [r], enc, T0 + timedelta(minutes=i, seconds=80.123), store)
                 for i, r in enumerate(rows)]
        backlog = sum(message_bytes("minute", rows[i:i + batch_size], enc, T0, store) for i in range(0, len(rows), batch_size))
        out[enc, "alone"] = sum(alone) / len(alone)
        out[enc, "backlog"] = backlog / len(rows)
    return out


MONTH_MINUTES = 43_200
MONTH_CALIBRATIONS = 4 * 30
"""The example station (configs/station.example.toml): a calibration every 6 h,"""
MONTH_TARGETS = (12 + 4) * 30
"""a short-term target every 2 h and the long-term target with each calibration."""


def monthly_volume(alone: dict) -> dict:
    """Bytes a month, by encoding, of a three-species 1 Hz station sending live (each record alone):
    43,200 field-like minutes, the example config's calibrations and targets; events none (only
    faults make them). Besides, the same for both encodings: the retained status every 30 s
    (status_interval_s' default) and central's ack of every message."""
    from ghgnet.wire import encode_ack, topic_for

    store = uuid.UUID(int=12345).hex
    calibration, target = field_results()
    out = {}
    for enc in ("json", "lean"):
        results = [message_bytes("calibration", [(1000 + k, "calibration", json.dumps(r, separators=(",", ":")).encode())],
                                 enc, T0, store) for k, r in enumerate((calibration, target))]
        out[enc] = (MONTH_MINUTES * alone[enc, "alone"] + MONTH_CALIBRATIONS * results[0] + MONTH_TARGETS * results[1])
    status = {"schema": 1, "station": STATION, "state": "up", "time": "2026-01-01T00:00:00.000Z", "backlog": 0,
              "oldest_unacked_age_s": None, "agent_version": "0.1.0", "interval_s": 30.0, "last_seq": 43200,
              "details": {}}
    status_bytes = publish_packet_bytes(topic_for(STATION, "status"), len(json.dumps(status, separators=(",", ":"))))
    ack_bytes = publish_packet_bytes(topic_for(STATION, "ack"), len(encode_ack(STATION, [43_200], store))) + 4  # + PUBACK
    out["status"] = 30 * 86_400 / 30.0 * (status_bytes + 4)
    out["acks"] = (MONTH_MINUTES + MONTH_CALIBRATIONS + MONTH_TARGETS) * (ack_bytes + 4)  # + the data's PUBACK
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=43_200)
    ap.add_argument("--naive-records", type=int, default=3000, help="the naive baseline's sample")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the three measurements, interleaved")
    ap.add_argument("--batch-size", type=int, default=None, help="default: ForwardingConfig's")
    ap.add_argument("--window", type=int, default=None, help="default: ForwardingConfig's")
    ap.add_argument("--decode-in-thread", action="store_true",
                    help="central decodes in a thread of its own process (ingest.decode_process false)")
    ap.add_argument("--no-lean", action="store_true", help="skip the lean encoding's replay")
    ap.add_argument("--station-child", nargs=5, help=argparse.SUPPRESS)
    ap.add_argument("--publish-child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    if args.station_child:
        db, port, batch, window, encoding = args.station_child
        station_child(db, int(port), int(batch), int(window), encoding)
        return
    if args.publish_child:
        port, path, content_type = args.publish_child
        publish_child(int(port), path, content_type)
        return

    from ghgnet.logs import configure_logging
    from simulators.broker import MosquittoBroker
    from station_agent.forwarding.forwarder import ForwardingConfig

    configure_logging(None, "warning", "json", stream=sys.stderr)
    from central.receiver import tune_for_ingest

    tune_for_ingest()  # as the daemon (Receiver.run) does

    defaults = ForwardingConfig()
    batch_size = args.batch_size or defaults.batch_size
    window = args.window or defaults.window_records
    n = args.records
    decode_process = not args.decode_in_thread
    rounds: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="ghgnet-replay-") as d:
        top = Path(d)
        filled = top / "station-filled.sqlite"
        fill_station(filled, n)
        recs = wire_records(n)
        batches = {enc: encoded_batches(n, batch_size, enc) for enc in ("json", "lean")}
        for k in range(args.rounds):
            tmp = top / f"round-{k}"
            tmp.mkdir()
            broker = MosquittoBroker(tmp / "mosquitto").start()
            try:
                e2e = end_to_end(broker, tmp, filled, n, batch_size, window, decode_process)
                lean = None if args.no_lean else end_to_end(broker, tmp, filled, n, batch_size, window, decode_process,
                                                            "lean")
                naive_rate = naive(broker, tmp, args.naive_records, decode_process)
                alone = {} if args.no_lean else {
                    enc: central_only(broker, tmp, n, batches[enc], enc, decode_process) for enc in ("json", "lean")}
            finally:
                broker.stop()
            rounds.append({"e2e": e2e, "lean": lean, "naive": naive_rate, "raw": raw_insert(tmp, recs),
                           "central_only": alone})
    stored = [n / r["e2e"]["stored_s"] for r in rounds]
    acked = [n / r["e2e"]["acked_s"] for r in rounds]
    naives = [r["naive"] for r in rounds]
    raws = [r["raw"] for r in rounds]
    best = max(range(len(rounds)), key=lambda k: acked[k])
    e2e = rounds[best]["e2e"]

    def each(values: list[float]) -> str:
        return ", ".join(f"{v:,.0f}" for v in values)

    print(f"records: {n} minute records (30 days), batch_size {batch_size}, window {window} records, "
          f"{e2e['messages']} messages, {e2e['resent']} resent; cpus {os.cpu_count()}; "
          f"{len(rounds)} rounds, each figure the fastest of its rounds")
    print(f"end to end, stored at central:        {max(stored):10,.0f} records/s  (rounds: {each(stored)})")
    print(f"end to end, acked back to station:     {max(acked):10,.0f} records/s  (rounds: {each(acked)})"
          "  target >= 20,000")
    print(f"(a) naive, 1 record/message + PUBACK:  {max(naives):10,.0f} records/s  "
          f"({args.naive_records} records; rounds: {each(naives)})  ratio {max(acked) / max(naives):.1f}x"
          "  target >= 40x")
    print(f"(b) raw bulk insert into the store:    {max(raws):10,.0f} records/s  "
          f"(rounds: {each(raws)})  ratio {100 * max(acked) / max(raws):.1f} %  target >= 25 %")
    print("round by round, acked/raw: " + ", ".join(f"{100 * a / r:.1f} %" for a, r in zip(acked, raws))
          + "; acked/naive: " + ", ".join(f"{a / v:.1f}x" for a, v in zip(acked, naives)))
    for k, r in enumerate(rounds):
        for enc in ("e2e", "lean"):
            if r[enc] is None:
                continue
            cpu = r[enc]["cpu_s"]
            print(f"CPU during end to end ({'json' if enc == 'e2e' else 'lean'}), round {k + 1}, us per record: "
                  + ", ".join(f"{name} {1e6 * v / n:.1f}" for name, v in cpu.items()))
    if not args.no_lean:
        print_lean(rounds, n, batch_size, stored, acked, each)
    print(f"load average {os.getloadavg()[0]:.2f}")


def print_lean(rounds: list[dict], n: int, batch_size: int, stored: list[float], acked: list[float], each) -> None:
    """The lean encoding's figures beside today's JSON, from the same rounds."""
    lean_stored = [n / r["lean"]["stored_s"] for r in rounds]
    lean_acked = [n / r["lean"]["acked_s"] for r in rounds]
    print(f"lean, end to end, stored at central:   {max(lean_stored):10,.0f} records/s  (rounds: {each(lean_stored)})"
          f"  json/lean {max(stored) / max(lean_stored):.2f}; round by round: "
          + ", ".join(f"{a / b:.2f}" for a, b in zip(stored, lean_stored)))
    print(f"lean, end to end, acked back to station:{max(lean_acked):10,.0f} records/s  (rounds: {each(lean_acked)})"
          f"  json/lean {max(acked) / max(lean_acked):.2f}")
    alone = {enc: [r["central_only"][enc] for r in rounds] for enc in ("json", "lean")}
    for enc in ("json", "lean"):
        print(f"central alone on the replay's {enc} batches (published ready-made, no station beside it): "
              f"{max(alone[enc]):10,.0f} records/s  (rounds: {each(alone[enc])})")
    print("central alone, lean/json round by round: "
          + ", ".join(f"{100 * b / a:.1f} %" for a, b in zip(alone["json"], alone["lean"])))
    last = rounds[-1]
    for enc, key in (("json", "e2e"), ("lean", "lean")):
        r = last[key]
        print(f"replay on the wire ({enc}): {r['wire_bytes'] / r['published_records']:7.1f} bytes per minute record "
              f"(PUBLISH packets, {r['messages']} messages of up to {batch_size} records)")
    sizes = {"this benchmark's records": per_record_bytes(minute_records(2000), batch_size),
             "field-like records (1 Hz means, full precision)": per_record_bytes(field_minutes(2000), batch_size)}
    for name, b in sizes.items():
        for how in ("alone", "backlog"):
            print(f"bytes on the wire per minute record, {name}, {'sent alone (live)' if how == 'alone' else f'batches of {batch_size}'}: "
                  f"json {b['json', how]:6.1f}, lean {b['lean', how]:6.1f} ({100 * b['lean', how] / b['json', how]:.1f} %)"
                  "  target <= 25 %")
    month = monthly_volume(sizes["field-like records (1 Hz means, full precision)"])
    print(f"a month of a three-species 1 Hz station, live ({MONTH_MINUTES:,} minutes, {MONTH_CALIBRATIONS} calibrations, "
          f"{MONTH_TARGETS} targets, each sent alone; no routine events): json {month['json'] / 1e6:.2f} MB, "
          f"lean {month['lean'] / 1e6:.2f} MB ({100 * month['lean'] / month['json']:.1f} %)")
    print(f"  the same for both encodings: the status every 30 s {month['status'] / 1e6:.2f} MB "
          f"(every 600 s: {month['status'] / 20e6:.2f} MB), central's acks and the PUBACKs {month['acks'] / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
