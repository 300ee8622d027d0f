"""Central's HJ 212 listener: existing data loggers connect over TCP and send HJ 212-2017 packets.

One event loop (asyncio's, or uvloop's: `[hj212] event_loop`) in a thread of its own serves every
connection (a `FrameReader` each: length, CRC and framing checked as bytes arrive); a packet that
passes the checks, comes from a configured MN with its PW and carries data becomes a batch
(central/hj212/records.py) queued for storage, with the bytes of its 9014 built at once. One
committer takes whatever is queued (up to `commit_max_packets`), stores it in ONE transaction on the
listener's own store connection (a single worker thread, so the event loop never waits on the disk),
and only then writes each packet's 9014 (when its Flag asks for one). The next transaction starts
as soon as one returns, before that one's answers are written: a packet waits at most for the
commit running when it arrived and its own, and the cap keeps each short (a group of 999 took
0.4 s under load). A full queue stops the readers (TCP pushes back on the loggers); nothing is
acknowledged that is not committed.

Everything refused is dropped, logged and counted in `stats` (never stored): framing errors by their
FrameError reason (`frame_bad_crc`, ...), `bad_packet` (the data segment), `unknown_mn`, `wrong_pw`,
`cn_<CN>_ignored` (not a data upload), and the conversion's refusals (`no_data_time`, `bad_value`,
...). A stored packet counts `packets_stored`; its record's fate `records_new`, `records_duplicate`
or `records_dead_lettered` (a conflicting resend or a time beyond central's tolerance: dead-lettered
and acknowledged, as for MQTT). The counters are logged (`hj212_counts`) every five minutes when they
changed, and at stop (`hj212_stopped`).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import structlog
from pydantic import ValidationError

from ghgnet.hj212 import (
    FrameError,
    FrameReader,
    Packet,
    PacketError,
    codes,
    crc16,
    encode_packet,
    parse_segment,
    reply_9014,
)
from ghgnet.hj212.frame import MAX_SEGMENT, TEXT_ENCODING, encode_frame
from ghgnet.hj212.packet import DEFAULT_EDITION, EDITION_VERSION
from ghgnet.wire import ParsedBatch

from ..config import CentralConfig
from ..ingest import refuse_future_records
from ..store import BatchOutcome, CentralStore, open_configured_store, transient_errors
from .config import Hj212Config, LoggerConfig
from .records import Refused, packet_batch

log = structlog.get_logger(component="hj212")

COUNTS_LOG_INTERVAL_S = 300.0



@dataclass(slots=True)
class _Pending:
    batch: ParsedBatch
    packet: Packet
    conn: _Connection
    ack: bytes | None
    """The 9014's bytes, built on arrival (None: not asked for), so that the answers after a commit
    are writes only and go out as soon as it returns."""


def new_event_loop(kind: str = "asyncio") -> asyncio.AbstractEventLoop:
    """An event loop of `kind` (Hj212Config.event_loop): uvloop's when asked for (ImportError naming
    it when it is not installed) or, for auto, when installed; else asyncio's own."""
    if kind != "asyncio":
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise ImportError("[hj212] event_loop = \"uvloop\": the uvloop package is not installed") from None
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def ack_frame(packet: Packet) -> bytes:
    """The frame of the 9014 answering `packet`: `encode_packet(reply_9014(packet))`, built from bytes:
    the part after the QN is the same for every answer to one logger, so it is encoded and checked
    once (`_ack_tail`); a third of the general path's cost, on every packet."""
    qn, version = packet.qn, packet.version
    if version is None:
        version = EDITION_VERSION[DEFAULT_EDITION]
    if qn is None or not qn.isascii() or version << 2 > 255:  # the rare shapes: the general path
        return encode_packet(reply_9014(packet))
    body = b"QN=" + qn.encode() + _ack_tail(packet.pw, packet.mn, version << 2)
    if len(body) > MAX_SEGMENT:
        return encode_packet(reply_9014(packet))  # raises as the general path does
    return b"##%04d%s%04X\r\n" % (len(body), body, crc16(body))


