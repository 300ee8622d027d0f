"""The one writer: a thread that owns the SQLite store and everything that writes to it.

Pollers hand readings over through a bounded queue; the writer stores them as raw (L0), feeds the
minute assembler, turns closed bins into minute records, stores events, and runs housekeeping
(heartbeat state, raw retention) on the injected clock.
"""

from __future__ import annotations

import queue
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from drivers.reading import Reading
from ghgnet.clock import Clock
from ghgnet.records import Event, MinuteRecord, set_aside_event
from ghgnet.timeutil import parse_utc
from station_agent.processing.minute_bins import MinuteAssembler, MinuteBin
from station_agent.storage.store import StationStore

MinuteMaker = Callable[[MinuteBin], MinuteRecord]


@dataclass
class WriterStats:
    raw: int = 0
    minutes: int = 0
    events: int = 0
    acked: int = 0
    outbox: int = 0
    oldest_unacked: str | None = None
    last_minute: str | None = None
    queue_high_water: int = 0


class HighRateSink(Protocol):
    """Where a flux site's 10-20 Hz readings go instead of raw rows (station_agent/acquisition/
    flux_recorder.py): called on the writer thread with its store."""

    devices: frozenset[str]

    def take(self, store: StationStore, readings: list[Reading]) -> None: ...

    def flush(self, store: StationStore) -> None: ...

    def purge(self, store: StationStore) -> int: ...


