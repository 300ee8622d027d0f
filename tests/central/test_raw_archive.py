"""Central's raw archive (central/archive/, table raw_chunk) on SQLite and PostgreSQL: a chunk is
stored once per (station, store, device, start), a repeat absorbed and acknowledged again, a
conflict kept out; bad chunks are dead-lettered with their reason (refused ones acknowledged as
such); `raw_readings` gives back the station's rows in time order; retention prunes by a
chunk's end; `central-receiver archive status` shows what is held. The receiver runs against a
real mosquitto."""

from __future__ import annotations

import json
import threading
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from support.central import central_config
from support.wait import wait_until
from typer.testing import CliRunner

from central.archive import archive_status, raw_readings
from central.cli import app
from central.store import open_store
from ghgnet.timeutil import iso_utc
from ghgnet.wire import topic_for
from ghgnet.wire.raw import RAW_CONTENT_TYPE, RawChunk, encode_chunk, parse_raw_ack

T0 = datetime(2026, 3, 1, tzinfo=UTC)
STORE = "0123456789abcdef0123456789abcdef"
NOW = datetime(2026, 3, 2, tzinfo=UTC)


def raw_row(device: str, t: datetime, i: int) -> dict[str, Any]:
    """A raw row as StationStore.raw_rows yields it."""
    return {"device": device, "time": iso_utc(t), "stream": "inlet:top" if i % 50 < 40 else "cal:CAL-1",
            "flushing": i % 50 in (40, 41), "status": 963, "status_ok": i != 7,
            "status_flags": [] if i != 7 else ["bad"],
            "values": {"co2": 420.0 + i * 1e-3, "ch4": 2000.0 + (i % 7) * 0.1, "h2o": None if i == 3 else 1.25},
            "conditions": []}


def rows_between(device: str, start: datetime, end: datetime, step_s: float = 1.0, offset_ms: int = 0) -> list[dict]:
    out, t, i = [], start + timedelta(milliseconds=offset_ms), 0
    while t < end:
        out.append(raw_row(device, t, i))
        t += timedelta(seconds=step_s)
        i += 1
    return out


def chunk(device: str, start: datetime, minutes: int = 10, station: str = "st-a", **kw) -> RawChunk:
    end = start + timedelta(minutes=minutes)
    return encode_chunk(station, STORE, device, start, end, rows_between(device, start, end, **kw))


def test_a_chunk_is_stored_once_and_read_back_as_the_stations_rows(store):
    a0, a1 = chunk("picarro-1", T0), chunk("picarro-1", T0 + timedelta(minutes=10))
    b0 = chunk("flow-1", T0, step_s=5.0, offset_ms=300)
    assert [store.put_raw_chunk(c, NOW) for c in (a0, a1, b0)] == ["stored"] * 3
    assert store.put_raw_chunk(a0, NOW) == "duplicate"
    other = encode_chunk("st-a", STORE, "picarro-1", T0, T0 + timedelta(minutes=10),
                         rows_between("picarro-1", T0, T0 + timedelta(minutes=10), step_s=2.0))
    assert store.put_raw_chunk(other, NOW) == "conflict"
    assert len(store.raw_chunk_index("st-a", T0, T0 + timedelta(days=1))) == 3
    got = list(raw_readings(store, "st-a", T0, T0 + timedelta(days=1)))
    expected = sorted(a0.rows() + a1.rows() + b0.rows(), key=lambda r: (r["time"], r["device"]))
    assert got == expected and len(got) == 600 + 600 + 120
    (third,) = [r for r in got if r["device"] == "picarro-1" and r["time"] == iso_utc(T0 + timedelta(seconds=3))]
    assert [type(v) for v in third["values"].values()] == [float, float, type(None)]
    # a window cuts inside chunks; one device only
    w0, w1 = T0 + timedelta(minutes=5), T0 + timedelta(minutes=12, seconds=30)
    assert list(raw_readings(store, "st-a", w0, w1, device="picarro-1")) == [
        r for r in expected if r["device"] == "picarro-1" and iso_utc(w0) <= r["time"] < iso_utc(w1)]
    assert list(raw_readings(store, "st-b", T0, T0 + timedelta(days=1))) == []
    (flow, pic) = archive_status(store)
    assert (pic["device"], pic["chunks"], pic["rows"], pic["first"], pic["last"]) == (
        "picarro-1", 2, 1200, iso_utc(T0), iso_utc(T0 + timedelta(minutes=20)))
    assert pic["bytes"] == len(a0.body) + len(a1.body) and flow["rows"] == 120
    # retention: by a chunk's end
    assert store.prune_raw_chunks(T0 + timedelta(minutes=10)) == 2
    assert [r["device"] for r in archive_status(store)] == ["picarro-1"]


