import json
import re
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drivers.reading import Reading
from ghgnet.records import Event, MinuteRecord, SpeciesMinute
from ghgnet.timeutil import iso_utc
from ghgnet.wire import STORE_ID_PATTERN
from station_agent.storage.store import SCHEMA_VERSION, StationStore, StoreError

HJ212_TABLES = ("hj212_packet", "hj212_cursor", "hj212_link")
"""The tables of schema 6 (HJ 212 uplinks)."""
FLUX_TABLES = ("flux", "highrate_block", "raw_upload_cursor")  # and the raw upload's cursor after them
"""The tables of schema 7 (eddy-covariance sites)."""

T0 = datetime(2026, 11, 22, 0, 0, tzinfo=UTC)


def minute(i: int, device: str = "picarro-1", stream: str = "inlet:ambient") -> MinuteRecord:
    return MinuteRecord(
        time=T0 + timedelta(minutes=i),
        device=device,
        stream=stream,
        species={"co2": SpeciesMinute(420.0 + i, 0.05, 24, 420.0 + i)},
        h2o=1.2,
        flag="U",
        n_total=24,
    )


@pytest.fixture
def store(tmp_path):
    s = StationStore(tmp_path / "s.sqlite")
    yield s
    s.close()


def test_new_database_is_migrated_to_current_schema_in_wal_mode(store):
    assert store.schema_version() == SCHEMA_VERSION
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.conn.execute("PRAGMA secure_delete").fetchone()[0] == 0  # whatever SQLite's build says


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "s.sqlite"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        StationStore(path)


def test_minutes_and_events_share_one_monotonic_seq_with_their_outbox_rows(store):
    seqs = store.insert_minutes([minute(0), minute(1)], T0)
    ev = store.insert_event(Event(T0, "agent.start", "info", "started"))
    seqs2 = store.insert_minutes([minute(2)], T0)
    assert seqs == [1, 2] and ev == 3 and seqs2 == [4]
    pending = store.outbox_pending()
    assert [p[0] for p in pending] == [1, 2, 3, 4]
    assert [p[1] for p in pending] == ["minute", "minute", "event", "minute"]
    assert pending[0][2]["species"]["co2"]["mean"] == 420.0
    assert pending[0][2]["time"] == "2026-11-22T00:00:00.000Z"


def test_a_minute_stored_twice_gets_no_second_seq(store):
    assert store.insert_minutes([minute(0)], T0) == [1]
    assert store.insert_minutes([minute(0), minute(1)], T0) == [2]
    assert store.counts()["minute"] == 2


def test_acknowledge_forgets_only_the_acked_seqs_and_never_reuses_them(store):
    store.insert_minutes([minute(i) for i in range(5)], T0)
    assert store.acknowledge([(1, 2), (4, 4)]) == 3
    assert [p[0] for p in store.outbox_pending()] == [3, 5]
    assert store.insert_minutes([minute(9)], T0) == [6]
    assert store.counts()["minute"] == 6  # the minute table keeps everything


def test_raw_readings_round_trip_with_nan_as_missing(store):
    r = Reading(T0, "picarro-1", {"co2": 420.1, "ch4": float("nan")}, 963, True, (), "inlet:ambient", True)
    store.insert_raw([r])
    rows = list(store.raw_rows(T0, T0 + timedelta(minutes=1)))
    assert rows == [{
        "device": "picarro-1", "time": "2026-11-22T00:00:00.000Z", "stream": "inlet:ambient",
        "flushing": True, "status": 963, "status_ok": True, "status_flags": [],
        "values": {"co2": 420.1, "ch4": None}, "conditions": [],
    }]
    assert store.raw_quantities(T0, T0 + timedelta(minutes=1)) == ["ch4", "co2"]


def test_purge_raw_deletes_only_older_rows(store):
    store.insert_raw([Reading(T0 + timedelta(days=d), "a", {"co2": 1.0}) for d in range(3)])
    assert store.purge_raw(T0 + timedelta(days=1)) == 1
    assert store.counts()["raw"] == 2


def test_read_only_store_reads_while_writer_is_open(store, tmp_path):
    store.insert_minutes([minute(0)], T0)
    ro = StationStore(tmp_path / "s.sqlite", read_only=True)
    try:
        assert len(list(ro.minute_rows(T0, T0 + timedelta(hours=1)))) == 1
        with pytest.raises(sqlite3.OperationalError):
            ro.conn.execute("DELETE FROM minute")
    finally:
        ro.close()


