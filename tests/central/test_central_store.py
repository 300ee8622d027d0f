"""The CentralStore contract, run on SQLite and on a real PostgreSQL (fixture `store`)."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.mqtt import T0, event, minute

from central.store import DeadLetter, StoreError, open_store
from central.store.sql import SqlStore, migrations
from ghgnet.timeutil import iso_utc
from ghgnet.wire import (
    CalibrationWire,
    FitWire,
    ParsedBatch,
    StandardWire,
    StatusMessage,
    TargetWire,
    encode_batch,
    parse_batch,
)

NOW = datetime(2026, 3, 5, tzinfo=UTC)
LATEST_SCHEMA = len(migrations({k: k for k in ("text", "bigint", "int", "real", "time", "json", "bool",
                                              "bytes", "autoid")}))
END = T0 + timedelta(days=30)


def minutes_batch(seqs, station="st-a", **kw) -> ParsedBatch:
    return ParsedBatch(station, "minute", NOW, [minute(s, **kw) for s in seqs])


def test_batch_is_stored_once_and_a_second_arrival_is_a_duplicate(store):
    first = store.store_batch(minutes_batch(range(1, 6)), NOW)
    assert (first.new, first.duplicate, first.ack_seqs) == (5, 0, [1, 2, 3, 4, 5])
    again = store.store_batch(minutes_batch(range(4, 9)), NOW)
    assert (again.new, again.duplicate) == (3, 2)
    assert store.held_seqs("st-a") == list(range(1, 9))
    s = store.stations()[0]
    assert (s.station, s.minutes, s.duplicates, s.last_seq) == ("st-a", 8, 2, 8)


def test_a_duplicate_never_overwrites_what_is_stored(store):
    store.store_batch(minutes_batch([1], co2=400.0), NOW)
    store.store_batch(minutes_batch([1], co2=999.0, flag="N"), NOW)
    (m,) = store.minutes("st-a", T0, END)
    assert m.species["co2"].cal_mean == 400.0 and m.flag == "U"


def test_minute_round_trip_keeps_every_field(store):
    sent = minute(3)
    store.store_batch(ParsedBatch("st-a", "minute", NOW, [sent]), NOW)
    (m,) = store.minutes("st-a", T0, END)
    assert (m.seq, m.time, m.device, m.stream, m.h2o, m.flag, m.reasons, m.n_total, m.calibration_id) == (
        3, sent.time, "g2401", "inlet:100m", 1.2, "U", [], 60, "cal-1")
    assert m.diagnostics == {"cavity_pressure": 140.0}
    assert {k: (v.mean, v.std, v.n, v.raw_mean, v.cal_mean) for k, v in m.species.items()} == {
        k: (v.mean, v.std, v.n, v.raw_mean, v.cal_mean) for k, v in sent.species.items()}
    assert m.received_at == NOW
    assert store.minute_species("st-a", T0, END) == ["ch4", "co2"]


def test_minutes_query_is_start_inclusive_end_exclusive_and_per_station(store):
    store.store_batch(minutes_batch(range(1, 11)), NOW)
    store.store_batch(minutes_batch(range(1, 4), station="st-b"), NOW)
    got = [m.seq for m in store.minutes("st-a", T0 + timedelta(minutes=3), T0 + timedelta(minutes=7))]
    assert got == [3, 4, 5, 6]
    assert [m.seq for m in store.minutes("st-b", T0, END)] == [1, 2, 3]


def test_events_round_trip(store):
    out = store.store_batch(ParsedBatch("st-a", "event", NOW, [event(4), event(6)]), NOW)
    assert out.new == 2
    evs = store.events("st-a", T0, END)
    assert [(e.seq, e.kind, e.severity, e.data) for e in evs] == [(4, "valve", "info", {"port": 3}),
                                                                (6, "valve", "info", {"port": 3})]


def test_calibrations_and_targets_round_trip(store):
    cal = CalibrationWire(
        seq=10, record_type="calibration", id="cal-7", time_start=T0, time_end=T0 + timedelta(hours=2),
        standards=[StandardWire(cylinder="CAL-A", measured={"co2": 380.1}, assigned={"co2": 380.0},
                                scale={"co2": "WMO-CO2-X2019"})],
        fits={"co2": FitWire(coefficients=[0.1, 0.999], residuals=[0.01, -0.01], r2=0.9999, rmse=0.01, n=3)},
    )
    tgt = TargetWire(seq=11, record_type="target", id="tgt-1", time=T0 + timedelta(hours=3), cylinder="TGT-1",
                     measured={"co2": 410.05, "ch4": 1950.0}, assigned={"co2": 410.0, "ch4": 1951.0},
                     bias={"co2": 0.05, "ch4": -1.0}, within_goal={"co2": True, "ch4": True})
    out = store.store_batch(ParsedBatch("st-a", "calibration", NOW, [cal, tgt]), NOW)
    assert (out.new, out.duplicate) == (2, 0)
    (c,) = store.calibrations("st-a", T0, END)
    assert c.id == "cal-7" and c.time_end == T0 + timedelta(hours=2)
    assert c.standards[0]["scale"] == {"co2": "WMO-CO2-X2019"}
    assert c.fits["co2"].coefficients == [0.1, 0.999] and c.fits["co2"].n == 3
    (t,) = store.targets("st-a", T0, END)
    assert t.values["ch4"].bias == -1.0 and t.values["co2"].within_goal is True
    s = store.stations()[0]
    assert (s.calibrations, s.targets) == (1, 1)
    assert store.store_batch(ParsedBatch("st-a", "calibration", NOW, [cal, tgt]), NOW).duplicate == 2


def test_status_keeps_the_newest_per_station(store):
    def st(minutes: int, backlog: int) -> StatusMessage:
        return StatusMessage(station="st-a", state="up", time=T0 + timedelta(minutes=minutes), backlog=backlog,
                             agent_version="0.1", details={"stream": "inlet:100m"})
    assert store.store_status(st(5, 50), NOW).stored
    assert not store.store_status(st(1, 10), NOW).stored  # older, arriving late
    assert store.store_status(st(6, 60), NOW).stored
    status = store.stations()[0].status
    assert (status.backlog, status.time, status.details) == (60, T0 + timedelta(minutes=6), {"stream": "inlet:100m"})


def test_dead_letters_keep_topic_payload_reason_and_size(store):
    big = b"\x00\xff" * 50_000
    store.add_dead_letter(DeadLetter("ghg/v1/st-a/minute", big, "oversize", "too big", "st-a"), NOW)
    store.add_dead_letter(DeadLetter("junk/topic", b"x", "bad_topic", "not ours"), NOW)
    newest, oldest = store.dead_letters()
    assert (newest.topic, newest.station, newest.reason_code) == ("junk/topic", None, "bad_topic")
    assert oldest.payload == big[:65_536] and oldest.payload_size == 100_000
    assert store.dead_letter_count() == 2 and store.dead_letter_count("st-a") == 1
    assert store.stations()[0].dead_letters == 1


def test_a_rejected_record_is_dead_lettered_once_even_when_redelivered(store):
    payload = encode_batch("st-a", "minute", [minute(1), minute(2)], NOW).replace(b'"seq":2,', b'"seq":2,"x":1,')
    for _ in range(2):
        out = store.store_batch(parse_batch("ghg/v1/st-a/minute", payload), NOW)
        assert out.ack_seqs == [1, 2]
    assert store.dead_letter_count() == 1
    (letter,) = store.dead_letters()
    assert (letter.seq, letter.reason_code) == (2, "invalid_record") and "records.1.x" in letter.reason


def test_ingest_is_one_transaction(store):
    items = [minutes_batch([1, 2]), DeadLetter("t", b"p", "c", "r"), object()]
    with pytest.raises(TypeError):
        store.ingest(items, NOW)  # the third item fails: nothing of the first two may remain
    assert store.held_seqs("st-a") == [] and store.dead_letter_count() == 0 and store.stations() == []
    outs = store.ingest(items[:2], NOW)
    assert outs[0].new == 2 and outs[1].stored


def test_bulk_batch_of_two_thousand_records(store):
    out = store.store_batch(minutes_batch(range(1, 2001)), NOW)
    assert out.new == 2000
    assert len(list(store.minutes("st-a", T0, END))) == 2000


def test_reopening_keeps_data_and_schema_version(store, tmp_path, request):
    store.store_batch(minutes_batch([1]), NOW)
    assert store.schema_version() == LATEST_SCHEMA
    if store.backend == "sqlite":
        again = open_store("sqlite", path=store.path)
    else:
        again = open_store("postgresql", dsn=store.dsn, schema=store.schema)
    try:
        assert again.held_seqs("st-a") == [1] and again.schema_version() == LATEST_SCHEMA
    finally:
        again.close()


def test_a_newer_schema_than_the_software_is_refused(store):
    assert isinstance(store, SqlStore)
    store._execute(store._sql("UPDATE ghgnet_schema SET version = ?"), (99,))
    with pytest.raises(StoreError, match="schema version 99 is newer"):
        if store.backend == "sqlite":
            open_store("sqlite", path=store.path)
        else:
            open_store("postgresql", dsn=store.dsn, schema=store.schema)


def test_two_postgresql_writers_store_overlapping_batches_exactly_once(pg_dsn, pg_schema):
    """What two receivers sharing a subscription do: the same seqs arrive at both, concurrently."""
    stores = [open_store("postgresql", dsn=pg_dsn, schema=pg_schema) for _ in range(2)]
    news = [0, 0]
    errors: list[BaseException] = []
    together = threading.Barrier(2)

    def write(i: int) -> None:
        try:
            together.wait(10)
            for start in range(1, 400, 20):  # batches 1-40, 21-60, ..., 381-420
                news[i] += stores[i].store_batch(minutes_batch(range(start, start + 40)), NOW).new
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert not errors, errors
        assert sum(news) == 420
        assert stores[0].held_seqs("st-a") == list(range(1, 421))
        s = stores[0].stations()[0]
        assert s.minutes == 420 and s.duplicates == 2 * 20 * 40 - 420
    finally:
        for s in stores:
            s.close()



@pytest.fixture(scope="module")
def sqlite_store(tmp_path_factory):
    s = open_store("sqlite", path=tmp_path_factory.mktemp("times") / "central.sqlite")
    yield s
    s.close()


@settings(max_examples=500, deadline=None)
@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2999, 12, 31),
                    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5)), timezone(timedelta(0))])))
def test_sqlite_stores_a_time_as_iso_utc_text(sqlite_store, t):
    assert sqlite_store._t(t) == iso_utc(t)
    assert sqlite_store._from_t(sqlite_store._t(t)) == t.replace(microsecond=t.microsecond // 1000 * 1000)


def test_sqlite_inserts_within_its_limit_of_bound_values(sqlite_store):
    # many rows per INSERT statement, never more values than this SQLite build takes (999 in old ones)
    sqlite_store._conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 40)  # 3 minute rows a statement
    try:
        out = sqlite_store.store_batch(minutes_batch(range(1, 12), station="st-limit"), NOW)
        assert out.new == 11 and sqlite_store.held_seqs("st-limit") == list(range(1, 12))
        assert [m.seq for m in sqlite_store.minutes("st-limit", T0, END)] == list(range(1, 12))
    finally:
        sqlite_store._conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 32766)


def test_a_new_sqlite_store_has_16k_pages_and_an_old_one_keeps_its_own(tmp_path):
    new = open_store("sqlite", path=tmp_path / "new.sqlite")
    try:
        assert new._query("PRAGMA page_size") == [(16384,)]
    finally:
        new.close()
    with sqlite3.connect(tmp_path / "old.sqlite") as conn:  # a store made before 16 KiB pages
        conn.execute("PRAGMA page_size=4096")
        conn.execute("PRAGMA journal_mode=WAL")
    old = open_store("sqlite", path=tmp_path / "old.sqlite")
    try:
        assert old._query("PRAGMA page_size") == [(4096,)]
        assert old.store_batch(minutes_batch(range(1, 4)), NOW).new == 3
    finally:
        old.close()


def test_sqlite_checkpoints_its_wal_every_16_mib_whatever_its_page_size(tmp_path):
    for name, page_size in (("new.sqlite", None), ("old.sqlite", 4096)):
        if page_size:
            with sqlite3.connect(tmp_path / name) as conn:
                conn.execute(f"PRAGMA page_size={page_size}")
                conn.execute("PRAGMA journal_mode=WAL")
        s = open_store("sqlite", path=tmp_path / name)
        try:
            pages = s._query("PRAGMA wal_autocheckpoint")[0][0]
            assert pages * s._query("PRAGMA page_size")[0][0] == 16 << 20
        finally:
            s.close()


def test_small_minute_items_of_one_transaction_are_stored_as_if_one_by_one(store):
    """Single-minute items of many stations in one ingest (an HJ 212 commit group) take the grouped
    insert: new, duplicate (stored before, or earlier in the same group) and conflicting copies are
    told apart as when stored one by one; the first copy of a key stays; dirty hours and station
    counters are kept once per station."""
    store.store_batch(minutes_batch([1], station="st-b"), NOW)
    group = [
        minutes_batch([1], station="st-a"),
        minutes_batch([1], station="st-b"),               # stored before: duplicate
        minutes_batch([2], station="st-a"),
        minutes_batch([1], station="st-a"),               # same key earlier in the group: duplicate
        minutes_batch([2], station="st-a", co2=999.0),    # same key, other content: conflict
        minutes_batch([1, 2, 3], station="st-c"),
    ]
    outs = store.ingest(group, NOW)
    assert [(o.station, o.new, o.duplicate, o.dead_lettered) for o in outs] == [
        ("st-a", 1, 0, 0), ("st-b", 0, 1, 0), ("st-a", 1, 0, 0), ("st-a", 0, 1, 0), ("st-a", 0, 0, 1),
        ("st-c", 3, 0, 0)]
    assert [m.species["co2"].cal_mean for m in store.minutes("st-a", T0, END)] == [420.0, 420.0]
    (letter,) = store.dead_letters()
    assert (letter.station, letter.seq, letter.reason_code) == ("st-a", 2, "seq_conflict")
    counts = {s.station: (s.minutes, s.duplicates, s.last_seq) for s in store.stations()}
    assert counts == {"st-a": (2, 1, 2), "st-b": (1, 1, 1), "st-c": (3, 0, 3)}
    assert sorted((st, h) for st, h, _ in store.dirty_hours()) == [
        ("st-a", T0.replace(minute=0)), ("st-b", T0.replace(minute=0)), ("st-c", T0.replace(minute=0))]
