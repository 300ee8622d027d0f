"""Records keyed by (station, store, seq) (central/store/identity.py), on SQLite and PostgreSQL: a
station database deleted and recreated (a new store, seqs from 1 again) is new data; within one
store, the same seq with other content is a conflict (dead letter `seq_conflict`, an alarm, acked)
and an exact redelivery a silent duplicate; a schema-4 store's records become the legacy store's."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from support.central import open_at_schema
from support.mqtt import T0, event, minute

from central.ingest import Handled, Ingestor, Message, group_acks
from central.store import open_store
from central.store.base import calibration_rows, minute_rows, target_rows
from central.store.sql import ROW_COLUMNS, TABLES_V5, migrations
from central.store.sqlite import TYPES
from ghgnet.wire import (
    CalibrationWire,
    FitWire,
    ParsedBatch,
    RejectedRecord,
    StandardWire,
    StatusMessage,
    TargetWire,
    encode_batch,
    parse_ack,
)

NOW = datetime(2026, 3, 5, tzinfo=UTC)
END = T0 + timedelta(days=30)
OLD = "0123456789abcdef0123456789abcdef"  # the station's first database
NEW = "fedcba9876543210fedcba9876543210"  # the one made after its disk was replaced
LATEST_SCHEMA = len(migrations(TYPES))


def minutes(seqs, store: str | None, **kw) -> ParsedBatch:
    return ParsedBatch("st-a", "minute", NOW, [minute(s, **kw) for s in seqs], store=store)


def calibration(seq: int, slope: float = 0.999) -> CalibrationWire:
    return CalibrationWire(
        seq=seq, record_type="calibration", id=f"cal-{seq}", time_start=T0, time_end=T0 + timedelta(hours=2),
        standards=[StandardWire(cylinder="CAL-A", measured={"co2": 380.1}, assigned={"co2": 380.0},
                                scale={"co2": "WMO-CO2-X2019"})],
        fits={"co2": FitWire(coefficients=[0.1, slope], residuals=[0.01, -0.01], r2=0.9999, rmse=0.01, n=3)})


def target(seq: int, bias: float = 0.05) -> TargetWire:
    return TargetWire(seq=seq, record_type="target", id=f"tgt-{seq}", time=T0 + timedelta(hours=3),
                      cylinder="TGT-1", measured={"co2": 410.0 + bias}, assigned={"co2": 410.0},
                      bias={"co2": bias}, within_goal={"co2": True})


def test_a_recreated_station_database_is_new_data_from_seq_1(store):
    first = store.store_batch(minutes(range(1, 6), OLD), NOW)
    assert (first.new, first.store) == (5, OLD)
    # the disk is replaced: a new store, seqs from 1 again, other minutes
    again = store.store_batch(minutes(range(1, 6), NEW, t0=T0 + timedelta(days=1), co2=430.0), NOW)
    assert (again.new, again.duplicate, again.dead_lettered, again.conflicts) == (5, 0, 0, [])
    assert again.ack_seqs == [1, 2, 3, 4, 5] and again.store == NEW
    assert store.held_seqs("st-a", OLD) == store.held_seqs("st-a", NEW) == [1, 2, 3, 4, 5]
    assert store.held_seqs("st-a") == []  # nothing under the legacy store
    stored = list(store.minutes("st-a", T0, END))
    assert [(m.store, m.seq) for m in stored] == [(OLD, s) for s in range(1, 6)] + [(NEW, s) for s in range(1, 6)]
    assert {m.species["co2"].cal_mean for m in stored if m.store == NEW} == {430.0}
    assert store.dead_letter_count() == 0 and store.alarm_count() == 0
    (s,) = store.stations()
    assert (s.minutes, s.duplicates, s.store, s.last_seq) == (10, 0, NEW, 5)


def test_a_legacy_station_and_its_store_identity_are_two_stores(store):
    assert store.store_batch(minutes([1, 2], None), NOW).new == 2
    out = store.store_batch(minutes([1, 2], OLD, co2=500.0), NOW)
    assert (out.new, out.conflicts) == (2, [])
    assert store.held_seqs("st-a") == store.held_seqs("st-a", OLD) == [1, 2]


def test_an_exact_redelivery_is_a_silent_duplicate(store):
    store.store_batch(minutes([1, 2, 3], OLD), NOW)
    out = store.store_batch(minutes([2, 3, 4], OLD), NOW + timedelta(minutes=5))
    assert (out.new, out.duplicate, out.dead_lettered, out.conflicts) == (1, 2, 0, [])
    assert out.ack_seqs == [2, 3, 4]
    assert store.dead_letter_count() == 0 and store.alarm_count() == 0
    assert store.stations()[0].duplicates == 2


def test_the_same_seq_with_other_content_is_a_conflict_dead_lettered_alarmed_and_acked(store):
    store.store_batch(minutes([1, 2, 3], OLD), NOW)
    out = store.store_batch(minutes([3, 4], OLD, co2=499.0), NOW + timedelta(minutes=5))
    assert (out.new, out.duplicate, out.dead_lettered, out.conflicts) == (1, 0, 1, [3])
    assert out.ack_seqs == [3, 4]  # acked: the station must not resend it forever
    # both versions kept: the stored copy unchanged, the incoming one in the dead letters
    (kept,) = [m for m in store.minutes("st-a", T0, END) if m.seq == 3]
    assert kept.species["co2"].cal_mean == 420.0
    (letter,) = store.dead_letters()
    assert (letter.reason_code, letter.station, letter.store, letter.seq) == ("seq_conflict", "st-a", OLD, 3)
    assert letter.topic == "ghg/v1/st-a/minute" and "species" in letter.reason and OLD in letter.reason
    record = json.loads(letter.payload)
    assert record["seq"] == 3 and record["species"]["co2"]["cal_mean"] == 499.0
    assert record["time"] == "2026-03-01T00:03:00.000Z" and record["device"] == "g2401"
    (alarm,) = store.alarms()
    assert (alarm.kind, alarm.station, alarm.store, alarm.data["seqs"]) == ("seq_conflict", "st-a", OLD, [3])
    assert alarm.data["fields"] == ["species"] and alarm.time == NOW + timedelta(minutes=5)
    s = store.stations()[0]
    assert (s.minutes, s.duplicates, s.dead_letters) == (4, 0, 1)
    # the conflicting batch redelivered: acked again, but no second letter and no second alarm
    out = store.store_batch(minutes([3, 4], OLD, co2=499.0), NOW + timedelta(minutes=6))
    assert (out.new, out.duplicate, out.dead_lettered, out.conflicts) == (0, 1, 0, [3])
    assert store.dead_letter_count() == 1 and store.alarm_count() == 1


def test_conflicts_of_events_calibrations_and_targets_compare_every_value(store):
    store.store_batch(ParsedBatch("st-a", "event", NOW, [event(1), event(2)], store=OLD), NOW)
    changed = event(2).model_copy(update={"data": {"port": 4}})
    out = store.store_batch(ParsedBatch("st-a", "event", NOW, [event(1), changed], store=OLD), NOW)
    assert (out.duplicate, out.conflicts) == (1, [2])
    store.store_batch(ParsedBatch("st-a", "calibration", NOW, [calibration(10), target(11)], store=OLD), NOW)
    # the calibration differs only in a fit (its own table), the target only in a bias
    out = store.store_batch(ParsedBatch("st-a", "calibration", NOW, [calibration(10, slope=1.5), target(11, 0.2)],
                                        store=OLD), NOW)
    assert (out.new, out.duplicate, out.conflicts) == (0, 0, [10, 11])
    fields = {a.data["record_kind"] + ":" + ",".join(a.data["fields"]) for a in store.alarms()}
    assert fields == {"event:data", "calibration:calibration_fit,target_value"}  # one alarm a batch
    assert store.calibrations("st-a", T0, END)[0].fits["co2"].coefficients == [0.1, 0.999]
    letters = {d.seq: json.loads(d.payload) for d in store.dead_letters()}
    assert letters[10]["fits"]["co2"]["coefficients"] == [0.1, 1.5] and letters[11]["bias"] == {"co2": 0.2}
    same = store.store_batch(ParsedBatch("st-a", "calibration", NOW, [calibration(10), target(11)], store=OLD), NOW)
    assert (same.duplicate, same.conflicts) == (2, [])


def schema4_insert(old, table: str, rows: list[tuple]) -> None:
    """Rows as schema 4 kept them: this code's rows (their store is not in them) without the columns
    added after schema 5 (TABLES_V5; appended to the rows, so cut from their end)."""
    cols = [c for c, _ in TABLES_V5[table] if c != "store"]
    assert [c for c, _ in ROW_COLUMNS[table]][:len(cols)] == cols
    old._executemany(old._sql(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"),
                     [r[:len(cols)] for r in rows])


def test_a_schema_4_store_keeps_its_records_under_the_legacy_store(store_location):
    old = open_at_schema(store_location, 4)
    try:  # what schema 4 held: two minutes, a calibration and a target, a refused record, counters
        t, received = old._t, old._t(NOW)
        schema4_insert(old, "minute", minute_rows("st-a", [minute(1), minute(2)], t, received))
        rows, fits = calibration_rows("st-a", [calibration(10)], t, received)
        schema4_insert(old, "calibration", rows)
        schema4_insert(old, "calibration_fit", fits)
        rows, values = target_rows("st-a", [target(11)], t, received)
        schema4_insert(old, "target", rows)
        schema4_insert(old, "target_value", values)
        old._execute(old._sql("INSERT INTO dead_letter (received_at, topic, station, seq, reason_code, reason, "
                              "payload, payload_size) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"),
                     (received, "ghg/v1/st-a/minute", "st-a", 3, "invalid_record", "records.0.flag", b"{}", 2))
        old._execute(old._sql("INSERT INTO station (station, first_seen, last_seen, last_seq, minutes) "
                              "VALUES (?, ?, ?, ?, ?)"), ("st-a", received, received, 11, 2))
    finally:
        old.close()
    store = open_store(**store_location)
    try:
        assert store.schema_version() == LATEST_SCHEMA
        assert [(m.store, m.seq) for m in store.minutes("st-a", T0, END)] == [(None, 1), (None, 2)]
        assert store.held_seqs("st-a") == [1, 2, 10, 11]
        assert store.calibrations("st-a", T0, END)[0].fits["co2"].coefficients == [0.1, 0.999]
        assert store.targets("st-a", T0, END)[0].values["co2"].bias == 0.05
        assert store.stations()[0].store is None
        # the same batches from the same (legacy) station: duplicates, the refused record once
        refused = RejectedRecord(0, 3, "records.0.flag: not a flag", {"seq": 3, "flag": "lowercase"})
        again = store.store_batch(ParsedBatch("st-a", "minute", NOW, [minute(1), minute(2)], [refused]), NOW)
        assert (again.duplicate, again.dead_lettered, again.ack_seqs) == (2, 0, [1, 2, 3])
        assert store.store_batch(ParsedBatch("st-a", "calibration", NOW, [calibration(10), target(11)]),
                                 NOW).duplicate == 2
        assert [(d.seq, d.store) for d in store.dead_letters()] == [(3, None)]
        assert (store.stations()[0].last_seq, store.alarm_count()) == (11, 0)
        # the station reinstalled with a store identity: new data, and its last seq is the new store's
        assert store.store_batch(minutes([1, 2], NEW), NOW).new == 2
        assert (store.stations()[0].store, store.stations()[0].last_seq) == (NEW, 2)
    finally:
        store.close()


def test_a_station_frozen_by_a_status_from_the_future_is_thawed_by_the_migration(store_location):
    old = open_at_schema(store_location, 4)
    try:  # what schema 4 kept after an "up" from 2999, then the station's will: down for good
        old._execute(old._sql(
            "INSERT INTO status (station, state, time, received_at, backlog, agent_version, details, last_up_time) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"),
            ("st-a", "down", old._t(NOW), old._t(NOW), 0, "", "{}", old._t(datetime(2999, 1, 1, tzinfo=UTC))))
        old._execute(old._sql("INSERT INTO station (station, first_seen, last_seen) VALUES (?, ?, ?)"),
                     ("st-a", old._t(NOW), old._t(NOW)))
    finally:
        old.close()
    store = open_store(**store_location)
    try:
        up = StatusMessage(station="st-a", state="up", time=NOW + timedelta(minutes=3), interval_s=30.0)
        assert store.store_status(up, NOW + timedelta(minutes=3)).stored
        assert store.stations()[0].status.state == "up"
    finally:
        store.close()


def test_an_up_is_taken_while_the_last_one_is_stamped_ahead_of_centrals_clock(store):
    """A station whose clock ran 50 minutes ahead, set right while up: its next statuses are older."""
    ahead = timedelta(minutes=50)
    up = StatusMessage(station="st-a", state="up", time=NOW + ahead, interval_s=30.0)
    assert store.store_status(up, NOW).stored
    after = StatusMessage(station="st-a", state="up", time=NOW + timedelta(seconds=30), interval_s=30.0)
    assert store.store_status(after, NOW + timedelta(seconds=30)).stored
    assert store.stations()[0].status.received_at == NOW + timedelta(seconds=30)


def test_one_ack_per_station_and_store_naming_the_store_only_when_the_batch_did(tmp_path):
    store = open_store("sqlite", path=tmp_path / "central.sqlite")
    try:
        ingest = Ingestor(store, now=lambda: NOW)
        payloads = [
            ("minute", encode_batch("st-a", "minute", [minute(1), minute(2)], NOW, store=OLD)),
            ("minute", encode_batch("st-a", "minute", [minute(1)], NOW, store=NEW)),
            ("event", encode_batch("st-a", "event", [event(3)], NOW, store=OLD)),
            ("minute", encode_batch("st-a", "minute", [minute(7)], NOW)),
        ]
        handled = ingest.handle([Message(f"ghg/v1/st-a/{kind}", p) for kind, p in payloads])
        acks = [parse_ack(topic, payload) for topic, payload in group_acks(handled)]
        assert [(a.store, a.acked) for a in acks] == [(OLD, [(1, 3)]), (NEW, [(1, 1)]), (None, [(7, 7)])]
        assert all("store" not in json.loads(p) for _, p in group_acks(handled[3:]))
        assert group_acks([Handled(None)]) == []
    finally:
        store.close()
