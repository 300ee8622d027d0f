"""The raw upload: the station's raw readings (L0) archived at central, in the background.

Each device's raw rows go in chunks of `chunk_minutes` (windows on a UTC grid, so a chunk's key is
the same whenever it is made), compressed (ghgnet/wire/raw.py), on `ghg/v1/<station>/raw`, through
the forwarder's MQTT client (the broker binds a client id to its user: a second connection as the
station would take the forwarder's session). A window goes once it is `settle_s` past its end (the
analyzers' buffers have been drained into it by then). A chunk whose message would pass the byte
bound (`max_chunk_bytes`, two seconds of the cap, and the forwarder's payload limit) is cut in two
at a row's time, and again, so every message stays below the broker's limit.

Minute data first: a chunk goes only while the records' outbox holds at most `outbox_threshold`
records and every one of them is already in flight (none waits to be sent), so L0 never stands
in front of a minute; and one chunk at a time, so a minute that arrives meanwhile waits behind one
chunk at most. The bandwidth is capped by a token bucket in bytes per real second (the network
does not run faster with --speed), counting each message's payload and its MQTT overhead; the
bucket starts empty, so the bytes sent up to any moment never exceed the cap times the time run.

Tracked exactly once: central answers each chunk on `ghg/v1/<station>/raw_ack` after its commit,
and only then is the device's cursor (`raw_upload_cursor`, every raw row before it held by
central) advanced, by the store writer. A chunk not acknowledged within `ack_timeout_s` (real
seconds, the forwarder's) is sent again; central stores a chunk once per (station, store, device,
start) and acknowledges a repeat again. While the upload runs, retention keeps the rows not yet
archived (station_agent/storage/writer.py); only the disk policy may delete them, with an event
naming what the archive lost.

Rows stored after their window was archived (a reading stamped more than `settle_s` late) are not
uploaded: the cursor is a time, not a row.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import Field, field_validator

from ghgnet.clock import Clock
from ghgnet.config import StrictModel
from ghgnet.records import Event
from ghgnet.timeutil import iso_utc, parse_utc
from ghgnet.wire import WireError, topic_for
from ghgnet.wire.raw import RAW_CONTENT_TYPE, RawChunk, encode_chunk, parse_raw_ack
from station_agent.faults import FaultTracker
from station_agent.forwarding.forwarder import Forwarder, mqtt_packet_overhead
from station_agent.storage.store import StationStore

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CAP_SECONDS_PER_CHUNK = 2.0
"""A chunk is at most this many seconds of the cap (and at least MIN_CHUNK_BYTES): a minute that
comes right after a chunk waits behind it about this long on a link only as fast as the cap."""
MIN_CHUNK_BYTES = 4096


class RawUploadConfig(StrictModel):
    """`[forwarding.raw]`: archiving the raw readings (L0) at central."""

    enabled: bool = Field(
        default=False,
        description="upload the raw readings to central in the background (central keeps them per its "
        "[archive] raw_retention_days); while on, retention keeps the rows central does not hold yet")
    max_bytes_per_s: float = Field(
        default=25_000.0, gt=0, le=1e9,
        description="bandwidth cap of the upload, bytes per real second (payload and MQTT overhead)")
    chunk_minutes: int = Field(
        default=10, ge=1, le=1440,
        description="minutes of one device's readings per chunk (a divisor of a day: windows on a UTC grid)")
    max_chunk_bytes: int = Field(
        default=262_144, ge=4096, le=268_435_455,
        description="largest chunk message (bytes); a window that compresses to more is cut in two; the "
        "forwarding max_message_bytes bounds it too")
    outbox_threshold: int = Field(
        default=0, ge=0, le=10_000,
        description="a chunk goes only while the records' outbox holds at most this many records, every one "
        "of them already sent (0: only when it is empty)")
    settle_s: float = Field(
        default=120.0, ge=0, le=86_400,
        description="seconds after a window's end before its chunk is made (late readings come in meanwhile)")

    @field_validator("chunk_minutes")
    @classmethod
    def _divides_a_day(cls, v: int) -> int:
        if 1440 % v:
            raise ValueError(f"{v} does not divide a day (1440 minutes): windows must fall on a daily grid")
        return v


class TokenBucket:
    """Bytes per second, starting empty: `take(n)` succeeds when n bytes are available, so what
    was taken by any moment is at most the rate times the time since the start."""

    def __init__(self, rate: float, capacity: float, now: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = capacity
        self.now = now
        self.tokens = 0.0
        self._last = now()

    def take(self, n: float) -> bool:
        t = self.now()
        self.tokens = min(self.capacity, self.tokens + (t - self._last) * self.rate)
        self._last = t
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False


def window_end(t: datetime, minutes: int) -> datetime:
    """The end of the grid window of `minutes` that holds `t`."""
    step = minutes * 60_000
    ms = (t - _EPOCH) // timedelta(milliseconds=1)
    return _EPOCH + timedelta(milliseconds=(ms // step + 1) * step)


def window_start(t: datetime, minutes: int) -> datetime:
    return window_end(t, minutes) - timedelta(minutes=minutes)


@dataclass
class _InFlight:
    chunk: RawChunk
    sent_at: float
    mid: int | None


class RawUploader:
    def __init__(self, station: str, cfg: RawUploadConfig, forwarder: Forwarder, store_path: Path | str,
                 clock: Clock, advance: Callable[[str, str], None], emit: Callable[[Event], None], log,
                 devices: Iterable[str] = (), ack_timeout_s: float = 60.0, denied_backoff_s: float = 30.0) -> None:
        """`advance(device, until)` hands the cursor's move to the store writer."""
        self.station = station
        self.cfg = cfg
        self.forwarder = forwarder
        self.client = forwarder.client
        self.store_path = store_path
        self.clock = clock
        self.advance = advance
        self.emit = emit
        self.log = log.bind(component="raw_upload")
        self.faults = FaultTracker("raw_upload", self.log, emit)
        self.ack_timeout_s = ack_timeout_s
        self.denied_backoff_s = denied_backoff_s
        self.topic = topic_for(station, "raw")
        self.ack_topic = topic_for(station, "raw_ack")
        self.overhead = mqtt_packet_overhead(self.topic, RAW_CONTENT_TYPE)
        self._props = Properties(PacketTypes.PUBLISH)
        self._props.ContentType = RAW_CONTENT_TYPE
        self.bucket = TokenBucket(cfg.max_bytes_per_s, self._cap_bound())
        self.store_id: str | None = None
        self.positions: dict[str, datetime | None] = {d: None for d in devices}
        """Per device, where its next chunk starts (None: at its first raw row)."""
        self.stats = {"chunks_sent": 0, "bytes_sent": 0, "rows_sent": 0, "chunks_acked": 0, "rows_acked": 0,
                      "resent": 0, "refused": 0, "conflicts": 0, "duplicates": 0, "cut": 0, "waits_for_minutes": 0}
        self._inbox: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=10_000)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._in_flight: _InFlight | None = None
        self._ready: RawChunk | None = None  # made, waiting for the bucket or the minutes
        self._sub_mid: int | None = None
        self._resubscribe_at: float | None = None
        self._subscribed = False
        self._hold_until = 0.0
        self.thread = threading.Thread(target=self._run, name="raw-upload", daemon=True)
        forwarder.on_connected = lambda: self._put("connect", None)
        forwarder.on_other_puback = lambda mid, rc: self._put("puback", (mid, rc))
        forwarder.on_other_suback = lambda mid, rcs: self._put("suback", (mid, rcs))
        self.client.message_callback_add(self.ack_topic, self._on_ack_message)

    # -- other threads: only enqueue ------------------------------------------------------------
    def _put(self, kind: str, payload: Any) -> None:
        try:
            self._inbox.put_nowait((kind, payload))
        except queue.Full:  # a flood of foreign acks: what matters is sent again on the ack timeout
            pass
        self._wake.set()

    def _on_ack_message(self, client, userdata, message) -> None:
        self._put("ack", (message.topic, bytes(message.payload)))

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> None:
        self.thread.start()
        if self.forwarder.connected:  # connected before our hook was looked at: subscribe now
            self._put("connect", None)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self.thread.join(30)
        self.client.message_callback_remove(self.ack_topic)

    def status(self) -> dict[str, Any]:
        return dict(self.stats, in_flight=None if self._in_flight is None else {
            "device": self._in_flight.chunk.header.device, "start": iso_utc(self._in_flight.chunk.header.start)},
            positions={d: None if p is None else iso_utc(p) for d, p in list(self.positions.items())})

    # -- the upload thread ----------------------------------------------------------------------------
    def _run(self) -> None:
        store = StationStore(self.store_path, read_only=True)
        try:
            self.store_id = store.store_id()
            for device in store.raw_devices():
                self.positions.setdefault(device, None)
            for device, until in store.raw_upload_cursors().items():
                self.positions[device] = parse_utc(until)
            while not self._stop.is_set():
                self._wake.wait(0.2)
                self._wake.clear()
                self._drain_inbox()
                if self._stop.is_set():
                    break
                if not self.forwarder.connected or time.monotonic() < self._hold_until:
                    continue
                if self._resubscribe_at is not None and time.monotonic() >= self._resubscribe_at:
                    self._subscribe()
                if not self._subscribed:
                    continue
                self._send(store)
        except Exception as exc:  # pragma: no cover - logged; the agent keeps measuring
            self.log.exception("raw_upload_failed", error=repr(exc))
            raise
        finally:
            store.close()

    def _drain_inbox(self) -> None:
        while True:
            try:
                kind, payload = self._inbox.get_nowait()
            except queue.Empty:
                return
            if kind == "connect":
                self._subscribe()
                if self._in_flight is not None:
                    self._in_flight.sent_at = -float("inf")  # whatever was in flight goes again
            elif kind == "ack":
                self._ack(*payload)
            elif kind == "puback":
                self._puback(*payload)
            elif kind == "suback":
                self._suback(*payload)

    def _subscribe(self) -> None:
        self._resubscribe_at = None
        self._subscribed = False
        result, self._sub_mid = self.client.subscribe(self.ack_topic, qos=1)
        if result != 0:
            self._resubscribe_at = time.monotonic() + self.denied_backoff_s

    def _suback(self, mid: int, reason_codes) -> None:
        if mid != self._sub_mid:
            return
        failed = [str(rc) for rc in reason_codes if rc.is_failure]
        if failed:
            self.faults.report("raw_ack_subscription_denied",
                               f"broker refused the subscription to {self.ack_topic}: {', '.join(failed)}",
                               self.clock.now())
            self._resubscribe_at = time.monotonic() + self.denied_backoff_s
        else:
            self._subscribed = True
            self.faults.clear(self.clock.now(), ("raw_ack_subscription_denied",))

    def _puback(self, mid: int, reason_code) -> None:
        f = self._in_flight
        if f is None or f.mid != mid:
            return
        if reason_code.is_failure:
            self.faults.report("raw_publish_denied", f"broker refused raw chunk {f.chunk.header.device} "
                               f"{iso_utc(f.chunk.header.start)}: {reason_code}", self.clock.now())
            self._hold_until = time.monotonic() + self.denied_backoff_s
            f.sent_at = -float("inf")
        else:
            self.faults.clear(self.clock.now(), ("raw_publish_denied",))

    def _ack(self, topic: str, payload: bytes) -> None:
        try:
            ack = parse_raw_ack(topic, payload)
        except WireError as exc:
            self.faults.report("bad_raw_ack", f"{exc.code}: {exc.message}", self.clock.now())
            return
        f = self._in_flight
        if f is None:
            return
        h = f.chunk.header
        if (ack.store, ack.device, ack.start, ack.end) != (h.store, h.device, h.start, h.end):
            return  # a late ack of a chunk sent again, or another database's
        self._in_flight = None
        until = iso_utc(h.end)
        self.advance(h.device, until)
        self.positions[h.device] = h.end
        self.stats["chunks_acked"] += 1
        self.stats["rows_acked"] += h.rows
        if ack.result == "duplicate":
            self.stats["duplicates"] += 1
        elif ack.result in ("conflict", "refused"):
            self.stats["refused" if ack.result == "refused" else "conflicts"] += 1
            message = (f"central {'refused' if ack.result == 'refused' else 'holds other rows for'} raw chunk "
                       f"{h.device} {iso_utc(h.start)}..{until} ({h.rows} rows): {ack.reason}")
            self.log.error("raw_chunk_" + ack.result, device=h.device, start=iso_utc(h.start), reason=ack.reason)
            self.emit(Event(self.clock.now(), f"raw.{ack.result}", "error", message, h.device,
                            {"start": iso_utc(h.start), "end": until, "rows": h.rows, "reason": ack.reason}))
        self._wake.set()

    # -- sending --------------------------------------------------------------------------------------
    def _cap_bound(self) -> int:
        seconds_of_cap = int(self.cfg.max_bytes_per_s * CAP_SECONDS_PER_CHUNK)
        return min(self.cfg.max_chunk_bytes, max(MIN_CHUNK_BYTES, seconds_of_cap))

    def _limit(self) -> int:
        """The most a chunk's message may take (frame and MQTT overhead)."""
        return min(self._cap_bound(), self.forwarder.payload_limit + self.overhead)

    def _minutes_waiting(self, store: StationStore) -> bool:
        backlog = store.outbox_stats()["backlog"]
        return backlog > self.cfg.outbox_threshold or backlog > self.forwarder.awaiting

    def _send(self, store: StationStore) -> None:
        f = self._in_flight
        if f is not None:
            if time.monotonic() - f.sent_at < self.ack_timeout_s:
                return
            chunk = f.chunk  # not acknowledged in time (or the link came back): again
        else:
            if self._ready is None:
                self._ready = self._next_chunk(store)
            chunk = self._ready
            if chunk is None:
                return
        if self._minutes_waiting(store):
            self.stats["waits_for_minutes"] += 1
            return
        size = len(chunk.frame) + self.overhead
        if not self.bucket.take(size):
            return
        info = self.client.publish(self.topic, chunk.frame, qos=1, properties=self._props)
        if info.rc != 0:
            self.bucket.tokens += size  # not sent: the link dropped this instant
            return
        if f is not None:
            self.stats["resent"] += 1
            self.log.warning("raw_chunk_resent", device=chunk.header.device, start=iso_utc(chunk.header.start))
        self._in_flight = _InFlight(chunk, time.monotonic(), info.mid)
        self._ready = None
        self.stats["chunks_sent"] += 1
        self.stats["bytes_sent"] += size
        self.stats["rows_sent"] += chunk.header.rows

    def _next_chunk(self, store: StationStore) -> RawChunk | None:
        """The chunk of the device furthest behind whose next window is closed, or None."""
        closed = self.clock.now() - timedelta(seconds=self.cfg.settle_s)
        step = self.cfg.chunk_minutes
        for _ in range(4 * max(1, len(self.positions))):
            candidates = []
            for device, pos in self.positions.items():
                if pos is None:
                    first = store.first_raw_time([device], _EPOCH)
                    if first is None:
                        continue
                    pos = self.positions[device] = window_start(parse_utc(first), step)
                if window_end(pos, step) <= closed:
                    candidates.append((pos, device))
            if not candidates:
                return None
            pos, device = min(candidates)
            end = window_end(pos, step)
            rows = list(store.raw_rows(pos, end, device))
            if rows:
                return self._fit(device, pos, end, rows)
            # nothing in this window: on to the window of the device's next row (not past `closed`)
            nxt = store.first_raw_time([device], end)
            self.positions[device] = window_start(min(parse_utc(nxt), closed) if nxt else closed, step)
            if self.positions[device] <= pos:
                self.positions[device] = end
        return None

    def _fit(self, device: str, start: datetime, end: datetime, rows: list[dict]) -> RawChunk | None:
        """The chunk from `start`: the window's rows, or fewer, cut at a row's time until it fits."""
        limit = self._limit()
        assert self.store_id is not None
        while True:
            chunk = encode_chunk(self.station, self.store_id, device, start, end, rows)
            if len(chunk.frame) + self.overhead <= limit:
                return chunk
            self.stats["cut"] += 1
            cut = rows[len(rows) // 2]["time"]
            if cut <= rows[0]["time"]:
                later = [r["time"] for r in rows if r["time"] > rows[0]["time"]]
                if not later:
                    self._too_big(device, start, end, rows, len(chunk.frame))
                    return None
                cut = later[0]
            end = parse_utc(cut)
            rows = [r for r in rows if r["time"] < cut]

    def _too_big(self, device: str, start: datetime, end: datetime, rows: list[dict], size: int) -> None:
        """Rows of one instant that no message can carry: said, and passed over (never retried)."""
        until = iso_utc(end)
        message = (f"{len(rows)} raw readings of {device} at {rows[0]['time']} make a chunk of {size} bytes, more "
                   f"than a message may carry ({self._limit()}): not archived at central")
        self.log.error("raw_chunk_too_large", device=device, start=iso_utc(start), bytes=size)
        self.emit(Event(self.clock.now(), "raw.too_large", "error", message, device,
                        {"start": iso_utc(start), "end": until, "rows": len(rows), "bytes": size}))
        self.advance(device, until)
        self.positions[device] = end
