"""HJ 212 uplinks: the station's data to environmental monitoring platforms, acknowledged packet by packet.

Two halves, as the MQTT forwarder's:
- `UplinkPacker` runs in the store writer (the one writer): once a period is over (plus `settle_s`
  of data time for late minutes) it turns the period's stored minutes into packets
  (station_agent/forwarding/hj212_values.py) and queues them with their QN, moving the uplink's
  cursor in the same transaction (station_agent/storage/hj212_queue.py).
- `Hj212Uplink` owns the TCP link to one platform, in its own thread, reading the queue through a
  read-only connection. Each packet goes with Flag A set (answer wanted) and stays queued until the
  platform's 9014 with its QN arrives; the deletion is the writer's, and an acknowledged packet is
  never sent again, also while the writer has not yet deleted it. A packet not acknowledged within
  OverTime is sent again, up to ReCount times; then the link is dropped and redialled (backoff), and
  every unacknowledged packet goes again, oldest first, on the new connection, as after a restart.
  Link timing is in real seconds.

Split packets (a data segment over 1024 bytes: HJ 212-2017 section 6.3) are cut between factors by
the codec (`split_packet`, every part with DataTime); each part gets a QN of its own, so the
platform's 9014 names exactly which part it holds (srdgame/lua-HJ212 does the same when an answer is
wanted). The split leaves room for the longest MN and PW, so a later change of either still fits.

Platform requests (answered whatever their Flag, as the station is asked and the platform waits):
- history: a data CN (2011/2051/2061/2031) with BeginTime/EndTime (inclusive, the uplink's zone):
  9011 QnRtn=1, the packets made afresh from the store with the request's QN and no answer wanted,
  then 9012 ExeRtn=1, or 100 when the store holds no data for it;
- 1011 time request: 9011, a 1011 packet with SystemTime (the station clock), 9012;
- 1012 time set: logged and refused (9011 QnRtn=2) unless `allow_time_set`; then applied to the
  system clock (9012 ExeRtn 1, or 2 when the system refuses, e.g. not root);
- 1000 OverTime/ReCount: applied and kept in the database (they outlive a restart), 9011 + 9012.
A request with another MN or a wrong PW is answered 9011 QnRtn 4 or 3 and not executed.
A frame that breaks the framing or the packet structure is logged, counted and ignored; the
connection stays up (the reader resynchronises on the next `##`), since dropping it would
only delay the data behind it.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ghgnet.clock import Clock
from ghgnet.hj212 import (
    MAX_SEGMENT,
    FrameError,
    FrameReader,
    Packet,
    PacketError,
    codes,
    encode_packet,
    make_flag,
    make_qn,
    parse_segment,
    reply_9011,
    reply_9012,
    split_packet,
)
from ghgnet.records import Event
from ghgnet.timeutil import iso_utc, parse_utc
from station_agent.faults import FaultTracker
from station_agent.forwarding.hj212_config import UplinkConfig
from station_agent.forwarding.hj212_emissions import points_between as emission_points
from station_agent.forwarding.hj212_values import (
    DataPoint,
    cp_groups,
    parse_wire_time,
    period_end,
    period_start,
    points_between,
    wire_time,
)
from station_agent.storage.hj212_queue import Hj212Queue, QueuedPacket
from station_agent.storage.store import StationStore, StoreError

MAX_MN, MAX_PW = 24, 6
"""The standard's longest MN and PW: a split leaves room for them."""
PERIODS_PER_PASS = {2011: 240, 2051: 240, 2061: 24, 2031: 2}
"""Periods one packing pass (one writer transaction) may pack per CN, so a long catch-up never holds
the writer for long."""
MAX_HISTORY_PERIODS = {2011: 44_640, 2051: 44_640, 2061: 24 * 366, 2031: 3660}
"""The longest history a request may ask for (31 days of minutes, a year of hours, 10 years of days)."""
RECV_POLL_S = 0.05
QUEUE_POLL_S = 0.5
"""Real seconds between looks at the queue when nobody says new packets are there."""
EXERTN_CONDITION = 3
"""ExeRtn 3: the request's condition is wrong (codes.EXE_RTN)."""

WriterCall = Callable[[Callable[[StationStore], Any]], None]


