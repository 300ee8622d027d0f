"""Simulated HJ 212 data loggers: one or many, over TCP, sending minute packets (CN 2051) the way a
logger does (Flag 5, wait for the 9014, resend after OverTime up to ReCount times), at a simulated
speed, with faults on demand.

    python -m simulators.hj212_logger --host 127.0.0.1 --port 9212 --loggers 10 --packets 60 \
        --speed 600 --mn-prefix GHG --pw 123456 [--fault 5:bad_crc --fault 7:truncated]

prints one JSON line: packets sent, acknowledged, resent, lost, and the send -> 9014 latencies.

Faults (`FAULTS`) replace a packet's frame by a broken one (bad_crc, bad_length, oversize,
truncated, missing_crlf) or its fields (unknown_mn, wrong_pw). A faulty packet is expected to be
dropped by central, never answered, so the logger sends it once and moves on (its minute is lost,
as with a real logger whose ReCount runs out).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from ghgnet.hj212 import (
    FrameError,
    FrameReader,
    Packet,
    codes,
    encode_packet,
    format_data_time,
    make_flag,
    make_qn,
)

LATE_S = 0.010
"""A paced packet sent later than this after its time counts as late (LoggerStats.late)."""
FAULTS = ("bad_crc", "bad_length", "oversize", "truncated", "missing_crlf", "unknown_mn", "wrong_pw")


def minute_packet(mn: str, pw: str, minute: datetime, values: Mapping[str, tuple[float, str]],
                  sent: datetime | None = None, st: str = "22", edition: str = "2017", ack: bool = True) -> Packet:
    """A minute-data packet (CN 2051) for `minute` (logger-local naive time, the start of the minute):
    `values` factor code -> (average in the factor's wire unit, data flag)."""
    groups: list[dict[str, str]] = [{"DataTime": format_data_time(minute)}]
    for code, (avg, flag) in values.items():
        groups.append({f"{code}-Avg": f"{avg:.3f}", f"{code}-Flag": flag})
    return Packet(qn=make_qn(sent or minute + timedelta(seconds=5)), st=st, cn=codes.CN_MINUTE, pw=pw, mn=mn,
                  flag=make_flag(edition, ack=ack), cp=groups)


def gas_values(rng: random.Random, flag: str = "N") -> dict[str, tuple[float, str]]:
    """CO2 about 420 ppm and CH4 about 2000 ppb, in the units of the standard's factor table."""
    co2 = codes.to_wire_value(420.0 + rng.gauss(0, 3), "co2", codes.FACTORS["a05001"].unit)
    ch4 = codes.to_wire_value(2000.0 + rng.gauss(0, 15), "ch4", codes.FACTORS["a05002"].unit)
    return {"a05001": (co2, flag), "a05002": (ch4, flag)}


def faulty_frame(kind: str, packet: Packet) -> bytes:
    """The bytes of `packet` broken as `kind` says (one of `FAULTS`)."""
    good = encode_packet(packet)
    if kind == "bad_crc":
        crc = good[-6:-2]
        return good[:-6] + (b"0000" if crc != b"0000" else b"FFFF") + b"\r\n"
    if kind == "bad_length":
        return good[:2] + b"%04d" % (int(good[2:6]) + 7) + good[6:]
    if kind == "oversize":
        big = replace(packet, cp=(*packet.cp, {"x-Info": "A" * 1100}))
        seg = big.segment().encode()
        return b"##%04d%s0000\r\n" % (len(seg), seg)
    if kind == "truncated":
        return good[: len(good) // 2]
    if kind == "missing_crlf":
        return good[:-2]
    if kind == "unknown_mn":
        return encode_packet(replace(packet, mn="UNKNOWN" + packet.mn[-6:]))
    if kind == "wrong_pw":
        return encode_packet(replace(packet, pw="000000" if packet.pw != "000000" else "111111"))
    raise ValueError(f"fault {kind!r}: one of {', '.join(FAULTS)}")


@dataclass
class LoggerStats:
    sent: int = 0
    acked: int = 0
    resent: int = 0
    lost: int = 0
    faults: int = 0
    late: int = 0
    """Paced packets sent more than `LATE_S` after their time because the window was full (the
    answer to an earlier one had not come): their wait is not in `latencies_s`, which start at the
    send, so when many are late the percentiles understate what a paced load would see."""
    latencies_s: list[float] = field(default_factory=list)
    first_answers: int = 0
    """How many of `latencies_s` are a logger's first answer (its first packet meets central's
    cold start: the store's first commit, a thousand connections opening at once); `summary`
    gives the percentiles without them too."""


class SimulatedLogger:
    """One logger: a TCP connection, minute packets from `start` (logger-local time) one per
    `60 / speed` real seconds (speed None: as fast as the 9014s come back)."""

    def __init__(self, host: str, port: int, mn: str, pw: str, start: datetime, packets: int,
                 speed: float | None = None, seed: int = 0, faults: Mapping[int, str] | None = None,
                 overtime_s: float = codes.DEFAULT_OVERTIME_S, recount: int = codes.DEFAULT_RECOUNT,
                 window: int = 1) -> None:
        self.host, self.port, self.mn, self.pw = host, port, mn, pw
        self.start, self.packets, self.speed = start, packets, speed
        self.rng = random.Random(seed)
        self.faults = dict(faults or {})
        self.overtime_s, self.recount, self.window = overtime_s, recount, window
        self.stats = LoggerStats()
        self._frames: list[tuple[str, bytes, bool]] | None = None
        self._done: asyncio.Future[None] | None = None
        self._next = 0  # the next frame to send
        self._in_flight: dict[str, tuple[float, int, asyncio.TimerHandle, bytes]] = {}  # QN -> sent, attempt, ...
        self._pump_timer: asyncio.TimerHandle | None = None

    def prepare(self) -> None:
        """Build every packet's frame now (QN, bytes, faulty?), so that sending costs the load
        generator no more than a write: a benchmark then measures the receiver, not the encoder."""
        frames = []
        for i in range(self.packets):
            minute = self.start + timedelta(minutes=i)
            packet = minute_packet(self.mn, self.pw, minute, gas_values(self.rng), sent=minute + timedelta(
                seconds=5, milliseconds=i % 1000))
            kind = self.faults.get(i)
            frames.append((packet.qn or "", faulty_frame(kind, packet) if kind else encode_packet(packet),
                           kind is not None))
        self._frames = frames

    async def run(self) -> LoggerStats:
        """Connect, send every packet (paced or on the answers), return when each is answered or lost.

        Callbacks on the loop rather than a task per logger: a pacing timer, the OverTime timer of
        each packet in flight, and the connection's `data_received` (which stamps the answer's time
        the moment its bytes are read). A third of the load generator's CPU per packet of the
        streams-and-tasks form, which shared the benchmark machine's cores with the listener."""
        if self._frames is None:
            self.prepare()
        assert self._frames is not None
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._loop, self._done = loop, done
        self._next = 0
        self._in_flight = {}
        self._pump_timer = None
        # (the state is there before the connection: central may close it before we resume)
        transport, _ = await loop.create_connection(lambda: _LoggerConnection(self), self.host, self.port)
        self._transport = transport
        # paced loggers start at a random phase of their interval, as loggers in the field are not in step
        self._t_next = time.perf_counter() + (self.rng.uniform(0, 60.0 / self.speed) if self.speed else 0.0)
        if not done.done():
            self._pump()
        try:
            await done
        finally:
            for _sent, _attempt, timer, _frame in self._in_flight.values():
                timer.cancel()
            if self._pump_timer is not None:
                self._pump_timer.cancel()
            transport.close()
        return self.stats

    def _pump(self) -> None:
        """Send what the window and the pace allow; finish when nothing is left or in flight."""
        self._pump_timer = None
        frames, stats, write = self._frames, self.stats, self._transport.write
        assert frames is not None
        while self._next < len(frames) and len(self._in_flight) < self.window:
            if self.speed:
                now = time.perf_counter()
                if now < self._t_next:  # asyncio's clock is time.monotonic: convert the wait
                    self._pump_timer = self._loop.call_later(self._t_next - now, self._pump)
                    return
                if now - self._t_next > LATE_S:
                    stats.late += 1
                self._t_next += 60.0 / self.speed
            qn, frame, faulty = frames[self._next]
            self._next += 1
            if faulty:
                write(frame)
                stats.faults += 1
                continue
            self._send(qn, frame, 0)
        if self._next >= len(frames) and not self._in_flight and not self._done.done():
            self._done.set_result(None)

    def _send(self, qn: str, frame: bytes, attempt: int) -> None:
        timer = self._loop.call_later(self.overtime_s, self._overtime, qn)
        self._in_flight[qn] = (time.perf_counter(), attempt, timer, frame)
        self._transport.write(frame)
        self.stats.sent += 1
        if attempt:
            self.stats.resent += 1

    def _overtime(self, qn: str) -> None:
        entry = self._in_flight.pop(qn, None)
        if entry is None:
            return
        _sent, attempt, _timer, frame = entry
        if attempt < self.recount and not self._transport.is_closing():
            self._send(qn, frame, attempt + 1)
            return
        self.stats.lost += 1
        if self._pump_timer is None:
            self._pump()

    def _answered(self, qn: str, got: float) -> None:
        entry = self._in_flight.pop(qn, None)
        if entry is None:  # a late answer to a packet already given up, or not ours
            return
        sent, _attempt, timer, _frame = entry
        timer.cancel()
        self.stats.acked += 1
        if not self.stats.latencies_s:
            self.stats.first_answers = 1
        self.stats.latencies_s.append(got - sent)
        if self._pump_timer is None:
            self._pump()

    def _connection_lost(self) -> None:
        """Central closed the connection: what is in flight or unsent is lost (a real logger would
        reconnect; the simulator reports it instead)."""
        if self._done is None or self._done.done():
            return
        assert self._frames is not None
        for _sent, _attempt, timer, _frame in self._in_flight.values():
            timer.cancel()
        self.stats.lost += len(self._in_flight) + sum(1 for _q, _f, faulty in self._frames[self._next:] if not faulty)
        self._in_flight.clear()
        self._next = len(self._frames)
        self._done.set_result(None)


class _LoggerConnection(asyncio.Protocol):
    """A simulated logger's socket: answers (9014) go to the logger with the time they were read."""

    def __init__(self, logger: SimulatedLogger) -> None:
        self.logger = logger
        self.frames = FrameReader()

    def data_received(self, data: bytes) -> None:
        got = time.perf_counter()
        for item in self.frames.feed(data):
            if isinstance(item, FrameError) or ";CN=9014;" not in item or not item.startswith("QN="):
                continue
            self.logger._answered(item[3:item.find(";")], got)  # the answer's QN: the first field

    def connection_lost(self, exc: Exception | None) -> None:
        self.logger._connection_lost()


async def run_loggers(loggers: list[SimulatedLogger]) -> LoggerStats:
    """Run every logger at once; their stats summed."""
    results = await asyncio.gather(*(lg.run() for lg in loggers))
    total = LoggerStats()
    for s in results:
        total.sent += s.sent
        total.acked += s.acked
        total.resent += s.resent
        total.lost += s.lost
        total.faults += s.faults
        total.first_answers += s.first_answers
        total.late += s.late
    # each logger's first answer first: summary() leaves them out of the "after the first" figures
    total.latencies_s = [s.latencies_s[0] for s in results if s.first_answers] + [
        v for s in results for v in s.latencies_s[s.first_answers:]]
    return total


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(q / 100.0 * len(s)))]


