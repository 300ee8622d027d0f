"""Retention and the disk floor: raw readings go first, then what central acknowledged; data
central has not acknowledged is never deleted, and reaching the floor with it is an alarm."""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime, timedelta

from drivers.reading import Reading
from ghgnet.clock import ScaledClock
from ghgnet.logs import configure_logging, get_logger
from ghgnet.records import MinuteRecord, SpeciesMinute
from station_agent.processing.minute_bins import MinuteAssembler
from station_agent.storage.store import StationStore
from station_agent.storage.writer import StoreWriter

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def fill(path, minutes: int, raw_days: int) -> None:
    store = StationStore(path)
    try:
        recs = [MinuteRecord(T0 + timedelta(minutes=i), "picarro-1", "inlet:top",
                             {"co2": SpeciesMinute(420.0, 0.05, 30, 420.0)}, 1.2, "U", (), 30)
                for i in range(minutes)]
        store.insert_minutes(recs, T0)
        readings = [Reading(T0 - timedelta(days=raw_days) + timedelta(seconds=2 * i), "picarro-1",
                            {"co2": 420.0 + i % 7, "ch4": 2000.0, "h2o": 1.2}) for i in range(20000)]
        store.insert_raw(readings)
    finally:
        store.close()


def writer(path, quota_mb: float) -> StoreWriter:
    configure_logging("t", fmt="json", stream=io.StringIO())
    return StoreWriter(path, ScaledClock(), MinuteAssembler(20), make_minute=None, log=get_logger(),
                       state=dict, raw_retention=timedelta(days=3650), quota_bytes=quota_mb * 1e6)


def run_ticks(w: StoreWriter, seconds: float = 3.5) -> None:
    w.start()
    time.sleep(seconds)  # two disk checks (every 2 s of real time)
    w.stop()


def test_over_quota_raw_goes_first_and_unacknowledged_minutes_stay_with_an_alarm(tmp_path):
    path = tmp_path / "s.sqlite"
    fill(path, minutes=3000, raw_days=10)
    before = StationStore(path, read_only=True)
    size, counts = before.size_bytes(), before.counts()
    before.close()
    w = writer(path, quota_mb=0.05)  # far below what the unacknowledged minutes alone need
    run_ticks(w)
    after = StationStore(path, read_only=True)
    try:
        c = after.counts()
        kinds = [e["kind"] for e in after.event_rows(50)]
        assert c["raw"] == 0 and counts["raw"] == 20000
        assert c["minute"] == 3000  # nothing central has not acknowledged
        assert {seq for seq, _, _ in after.outbox_pending(0, 10_000)} >= set(range(1, 3001))
        assert "disk.freed" in kinds and "disk.floor" in kinds
        assert w.disk_deleted["raw"] == 20000 and w.disk_deleted["minute"] == 0
    finally:
        after.close()


def test_acknowledged_records_go_after_raw_and_then_the_floor_is_met(tmp_path):
    path = tmp_path / "s.sqlite"
    fill(path, minutes=3000, raw_days=10)
    store = StationStore(path)
    store.acknowledge([(1, 2500)])  # central holds the first 2500 minutes
    size = store.size_bytes()
    store.close()
    w = writer(path, quota_mb=size * 0.5 / 1e6)
    run_ticks(w)
    after = StationStore(path, read_only=True)
    try:
        c = after.counts()
        assert c["raw"] == 0
        pending = {seq for seq, kind, _ in after.outbox_pending(0, 10_000) if kind == "minute"}
        assert pending == set(range(2501, 3001))  # the unacknowledged 500 are all there
        kept = {r["seq"] for r in after.minute_rows(T0, T0 + timedelta(days=10))}
        assert set(range(2501, 3001)) <= kept
        assert after.size_bytes() <= size * 0.5
        assert "disk.floor" not in [e["kind"] for e in after.event_rows(50)]
    finally:
        after.close()