@lru_cache(maxsize=16384)
def _ack_tail(pw: str, mn: str, flag: int) -> bytes:
    """`;ST=91;CN=9014;PW=..;MN=..;Flag=..;CP=&&&&` in the frame's encoding (checked by encode_frame)."""
    tail = f";ST={codes.ST_SYSTEM};CN={codes.CN_DATA_ANSWER};PW={pw};MN={mn};Flag={flag};CP=&&&&"
    encode_frame(tail)  # FrameError for text the standard cannot carry, as the general path
    return tail.encode(TEXT_ENCODING)


class _Connection(asyncio.Protocol):
    """One logger's TCP connection: bytes -> FrameReader -> the listener's checks -> its queue.
    A protocol rather than streams: no task or future per read, a third of the loop's time per packet."""

    def __init__(self, listener: Hj212Listener) -> None:
        self.listener = listener
        self.frames = FrameReader()
        self.transport: asyncio.Transport | None = None
        self.peer: object = None
        self.last_active = 0.0
        self.paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.peer = transport.get_extra_info("peername")
        self.last_active = time.monotonic()
        self.listener._opened(self)

    def data_received(self, data: bytes) -> None:
        self.last_active = time.monotonic()
        lst = self.listener
        for item in self.frames.feed(data):
            if isinstance(item, FrameError):
                lst._bad_frame(item, self.peer)
            else:
                pending = lst._accept(item, self)
                if pending is not None:
                    lst._enqueue(pending)

    def eof_received(self) -> bool:
        for err in self.frames.close():
            self.listener._bad_frame(err, self.peer)
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            self.listener._count("connections_reset")
        self.listener._closed(self)

    def write(self, data: bytes) -> bool:
        t = self.transport
        if t is None or t.is_closing():
            return False
        t.write(data)
        return True


