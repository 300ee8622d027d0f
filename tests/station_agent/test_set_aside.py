"""No poison message: records the broker will not take are set aside, never block the ones behind
them, and can be listed, exported and retried. Real parts only: a real mosquitto (its
message_size_limit or max_packet_size set), central's real Receiver into its SQLite store, the
station's real StoreWriter and Forwarder on a real database, and `station-agent` as a process.

Each test forces an oversized record (an event with a big `data`) into the outbox between
minute records, and ends by comparing central with the station seq by seq: everything but the
set-aside record, exactly once.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.records import central_records, station_records
from support.wait import wait_until

from central.config import CentralConfig
from central.receiver import Receiver
from ghgnet.clock import ScaledClock
from ghgnet.logs import get_logger
from ghgnet.mqttlink import MqttConfig, make_client
from ghgnet.records import Event, MinuteRecord, SpeciesMinute
from ghgnet.wire import encode_ack, parse_batch, topic_for
from simulators.broker import MosquittoBroker, find_mosquitto
from station_agent.agent import retry_set_aside
from station_agent.forwarding.forwarder import Forwarder, ForwardingConfig
from station_agent.processing.minute_bins import MinuteAssembler
from station_agent.storage.store import StationStore
from station_agent.storage.writer import StoreWriter

STATION = "st-poison"
T0 = datetime(2026, 3, 1, tzinfo=UTC)
BIN = Path(sys.executable).parent


def minutes(first: int, n: int) -> list[MinuteRecord]:
    return [MinuteRecord(time=T0 + timedelta(minutes=first + i), device="picarro-1", stream="inlet:top",
                         species={"co2": SpeciesMinute(420.0 + i * 1e-3, 0.05, 55, 419.7, 420.0 + i * 1e-3),
                                  "ch4": SpeciesMinute(2000.0, 0.8, 55, 1998.0, 2000.0)},
                         h2o=1.1, flag="U", n_total=60, calibration_id="cal-1",
                         diagnostics={"cavity_pressure": 140.0})
            for i in range(n)]


def fill(db: Path, before: int, big_bytes: int, after: int) -> int:
    """`before` minutes, an event whose data holds `big_bytes` characters, `after` minutes; the
    big event's seq."""
    store = StationStore(db)
    try:
        store.insert_minutes(minutes(0, before), T0)
        big = store.insert_event(Event(T0, "test.big", "info", "an oversized record", None,
                                       {"blob": "x" * big_bytes}))
        store.insert_minutes(minutes(before, after), T0)
        return big
    finally:
        store.close()


class Rig:
    """A broker, central's receiver, and a station database with its writer and forwarder."""

    def __init__(self, tmp: Path, broker_config: str = "") -> None:
        self.tmp = tmp
        self.db = tmp / "station.sqlite"
        self.central_db = tmp / "central.sqlite"
        self.broker = MosquittoBroker(tmp / "mosquitto", extra_config=broker_config).start()
        self.receiver: Receiver | None = None
        self.writer: StoreWriter | None = None
        self.forwarder: Forwarder | None = None
        self.log = get_logger(component="test")

    def start_central(self) -> None:
        self.receiver = Receiver(CentralConfig.model_validate({
            "mqtt": {"host": "127.0.0.1", "port": self.broker.port, "client_id": "ghgnet-central"},
            "storage": {"backend": "sqlite", "path": str(self.central_db)},
        })).start()
        assert self.receiver.subscribed.wait(10)

    def start_station(self, **forwarding) -> Forwarder:
        clock = ScaledClock()
        self.writer = StoreWriter(self.db, clock, MinuteAssembler(20), lambda b: None, self.log, dict,
                                  timedelta(days=30))
        self.writer.start()
        cfg = ForwardingConfig(**{"ack_timeout_s": 10, "status_interval_s": 3600, **forwarding})
        self.forwarder = Forwarder(STATION, MqttConfig(host="127.0.0.1", port=self.broker.port), cfg, self.db,
                                   clock, self.writer.submit_ack, self.writer.submit_event, self.log,
                                   set_aside=self.writer.submit_set_aside)
        self.forwarder.start()
        return self.forwarder

    def stop_station(self) -> None:
        if self.forwarder is not None:
            self.forwarder.stop()
            self.forwarder = None
        if self.writer is not None:
            self.writer.stop()
            self.writer = None

    def read(self, fn):
        store = StationStore(self.db, read_only=True)
        try:
            return fn(store)
        finally:
            store.close()

    def outbox_empty(self) -> bool:
        return self.read(lambda s: s.outbox_empty())

    def close(self) -> None:
        self.stop_station()
        if self.receiver is not None:
            self.receiver.stop()
        self.broker.kill()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator:
    if find_mosquitto() is None:
        pytest.fail("mosquitto is needed for these tests (apt-get install mosquitto)")
    made: list[Rig] = []

    def make(broker_config: str = "") -> Rig:
        made.append(Rig(tmp_path, broker_config))
        return made[-1]

    yield make
    for r in made:
        r.close()


