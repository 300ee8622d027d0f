"""The GC site (configs/sites/gc-results/) as real processes: the simulated GC exports a GCWerks
result file per injection into the folder, the station turns each into one sample; a simulated
hour, with the agent killed (kill -9) twice: once as soon as it has stored a few injections, and
once while SQLite is held locked, so that files already read and moved to done/ have not reached
the store; and one malformed file on the way. Every other injection must be stored exactly once,
with the stream the file names and the GC's value; the malformed file must sit in quarantine with an
event naming it."""

from __future__ import annotations

import signal
import sqlite3
import time
from datetime import UTC, datetime, timedelta

import pytest
from support.site import START_TIME, site

from drivers.gc.results import STAMP
from ghgnet.timeutil import parse_utc
from station_agent.storage.store import StationStore

pytestmark = pytest.mark.slow
SPEED = 240.0


def archived_at(name: str) -> datetime:
    """The newest injection of a file in done/, from its name."""
    return datetime.strptime(name.split("_", 1)[0], STAMP).replace(tzinfo=UTC)


def stored(db) -> tuple[list[dict], list[dict]]:
    store = StationStore(db, read_only=True)
    try:
        # the agent may start a few simulated minutes before START (its start-up against the anchor)
        first, far = START_TIME - timedelta(days=1), START_TIME + timedelta(days=1)
        return list(store.raw_rows(first, far, "gc-1")), list(store.minute_rows(first, far, "gc-1"))
    finally:
        store.close()


def newest_raw(db) -> datetime | None:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    except sqlite3.OperationalError:  # no database yet
        return None
    try:
        got = conn.execute("SELECT MAX(time) FROM raw WHERE device = 'gc-1'").fetchone()[0]
    except sqlite3.OperationalError:  # no table yet
        return None
    finally:
        conn.close()
    return parse_utc(got) if got else None


def stored_events(db, kind: str) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute("SELECT count(*) FROM event WHERE kind = ?", (kind,)).fetchone()[0]
    finally:
        conn.close()


def wait_for(what: str, predicate, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def hour(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gc-site")
    db, done = tmp / "station.sqlite", tmp / "drop" / "done"
    pair = site("gc-results", tmp, SPEED)
    try:
        pair.start_agent()
        wait_for("two stored injections", lambda: (newest_raw(db) or START_TIME) >= START_TIME + timedelta(minutes=5))
        assert pair.stop_agent(signal.SIGKILL) == -signal.SIGKILL
        before = newest_raw(db)
        pair.start_agent()
        wait_for("the restarted agent to store", lambda: newest_raw(db) > before)
        pair.control({"device": "gc-1", "fault": "malformed"})
        wait_for("the malformed file to be quarantined", lambda: any((tmp / "drop" / "quarantine").iterdir()))
        # its event is stored before SQLite is locked below (an event not yet committed dies with a kill)
        wait_for("the quarantine's event to be stored", lambda: stored_events(db, "fault.garbage"))
        # Hold SQLite locked: the agent goes on reading files and moving them to done/, but cannot
        # store their samples; it is killed in that state.
        lock = sqlite3.connect(db, isolation_level=None, timeout=30)
        lock.execute("BEGIN IMMEDIATE")
        newest = parse_utc(lock.execute("SELECT MAX(time) FROM raw WHERE device = 'gc-1'").fetchone()[0])

        def in_flight() -> list[str]:
            return [p.name for p in done.iterdir() if archived_at(p.name) > newest]

        wait_for("a file read but not stored", in_flight)
        assert pair.stop_agent(signal.SIGKILL) == -signal.SIGKILL
        held = in_flight()
        lock.execute("ROLLBACK")
        lock.close()
        pair.start_agent()
        pair.run_until(START_TIME + timedelta(minutes=62))
        wait_for("the last injections to be stored", lambda: newest_raw(db) >= START_TIME + timedelta(minutes=55))
        assert pair.stop_agent() == 0
        ledger = pair.control({"cmd": "ledger", "device": "gc-1"})["ledger"]
        store = StationStore(db, read_only=True)
        try:
            events = store.event_rows(500)
        finally:
            store.close()
        yield {"ledger": ledger, "in_flight": held, "stored": stored(db), "tmp": tmp, "events": events}
    finally:
        pair.close()


def test_files_read_but_not_stored_when_killed_were_there(hour):
    assert hour["in_flight"], "the lock held no file in flight: the test proved nothing"


def test_every_injection_is_stored_exactly_once(hour):
    raw, _ = hour["stored"]
    times = [parse_utc(r["time"]) for r in raw]
    assert len(times) == len(set(times))
    last = max(times)
    made = [parse_utc(e["time"]) for e in hour["ledger"]
            if parse_utc(e["time"]) <= last and e["fault"] != "malformed"]
    assert sorted(times) == made
    assert len(made) >= 11  # an injection every 5 minutes for an hour


def test_each_injection_keeps_its_stream_and_the_gcs_value(hour):
    raw, _ = hour["stored"]
    by_time = {parse_utc(e["time"]): e for e in hour["ledger"]}
    for r in raw:
        e = by_time[parse_utc(r["time"])]
        assert r["stream"] == ("inlet:ambient" if e["source"] == "ambient" else f"cal:{e['source']}")
        assert r["values"]["co2_dry"] == pytest.approx(e["truth"]["co2"], abs=0.3)
        assert r["values"]["ch4_dry"] == pytest.approx(e["truth"]["ch4"], abs=5)
        assert r["values"]["n2o_dry"] == pytest.approx(e["truth"]["n2o"], abs=0.6)


def test_one_minute_per_injection_with_one_sample(hour):
    raw, minutes = hour["stored"]
    assert len(minutes) >= len(raw) - 1  # the newest injection's minute may still be open
    for m in minutes:
        assert m["n_total"] == 1
        assert m["flag"] == "U", m
        assert "uncalibrated" in m["reasons"]
        assert {"co2", "ch4", "n2o"} <= set(m["species"])
    assert {m["stream"] for m in minutes} == {"inlet:ambient", "cal:std-1"}


def test_the_malformed_file_alone_was_quarantined_with_a_clear_event(hour):
    (bad,) = [e for e in hour["ledger"] if e["fault"] == "malformed"]
    quarantine = hour["tmp"] / "drop" / "quarantine"
    assert sorted(p.name for p in quarantine.iterdir()) == [bad["file"], bad["file"] + ".reason.txt"]
    assert "not a number" in (quarantine / (bad["file"] + ".reason.txt")).read_text()
    (event,) = [e for e in hour["events"] if e["kind"] == "fault.garbage"]
    assert event["device"] == "gc-1" and f"{bad['file']} quarantined" in event["message"]
