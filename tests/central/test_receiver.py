"""The receiver against a real mosquitto: store, deduplicate, dead-letter, ack after commit."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.central import central_config
from support.mqtt import TestStation, event, minute
from support.wait import wait_until

from central.store import open_store
from ghgnet.wire import StatusMessage, encode_batch

SENT = datetime(2026, 3, 2, tzinfo=UTC)


def batch(seqs, station: str = "st-a", kind: str = "minute") -> bytes:
    make = minute if kind == "minute" else event
    return encode_batch(station, kind, [make(s) for s in seqs], SENT)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "central.sqlite"


@pytest.fixture
def reader(db: Path):
    """A second connection to the receiver's SQLite file, for the test to look at."""
    s = open_store("sqlite", path=db)
    yield s
    s.close()


@pytest.fixture
def station(mosquitto):
    s = TestStation(mosquitto, "st-a")
    yield s
    s.close()


def test_valid_batch_is_stored_then_acked(mosquitto, db, reader, station, start_receiver):
    start_receiver(central_config(mosquitto, db))
    assert station.publish("minute", batch(range(1, 11))).value == 0
    station.wait_acked(range(1, 11))
    assert reader.held_seqs("st-a") == list(range(1, 11))
    rows = list(reader.minutes("st-a", SENT.replace(day=1), SENT))
    assert [r.seq for r in rows] == list(range(1, 11))
    assert rows[0].species["co2"].cal_mean == 420.0


def test_redelivered_batch_is_counted_duplicate_and_acked_again(mosquitto, db, reader, station, start_receiver):
    start_receiver(central_config(mosquitto, db))
    station.publish("minute", batch([1, 2, 3]))
    station.wait_acked([1, 2, 3])
    station.acked.clear()
    station.publish("minute", batch([2, 3, 4]))
    station.wait_acked([2, 3, 4])
    summary = reader.stations()[0]
    assert (summary.minutes, summary.duplicates) == (4, 2)
    assert reader.held_seqs("st-a") == [1, 2, 3, 4]


def test_a_stored_group_gets_one_ack_per_station_with_exactly_its_seqs(mosquitto, db, start_receiver):
    # commit_max_wait_ms: the six messages (about 10 ms of publishing) form one stored group
    receiver = start_receiver(central_config(mosquitto, db, ingest={"commit_max_wait_ms": 2000}))
    a, b = TestStation(mosquitto, "st-a"), TestStation(mosquitto, "st-b")
    try:
        a.publish("minute", batch([1, 2, 3]))
        b.publish("minute", batch([10, 11], station="st-b"))
        b.publish("minute", b"{not json")  # dead-lettered as a whole: acked to nobody
        a.publish("minute", batch([3, 4]))  # 3 again: a duplicate, acked too
        b.publish("event", batch([20], station="st-b", kind="event"))
        a.wait_acked([1, 2, 3, 4])
        b.wait_acked([10, 11, 20])
        assert receiver.stats["messages_handled"] == 5 and receiver.stats["acks_sent"] == 2
        assert [json.loads(m)["acked"] for m in a.ack_messages] == [[[1, 4]]]
        assert [json.loads(m)["acked"] for m in b.ack_messages] == [[[10, 11], [20, 20]]]
    finally:
        a.close()
        b.close()


def test_events_and_status_are_stored(mosquitto, db, reader, station, start_receiver):
    start_receiver(central_config(mosquitto, db))
    station.publish("event", batch([7, 9], kind="event"))
    station.wait_acked([7, 9])
    status = StatusMessage(station="st-a", state="up", time=SENT, backlog=12, oldest_unacked_age_s=3.5,
                           agent_version="0.1.0", interval_s=30.0)
    station.publish("status", status.to_json(), retain=True)
    wait_until(lambda: reader.stations() and reader.stations()[0].status, message="status stored")
    st = reader.stations()[0].status
    assert (st.state, st.backlog, st.oldest_unacked_age_s, st.interval_s) == ("up", 12, 3.5, 30.0)
    assert [e.seq for e in reader.events("st-a", SENT.replace(day=1), SENT)] == [7, 9]


def _valid() -> dict:
    return json.loads(batch([20, 21]))


def _with(**changes) -> bytes:
    d = _valid()
    d.update(changes)
    return json.dumps(d).encode()


def _record_change(index: int, **changes) -> bytes:
    d = _valid()
    d["records"][index].update(changes)
    return json.dumps(d).encode()