def assert_central_holds_all_but(rig: Rig, set_aside: set[int]) -> dict:
    """Central holds every record the station made but `set_aside`, exactly once (central_records
    fails on a seq held twice), and the same records."""
    rig.receiver.stop()
    rig.receiver = None
    produced, stored = station_records(rig.db), central_records(rig.central_db, STATION)
    for kind in produced:
        expected = {s: v for s, v in produced[kind].items() if s not in set_aside}
        assert stored[kind] == expected, f"{kind}: central differs, missing {sorted(set(expected) - set(stored[kind]))[:5]}" \
            f", extra {sorted(set(stored[kind]) - set(expected))[:5]}"
    return produced


def agent_cli(rig: Rig, *args: str) -> subprocess.CompletedProcess:
    config = rig.tmp / "station.toml"
    config.write_text(f'[station]\nid = "{STATION}"\n\n[storage]\npath = "{rig.db.name}"\n')
    return subprocess.run([BIN / "station-agent", *args, "--config", str(config)], capture_output=True, text=True,
                          timeout=60)


def set_aside_events(rig: Rig) -> list[dict]:
    return [e for e in rig.read(lambda s: s.event_rows(1000)) if e["kind"] == "forwarding.set_aside"]


def test_a_record_over_max_message_bytes_is_set_aside_and_the_rest_reach_central_once_then_retry_sends_it(rig):
    r = rig("message_size_limit 524288")
    big = fill(r.db, 300, 120_000, 300)
    r.start_central()
    r.start_station(max_message_bytes=65536, batch_size=100)
    wait_until(r.outbox_empty, 60, 0.05, "the outbox to empty around the oversized record")
    r.stop_station()

    aside = r.read(lambda s: s.set_aside_rows())
    assert [a["seq"] for a in aside] == [big]
    assert aside[0]["kind"] == "event" and aside[0]["bytes"] > 120_000
    assert "forwarding.max_message_bytes 65536" in aside[0]["reason"]
    alarm = set_aside_events(r)
    assert len(alarm) == 1 and alarm[0]["severity"] == "error" and alarm[0]["data"]["seqs"] == [big]
    assert f"seq {big}" in alarm[0]["message"] and "set-aside list" in alarm[0]["message"]

    listed = agent_cli(r, "set-aside", "list", "--json")  # the agent is down: from the database
    assert listed.returncode == 0, listed.stderr
    assert [(x["seq"], x["kind"]) for x in json.loads(listed.stdout)] == [(big, "event")]
    exported = agent_cli(r, "set-aside", "export")
    assert exported.returncode == 0, exported.stderr
    (line,) = exported.stdout.splitlines()
    record = json.loads(line)
    assert record["seq"] == big and record["record"]["kind"] == "test.big"
    assert record["record"]["data"]["blob"] == "x" * 120_000

    produced = assert_central_holds_all_but(r, {big})
    assert len(produced["minute"]) == 600 and alarm[0]["seq"] in produced["event"]

    # The operator raises the station's limit (the broker takes 512 KiB) and retries the record.
    bad = agent_cli(r, "set-aside", "retry", "99999")
    assert bad.returncode == 1 and "not set aside: 99999" in bad.stderr
    retried = agent_cli(r, "set-aside", "retry", str(big))
    assert retried.returncode == 0, retried.stderr
    assert "1 set-aside record(s) back in the outbox" in retried.stdout
    assert r.read(lambda s: s.set_aside_rows()) == []
    r.start_central()
    r.start_station(max_message_bytes=262144, batch_size=100)
    wait_until(r.outbox_empty, 60, 0.05, "the retried record to be acknowledged")
    r.stop_station()
    assert_central_holds_all_but(r, set())
    assert len(set_aside_events(r)) == 1


def test_a_record_the_broker_drops_the_connection_for_is_found_and_set_aside(rig):
    # The station's limit is above the broker's: mosquitto refuses the message and the link drops
    # (paho reads its refusal as a protocol error), every time the record is sent.
    r = rig("message_size_limit 65536")
    big = fill(r.db, 200, 80_000, 200)
    r.start_central()
    fw = r.start_station(max_message_bytes=262144, batch_size=16, set_aside_after_drops=2)
    wait_until(r.outbox_empty, 120, 0.05, "the outbox to empty around the poison record")
    r.stop_station()
    aside = r.read(lambda s: s.set_aside_rows())
    assert [a["seq"] for a in aside] == [big]
    assert "dropped the connection" in aside[0]["reason"]
    assert fw.stats["set_aside"] == 1
    assert len(set_aside_events(r)) == 1
    assert_central_holds_all_but(r, {big})


