"""A simulated environmental monitoring platform: the other end of a station's HJ 212 uplink.

A TCP server (real sockets) that takes a station's connection, reads its frames with the codec,
answers every data packet that asks for it (Flag A) with 9014 and its QN, and keeps what arrived.
Faults and requests are driven from outside (tests, or the command line):
- `lose_acks(n)` / `lose_ack_for(qn)` / `ack_loss` (a probability, seeded): the 9014 is not sent;
- `acking = False`: no 9014 at all (a platform that hangs);
- `disconnect()`: closes the station's connection (it redials); `stop()` / `start()` on the same port;
- `request_history(cn, begin, end)`, `request_time()`, `set_time(t)`, `set_timeouts(overtime, recount)`:
  the platform's requests, with the QN returned; what the station answers (9011, data, 9012) is
  collected under that QN in `answers`;
- `send_raw(bytes)`: anything, e.g. a frame with a bad CRC.

Split packets (Flag D, PNUM/PNO) are reassembled per (MN, CN, DataTime) in `points()`: a part may carry
its own QN (the station acknowledges each part separately).

`python -m simulators.hj212_platform --port 9212` runs one and prints each packet as a JSON line.
"""

from __future__ import annotations

import argparse
import json
import random
import selectors
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from ghgnet.hj212 import (
    FrameError,
    FrameReader,
    Packet,
    PacketError,
    codes,
    encode_packet,
    make_flag,
    make_qn,
    merge_parts,
    parse_segment,
    reply_9014,
)