def test_read_only_store_of_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="no station database"):
        StationStore(tmp_path / "nope.sqlite", read_only=True)


def test_state_is_upserted(store):
    store.put_state("agent", {"state": "running"}, T0)
    store.put_state("agent", {"state": "stopping"}, T0 + timedelta(seconds=5))
    assert store.get_state("agent") == ({"state": "stopping"}, "2026-11-22T00:00:05.000Z")


def _counted(s: StationStore) -> dict:
    truth = s.conn.execute("SELECT COUNT(*), (SELECT created FROM outbox ORDER BY seq LIMIT 1) FROM outbox").fetchone()
    stats = s.outbox_stats()
    assert (stats["backlog"], stats["oldest_unacked"]) == truth
    return stats


def test_outbox_stats_follow_every_change_without_counting_rows(store, tmp_path):
    assert _counted(store) == {"backlog": 0, "oldest_unacked": None}
    store.insert_minutes([minute(i) for i in range(5)], T0)
    store.insert_event(Event(T0 + timedelta(hours=1), "agent.start", "info", "started"))
    assert _counted(store)["backlog"] == 6
    store.acknowledge([(1, 2), (4, 4)])
    assert _counted(store) == {"backlog": 3, "oldest_unacked": "2026-11-22T00:00:00.000Z"}
    store.replace_minute(3, minute(2), T0 + timedelta(hours=2))  # a new seq; the old row goes
    assert _counted(store) == {"backlog": 3, "oldest_unacked": "2026-11-22T00:00:00.000Z"}
    store.acknowledge([(5, 5)])
    assert _counted(store) == {"backlog": 2, "oldest_unacked": "2026-11-22T01:00:00.000Z"}
    with pytest.raises(RuntimeError), store._tx():  # a rolled-back change is not counted
        store._outbox("event", {}, "2026-11-22T03:00:00.000Z")
        store.conn.execute("DELETE FROM outbox")
        raise RuntimeError("rolled back")
    assert _counted(store)["backlog"] == 2
    ro = StationStore(tmp_path / "s.sqlite", read_only=True)  # the forwarder's and the CLI's view
    try:
        assert ro.outbox_stats() == store.outbox_stats()
    finally:
        ro.close()


def test_outbox_count_of_an_older_database_is_made_from_its_rows(tmp_path):
    path = tmp_path / "s.sqlite"
    s = StationStore(path)
    s.insert_minutes([minute(i) for i in range(3)], T0)
    # the tables of schemas 3 on
    for table in ("outbox_count", "identity", "set_aside", *HJ212_TABLES, "emission", *FLUX_TABLES):
        s.conn.execute(f"DROP TABLE {table}")
    s.conn.execute("ALTER TABLE cylinder DROP COLUMN traceability")  # the cylinders' chains (schema 10)
    s.conn.execute("PRAGMA user_version = 2")  # as schema 2 left it
    s.close()
    ro = StationStore(path, read_only=True)
    try:
        assert ro.outbox_stats()["backlog"] == 3  # not migrated yet: counted
    finally:
        ro.close()
    s = StationStore(path)
    try:
        assert s.schema_version() == SCHEMA_VERSION and _counted(s)["backlog"] == 3
        s.conn.execute("UPDATE outbox_count SET n = 99")  # whatever went wrong before a restart
    finally:
        s.close()
    s = StationStore(path)
    try:
        assert _counted(s)["backlog"] == 3
    finally:
        s.close()


def test_each_database_has_its_own_identity_made_with_it_and_kept(tmp_path):
    a, b = StationStore(tmp_path / "a.sqlite"), StationStore(tmp_path / "b.sqlite")
    try:
        ida, idb = a.store_id(), b.store_id()
    finally:
        a.close()
        b.close()
    assert re.fullmatch(STORE_ID_PATTERN, ida) and re.fullmatch(STORE_ID_PATTERN, idb) and ida != idb
    again = StationStore(tmp_path / "a.sqlite", read_only=True)
    try:
        assert again.store_id() == ida
    finally:
        again.close()