def local_naive(t: datetime, tz: str) -> datetime:
    """`t` as wall-clock time of zone `tz`, without the zone (what QN and the wire's times are)."""
    return t.astimezone(ZoneInfo(tz)).replace(tzinfo=None)


def next_qn(last: str, now_local: datetime) -> str:
    """A QN for now (wall-clock time of the uplink's zone, milliseconds) that is above `last`: QNs of
    one uplink only grow, also across restarts and a clock stepped back, so no two packets share one."""
    qn = make_qn(now_local)
    if qn > last:
        return qn
    t = datetime.strptime(last[:14], "%Y%m%d%H%M%S") + timedelta(milliseconds=int(last[14:]) + 1)
    return make_qn(t)


# -- packing (the writer thread) ------------------------------------------------------------------
def data_points(store: StationStore, start: datetime, end: datetime, cfg: UplinkConfig, cn: int) -> list[DataPoint]:
    """The uplink's points of the periods in [start, end): the ambient minutes, or a stack's emissions."""
    if cfg.source == "emissions":
        lo, hi = iso_utc(start), iso_utc(end)
        return emission_points(store.emission_rows("minute", lo, hi), store.emission_rows("hour", lo, hi),
                               start, end, cn, cfg.timezone)
    return points_between(store.minute_rows(start, end), start, end, cfg, cn)


class UplinkPacker:
    """Makes one uplink's packets from the store, period by period, in the writer thread."""

    def __init__(self, cfg: UplinkConfig, log) -> None:
        self.cfg = cfg
        self.log = log.bind(component="hj212", uplink=cfg.name)
        self.made = 0
        self.error: str | None = None  # why the last pass made nothing, logged once

    def pack(self, store: StationStore, now: datetime) -> int:
        """Queue the packets of every period now over (and settled); returns how many were made."""
        q = Hj212Queue(store)
        made = 0
        settle = timedelta(seconds=self.cfg.settle_s)
        for cn in self.cfg.data:
            cursor = q.cursor(self.cfg.name, str(cn))
            if cursor is None:
                first = self.cfg.since or now - settle
                q.enqueue(self.cfg.name, str(cn), period_start(first, cn, self.cfg.timezone), [], now)
                continue
            start = parse_utc(cursor)
            end = start
            ready = self._computed_until(store, cn)
            for _ in range(PERIODS_PER_PASS[cn]):
                nxt = period_end(end, cn, self.cfg.timezone)
                if nxt + settle > now or (ready is not None and nxt > ready):
                    break
                end = nxt
            if end == start:
                continue
            points = data_points(store, start, end, self.cfg, cn)
            packets = self.packets(points, cn, q.last_qn(self.cfg.name), now)
            q.enqueue(self.cfg.name, str(cn), end, packets, now)
            made += len(packets)
        if made:
            self.made += made
            self.log.debug("hj212_packed", packets=made)
        return made

    def _computed_until(self, store: StationStore, cn: int) -> datetime | None:
        """For a stack's emissions: the end of the newest stored emission minute (CN 2051) or hour
        (2061, 2031), so a period is packed only once the station has computed it (an hour is stored
        when all its minutes are); None for ambient data (`settle_s` covers late minutes)."""
        if self.cfg.source != "emissions":
            return None
        period = "minute" if cn == 2051 else "hour"
        newest = store.newest_emission_time(period)
        if newest is None:
            return datetime.min.replace(tzinfo=UTC)
        return parse_utc(newest) + (timedelta(minutes=1) if period == "minute" else timedelta(hours=1))

    def packets(self, points: list[DataPoint], cn: int, last_qn: str, now: datetime) -> list[QueuedPacket]:
        cfg = self.cfg
        room = MAX_SEGMENT - (MAX_MN - len(cfg.mn)) - (MAX_PW - len(cfg.pw))
        flag = make_flag(str(cfg.edition), ack=True)
        out: list[QueuedPacket] = []
        for point in points:
            whole = Packet(qn=make_qn(datetime(2000, 1, 1)), st=cfg.st, cn=str(cn), pw=cfg.pw, mn=cfg.mn, flag=flag,
                           cp=cp_groups(point, cfg.timezone))
            for part in split_packet(whole, room):
                last_qn = next_qn(last_qn, local_naive(now, cfg.timezone))
                out.append(QueuedPacket(qn=last_qn, cn=str(cn), data_time=iso_utc(point.time), pnum=part.pnum or 1,
                                        pno=part.pno or 1, cp=json.dumps(part.cp, separators=(",", ":"))))
        return out