class RawStation:
    """A station's MQTT side for raw chunks: publishes frames with a content type, collects raw acks."""

    def __init__(self, broker, station: str = "st-a", user: str | None = None, password: str | None = None,
                 ack_of: str | None = None) -> None:
        self.station = station
        self.acks: list[Any] = []
        self.suback: list[Any] = []
        self.pubacks: dict[int, Any] = {}
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"raw-{station}", protocol=mqtt.MQTTv5)
        if user is not None:
            self.client.username_pw_set(user, password)
        self.client.on_connect = lambda c, *a: c.subscribe(topic_for(ack_of or station, "raw_ack"), qos=1)

        def on_subscribe(client, userdata, mid, reason_codes, properties) -> None:
            self.suback = list(reason_codes)
            subscribed.set()

        self.client.on_subscribe = on_subscribe
        self.client.on_publish = lambda c, u, mid, rc, p: self.pubacks.__setitem__(mid, rc)
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port, keepalive=30)
        self.client.loop_start()
        assert subscribed.wait(10), "no SUBACK"

    def _on_message(self, client, userdata, msg) -> None:
        with self._lock:
            self.acks.append(parse_raw_ack(msg.topic, msg.payload))

    def publish(self, payload: bytes, content_type: str | None = RAW_CONTENT_TYPE, station: str | None = None):
        """Publish a frame on the station's raw topic (or `station`'s); returns the PUBACK's reason code."""
        props = Properties(PacketTypes.PUBLISH)
        if content_type is not None:
            props.ContentType = content_type
        info = self.client.publish(topic_for(station or self.station, "raw"), payload, qos=1, properties=props)
        info.wait_for_publish(10)
        return wait_until(lambda: self.pubacks.get(info.mid), 10, message="the PUBACK")

    def results(self) -> list[tuple[str, str, str]]:
        with self._lock:
            return [(a.device, iso_utc(a.start), a.result) for a in self.acks]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_the_receiver_archives_chunks_once_and_dead_letters_bad_ones(mosquitto, tmp_path: Path, store_location,
                                                                    start_receiver):
    db = tmp_path / "central.sqlite"
    storage = ({"backend": "sqlite", "path": str(db)} if store_location["backend"] == "sqlite" else
               {"backend": "postgresql", "dsn": store_location["dsn"], "schema": store_location["schema"]})
    config = central_config(mosquitto, db, storage=storage, ingest={"max_payload_bytes": 200_000},
                            archive={"max_inflated_bytes": 1_000_000})
    receiver = start_receiver(config)
    assert receiver.raw_subscribed.wait(10), "the raw subscription"
    station = RawStation(mosquitto)
    good = chunk("picarro-1", T0)
    try:
        station.publish(good.frame)
        station.publish(good.frame)  # a repeat: absorbed, acknowledged again
        other = encode_chunk("st-a", STORE, "picarro-1", T0, T0 + timedelta(minutes=10),
                             rows_between("picarro-1", T0, T0 + timedelta(minutes=10), step_s=3.0))
        station.publish(other.frame)  # the same key, other rows: the stored copy stays
        wait_until(lambda: len(station.results()) == 3, 15, message="three acks")
        assert [r[2] for r in station.results()] == ["stored", "duplicate", "conflict"]
        # refused for its content: dead-lettered, acknowledged as refused with the reason
        head, body = good.frame.split(b"\n", 1)
        tampered = chunk("picarro-1", T0 + timedelta(minutes=10))
        t_head, t_body = tampered.frame.split(b"\n", 1)
        station.publish(t_head + b"\n" + zlib.compress(zlib.decompress(t_body).replace(b"420.0", b"421.0", 1)))
        station.publish(head + b"\n" + zlib.compress(b" " * 2_000_000))  # inflates beyond max_inflated_bytes
        wait_until(lambda: len(station.results()) == 5, 15, message="the refusals' acks")
        assert [r[2] for r in station.results()[3:]] == ["refused", "refused"]
        assert "hash_mismatch" in station.acks[3].reason and "oversize" in station.acks[4].reason
        # refused whole: no chunk to name, acknowledged to nobody
        station.publish(good.frame, content_type=None)
        station.publish(good.frame, station="st-b")  # another station's topic: forged
        station.publish(b"not a header")
        station.publish(good.frame + b"x" * 200_000)
        wait_until(lambda: receiver.archive.stats["chunks_dead_lettered"] >= 7, 15, message="the dead letters")
        assert len(station.results()) == 5
    finally:
        station.close()
    receiver.stop()
    reader = open_store(**store_location)
    try:
        assert [(c.device, c.start, c.rows) for c in reader.raw_chunk_index("st-a", T0, NOW)] == [
            ("picarro-1", T0, 600)]
        assert list(raw_readings(reader, "st-a", T0, NOW)) == good.rows()
        reasons = sorted(d.reason_code for d in reader.dead_letters())
        assert reasons == sorted(["raw_conflict", "hash_mismatch", "oversize", "unknown_content_type",
                                  "forged_station", "malformed_raw", "oversize"]), reasons
        forged = [d for d in reader.dead_letters() if d.reason_code == "forged_station"][0]
        assert "differs from the topic's station 'st-b'" in forged.reason
    finally:
        reader.close()
    if store_location["backend"] == "sqlite":
        toml = tmp_path / "central.toml"
        toml.write_text(f'[storage]\nbackend = "sqlite"\npath = "{db}"\n\n[archive]\nraw_retention_days = 30\n')
        shown = CliRunner().invoke(app, ["archive", "status", "--config", str(toml), "--json"])
        assert shown.exit_code == 0, shown.output
        doc = json.loads(shown.stdout)
        assert doc["retention_days"] == 30
        (dev,) = doc["devices"]
        assert (dev["station"], dev["device"], dev["rows"], dev["chunks"], dev["bytes"]) == (
            "st-a", "picarro-1", 600, 1, len(good.body))
        table = CliRunner().invoke(app, ["archive", "status", "--config", str(toml)], env={"COLUMNS": "200"})
        assert table.exit_code == 0 and "picarro-1" in table.stdout


