"""A station configured lean ([forwarding] encoding = "lean"), with real parts only: a real mosquitto,
central's real Receiver into its SQLite store, the station's real StoreWriter and Forwarder on a
real database. Every data message carries the lean content type, central stores every record
exactly once, and the size limits hold as with JSON: a record too big for a message is set aside,
and a lean message the broker will not take is halved down to the record, which is set aside."""

from __future__ import annotations

import base64
import random
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
from ghgnet.config import ConfigError
from ghgnet.logs import get_logger
from ghgnet.mqttlink import MqttConfig, make_client
from ghgnet.records import Event, MinuteRecord, SpeciesMinute
from ghgnet.wire import LEAN_CONTENT_TYPE
from simulators.broker import MosquittoBroker, find_mosquitto
from station_agent.config import load_station_config
from station_agent.forwarding.forwarder import Forwarder, ForwardingConfig
from station_agent.processing.minute_bins import MinuteAssembler
from station_agent.storage.store import StationStore
from station_agent.storage.writer import StoreWriter

STATION = "st-lean"
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def minutes(first: int, n: int, rng: random.Random) -> list[MinuteRecord]:
    return [MinuteRecord(time=T0 + timedelta(minutes=first + i), device="picarro-1", stream="inlet:top",
                         species={"co2": SpeciesMinute(rng.gauss(420, 2), rng.uniform(0.01, 0.1), 60, 419.7, None),
                                  "ch4": SpeciesMinute(rng.gauss(2000, 9), 0.8, 60, 1998.0, 2000.0)},
                         h2o=rng.uniform(0.5, 2), flag="U", n_total=60, calibration_id="cal-1",
                         diagnostics={"cavity_pressure": rng.gauss(140, 0.01)})
            for i in range(n)]


def fill(db: Path, blob: str) -> int:
    """300 minutes, an event holding `blob`, 300 minutes, a calibration; the event's seq."""
    rng = random.Random(5)
    store = StationStore(db)
    try:
        store.insert_minutes(minutes(0, 300, rng), T0)
        big = store.insert_event(Event(T0, "test.big", "info", "a big record", None, {"blob": blob}))
        store.insert_minutes(minutes(300, 300, rng), T0)
        return big
    finally:
        store.close()


class Sniffer:
    """Every data message of the station as central's broker passes it on: (content type, bytes)."""

    def __init__(self, port: int) -> None:
        self.seen: list[tuple[str | None, int]] = []
        self.lock = threading.Lock()
        self.client = make_client(MqttConfig(host="127.0.0.1", port=port), "lean-sniffer")
        subscribed = threading.Event()
        self.client.on_message = self._got
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_connect = lambda c, *a: c.subscribe(f"ghg/v1/{STATION}/+", qos=0)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(10)

    def _got(self, client, userdata, msg) -> None:
        if msg.topic.rpartition("/")[2] in ("minute", "event", "calibration"):
            with self.lock:
                self.seen.append((getattr(msg.properties, "ContentType", None), len(msg.payload)))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Rig:
    def __init__(self, tmp: Path, broker_config: str) -> None:
        self.db = tmp / "station.sqlite"
        self.central_db = tmp / "central.sqlite"
        self.broker = MosquittoBroker(tmp / "mosquitto", extra_config=broker_config).start()
        self.receiver = Receiver(CentralConfig.model_validate({
            "mqtt": {"host": "127.0.0.1", "port": self.broker.port, "client_id": "ghgnet-central"},
            "storage": {"backend": "sqlite", "path": str(self.central_db)},
        })).start()
        assert self.receiver.subscribed.wait(10)
        self.sniffer = Sniffer(self.broker.port)
        self.writer: StoreWriter | None = None
        self.forwarder: Forwarder | None = None

    def start_station(self, **forwarding) -> Forwarder:
        clock, log = ScaledClock(), get_logger(component="test")
        self.writer = StoreWriter(self.db, clock, MinuteAssembler(20), lambda b: None, log, dict, timedelta(days=30))
        self.writer.start()
        cfg = ForwardingConfig(**{"encoding": "lean", "ack_timeout_s": 10, "status_interval_s": 3600, **forwarding})
        self.forwarder = Forwarder(STATION, MqttConfig(host="127.0.0.1", port=self.broker.port), cfg, self.db,
                                   clock, self.writer.submit_ack, self.writer.submit_event, log,
                                   set_aside=self.writer.submit_set_aside)
        self.forwarder.start()
        return self.forwarder

    def read(self, fn):
        store = StationStore(self.db, read_only=True)
        try:
            return fn(store)
        finally:
            store.close()

    def run_until_empty(self, timeout_s: float) -> None:
        wait_until(lambda: self.read(lambda s: s.outbox_empty()), timeout_s, 0.05, "the outbox to empty")
        self.forwarder.stop()
        self.writer.stop()
        self.forwarder = self.writer = None

    def central_holds_all_but(self, set_aside: set[int]) -> None:
        self.receiver.stop()
        produced, stored = station_records(self.db), central_records(self.central_db, STATION)
        for kind in produced:
            expected = {s: v for s, v in produced[kind].items() if s not in set_aside}
            assert stored[kind] == expected, f"{kind}: central differs from the station"

    def close(self) -> None:
        if self.forwarder is not None:
            self.forwarder.stop()
        if self.writer is not None:
            self.writer.stop()
        self.sniffer.close()
        self.receiver.stop()
        self.broker.kill()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator:
    if find_mosquitto() is None:
        pytest.fail("mosquitto is needed for these tests (apt-get install mosquitto)")
    made: list[Rig] = []

    def make(broker_config: str) -> Rig:
        made.append(Rig(tmp_path, broker_config))
        return made[-1]

    yield make
    for r in made:
        r.close()