# -- the link (its own thread) ---------------------------------------------------------------------
@dataclass
class _InFlight:
    packet: QueuedPacket
    frame: bytes
    sent_at: float
    tries: int


class LinkDropped(Exception):
    """The session ends and the link is redialled (the reason is logged)."""


class Hj212Uplink:
    def __init__(self, cfg: UplinkConfig, store_path, clock: Clock, writer_call: WriterCall, log,
                 emit: Callable[[Event], None] = lambda e: None,
                 set_system_time: Callable[[datetime], None] | None = None) -> None:
        """`writer_call(fn)` runs `fn(store)` in the store writer (acks, settings); `emit` stores an
        event; `set_system_time(utc)` steps the system clock (only with `allow_time_set`)."""
        self.cfg = cfg
        self.store_path = store_path
        self.clock = clock
        self.writer_call = writer_call
        self.emit = emit
        self.set_system_time = set_system_time or _set_system_clock
        self.log = log.bind(component="hj212", uplink=cfg.name)
        self.faults = FaultTracker(f"hj212:{cfg.name}", self.log, emit)
        self.overtime_s = cfg.overtime_s
        self.recount = cfg.recount
        self.stats = {"connects": 0, "sent": 0, "resent": 0, "acked": 0, "bad_frames": 0, "requests": 0,
                      "history_packets": 0, "heartbeats": 0}
        self.connected = False
        self.backlog = 0  # packets waiting for their 9014 (counted by the writer's packing pass)
        self._acked: set[str] = set()  # acknowledged, until the writer has deleted them
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._reader_store: StationStore | None = None
        self._thread = threading.Thread(target=self._run, name=f"hj212-{cfg.name}", daemon=True)

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self._reader_store = StationStore(self.store_path, read_only=True)
        got = Hj212Queue(self._reader_store).link_settings(self.cfg.name)
        if got is not None:
            self.overtime_s, self.recount = got
            self.log.info("hj212_settings_restored", overtime_s=self.overtime_s, recount=self.recount)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._reader_store is not None:
            self._reader_store.close()
            self._reader_store = None

    def notify(self) -> None:
        """New packets are queued (called by the packer's side)."""
        self._wake.set()

    def status(self) -> dict[str, Any]:
        return dict(self.stats, connected=self.connected, backlog=self.backlog, overtime_s=self.overtime_s,
                    recount=self.recount)

    # -- the thread -----------------------------------------------------------------------------
    def _run(self) -> None:
        backoff = self.cfg.reconnect_min_s
        while not self._stop.is_set():
            try:
                sock = socket.create_connection((self.cfg.host, self.cfg.port), timeout=self.cfg.connect_timeout_s)
            except OSError as exc:
                self.faults.report("connect", f"cannot reach {self.cfg.host}:{self.cfg.port}: {exc}", self.clock.now())
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.cfg.reconnect_max_s)
                continue
            began = time.monotonic()
            self.connected = True
            self.stats["connects"] += 1
            self.faults.clear(self.clock.now(), ("connect",))
            self.log.info("hj212_connected", host=self.cfg.host, port=self.cfg.port)
            try:
                self._session(sock)
            except (OSError, LinkDropped) as exc:
                self.log.warning("hj212_link_dropped", reason=str(exc) or type(exc).__name__)
            except StoreError as exc:
                self.log.error("hj212_store_unreadable", error=str(exc))
            finally:
                self.connected = False
                try:
                    sock.close()
                except OSError:
                    pass
            if self._stop.is_set():
                break
            # a link that keeps failing at once is redialled ever more slowly
            backoff = self.cfg.reconnect_min_s if time.monotonic() - began > 30 else \
                min(backoff * 2, self.cfg.reconnect_max_s)
            self._stop.wait(backoff)

    def _session(self, sock: socket.socket) -> None:
        sock.settimeout(self.cfg.connect_timeout_s)  # for sendall; reads wait in select
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = FrameReader()
        inflight: dict[str, _InFlight] = {}
        after_id = 0  # every unacknowledged packet goes again on a new connection
        last_look = 0.0
        last_sent = time.monotonic()
        queue = Hj212Queue(self._reader_store)
        drain_until: float | None = None
        more = True
        while True:
            if self._stop.is_set():
                # stopping: send nothing new, but take the answers to what is in flight for a moment,
                # so that a restart does not send the platform what it already holds
                drain_until = drain_until or time.monotonic() + self.cfg.stop_drain_s
                if not inflight or time.monotonic() >= drain_until:
                    return
            readable, _, _ = select.select([sock], [], [], RECV_POLL_S)
            if readable:
                data = sock.recv(65536)
                if not data:
                    raise LinkDropped("the platform closed the connection")
                acks: list[str] = []
                for item in reader.feed(data):
                    self._handle(item, sock, inflight, acks)
                if acks:
                    self._acknowledge(acks)
                    more = True  # room in the window: the next packets go at once
            now = time.monotonic()
            room = self.cfg.window - len(inflight)
            if room > 0 and drain_until is None and (more or self._wake.is_set() or now - last_look >= QUEUE_POLL_S):
                more = False
                self._wake.clear()
                last_look = now
                for p in queue.pending(self.cfg.name, after_id, room):
                    after_id = p.id
                    with self._lock:
                        if p.qn in self._acked:
                            continue
                    frame = self._frame(p)
                    sock.sendall(frame)
                    inflight[p.qn] = _InFlight(p, frame, time.monotonic(), 1)
                    self.stats["sent"] += 1
                    last_sent = time.monotonic()
            for qn, f in list(inflight.items()):
                if drain_until is not None or time.monotonic() - f.sent_at < self.overtime_s:
                    continue
                if f.tries > self.recount:
                    self.faults.report("no_ack", f"no 9014 for QN {qn} after {f.tries} sends "
                                       f"({self.overtime_s:g} s each): redialling", self.clock.now())
                    raise LinkDropped(f"no answer to QN {qn} after {f.tries} sends")
                sock.sendall(f.frame)
                f.sent_at, f.tries = time.monotonic(), f.tries + 1
                self.stats["resent"] += 1
                last_sent = time.monotonic()
            beat = self.cfg.heartbeat_interval_s
            if beat is not None and drain_until is None and time.monotonic() - last_sent >= beat:
                self._send(sock, Packet(qn=self._qn(), st=self.cfg.st, cn=codes.CN_HEARTBEAT, pw=self.cfg.pw,
                                        mn=self.cfg.mn, flag=make_flag(str(self.cfg.edition))))
                self.stats["heartbeats"] += 1
                last_sent = time.monotonic()

    def _frame(self, p: QueuedPacket) -> bytes:
        split = p.pnum > 1
        return encode_packet(Packet(
            qn=p.qn, st=self.cfg.st, cn=p.cn, pw=self.cfg.pw, mn=self.cfg.mn,
            flag=make_flag(str(self.cfg.edition), ack=True, split=split),
            pnum=p.pnum if split else None, pno=p.pno if split else None, cp=json.loads(p.cp)))

    def _send(self, sock: socket.socket, packet: Packet) -> None:
        sock.sendall(encode_packet(packet))

    def _qn(self) -> str:
        return make_qn(local_naive(self.clock.now(), self.cfg.timezone))

    # -- acks ------------------------------------------------------------------------------------
    def _acknowledge(self, qns: list[str]) -> None:
        """The writer deletes them; until then they are known acknowledged here and never resent."""
        with self._lock:
            self._acked.update(qns)
        name = self.cfg.name

        def forget(store: StationStore) -> None:
            Hj212Queue(store).acknowledge(name, qns)
            with self._lock:
                self._acked.difference_update(qns)

        self.writer_call(forget)

    # -- what the platform sends -------------------------------------------------------------
    def _handle(self, item: str | FrameError, sock: socket.socket, inflight: dict[str, _InFlight],
                acks: list[str]) -> None:
        if isinstance(item, FrameError):
            self.stats["bad_frames"] += 1
            self.log.warning("hj212_bad_frame", reason=item.reason, detail=str(item), raw=item.raw[:80].hex())
            return
        try:
            packet = parse_segment(item)
        except PacketError as exc:
            self.stats["bad_frames"] += 1
            self.log.warning("hj212_bad_packet", detail=str(exc), segment=item[:200])
            return
        if packet.cn == codes.CN_DATA_ANSWER:
            if packet.mn != self.cfg.mn or packet.qn is None:
                self.log.warning("hj212_foreign_ack", mn=packet.mn, qn=packet.qn)
                return
            if inflight.pop(packet.qn, None) is not None:
                self.faults.clear(self.clock.now(), ("no_ack",))
            acks.append(packet.qn)
            self.stats["acked"] += 1
            return
        if packet.cn in (codes.CN_REQUEST_ANSWER, codes.CN_EXECUTION_RESULT, codes.CN_NOTIFY_ANSWER):
            return  # answers to nothing we ask
        self.stats["requests"] += 1
        self._request(packet, sock)

    def _request(self, req: Packet, sock: socket.socket) -> None:
        log = self.log.bind(cn=req.cn, qn=req.qn)
        if req.mn != self.cfg.mn:
            log.warning("hj212_request_refused", why=f"MN {req.mn} is not this station's")
            self._send(sock, reply_9011(req, codes.QNRTN_MN))
            return
        if req.pw != self.cfg.pw:
            log.warning("hj212_request_refused", why="wrong PW")
            self._send(sock, reply_9011(req, codes.QNRTN_PW))
            return
        if req.cn in codes.DATA_CNS and req.cp_value("BeginTime") is not None:
            self._history(req, sock, log)
        elif req.cn == codes.CN_GET_TIME:
            self._send(sock, reply_9011(req))
            cp = [{"PolId": req.cp_value("PolId")}] if req.cp_value("PolId") else []
            cp.append({"SystemTime": wire_time(self.clock.now(), self.cfg.timezone)})
            self._send(sock, self._answer(req, req.cn, cp))
            self._send(sock, reply_9012(req, codes.EXERTN_SUCCESS))
        elif req.cn == codes.CN_SET_TIME:
            self._set_time(req, sock, log)
        elif req.cn == codes.CN_SET_TIMEOUT:
            self._set_timeouts(req, sock, log)
        elif req.cn in codes.DATA_CNS and int(req.cn) in self.cfg.data:
            # "send this data": it is sent already, as configured
            self._send(sock, reply_9011(req))
            self._send(sock, reply_9012(req, codes.EXERTN_SUCCESS))
        else:
            log.info("hj212_request_not_supported")
            self._send(sock, reply_9011(req, codes.QNRTN_REFUSED))

    def _answer(self, req: Packet, cn: str, cp) -> Packet:
        """A data answer to a request: the request's QN, no 9014 wanted."""
        return Packet(qn=req.qn, st=self.cfg.st, cn=cn, pw=self.cfg.pw, mn=self.cfg.mn,
                      flag=make_flag(str(self.cfg.edition)), cp=cp)

    def _history(self, req: Packet, sock: socket.socket, log) -> None:
        cn = int(req.cn)
        try:
            begin = parse_wire_time(req.cp_value("BeginTime") or "", self.cfg.timezone)
            end = parse_wire_time(req.cp_value("EndTime") or "", self.cfg.timezone)
            if end < begin:
                raise ValueError("EndTime is before BeginTime")
            start = period_start(begin, cn, self.cfg.timezone)
            stop = period_end(period_start(end, cn, self.cfg.timezone), cn, self.cfg.timezone)
            periods = (stop - start).total_seconds() / {2011: 60, 2051: 60, 2061: 3600, 2031: 86400}[cn]
            if periods > MAX_HISTORY_PERIODS[cn]:
                raise ValueError(f"{periods:.0f} periods asked, at most {MAX_HISTORY_PERIODS[cn]} at once")
        except ValueError as exc:
            log.warning("hj212_history_refused", why=str(exc))
            self._send(sock, reply_9011(req))
            self._send(sock, reply_9012(req, EXERTN_CONDITION))
            return
        self._send(sock, reply_9011(req))
        points = data_points(self._reader_store, start, stop, self.cfg, cn)
        room = MAX_SEGMENT - (MAX_MN - len(self.cfg.mn)) - (MAX_PW - len(self.cfg.pw))
        sent = 0
        for point in points:
            for part in split_packet(self._answer(req, req.cn, cp_groups(point, self.cfg.timezone)), room):
                self._send(sock, part)
                sent += 1
        self.stats["history_packets"] += sent
        self._send(sock, reply_9012(req, codes.EXERTN_SUCCESS if points else codes.EXERTN_NO_DATA))
        log.info("hj212_history_answered", begin=iso_utc(start), end=iso_utc(stop), points=len(points), packets=sent)

    def _set_time(self, req: Packet, sock: socket.socket, log) -> None:
        text = req.cp_value("SystemTime") or ""
        now = self.clock.now()
        try:
            wanted = parse_wire_time(text, self.cfg.timezone)
        except ValueError as exc:
            log.warning("hj212_time_set_refused", why=str(exc))
            self._send(sock, reply_9011(req))
            self._send(sock, reply_9012(req, EXERTN_CONDITION))
            return
        offset = (wanted - now).total_seconds()
        if not self.cfg.allow_time_set:
            log.warning("hj212_time_set_refused", why="allow_time_set is off", platform_time=text,
                        offset_s=round(offset, 3))
            self.emit(Event(now, "hj212.time_set_refused", "warning",
                            f"platform {self.cfg.name} asked to set the clock to {text} ({offset:+.1f} s); "
                            "refused (uplinks.allow_time_set is off)", None, {"uplink": self.cfg.name}))
            self._send(sock, reply_9011(req, codes.QNRTN_REFUSED))
            return
        self._send(sock, reply_9011(req))
        try:
            self.set_system_time(wanted)
        except (OSError, ValueError) as exc:
            log.error("hj212_time_set_failed", error=str(exc))
            self._send(sock, reply_9012(req, codes.EXERTN_FAILED))
            return
        log.warning("hj212_time_set", platform_time=text, offset_s=round(offset, 3))
        self.emit(Event(now, "hj212.time_set", "warning", f"system clock set to {text} by platform "
                        f"{self.cfg.name} ({offset:+.1f} s)", None, {"uplink": self.cfg.name, "offset_s": offset}))
        self._send(sock, reply_9012(req, codes.EXERTN_SUCCESS))

    def _set_timeouts(self, req: Packet, sock: socket.socket, log) -> None:
        self._send(sock, reply_9011(req))
        try:
            overtime = int(req.cp_value("OverTime") or "")
            recount = int(req.cp_value("ReCount") or "")
            if not (1 <= overtime <= 3600 and 0 <= recount <= 100):
                raise ValueError
        except ValueError:
            log.warning("hj212_timeouts_refused", overtime=req.cp_value("OverTime"), recount=req.cp_value("ReCount"))
            self._send(sock, reply_9012(req, EXERTN_CONDITION))
            return
        self.overtime_s, self.recount = float(overtime), recount
        name = self.cfg.name
        self.writer_call(lambda store: Hj212Queue(store).put_link_settings(name, float(overtime), recount))
        log.info("hj212_timeouts_set", overtime_s=overtime, recount=recount)
        self._send(sock, reply_9012(req, codes.EXERTN_SUCCESS))