def test_an_older_database_gets_an_identity_when_upgraded(tmp_path):
    path = tmp_path / "old.sqlite"
    s = StationStore(path)
    s.insert_minutes([minute(0)], T0)
    for table in ("identity", "set_aside", *HJ212_TABLES, "emission", *FLUX_TABLES):
        s.conn.execute(f"DROP TABLE {table}")
    s.conn.execute("ALTER TABLE cylinder DROP COLUMN traceability")  # the cylinders' chains (schema 10)
    s.conn.execute("PRAGMA user_version = 3")  # as schema 3 left it
    s.close()
    ro = StationStore(path, read_only=True)
    try:
        assert ro.store_id() is None and ro.set_aside_rows() == []  # not migrated yet
    finally:
        ro.close()
    s = StationStore(path)
    try:
        assert re.fullmatch(STORE_ID_PATTERN, s.store_id()) and s.outbox_stats()["backlog"] == 1
    finally:
        s.close()


def alarm(moved):
    return Event(T0, "forwarding.set_aside", "error", f"{len(moved)} set aside", None, {})


def test_set_aside_moves_records_with_their_alarm_in_one_transaction_and_retry_puts_them_back(store):
    seqs = store.insert_minutes([minute(i) for i in range(4)], T0)
    before = dict(store.outbox_pending()[1][2])
    moved = store.set_aside({seqs[1]: "too big", 999: "not in the outbox"}, T0, alarm)
    assert [(m["seq"], m["kind"], m["reason"]) for m in moved] == [(seqs[1], "minute", "too big")]
    assert [s for s, _, _ in store.outbox_pending()] == [seqs[0], seqs[2], seqs[3], seqs[3] + 1]  # + the alarm
    assert store.outbox_stats()["backlog"] == 4 and store.counts()["set_aside"] == 1
    assert store.event_rows(1)[0]["kind"] == "forwarding.set_aside"
    (row,) = store.set_aside_rows(with_payload=True)
    assert row["seq"] == seqs[1] and row["record"] == before and row["set_aside"] == iso_utc(T0)

    def fail(moved):
        raise RuntimeError("the alarm could not be made")

    with pytest.raises(RuntimeError):  # nothing moves without its alarm
        store.set_aside({seqs[2]: "too big"}, T0, fail)
    assert store.counts()["set_aside"] == 1 and store.outbox_stats()["backlog"] == 4

    back = store.retry_set_aside(None, lambda back: Event(T0, "retried", "info", str(back)))
    assert back == [seqs[1]] and store.set_aside_rows() == []
    assert seqs[1] in [s for s, _, _ in store.outbox_pending()] and store.outbox_stats()["backlog"] == 6
    assert dict(store.outbox_pending()[1][2]) == before


def test_the_disk_policy_never_deletes_a_set_aside_record(store):
    seqs = store.insert_minutes([minute(i) for i in range(3)], T0)
    store.set_aside({seqs[0]: "too big"}, T0, alarm)
    store.acknowledge([(seqs[1], seqs[2] + 1)])  # the rest (and the alarm) reached central
    store.free_space(T0)
    assert [r["seq"] for r in store.minute_rows(T0, T0 + timedelta(hours=1))] == [seqs[0]]


def test_the_sqlite_utils_tool_reads_the_database_while_the_writer_holds_it(store):
    # the technician's tool installed with the station (README): it reads beside the one writer
    store.insert_minutes([minute(0), minute(1)], T0)
    store.insert_event(Event(T0, "agent.start", "info", "started"))
    tool = Path(sys.executable).parent / "sqlite-utils"
    tables = subprocess.run([tool, "tables", store.path, "--counts"], capture_output=True, text=True,
                            check=True, timeout=60)
    counts = {t["table"]: t["count"] for t in json.loads(tables.stdout)}
    assert counts["minute"] == 2 and counts["event"] == 1 and counts["outbox"] == 3
    rows = subprocess.run([tool, "rows", store.path, "minute", "--csv", "-c", "seq", "-c", "time"],
                          capture_output=True, text=True, check=True, timeout=60)
    assert rows.stdout.splitlines() == ["seq,time", "1,2026-11-22T00:00:00.000Z", "2,2026-11-22T00:01:00.000Z"]
    store.insert_minutes([minute(2)], T0)  # the writer still writes: the tool held no lock