class StoreWriter:
    def __init__(
        self,
        store_path,
        clock: Clock,
        assembler: MinuteAssembler,
        make_minute: MinuteMaker,
        log,
        state: Callable[[], dict[str, Any]],
        raw_retention: timedelta,
        disk_floor_bytes: float = 0.0,
        quota_bytes: float | None = None,
        maxsize: int = 256,
        tick_s: float = 5.0,
    ) -> None:
        self.store_path = store_path
        self.clock = clock
        self.assembler = assembler
        self.make_minute = make_minute
        self.log = log.bind(component="writer")
        self.state = state
        self.raw_retention = raw_retention
        self.disk_floor_bytes = disk_floor_bytes
        self.quota_bytes = quota_bytes
        self._disk_alarm = False
        self._last_disk_check = 0.0
        self.disk_deleted = {"raw": 0, "minute": 0, "event": 0}
        self.queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=maxsize)
        self.tick_s = tick_s
        self.stats = WriterStats()
        self.pending_runs: list[Any] = []
        self._last_outbox_count = 0.0
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._last_purge: float | None = None
        self.on_stored: Callable[[], None] = lambda: None
        self.on_open: Callable[[StationStore], None] = lambda store: None
        self.on_tick: Callable[[StationStore], None] = lambda store: None
        self.highrate: HighRateSink | None = None
        self.keep_unarchived_raw = False
        """Set while the raw upload runs (station_agent/forwarding/raw_upload.py): retention keeps
        the raw readings central does not hold yet; the disk policy does not, and says what went."""
        self.thread = threading.Thread(target=self._run, name="store-writer", daemon=True)

    # -- producer side (any thread) -------------------------------------------------------
    def has_room(self) -> bool:
        return self.queue.qsize() < self.queue.maxsize * 3 // 4

    def submit_readings(self, readings: list[Reading], drained: tuple[str, datetime] | None = None) -> bool:
        """Readings to store; `drained` = (device, device time up to which its buffer is now empty)."""
        self._put(("readings", (readings, drained)))
        return True

    def submit_event(self, event: Event) -> None:
        self._put(("event", event))

    def submit_engine_state(self, state: dict[str, Any]) -> None:
        self._put(("state", ("engine", state)))

    def submit_call(self, fn: Callable[[StationStore], None]) -> None:
        """Run `fn(store)` in the writer thread (the only place that may write)."""
        self._put(("call", fn))

    def call_sync(self, fn: Callable[[StationStore], Any], timeout: float = 300.0) -> Any:
        """Run `fn(store)` in the writer thread and return its result (or raise its exception)."""
        done = threading.Event()
        box: dict[str, Any] = {}

        def job(store: StationStore) -> None:
            try:
                box["result"] = fn(store)
            except Exception as exc:  # handed back to the caller's thread
                box["error"] = exc
            finally:
                done.set()

        self.submit_call(job)
        if not done.wait(timeout):
            raise TimeoutError("the store writer did not answer in time")
        if "error" in box:
            raise box["error"]
        return box.get("result")

    def submit_run(self, run: Any) -> None:
        """A finished calibration/target/check run: computed once its minutes are closed."""
        self._put(("run", run))

    def submit_ack(self, ranges: list[tuple[int, int]]) -> None:
        """Central holds these seqs: the outbox may forget them."""
        self._put(("ack", ranges))

    def submit_set_aside(self, reasons: dict[int, str], then: Callable[[list[int]], None] = lambda seqs: None) -> None:
        """Move these outbox records (seq -> why) to the set-aside table, with an alarm event;
        then `then(seqs)` (all of them, also those no longer in the outbox)."""
        self._put(("set_aside", (dict(reasons), then)))

    def _put(self, item: tuple[str, Any]) -> None:
        # Blocks while full rather than drop: pollers check has_room() before reading the analyzer,
        # so the wait is short, and losing a record is never an option.
        while True:
            try:
                self.queue.put(item, timeout=0.5)
                break
            except queue.Full:
                if not self.thread.is_alive():
                    raise RuntimeError("store writer is not running") from self._error
        self.stats.queue_high_water = max(self.stats.queue_high_water, self.queue.qsize())

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        self.thread.start()
        self._ready.wait(30)
        if self._error:
            raise self._error

    def stop(self) -> None:
        """Drain what is queued, store it, and close (open minute bins are left to the raw table)."""
        self._stop.set()
        self.thread.join(60)

    # -- the writer thread ----------------------------------------------------------------
    def _run(self) -> None:
        try:
            store = StationStore(self.store_path)
            self.on_open(store)
            self._restore(store)
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        next_tick = 0.0
        try:
            while True:
                try:
                    kind, payload = self.queue.get(timeout=min(0.2, self.clock_real(self.tick_s)))
                except queue.Empty:
                    kind, payload = "", None
                if kind:
                    self._handle(store, kind, payload)
                if time.monotonic() >= next_tick:
                    self._tick(store)
                    next_tick = time.monotonic() + self.clock_real(self.tick_s)
                if self._stop.is_set() and self.queue.empty():
                    if self.highrate is not None:
                        self.highrate.flush(store)
                    self._tick(store)
                    break
        except BaseException as exc:
            self._error = exc
            self.log.exception("writer_failed", error=repr(exc))
        finally:
            store.close()

    def clock_real(self, sim_seconds: float) -> float:
        speed = getattr(self.clock, "speed", 1.0)
        return sim_seconds / speed if speed not in (0, float("inf")) else 0.0

    def _handle(self, store: StationStore, kind: str, payload: Any) -> None:
        if kind == "readings":
            # Coalesce the reading batches already queued: one transaction for their raw rows and
            # one for the minutes they close, however many pollers handed them over.
            items = [payload]
            deferred: list[tuple[str, Any]] = []
            while len(items) < 64:
                try:
                    more_kind, more = self.queue.get_nowait()
                except queue.Empty:
                    break
                if more_kind == "readings":
                    items.append(more)
                else:
                    deferred.append((more_kind, more))
                    break
            raw = [r for readings, _ in items for r in readings]
            if self.highrate is not None:
                fast = self.highrate.devices
                self.highrate.take(store, [r for r in raw if r.device in fast])
                raw = [r for r in raw if r.device not in fast]
                items = [([r for r in readings if r.device not in fast], drained) for readings, drained in items]
            if raw:
                store.insert_raw(raw)
                self.stats.raw += len(raw)
            closed: list[MinuteBin] = []
            for readings, drained in items:
                analyzer = [r for r in readings if r.stream != "aux"]
                if analyzer:
                    closed += self.assembler.add(analyzer)
                if drained is not None:
                    closed += self.assembler.drained(*drained)
            self._store_minutes(store, closed)
            for item in deferred:
                self._handle(store, *item)
        elif kind == "state":
            key, value = payload
            store.put_state(key, value, self.clock.now())
        elif kind == "call":
            payload(store)
        elif kind == "run":
            self.pending_runs.append(payload)
        elif kind == "event":
            store.insert_event(payload)
            self.stats.events += 1
            self.on_stored()
        elif kind == "set_aside":
            now = self.clock.now()
            reasons, then = payload
            moved = store.set_aside(reasons, now, lambda moved: set_aside_event(moved, now))
            then(list(reasons))
            if moved:
                self.stats.events += 1
                self.log.error("records_set_aside", seqs=[m["seq"] for m in moved], reason=moved[0]["reason"])
                self.on_stored()
        elif kind == "ack":
            # Coalesce the acks already queued into one transaction.
            ranges = list(payload)
            while len(ranges) < 10_000:
                try:
                    more_kind, more = self.queue.get_nowait()
                except queue.Empty:
                    break
                if more_kind != "ack":
                    self._handle(store, more_kind, more)
                    continue
                ranges += more
            self.stats.acked += store.acknowledge(ranges)

    def _store_minutes(self, store: StationStore, bins: list[MinuteBin]) -> None:
        if not bins:
            return
        records = [self.make_minute(b) for b in bins]
        seqs = store.insert_minutes(records, self.clock.now())
        self.stats.minutes += len(seqs)
        if seqs:
            self.on_stored()
        self.stats.last_minute = max(r.time for r in records).isoformat()

    def _tick(self, store: StationStore) -> None:
        self.on_tick(store)
        if time.monotonic() - self._last_outbox_count >= 1.0:
            self._last_outbox_count = time.monotonic()
            ob = store.outbox_stats()
            self.stats.outbox, self.stats.oldest_unacked = ob["backlog"], ob["oldest_unacked"]
        now = self.clock.now()
        state = self.state()
        state["writer"] = {
            "raw": self.stats.raw,
            "minutes": self.stats.minutes,
            "events": self.stats.events,
            "acked": self.stats.acked,
            "queue": self.queue.qsize(),
            "queue_high_water": self.stats.queue_high_water,
            "pending_bins": self.assembler.pending(),
            "late_readings": self.assembler.late_readings,
            "outbox": self.stats.outbox,
        }
        state["heartbeat_wall"] = time.time()
        store.put_state("agent", state, now)
        if time.monotonic() - self._last_disk_check >= 2.0:
            self._last_disk_check = time.monotonic()
            self._enforce_disk(store, now)
        mono = self.clock.monotonic()
        if self._last_purge is None or mono - self._last_purge >= 3600:
            self._last_purge = mono
            purged = store.purge_raw(now - self.raw_retention, keep_unarchived=self.keep_unarchived_raw)
            if purged:
                self.log.info("raw_purged", rows=purged, older_than=(now - self.raw_retention).isoformat())
            if self.highrate is not None and (blocks := self.highrate.purge(store)):
                self.log.info("highrate_purged", blocks=blocks)

    def _over(self, store: StationStore) -> str | None:
        free = shutil.disk_usage(store.path.parent).free
        if free < self.disk_floor_bytes:
            return f"{free / 1e6:.0f} MB free on the data disk, below the floor of {self.disk_floor_bytes / 1e6:.0f} MB"
        if self.quota_bytes is not None and store.size_bytes() > self.quota_bytes:
            return f"database {store.size_bytes() / 1e6:.1f} MB, above its quota of {self.quota_bytes / 1e6:.1f} MB"
        return None

    def _enforce_disk(self, store: StationStore, now) -> None:
        """The disk policy: raw readings go first (never forwarded, but keep the last hour for the
        open minutes), then records central has acknowledged; unacknowledged data never. Every
        deletion is counted and announced; a floor that cannot be met is an alarm."""
        reason = self._over(store)
        if reason is None:
            if self._disk_alarm:
                self._disk_alarm = False
                store.insert_event(Event(now, "disk.ok", "info", "disk space back above the floor"))
            return
        deleted = {"raw": 0, "minute": 0, "event": 0}
        lost: list[dict] = []
        while reason is not None:
            if self.keep_unarchived_raw:
                lost += store.unarchived_raw(now - timedelta(hours=1), 10_000)
            got = store.free_space(now - timedelta(hours=1))
            if not any(got.values()):
                break
            for k, v in got.items():
                deleted[k] += v
            reason = self._over(store)
        for k, v in deleted.items():
            self.disk_deleted[k] += v
        if any(deleted.values()):
            store.insert_event(Event(now, "disk.freed", "warning",
                                     "disk policy deleted " + ", ".join(f"{v} {k}" for k, v in deleted.items() if v)
                                     + " (oldest first; nothing unacknowledged)", None, dict(deleted)))
            self.log.warning("disk_freed", deleted=deleted)
        if lost:
            store.insert_event(Event(now, "raw.archive_lost", "error",
                                     f"disk policy deleted {sum(x['rows'] for x in lost)} raw readings central does "
                                     "not hold yet: " + ", ".join(f"{x['device']} {x['rows']} from {x['first']} to "
                                                                  f"{x['last']}" for x in lost[:10]),
                                     None, {"lost": lost[:100]}))
            self.log.error("raw_archive_lost", lost=lost[:10])
        if reason is not None and not self._disk_alarm:
            self._disk_alarm = True
            backlog = store.outbox_stats()["backlog"]
            store.insert_event(Event(now, "disk.floor", "error",
                                     f"{reason}; only unacknowledged data is left ({backlog} records wait for "
                                     "central) and it is kept", None, {"backlog": backlog}))
            self.log.error("disk_floor_alarm", reason=reason, backlog=backlog)

    @property
    def disk_alarm(self) -> bool:
        return self._disk_alarm

    def _restore(self, store: StationStore) -> None:
        """Rebuild the analyzers' bins that were open when the agent last stopped, from the raw table
        (an auxiliary device's rows, stream "aux", are left out as on the live path)."""
        last_closed = store.last_minute_times()
        devices = store.raw_devices()
        now = self.clock.now()
        restored = 0
        for device in devices:
            if device in last_closed:
                start = parse_utc(last_closed[device]) + timedelta(minutes=1)
                self.assembler.mark_closed_until(device, start)
            else:
                start = now - timedelta(hours=1)
            readings = [
                Reading(
                    conditions=tuple(r["conditions"]),
                    time=parse_utc(r["time"]),
                    device=r["device"],
                    values={k: (float("nan") if v is None else v) for k, v in r["values"].items()},
                    status=r["status"],
                    status_ok=r["status_ok"],
                    status_flags=tuple(r["status_flags"]),
                    stream=r["stream"],
                    flushing=r["flushing"],
                )
                for r in store.raw_rows(start, now + timedelta(days=3650), device)
                # as on the live path (`_handle`): an auxiliary device's readings feed the analyzers'
                # minutes (AuxiliaryMinutes, Agent._restore_auxiliary), never minutes of their own
                if r["stream"] != "aux"
            ]
            if readings:
                restored += len(readings)
                # Restored bins close only when new data or the clock says so, as live ones do.
                self._store_minutes(store, self.assembler.add(readings))
        if restored:
            self.log.info("minutes_restored", readings=restored, open_bins=self.assembler.pending())