def test_a_retry_while_the_agent_runs_sends_the_record_again_once_the_broker_takes_it(rig):
    r = rig("message_size_limit 65536")
    big = fill(r.db, 100, 80_000, 100)
    r.start_central()
    fw = r.start_station(max_message_bytes=262144, batch_size=16, set_aside_after_drops=2)
    wait_until(lambda: r.read(lambda s: s.set_aside_rows()), 120, 0.05, "the poison record set aside")
    wait_until(r.outbox_empty, 60, 0.05, "the records behind it at central")
    # The operator raises the broker's limit (a restart on the same port) and retries, as the
    # control socket's set_aside_retry does: the writer puts it back, the forwarder rewinds.
    r.broker.stop()
    r.broker.extra_config = "message_size_limit 262144"
    r.broker.start()
    back = r.writer.call_sync(lambda store: retry_set_aside(store, None, T0))
    assert back == [big]
    fw.rewind(back)
    wait_until(lambda: r.outbox_empty() and not r.read(lambda s: s.set_aside_rows()), 60, 0.05,
               "the retried record acknowledged by central")
    r.stop_station()
    produced = assert_central_holds_all_but(r, set())
    assert big in produced["event"]
    assert "forwarding.set_aside_retried" in [e["kind"] for e in r.read(lambda s: s.event_rows(1000))]


def test_the_brokers_maximum_packet_size_in_its_connack_bounds_the_messages(rig):
    r = rig("max_packet_size 65536")
    big = fill(r.db, 1500, 80_000, 500)
    r.start_central()
    fw = r.start_station(max_message_bytes=262144, batch_size=500)
    wait_until(r.outbox_empty, 60, 0.05, "the outbox to empty")
    r.stop_station()
    aside = r.read(lambda s: s.set_aside_rows())
    assert [a["seq"] for a in aside] == [big] and "Maximum Packet Size 65536 (CONNACK)" in aside[0]["reason"]
    # 2,000 minutes of ~400 bytes do not fit 4 messages of 500: the bytes cut the batches, and the
    # broker never had to drop the link for a packet too large.
    assert fw.stats["published_messages"] >= 2000 * 400 // 65536
    assert "oversize" not in r.broker.log_tail()
    assert_central_holds_all_but(r, {big})


class AckWatch:
    """A test client that reads the station's batches and publishes acks as central would."""

    def __init__(self, port: int) -> None:
        self.batches: list[bytes] = []
        self.lock = threading.Lock()
        self.client = make_client(MqttConfig(host="127.0.0.1", port=port), "ack-watch")
        self.client.on_message = lambda c, u, m: self._got(m.payload)
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_connect = lambda c, *a: c.subscribe(topic_for(STATION, "minute"), qos=1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(10)

    def _got(self, payload: bytes) -> None:
        with self.lock:
            self.batches.append(payload)

    def ack(self, seqs: list[int], store: str | None) -> None:
        self.client.publish(topic_for(STATION, "ack"), encode_ack(STATION, seqs, store=store), qos=1).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_batches_name_their_store_and_only_its_acks_or_legacy_ones_empty_the_outbox(rig):
    r = rig()
    store = StationStore(r.db)
    try:
        store.insert_minutes(minutes(0, 5), T0)
        own = store.store_id()
    finally:
        store.close()
    watch = AckWatch(r.broker.port)
    try:
        fw = r.start_station(ack_timeout_s=3600)
        wait_until(lambda: watch.batches, 30, 0.05, "the station's batch")
        batch = parse_batch(topic_for(STATION, "minute"), watch.batches[0])
        assert batch.store == own and [rec.seq for rec in batch.records] == [1, 2, 3, 4, 5]
        backlog = lambda: r.read(lambda s: s.outbox_stats()["backlog"])  # noqa: E731

        watch.ack([1, 2, 3, 4, 5], store="f" * 32)  # a replaced database's ack
        wait_until(lambda: fw.stats["foreign_acks"] == 1, 30, 0.05, "the foreign ack to be read")
        watch.ack([1, 2], store=own)
        wait_until(lambda: backlog() == 3, 30, 0.05, "the own store's ack to be applied")
        assert fw.stats["foreign_acks"] == 1
        watch.ack([3, 4, 5], store=None)  # an older central's ack names no store: applied
        wait_until(lambda: backlog() == 0, 30, 0.05, "the legacy ack to be applied")
    finally:
        watch.close()
