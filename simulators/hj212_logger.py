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
    latencies_s: list[float] = field(default_factory=list)


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
        if self._frames is None:
            self.prepare()
        assert self._frames is not None
        reader, writer = await asyncio.open_connection(self.host, self.port)
        frames = FrameReader()
        waiting: dict[str, asyncio.Future[float]] = {}  # QN -> future set when its 9014 arrives

        async def read_acks() -> None:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    return
                got = time.perf_counter()
                for item in frames.feed(chunk):
                    if isinstance(item, FrameError) or ";CN=9014;" not in item or not item.startswith("QN="):
                        continue
                    fut = waiting.get(item[3:item.find(";")])  # the answer's QN: the first field
                    if fut is not None and not fut.done():
                        fut.set_result(got)

        acks_task = asyncio.create_task(read_acks())
        slots = asyncio.Semaphore(self.window)
        tasks: list[asyncio.Task] = []
        # paced loggers start at a random phase of their interval, as loggers in the field are not in step
        t_next = time.perf_counter() + (self.rng.uniform(0, 60.0 / self.speed) if self.speed else 0.0)
        try:
            for qn, frame, faulty in self._frames:
                if self.speed:
                    await asyncio.sleep(max(0.0, t_next - time.perf_counter()))
                    t_next += 60.0 / self.speed
                if faulty:
                    writer.write(frame)
                    self.stats.faults += 1
                    continue
                await slots.acquire()
                if self.window == 1:  # the common case, without a task per packet
                    await self._send(qn, frame, writer, waiting, slots)
                else:
                    tasks.append(asyncio.create_task(self._send(qn, frame, writer, waiting, slots)))
            await asyncio.gather(*tasks)
        finally:
            acks_task.cancel()
            writer.close()
        return self.stats

    async def _send(self, qn: str, frame: bytes, writer: asyncio.StreamWriter,
                    waiting: dict[str, asyncio.Future[float]], slots: asyncio.Semaphore) -> None:
        loop = asyncio.get_running_loop()
        try:
            for attempt in range(self.recount + 1):
                fut: asyncio.Future[float] = loop.create_future()
                waiting[qn] = fut
                sent = time.perf_counter()
                writer.write(frame)
                self.stats.sent += 1
                if attempt:
                    self.stats.resent += 1
                timer = loop.call_later(self.overtime_s, lambda f=fut: f.done() or f.set_exception(TimeoutError()))
                try:
                    got = await fut
                except TimeoutError:
                    continue
                finally:
                    timer.cancel()
                self.stats.acked += 1
                self.stats.latencies_s.append(got - sent)
                return
            self.stats.lost += 1
        finally:
            waiting.pop(qn, None)
            slots.release()


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
        total.latencies_s += s.latencies_s
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
        "elapsed_s": round(elapsed_s, 3), "acked_per_s": round(stats.acked / elapsed_s, 1) if elapsed_s else None,
        "latency_ms": {k: None if (v := percentile(lat, q)) is None else round(v * 1000, 2)
                       for k, q in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))},
    }


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
    stats = asyncio.run(run_loggers(loggers))
    out = summary(stats, time.perf_counter() - t0)
    # the load generator's own CPU: building the frames beforehand, then connecting, sending, reading answers
    out["cpu_s"] = {"prepare": round(cpu1 - cpu0, 3), "send": round(time.process_time() - cpu1, 3)}
    print(json.dumps(out), flush=True)
    return 0


def logger_mn(prefix: str, i: int) -> str:
    """The MN of simulated logger `i`: `prefix` then the number, zero-padded to 14 characters."""
    return f"{prefix}{i:0{max(1, 14 - len(prefix))}d}"


if __name__ == "__main__":
    sys.exit(main())