BAD_PAYLOADS = {
    # name: (payload, reason_code, words in the reason, seqs central should ack)
    "malformed_json": (b'{"schema": 1, "station": "st-a", "records": [', "malformed_json", "malformed JSON", []),
    "nan_is_not_json": (batch([20]).replace(b'"h2o":1.2', b'"h2o":NaN'), "malformed_json", "malformed JSON", []),
    "not_an_object": (b"[1, 2, 3]", "invalid_payload", "not an object", []),
    "unknown_version": (_with(schema=2), "unknown_schema", "unknown schema version 2", []),
    "version_as_string": (_with(schema="1"), "unknown_schema", "unknown schema version '1'", []),
    "forged_station": (_with(station="st-b"), "forged_station", "differs from the topic's station 'st-a'", []),
    "kind_mismatch": (_with(kind="event"), "kind_mismatch", "differs from the topic's kind 'minute'", []),
    "sent_wrong_type": (_with(sent=12345), "invalid_payload", "sent", []),
    "records_not_list": (_with(records={"seq": 1}), "invalid_payload", "records: expected a list", []),
    "unknown_key": (_with(extra=1), "invalid_payload", "unknown key", []),
    "oversize": (_with(padding="x" * 70000), "oversize", "exceeds the limit of 65536 bytes", []),
    "wrong_type_in_record": (_record_change(0, seq=20, n_total="60"), "invalid_record", "records.0.n_total", [20, 21]),
    "species_mean_string": (_record_change(1, species={"co2": {"mean": "420", "std": 0.1, "n": 5, "raw_mean": 1.0}}),
                            "invalid_record", "records.1.species.co2.mean", [20, 21]),
    "duplicated_seq": (_record_change(1, seq=20), "invalid_record", "duplicated seq 20 within the batch", [20]),
}


@pytest.mark.parametrize("name", list(BAD_PAYLOADS))
def test_bad_payload_is_dead_lettered_and_receiver_keeps_serving(
        name, mosquitto, db, reader, station, start_receiver):
    payload, code, words, acked = BAD_PAYLOADS[name]
    receiver = start_receiver(central_config(mosquitto, db))
    station.publish("minute", payload)
    letters = wait_until(lambda: reader.dead_letters(), message="a dead letter")
    assert letters[0].reason_code == code
    assert words in letters[0].reason, letters[0].reason
    assert letters[0].topic == "ghg/v1/st-a/minute"
    # the receiver keeps serving: a valid batch afterwards is stored and acked
    station.publish("minute", batch([100]))
    station.wait_acked([100])
    assert station.acked - {100} == set(acked)
    assert 100 in reader.held_seqs("st-a")
    # counted after the ack is published: the station may see the ack first
    wait_until(lambda: receiver.stats["messages_handled"] == 2, message="both messages counted")


def test_central_down_messages_wait_in_its_session_and_arrive_on_restart(
        mosquitto, db, reader, station, start_receiver):
    cfg = central_config(mosquitto, db)
    first = start_receiver(cfg)
    first.stop()
    station.publish("minute", batch([1, 2]))  # central is away: the broker queues for its session
    station.publish("minute", batch([3]))
    assert station.acked == set()
    start_receiver(cfg)
    station.wait_acked([1, 2, 3])
    assert reader.held_seqs("st-a") == [1, 2, 3]


def test_acl_lets_a_station_write_only_its_own_topics(mosquitto_acl, db, reader, start_receiver):
    users = mosquitto_acl.users
    cfg = central_config(mosquitto_acl, db, mqtt={"username": "ghgnet-central", "password": users["ghgnet-central"]})
    start_receiver(cfg)
    a = TestStation(mosquitto_acl, "st-a", username="st-a", password=users["st-a"])
    try:
        denied = a.publish("minute", batch([1], station="st-b"), station="st-b")
        assert denied.is_failure and denied.value == 0x87  # Not authorized: the data stays at the station
        assert a.publish("minute", batch([2])).value == 0
        a.wait_acked([2])
        assert reader.held_seqs("st-b") == [] and reader.held_seqs("st-a") == [2]
    finally:
        a.close()


def test_receiver_over_tls_with_a_client_certificate(mosquitto_tls, tls_files, db, reader, start_receiver):
    cfg = central_config(mosquitto_tls, db, mqtt={
        "port": mosquitto_tls.tls_port,
        "tls": {"enabled": True, "ca": str(tls_files.ca), "cert": str(tls_files.client_cert),
                "key": str(tls_files.client_key)},
    })
    start_receiver(cfg)
    s = TestStation(mosquitto_tls, "st-a")  # the station on the plain listener
    try:
        s.publish("minute", batch([1, 2]))
        s.wait_acked([1, 2])
    finally:
        s.close()
    assert reader.held_seqs("st-a") == [1, 2]


def test_two_receivers_sharing_a_subscription_into_postgresql_lose_and_duplicate_nothing(
        mosquitto, pg_dsn, pg_schema, tmp_path, station, start_receiver):
    receivers = [
        start_receiver(central_config(
            mosquitto, tmp_path / "unused.sqlite", mqtt={"client_id": f"central-{i}"},
            storage={"backend": "postgresql", "dsn": pg_dsn, "schema": pg_schema},
            ingest={"shared_group": "central"}))
        for i in range(2)
    ]
    batches = [list(range(s, s + 5)) for s in range(1, 201, 5)]
    for seqs in batches + batches[:10]:  # the first ten are sent twice, as after a lost ack
        station.publish("minute", batch(seqs))
    station.wait_acked(range(1, 201), timeout_s=20)
    handled = [r.stats["messages_handled"] for r in receivers]
    assert all(h > 0 for h in handled), handled  # the broker split the load
    wait_until(lambda: sum(r.stats["messages_handled"] for r in receivers) == 50, message="all handled")
    reader = open_store("postgresql", dsn=pg_dsn, schema=pg_schema)
    try:
        assert reader.held_seqs("st-a") == list(range(1, 201))
        s = reader.stations()[0]
        assert (s.minutes, s.duplicates) == (200, 50)
    finally:
        reader.close()
