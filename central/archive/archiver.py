"""The receiver's raw archive thread: raw chunks in, stored once, acknowledged after the commit.

Raw chunks come on `ghg/v1/+/raw` (through `$share/<group>/` with the records' shared group) and
take a path of their own beside the records' decode and storage threads (central/receiver.py
hands them over): a station's archive upload never sits in front of its minutes. One chunk at a
time, with its own store connection:

- the header is read (ghgnet/wire/raw.py): a payload too big, with another content type or
  schema, a header that does not parse or a station that differs from its topic's is
  dead-lettered with the reason and acknowledged to nobody (there is no chunk to name);
- the body is inflated (bounded by `[archive] max_inflated_bytes`) and checked: its SHA-256, its
  row count, every row's fields and times within the chunk's window; a chunk stamped beyond
  central's clock and its tolerance is refused too. A chunk refused for its content is
  dead-lettered and acknowledged as `refused` with the reason (sent again it would be refused again);
- a good chunk is stored as it came (compressed), once per (station, store, device, start): a
  repeat with the same hash is a duplicate, acknowledged again; one with another hash is a
  conflict, dead-lettered (`raw_conflict`) and acknowledged as such, the stored copy kept.

The ack goes out after the commit, then the broker's PUBACK. A storage outage is retried with
backoff while the chunk stays unacknowledged. Every `prune_interval_s` the chunks that ended
more than `raw_retention_days` before central's clock are deleted.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import structlog

from ghgnet.timeutil import iso_utc
from ghgnet.wire import BadTopic, WireError, parse_topic, topic_for
from ghgnet.wire.raw import encode_raw_ack, parse_chunk

from ..config import CentralConfig
from ..store import DeadLetter, open_configured_store, transient_errors

log = structlog.get_logger(component="raw_archive")


class RawArchiver:
    def __init__(self, config: CentralConfig, publish_ack: Callable[[str, bytes], None],
                 release: Callable[[Any], None], now: Callable[[], datetime]) -> None:
        """`publish_ack(topic, payload)` sends an ack; `release(item)` gives the broker its PUBACK
        for a received message (`item` as `submit` got it: .topic, .payload, .content_type)."""
        self.config = config
        self.publish_ack = publish_ack
        self.release = release
        self.now = now
        # room for as many messages as the broker may have out to us unacknowledged (the receive
        # maximum): paho's network thread, which hands chunks over, never waits on the archive
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=config.ingest.queue_size + 1)
        self._stopping = threading.Event()
        self.stats: dict[str, int] = {"chunks_stored": 0, "chunks_duplicate": 0, "chunks_conflict": 0,
                                      "chunks_refused": 0, "chunks_dead_lettered": 0, "rows_stored": 0,
                                      "bytes_stored": 0, "chunks_pruned": 0, "store_retries": 0}
        self._thread = threading.Thread(target=self._run, name="central-raw-archive", daemon=True)
        self._store = None

    def start(self) -> RawArchiver:
        self._store = open_configured_store(self.config)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop; what is queued and not stored stays unacknowledged (the broker redelivers it)."""
        self._stopping.set()
        self._thread.join(timeout_s)
        if self._store is not None:
            self._store.close()

    def submit(self, item: Any) -> None:
        """A received raw message (paho's network thread); the queue holds the receive maximum, so
        this waits only on a broker that breaks it."""
        while not self._stopping.is_set():
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                log.warning("raw_archive_queue_full", size=self._queue.qsize())

    def _run(self) -> None:
        next_prune = 0.0
        try:
            while not self._stopping.is_set():
                if time.monotonic() >= next_prune:
                    self._with_retries(self._prune)
                    next_prune = time.monotonic() + self.config.archive.prune_interval_s
                try:
                    item = self._queue.get(timeout=0.2)
                except queue.Empty:
                    continue
                if self._with_retries(lambda: self._handle(item)):
                    self.release(item)
        except Exception:
            log.exception("raw_archive_failed")
            raise

    def _with_retries(self, job: Callable[[], None]) -> bool:
        """Run `job`, retrying storage outages with backoff; False when stopped before it ran."""
        delay = self.config.ingest.retry_initial_s
        transient = transient_errors()
        while True:
            try:
                job()
                return True
            except transient as exc:
                self.stats["store_retries"] += 1
                log.warning("raw_store_unavailable", error=str(exc), retry_in_s=delay)
                if self._stopping.wait(delay):
                    return False
                reconnect = getattr(self._store, "reconnect", None)
                if reconnect is not None:
                    try:
                        reconnect()
                    except Exception as rexc:
                        log.warning("raw_store_reconnect_failed", error=str(rexc))
                delay = min(delay * 2, self.config.ingest.retry_max_s)

    def _prune(self) -> None:
        before = self.now() - timedelta(days=self.config.archive.raw_retention_days)
        n = self._store.prune_raw_chunks(before)
        if n:
            self.stats["chunks_pruned"] += n
            log.info("raw_chunks_pruned", chunks=n, ended_before=iso_utc(before))

    def _dead_letter(self, item: Any, station: str | None, code: str, reason: str) -> None:
        log.warning("raw_chunk_dead_lettered", topic=item.topic, reason_code=code, reason=reason)
        self.stats["chunks_dead_lettered"] += 1
        self._store.add_dead_letter(DeadLetter(item.topic, item.payload, code, reason, station=station), self.now())

    def _handle(self, item: Any) -> None:
        now = self.now()
        try:
            station: str | None = parse_topic(item.topic)[0]
        except BadTopic:
            station = None
        try:
            chunk = parse_chunk(item.topic, item.payload, item.content_type, self.config.ingest.max_payload_bytes)
        except WireError as exc:
            self._dead_letter(item, station, exc.code, exc.message)
            return
        h = chunk.header
        ack_topic = topic_for(h.station, "raw_ack")
        not_after = now + timedelta(seconds=self.config.ingest.future_tolerance_s)
        try:
            chunk.rows(self.config.archive.max_inflated_bytes)
            if h.end - timedelta(milliseconds=1) > not_after:
                raise _Future(f"chunk ends {iso_utc(h.end)}, more than central's tolerance beyond its clock "
                              f"(latest accepted: {iso_utc(not_after)})")
        except WireError as exc:
            self._dead_letter(item, station, exc.code, f"{h.device} {iso_utc(h.start)}: {exc.message}")
            self.stats["chunks_refused"] += 1
            self.publish_ack(ack_topic, encode_raw_ack(h, "refused", f"{exc.code}: {exc.message}"))
            return
        result = self._store.put_raw_chunk(chunk, now, item.content_type)
        self.stats[f"chunks_{result}"] += 1
        reason = ""
        if result == "stored":
            self.stats["rows_stored"] += h.rows
            self.stats["bytes_stored"] += len(chunk.body)
        elif result == "conflict":
            reason = (f"central holds another chunk of {h.device} from {iso_utc(h.start)} (store {h.store}) with "
                      "other rows; the stored one is kept")
            self._dead_letter(item, station, "raw_conflict", reason)
        log.debug("raw_chunk", station=h.station, device=h.device, start=iso_utc(h.start), rows=h.rows,
                  bytes=len(chunk.body), result=result)
        self.publish_ack(ack_topic, encode_raw_ack(h, result, reason))


class _Future(WireError):
    code = "time_in_future"