def _set_system_clock(t: datetime) -> None:
    """Step the system clock (CLOCK_REALTIME) to `t`; needs CAP_SYS_TIME."""
    time.clock_settime(time.CLOCK_REALTIME, t.astimezone(UTC).timestamp())


class Hj212Uplinks:
    """The station's uplinks: packers for the writer thread, one link thread each."""

    def __init__(self, configs: list[UplinkConfig], store_path, clock: Clock, writer_call: WriterCall, log,
                 emit: Callable[[Event], None] = lambda e: None,
                 set_system_time: Callable[[datetime], None] | None = None) -> None:
        self.clock = clock
        self.packers = [UplinkPacker(c, log) for c in configs]
        self.links = [Hj212Uplink(c, store_path, clock, writer_call, log, emit, set_system_time) for c in configs]

    def pack(self, store: StationStore) -> None:
        """In the writer thread: queue what is due, and wake the links that got packets."""
        now = self.clock.now()
        for packer, link in zip(self.packers, self.links):
            try:
                if packer.pack(store, now):
                    link.notify()
                packer.error = None
            except (ValueError, PacketError) as exc:  # never the writer's end: the period waits, and says why
                if str(exc) != packer.error:
                    packer.log.error("hj212_cannot_pack", error=str(exc))
                packer.error = str(exc)
            link.backlog = Hj212Queue(store).backlog(link.cfg.name)

    def start(self) -> None:
        for link in self.links:
            link.start()

    def stop(self) -> None:
        for link in self.links:
            link.stop()

    def status(self) -> dict[str, dict[str, Any]]:
        return {link.cfg.name: link.status() for link in self.links}