def test_the_receiver_prunes_chunks_past_retention(mosquitto, tmp_path: Path, start_receiver):
    db = tmp_path / "central.sqlite"
    first = open_store("sqlite", path=db)
    try:
        old = chunk("picarro-1", T0)
        recent = chunk("picarro-1", datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1))
        assert first.put_raw_chunk(old, NOW) == first.put_raw_chunk(recent, NOW) == "stored"
    finally:
        first.close()
    receiver = start_receiver(central_config(mosquitto, db, archive={"raw_retention_days": 30}))
    wait_until(lambda: receiver.archive.stats["chunks_pruned"] == 1, 10, message="the periodic prune")
    receiver.stop()
    reader = open_store("sqlite", path=db)
    try:
        assert [c.start for c in reader.raw_chunk_index("st-a", T0, datetime.now(UTC))] == [recent.header.start]
    finally:
        reader.close()


@pytest.mark.parametrize("cut", [b"\n", b""])
def test_a_truncated_body_is_malformed(cut: bytes):
    from ghgnet.wire.raw import MalformedRaw, parse_chunk

    good = chunk("picarro-1", T0)
    parsed = parse_chunk("ghg/v1/st-a/raw", good.frame[:-20] + cut, RAW_CONTENT_TYPE, 1 << 20)
    with pytest.raises(MalformedRaw):
        parsed.rows()


def test_the_shipped_acl_lets_a_station_archive_only_its_own_raw_readings(mosquitto_acl, tmp_path: Path,
                                                                         start_receiver):
    """configs/mosquitto/acl.template: st-a writes its raw topic and reads its raw acks; st-b may
    neither write st-a's raw topic nor read st-a's acks; central reads every raw topic and writes the acks."""
    users = mosquitto_acl.users
    config = central_config(mosquitto_acl, tmp_path / "central.sqlite",
                            mqtt={"username": "ghgnet-central", "password": users["ghgnet-central"],
                                  "client_id": "ghgnet-central"})
    receiver = start_receiver(config)
    assert receiver.raw_subscribed.wait(10), "the raw subscription"
    st_a = RawStation(mosquitto_acl, "st-a", user="st-a", password=users["st-a"])
    st_b = RawStation(mosquitto_acl, "st-b", user="st-b", password=users["st-b"], ack_of="st-a")
    try:
        assert not st_a.suback[0].is_failure  # (mosquitto grants st-b's too, and delivers it nothing)
        good = chunk("picarro-1", T0)
        assert not st_a.publish(good.frame).is_failure
        wait_until(lambda: st_a.results() == [("picarro-1", iso_utc(T0), "stored")], 15, message="st-a's ack")
        forged = encode_chunk("st-a", STORE, "picarro-1", T0 + timedelta(minutes=10), T0 + timedelta(minutes=20),
                              rows_between("picarro-1", T0 + timedelta(minutes=10), T0 + timedelta(minutes=20)))
        refused = st_b.publish(forged.frame, station="st-a")
        assert refused.is_failure and refused.value == 0x87, refused  # not authorized
    finally:
        st_a.close()
        st_b.close()
    # the broker hands a message to every subscriber in one pass, before st-a had it: st-b got none
    assert receiver.archive.stats["chunks_stored"] == 1 and st_b.acks == [], "st-b read st-a's raw ack"