class Hj212Listener:
    """`start()` binds and returns (the bound address in `address`); `stop()` stores what is queued,
    answers it, closes every connection and the store."""

    def __init__(self, config: CentralConfig, store: CentralStore | None = None,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        if config.hj212 is None:
            raise ValueError("the config has no [hj212] table")
        self.config: Hj212Config = config.hj212
        self._central = config
        self._store = store
        self._now = now
        self._loggers: dict[str, LoggerConfig] = {lg.mn: lg for lg in self.config.loggers}
        self._zones = {lg.mn: self.config.zone_of(lg) for lg in self.config.loggers}
        self.stats: Counter[str] = Counter()
        """Counters (see the module docstring); written by the listener's threads only."""
        self.address: tuple[str, int] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hj212-store")
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._stopping = threading.Event()
        self._connections: set[_Connection] = set()
        self._queue: deque[_Pending] = deque()
        self._paused: list[_Connection] = []
        self._transient: tuple[type[Exception], ...] = ()

    # -- life cycle -------------------------------------------------------------------------------

    def start(self) -> Hj212Listener:
        if self._store is None:
            self._store = open_configured_store(self._central)
        # before the first packet, not in its commit: this imports the PostgreSQL backend (psycopg),
        # 0.1-0.5 s holding the GIL, which every packet of the first second waited behind
        self._transient = transient_errors()
        self._thread = threading.Thread(target=self._run_loop, name="hj212-listener", daemon=True)
        self._thread.start()
        self._started.wait(30)
        if self._start_error is not None:
            raise self._start_error
        assert self.address is not None
        log.info("hj212_listening", host=self.address[0], port=self.address[1], loggers=len(self._loggers))
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stopping.set()
        loop = self._loop
        if loop is not None and self._thread is not None and self._thread.is_alive():
            loop.call_soon_threadsafe(self._shutdown.set)
            self._thread.join(timeout_s)
        self._executor.shutdown(wait=True)
        if self._store is not None:
            self._store.close()
            self._store = None
        log.info("hj212_stopped", **dict(self.stats))

    def __enter__(self) -> Hj212Listener:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _count(self, key: str, n: int = 1) -> None:
        self.stats[key] += n

    # -- the loop ---------------------------------------------------------------------------------

    def _run_loop(self) -> None:
        try:
            loop = new_event_loop(self.config.event_loop)
        except BaseException as exc:
            self._start_error = exc
            self._started.set()
            return
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:  # a bind error: start() re-raises it
            if not self._started.is_set():
                self._start_error = exc
                self._started.set()
            else:
                log.exception("hj212_loop_failed")
        finally:
            loop.close()

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        self._shutdown = asyncio.Event()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()  # set while nothing is queued or being stored
        self._idle.set()
        host, port = self.config.address
        server = await loop.create_server(lambda: _Connection(self), host, port, backlog=1024)
        sock = server.sockets[0].getsockname()
        self.address = (sock[0], sock[1])
        tasks = [asyncio.create_task(self._commit_loop()), asyncio.create_task(self._close_idle())]
        self._started.set()
        await self._shutdown.wait()
        server.close()
        await self._idle.wait()  # what was queued is stored and answered while the peers are still there
        for conn in list(self._connections):
            if conn.transport is not None:
                conn.transport.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()

    def _opened(self, conn: _Connection) -> None:
        if len(self._connections) >= self.config.max_connections:
            self._count("connections_refused")
            log.warning("hj212_too_many_connections", peer=str(conn.peer), limit=self.config.max_connections)
            assert conn.transport is not None
            conn.transport.close()
            return
        self._connections.add(conn)
        self._count("connections")

    def _closed(self, conn: _Connection) -> None:
        self._connections.discard(conn)

    async def _close_idle(self) -> None:
        """Close connections silent for `idle_timeout_s` (a logger that vanished without a FIN); log
        the counters when they changed, every `COUNTS_LOG_INTERVAL_S` at most."""
        idle = self.config.idle_timeout_s
        logged: dict[str, int] = {}
        last_log = time.monotonic()
        while True:
            await asyncio.sleep(min(30.0, idle / 4))
            if time.monotonic() - last_log >= COUNTS_LOG_INTERVAL_S and dict(self.stats) != logged:
                logged, last_log = dict(self.stats), time.monotonic()
                log.info("hj212_counts", connections_open=len(self._connections), **logged)
            cutoff = time.monotonic() - idle
            for conn in [c for c in self._connections if c.last_active < cutoff]:
                self._count("connections_idle_closed")
                if conn.transport is not None:
                    conn.transport.close()

    def _bad_frame(self, err: FrameError, peer: object) -> None:
        self._count(f"frame_{err.reason}")
        log.warning("hj212_bad_frame", peer=str(peer), reason=err.reason, detail=str(err), head=repr(err.raw[:80]))

    def _refuse(self, code: str, peer: object, packet: Packet | None, detail: str) -> None:
        self._count(code)
        log.warning("hj212_packet_refused", peer=str(peer), reason=code, detail=detail,
                    mn=packet.mn if packet else None, cn=packet.cn if packet else None,
                    qn=packet.qn if packet else None)

    def _accept(self, segment: str, conn: _Connection) -> _Pending | None:
        """The checks after framing; a batch to store, or None (refused: counted and logged)."""
        self.stats["frames"] += 1
        peer = conn.peer
        try:
            packet = parse_segment(segment)
        except PacketError as e:
            self._refuse("bad_packet", peer, None, str(e))
            return None
        logger = self._loggers.get(packet.mn)
        if logger is None:
            self._refuse("unknown_mn", peer, packet, f"MN {packet.mn} is not in [[hj212.loggers]]")
            return None
        if packet.pw != logger.pw:
            self._refuse("wrong_pw", peer, packet, f"wrong PW for MN {packet.mn}")
            return None
        if packet.cn not in codes.DATA_CNS:
            self._count(f"cn_{packet.cn}_ignored")
            return None
        try:
            batch = packet_batch(packet, logger, self._zones[packet.mn], self._now())
        except Refused as e:
            self._refuse(e.code, peer, packet, str(e))
            return None
        except ValidationError as e:
            self._refuse("bad_data", peer, packet, str(e).splitlines()[0])
            return None
        return _Pending(batch, packet, conn, ack_frame(packet) if packet.ack_wanted else None)

    def _enqueue(self, pending: _Pending) -> None:
        """Queue for storage; a full queue pauses the connection (TCP pushes back on its logger)."""
        self._queue.append(pending)
        self._idle.clear()
        self._wake.set()
        conn = pending.conn
        if len(self._queue) >= self.config.queue_size and not conn.paused and conn.transport is not None:
            conn.paused = True
            conn.transport.pause_reading()
            self._paused.append(conn)

    # -- storage ------------------------------------------------------------------------------------

    async def _commit_loop(self) -> None:
        """Commit what is queued, at most `commit_max_packets` a transaction, one transaction at a
        time; the next one starts as soon as the last returns, before its answers are written, so
        that the store never waits for the loop and a packet waits at most one commit behind."""
        loop = asyncio.get_running_loop()
        cap = self.config.commit_max_packets
        running: asyncio.Future | None = None
        group: list[_Pending] = []
        while True:
            if running is None:
                if not self._queue:
                    self._idle.set()
                    await self._wake.wait()
                    self._wake.clear()
                    continue
                group = self._take(cap)
                running = loop.run_in_executor(self._executor, self._write, [p.batch for p in group])
            outcomes = await running
            done, running = group, None
            if self._queue:  # the next commit first, then this one's answers while it runs
                group = self._take(cap)
                running = loop.run_in_executor(self._executor, self._write, [p.batch for p in group])
            self._answer(done, outcomes)
            if self._paused and len(self._queue) < self.config.queue_size // 2:
                for conn in self._paused:
                    conn.paused = False
                    if conn.transport is not None and not conn.transport.is_closing():
                        conn.transport.resume_reading()
                self._paused.clear()

    def _take(self, cap: int) -> list[_Pending]:
        q = self._queue
        if len(q) <= cap:
            group = list(q)
            q.clear()
            return group
        return [q.popleft() for _ in range(cap)]

    def _write(self, batches: list[ParsedBatch]) -> list[BatchOutcome | None]:
        """Store `batches` in one transaction (retrying while the store is away); None for a batch
        that could not be stored (not answered: the logger sends it again)."""
        assert self._store is not None
        received_at = self._now()
        not_after = received_at + timedelta(seconds=self._central.ingest.future_tolerance_s)
        items = [refuse_future_records(b, not_after) for b in batches]
        transient = self._transient
        delay = self._central.ingest.retry_initial_s
        while True:
            try:
                return self._store.ingest(items, received_at)  # type: ignore[return-value]
            except transient as exc:
                self._count("store_retries")
                log.warning("hj212_store_unavailable", error=str(exc), retry_in_s=delay)
                if self._stopping.wait(delay):  # a stop ends the wait at once
                    return [None] * len(items)
                reconnect = getattr(self._store, "reconnect", None)
                if reconnect is not None:
                    try:
                        reconnect()
                    except Exception as rexc:
                        log.warning("hj212_store_reconnect_failed", error=str(rexc))
                delay = min(delay * 2, self._central.ingest.retry_max_s)
            except Exception:
                if len(items) == 1:
                    log.exception("hj212_store_failed", station=items[0].station)
                    return [None]
                log.exception("hj212_group_store_failed", packets=len(items))
                out: list[BatchOutcome | None] = []
                for it in items:  # one bad item must not block the others
                    try:
                        out.append(self._store.ingest([it], received_at)[0])  # type: ignore[arg-type]
                    except Exception:
                        log.exception("hj212_store_failed", station=it.station)
                        out.append(None)
                return out

    def _answer(self, group: list[_Pending], outcomes: list[BatchOutcome | None]) -> None:
        """After the commit: count, then send each 9014 asked for."""
        stored = new = duplicate = dead = acks = 0
        for p, o in zip(group, outcomes):
            if o is None:
                self._count("store_failed")
                continue
            stored += 1
            new += o.new
            duplicate += o.duplicate
            dead += o.dead_lettered
            if p.ack is not None and p.conn.write(p.ack):
                acks += 1
        for key, n in (("packets_stored", stored), ("records_new", new), ("records_duplicate", duplicate),
                       ("records_dead_lettered", dead), ("acks_sent", acks)):
            self.stats[key] += n