class PlatformSimulator:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, mn: str = "", pw: str = "123456",
                 st: str = "22", seed: int = 0, on_packet: Callable[[Packet], None] | None = None) -> None:
        """`mn`/`pw`: what the platform's own requests carry (the station's MN and PW)."""
        self.host = host
        self.port = port
        self.mn, self.pw, self.st = mn, pw, st
        self.on_packet = on_packet or (lambda p: None)
        self.random = random.Random(seed)
        self.ack_loss = 0.0
        self.acking = True
        self.received: list[Packet] = []  # every data packet, duplicates included, in arrival order
        self.acked: list[str] = []  # QNs answered with 9014
        self.lost_acks: list[str] = []  # QNs whose 9014 was not sent
        self.answers: dict[str, list[Packet]] = {}  # QN of a platform request -> what the station answered
        self.other: list[Packet] = []  # heartbeats and anything else
        self.log: list[tuple[str, str]] = []  # ("data", qn) on arrival, ("ack", qn) when answered, in order
        self.bad_frames: list[FrameError | PacketError] = []
        self.connections = 0
        self._lose_next = 0
        self._lose_qns: set[str] = set()
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._clients: dict[socket.socket, FrameReader] = {}
        self._listener: socket.socket | None = None
        self._selector: selectors.BaseSelector | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._qn_last = ""

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> "PlatformSimulator":
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(8)
        self.port = listener.getsockname()[1]  # the same port again after stop() / start()
        listener.setblocking(False)
        self._listener = listener
        self._selector = selectors.DefaultSelector()
        self._selector.register(listener, selectors.EVENT_READ)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"hj212-platform-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the listener and every connection (the station sees the link drop)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> "PlatformSimulator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def disconnect(self) -> None:
        """Close the station's connection(s); the server keeps listening."""
        with self._lock:
            for sock in list(self._clients):
                self._close(sock)

    # -- faults -----------------------------------------------------------------------------------
    def lose_acks(self, n: int) -> None:
        """Do not answer the next `n` data packets that ask for an answer."""
        with self._lock:
            self._lose_next += n

    def lose_ack_for(self, qn: str) -> None:
        with self._lock:
            self._lose_qns.add(qn)

    # -- the platform's requests --------------------------------------------------------------
    def request(self, cn: str, cp: list[dict[str, str]] | tuple = (), flag: int | None = None) -> str:
        """Send a request to the connected station; returns its QN (answers land in `answers[qn]`)."""
        qn = self._new_qn()
        packet = Packet(qn=qn, st=self.st, cn=cn, pw=self.pw, mn=self.mn,
                        flag=make_flag(ack=True) if flag is None else flag, cp=cp)
        with self._lock:
            self.answers[qn] = []
        self.send_raw(encode_packet(packet))
        return qn

    def request_history(self, cn: str, begin: str, end: str) -> str:
        """History of `cn` between BeginTime and EndTime (YYYYMMDDhhmmss, the station's wire zone)."""
        return self.request(cn, [{"BeginTime": begin}, {"EndTime": end}])

    def request_time(self, pol_id: str | None = None) -> str:
        return self.request(codes.CN_GET_TIME, [{"PolId": pol_id}] if pol_id else [])

    def set_time(self, system_time: str) -> str:
        return self.request(codes.CN_SET_TIME, [{"SystemTime": system_time}])

    def set_timeouts(self, overtime: int, recount: int) -> str:
        return self.request(codes.CN_SET_TIMEOUT, [{"OverTime": str(overtime), "ReCount": str(recount)}])

    def send_raw(self, data: bytes) -> None:
        with self._lock:
            clients = list(self._clients)
        if not clients:
            raise ConnectionError("no station is connected")
        for sock in clients:
            try:
                sock.sendall(data)
            except OSError:
                pass

    # -- what arrived ---------------------------------------------------------------------------------
    def wait(self, predicate: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> object:
        """Wait until `predicate()` (called under the lock) is truthy; AssertionError after `timeout`."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                got = predicate()
                if got:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"platform: timed out after {timeout} s waiting for {what}")
                self._changed.wait(min(left, 0.1))

    def sent_after_ack(self) -> list[str]:
        """QNs that arrived again after the platform had answered them with 9014 (must be none)."""
        with self._lock:
            answered: set[str] = set()
            again = []
            for what, qn in self.log:
                if what == "ack":
                    answered.add(qn)
                elif qn in answered:
                    again.append(qn)
            return again

    def qn_counts(self) -> Counter:
        """How many times each data QN arrived."""
        with self._lock:
            return Counter(p.qn for p in self.received)

    def points(self, cn: str | None = None) -> dict[tuple[str, str], Packet]:
        """The data as the platform keeps it: one packet per (CN, DataTime), split parts merged,
        repeats of a packet counted once."""
        with self._lock:
            packets = [p for p in self.received if cn is None or p.cn == cn]
        whole: dict[tuple[str, str], Packet] = {}
        parts: dict[tuple[str, str], dict[int, Packet]] = {}
        for p in packets:
            key = (p.cn, p.cp_value("DataTime") or "")
            if p.pnum is None:
                whole[key] = p
            else:
                parts.setdefault(key, {})[p.pno] = p
        for key, got in parts.items():
            if len(got) == next(iter(got.values())).pnum:
                first = got[min(got)]
                whole[key] = merge_parts(replace(p, qn=first.qn) for p in got.values())
        return whole

    # -- the server thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        sel = self._selector
        try:
            while not self._stop.is_set():
                for key, _ in sel.select(0.05):
                    if key.fileobj is self._listener:
                        self._accept()
                    else:
                        self._read(key.fileobj)
        finally:
            with self._lock:
                for sock in list(self._clients):
                    self._close(sock)
            sel.unregister(self._listener)
            self._listener.close()
            sel.close()

    def _accept(self) -> None:
        try:
            sock, _ = self._listener.accept()
        except OSError:
            return
        sock.setblocking(True)
        sock.settimeout(5)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._changed:
            self._clients[sock] = FrameReader()
            self.connections += 1
            self._selector.register(sock, selectors.EVENT_READ)
            self._changed.notify_all()

    def _close(self, sock: socket.socket) -> None:
        with self._changed:
            if sock in self._clients:
                del self._clients[sock]
                self._selector.unregister(sock)
            try:
                sock.close()
            except OSError:
                pass
            self._changed.notify_all()

    def _read(self, sock) -> None:
        try:
            data = sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._close(sock)
            return
        reader = self._clients.get(sock)
        if reader is None:
            return
        for item in reader.feed(data):
            if isinstance(item, FrameError):
                self._bad(item)
                continue
            try:
                packet = parse_segment(item)
            except PacketError as exc:
                self._bad(exc)
                continue
            self._packet(sock, packet)

    def _bad(self, error: FrameError | PacketError) -> None:
        with self._changed:
            self.bad_frames.append(error)
            self._changed.notify_all()

    def _packet(self, sock: socket.socket, packet: Packet) -> None:
        self.on_packet(packet)
        with self._changed:
            if packet.qn in self.answers and packet.cn != codes.CN_HEARTBEAT:
                self.answers[packet.qn].append(packet)
            elif packet.cn in codes.DATA_CNS:
                self.received.append(packet)
                self.log.append(("data", packet.qn or ""))
            else:
                self.other.append(packet)
            answer = packet.ack_wanted and packet.cn in codes.DATA_CNS and packet.qn not in self.answers
            if answer and not self.acking:
                answer = False
            elif answer and (self._lose_next > 0 or packet.qn in self._lose_qns or
                             (self.ack_loss and self.random.random() < self.ack_loss)):
                self._lose_next = max(0, self._lose_next - 1)
                self._lose_qns.discard(packet.qn)
                self.lost_acks.append(packet.qn)
                answer = False
            if answer:
                self.acked.append(packet.qn)
                self.log.append(("ack", packet.qn))
            self._changed.notify_all()
        if answer:
            try:
                sock.sendall(encode_packet(reply_9014(packet)))
            except OSError:
                pass

    def _new_qn(self) -> str:
        with self._lock:
            qn = make_qn(datetime.now())
            while qn <= self._qn_last:
                time.sleep(0.001)
                qn = make_qn(datetime.now())
            self._qn_last = qn
            return qn


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulators.hj212_platform",
                                     description="a simulated HJ 212 platform: prints each packet as JSON")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9212)
    parser.add_argument("--ack-loss", type=float, default=0.0, help="probability of not answering a data packet")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    def show(p: Packet) -> None:
        print(json.dumps({"qn": p.qn, "cn": p.cn, "mn": p.mn, "flag": p.flag, "pnum": p.pnum, "pno": p.pno,
                          "cp": list(p.cp)}), flush=True)

    platform = PlatformSimulator(args.host, args.port, seed=args.seed, on_packet=show)
    platform.ack_loss = args.ack_loss
    platform.start()
    print(json.dumps({"hj212_platform": f"{args.host}:{platform.port}"}), flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        platform.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