def summary(stats: LoggerStats, elapsed_s: float) -> dict[str, object]:
    lat = stats.latencies_s
    return {
        "sent": stats.sent, "acked": stats.acked, "resent": stats.resent, "lost": stats.lost, "faults": stats.faults,
        "late": stats.late,
        "elapsed_s": round(elapsed_s, 3), "acked_per_s": round(stats.acked / elapsed_s, 1) if elapsed_s else None,
        "latency_ms": _percentiles(lat),
        "latency_ms_after_first": _percentiles(lat[stats.first_answers:]),
    }


def _percentiles(lat: list[float]) -> dict[str, float | None]:
    return {k: None if (v := percentile(lat, q)) is None else round(v * 1000, 2)
            for k, q in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m simulators.hj212_logger", description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--loggers", type=int, default=1)
    ap.add_argument("--packets", type=int, default=60, help="minute packets per logger")
    ap.add_argument("--speed", type=float, default=None, help="simulated minutes per real minute (default: no pause)")
    ap.add_argument("--start", default="2026-03-01T08:00:00", help="first minute, logger-local time")
    ap.add_argument("--mn-prefix", default="GHG", help="MN = prefix + logger number, zero-padded to 14 characters")
    ap.add_argument("--pw", default="123456")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--overtime", type=float, default=codes.DEFAULT_OVERTIME_S)
    ap.add_argument("--recount", type=int, default=codes.DEFAULT_RECOUNT)
    ap.add_argument("--window", type=int, default=1, help="packets in flight per logger")
    ap.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto",
                    help="event loop: uvloop's (auto: when installed) or asyncio's")
    ap.add_argument("--fault", action="append", default=[], help="INDEX:KIND, e.g. 5:bad_crc (every logger)")
    a = ap.parse_args(argv)
    faults = {}
    for spec in a.fault:
        idx, _, kind = spec.partition(":")
        if kind not in FAULTS or not idx.isdigit():
            ap.error(f"--fault {spec!r}: INDEX:KIND with KIND one of {', '.join(FAULTS)}")
        faults[int(idx)] = kind
    start = datetime.fromisoformat(a.start)
    loggers = [SimulatedLogger(a.host, a.port, logger_mn(a.mn_prefix, i), a.pw, start, a.packets, a.speed,
                               seed=a.seed + i, faults=faults, overtime_s=a.overtime, recount=a.recount,
                               window=a.window) for i in range(a.loggers)]
    cpu0 = time.process_time()
    for lg in loggers:
        lg.prepare()
    cpu1, t0 = time.process_time(), time.perf_counter()
    with asyncio.Runner(loop_factory=loop_factory(a.loop)) as runner:
        stats = runner.run(run_loggers(loggers))
    out = summary(stats, time.perf_counter() - t0)
    # the load generator's own CPU: building the frames beforehand, then connecting, sending, reading answers
    out["cpu_s"] = {"prepare": round(cpu1 - cpu0, 3), "send": round(time.process_time() - cpu1, 3)}
    print(json.dumps(out), flush=True)
    return 0


def loop_factory(kind: str):
    """uvloop's new_event_loop for `uvloop` (and for `auto` when installed), else asyncio's."""
    if kind != "asyncio":
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise SystemExit("--loop uvloop: the uvloop package is not installed") from None
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


def logger_mn(prefix: str, i: int) -> str:
    """The MN of simulated logger `i`: `prefix` then the number, zero-padded to 14 characters."""
    return f"{prefix}{i:0{max(1, 14 - len(prefix))}d}"


if __name__ == "__main__":
    sys.exit(main())