def test_a_lean_station_sends_lean_batches_central_stores_once_and_a_record_too_big_is_set_aside(rig):
    r = rig("message_size_limit 524288")
    big = fill(r.db, "x" * 120_000)  # 120 kB of JSON: more than a message's 64 KiB, though it deflates to little
    fw = r.start_station(max_message_bytes=65536, batch_size=100)
    r.run_until_empty(60)
    aside = r.read(lambda s: s.set_aside_rows())
    assert [a["seq"] for a in aside] == [big] and "forwarding.max_message_bytes 65536" in aside[0]["reason"]
    stats = dict(r.receiver.stats)
    r.central_holds_all_but({big})
    assert stats["records_new"] >= 600 and stats["records_dead_lettered"] == stats.get("messages_dead_lettered", 0) == 0
    seen = list(r.sniffer.seen)
    assert len(seen) == fw.stats["published_messages"] >= 6
    assert {ct for ct, _ in seen} == {LEAN_CONTENT_TYPE}
    # 100 minutes of ~480 JSON bytes each went in messages of ~10 kB or less
    assert max(n for _, n in seen) < 100 * 480 / 4


def test_a_lean_message_the_broker_will_not_take_is_halved_down_to_its_record_which_is_set_aside(rig):
    # The station's limit is above the broker's: mosquitto drops the link for a message over 64 KiB,
    # and a blob of random text stays big when deflated (~90 kB from 120 kB of base64).
    r = rig("message_size_limit 65536")
    blob = base64.b64encode(random.Random(3).randbytes(90_000)).decode()
    big = fill(r.db, blob)
    fw = r.start_station(max_message_bytes=262144, batch_size=16, set_aside_after_drops=2)
    r.run_until_empty(120)
    aside = r.read(lambda s: s.set_aside_rows())
    assert [a["seq"] for a in aside] == [big] and "dropped the connection" in aside[0]["reason"]
    assert fw.stats["set_aside"] == 1
    r.central_holds_all_but({big})


def test_a_station_chooses_lean_in_its_config_and_a_misspelt_encoding_is_named(tmp_path: Path):
    example = (Path(__file__).resolve().parents[2] / "configs" / "station.example.toml").read_text()
    assert '# encoding = "lean"' in example
    for name, text in (("lean", example.replace('# encoding = "lean"', 'encoding = "lean"')),
                       ("zstd", example.replace('# encoding = "lean"', 'encoding = "zstd"'))):
        path = tmp_path / f"{name}.toml"
        path.write_text(text)
        if name == "lean":
            cfg = load_station_config(path)
            assert cfg.forwarding.encoding == "lean"
            assert load_station_config(Path(__file__).resolve().parents[2] / "configs"
                                       / "station.example.toml").forwarding.encoding == "json"
        else:
            with pytest.raises(ConfigError) as err:
                load_station_config(path)
            assert any("forwarding.encoding" in line and "'json' or 'lean'" in line for line in err.value.lines), \
                err.value.lines
