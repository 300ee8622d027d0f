"""Validation and row building in a process of its own, beside storage.

Decoding a minute record and storing it each hold the GIL, so a decode thread and a storage thread
of one process barely overlap. `DecodeProcess` runs `central.ingest.decode_group` in a child
process, which has a GIL of its own: while the receiver stores one group, the child decodes the
next (figures: tests/benchmarks/README.md, "Wire and ingest").

Across a socket pair go a group's (topic, payload[, content type]) tuples and its receive time, and
back the indexes of the messages with something to store and the prepared items: rows, dead letters,
status messages, never the decoded records (`MinuteRows`, whose rows go as marshal data and
share repeated texts, so reading them back is cheap for the receiver).

The receiver never depends on the child. When it has not started yet, has died, hangs (no
answer, or half an answer, in `timeout_s`) or sends what the receiver cannot read (a child of
another ghgnet version after an upgrade: it says its version first), `decode` returns None and the
receiver decodes the group in its own thread, as it would without a child. A lost child is
replaced at the next group after `restart_delay_s`, which doubles with each loss in a row (a
child that cannot start, e.g. a broken install, is not respawned in a loop). The child ignores
SIGINT and SIGTERM (a Ctrl-C reaches the whole process group): the receiver drains its queue, then
tells the child to stop. If the receiver dies, the child reads the end of the socket and exits.
"""

from __future__ import annotations

import gc
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from multiprocessing.connection import Connection

import structlog

from ghgnet import __version__

from .ingest import DEFAULT_FUTURE_TOLERANCE_S, MessageTuple, decode_group
from .store import Prepared, row_preparer

log = structlog.get_logger(component="decoder")  # lazy: picks up configure_logging done later

READY = "ready"


class DecodeProcess:
    """A child process that runs `decode_group` for one store backend (`RemoteDecoder`).

    Thread-safe: one call at a time talks to the child (the receiver's decode thread; a test or
    benchmark may ask `wait_ready` meanwhile). `stop` waits for a call in progress up to its
    timeout, then kills the child instead.
    """

    def __init__(
        self,
        backend: str,
        max_payload_bytes: int,
        log_level: str = "info",
        log_format: str = "auto",
        restart_interval_s: float = 5.0,
        timeout_s: float = 60.0,
        max_restart_interval_s: float = 300.0,
        future_tolerance_s: float = DEFAULT_FUTURE_TOLERANCE_S,
    ) -> None:
        self.backend = backend
        self.max_payload_bytes = max_payload_bytes
        self.future_tolerance_s = future_tolerance_s
        """How far beyond the receive time a record may be stamped (central.ingest.decode_group)."""
        self.log_args = (log_level, log_format)
        self.restart_interval_s = restart_interval_s
        """The wait before replacing a lost child; doubled for each further loss in a row."""
        self.max_restart_interval_s = max_restart_interval_s
        self.timeout_s = timeout_s
        """How long the child may take to start, or to answer one group, before it is given up."""
        self.version = __version__
        """The ghgnet version the child must say it runs."""
        self.groups = 0
        """Groups decoded in the child so far."""
        self.losses = 0
        """Children lost (died, hung or unreadable) so far."""
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._ready = False
        self._started_at = float("-inf")
        self._lost_at = float("-inf")
        self._losses_in_a_row = 0
        self._stopped = False

    @property
    def pid(self) -> int | None:
        process = self._process
        return None if process is None else process.pid

    @property
    def restart_delay_s(self) -> float:
        """How long after the last loss the next child starts."""
        doublings = max(0, self._losses_in_a_row - 1)
        return min(self.restart_interval_s * 2.0 ** min(doublings, 30), self.max_restart_interval_s)

    def start(self) -> DecodeProcess:
        """Start the child; returns at once (it becomes ready after its imports, about 0.5 s)."""
        with self._lock:
            self._start()
        return self

    def _start(self) -> None:
        # A fresh interpreter, not a fork: the receiver has threads (paho's, the storage thread)
        # whose locks a fork would copy in whatever state they are; nor multiprocessing's spawn,
        # which runs the parent's main script again in the child. -P: the working directory
        # (a service's writable state directory) is not put on the module path; the parent's
        # path is, so the child runs the code the receiver runs.
        if self._stopped:
            return
        ours, theirs = socket.socketpair()
        # a child that stops reading or writing in the middle of a group must not hold the
        # receiver for good: reads and writes on our end give up after timeout_s (OSError)
        limit = struct.pack("ll", int(self.timeout_s), int(self.timeout_s % 1 * 1_000_000))
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, limit)
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, limit)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self._started_at = time.monotonic()
        try:
            process = subprocess.Popen(
                [sys.executable, "-P", "-m", "central.decoder", str(theirs.fileno()), self.backend,
                 str(self.max_payload_bytes), repr(float(self.future_tolerance_s)), *self.log_args],
                stdin=subprocess.DEVNULL, pass_fds=[theirs.fileno()], env=env,
            )
        except OSError as exc:
            ours.close()
            self._count_loss()
            log.error("decode_process_not_started", error=str(exc), retry_in_s=self.restart_delay_s)
            return
        finally:
            theirs.close()
        self._process, self._conn, self._ready = process, Connection(ours.detach()), False
        log.info("decode_process_started", pid=process.pid)

    def wait_ready(self, timeout_s: float) -> bool:
        """Whether the child is ready to decode, waiting up to `timeout_s` for it."""
        with self._lock:
            return self._wait_ready(timeout_s)

    def _wait_ready(self, timeout_s: float) -> bool:
        if self._conn is None:
            return False
        if self._ready:
            return True
        try:
            if not self._conn.poll(timeout_s):
                if time.monotonic() - self._started_at > self.timeout_s:
                    raise TimeoutError(f"not ready {self.timeout_s:g} s after its start")
                return False
            said = self._conn.recv()
            if said != (READY, self.version):
                raise RuntimeError(f"the decode process said {said!r}, not that it is ready and runs "
                                   f"ghgnet {self.version} (restart the receiver after an upgrade)")
        except Exception as exc:  # EOFError: it died before it was ready
            self._lost(exc)
            return False
        self._ready = True
        return True

    def decode(self, messages: Sequence[MessageTuple], received_at: datetime) -> tuple[list[int], Prepared] | None:
        """`decode_group(messages, ...)` done by the child; None when it cannot do it now."""
        with self._lock:
            if self._conn is None:
                if time.monotonic() - self._lost_at >= self.restart_delay_s:
                    self._start()
                return None
            if not self._wait_ready(0):
                return None
            conn = self._conn
            try:
                conn.send((received_at, messages))
                if not conn.poll(self.timeout_s):
                    raise TimeoutError(f"no answer in {self.timeout_s:g} s")
                result = conn.recv()
            except Exception as exc:  # it died, hangs, or sent what we cannot read: decode here
                self._lost(exc)
                return None
            self.groups += 1
            self._losses_in_a_row = 0
            return result

    def _count_loss(self) -> None:
        self.losses += 1
        self._losses_in_a_row += 1
        self._lost_at = time.monotonic()

    def _lost(self, exc: BaseException) -> None:
        """The child died, hangs or cannot be understood: end it; `decode` starts another after
        `restart_delay_s`."""
        self._count_loss()
        process, self._process = self._process, None
        exitcode = None
        if process is not None:
            process.kill()
            exitcode = process.wait()
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        log.error("decode_process_lost", error=f"{type(exc).__name__}: {exc}", exitcode=exitcode,
                  restart_in_s=None if self._stopped else self.restart_delay_s)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Tell the child to exit (it has no work queued: calls are synchronous), and wait for it;
        kill it if it does not exit, or if a call still holds it after `timeout_s`."""
        self._stopped = True
        if not self._lock.acquire(timeout=timeout_s):
            self.kill()  # the call in progress sees the end, reaps the child and decodes itself
            return
        try:
            process, conn = self._process, self._conn
            self._process = self._conn = None
            if conn is not None:
                try:
                    conn.send(None)
                except OSError:
                    pass
                conn.close()
            if process is not None:
                try:
                    process.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        finally:
            self._lock.release()

    def kill(self) -> None:
        """End the child now, without touching the connection (safe while a call uses it)."""
        self._stopped = True
        process = self._process
        if process is not None:
            process.kill()


def main(argv: list[str]) -> None:
    """The child's entry: `python -m central.decoder FD BACKEND MAX_PAYLOAD_BYTES FUTURE_TOLERANCE_S
    LEVEL FORMAT`."""
    fd, backend, max_payload_bytes, future_tolerance_s, log_level, log_format = argv
    _serve(Connection(int(fd)), backend, int(max_payload_bytes), float(future_tolerance_s), log_level, log_format)


def _serve(conn: Connection, backend: str, max_payload_bytes: int, future_tolerance_s: float, log_level: str,
           log_format: str) -> None:
    """The child: decode groups until told to stop or the receiver is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from ghgnet.logs import configure_logging

    configure_logging(None, log_level, log_format)  # type: ignore[arg-type]

    prepare = row_preparer(backend)
    # as the receiver (central.receiver.tune_for_ingest): decoding allocates many short-lived
    # objects; keep the collector's walks off the imported modules and run it less often
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    try:
        conn.send((READY, __version__))
        while True:
            job = conn.recv()
            if job is None:
                return
            received_at, messages = job
            # decode_group never raises on any payload (each ends stored, ignored or dead-lettered)
            conn.send(decode_group(messages, max_payload_bytes, prepare, received_at, future_tolerance_s))
    except (EOFError, OSError):
        return  # the receiver is gone


__all__ = ["DecodeProcess"]

if __name__ == "__main__":
    main(sys.argv[1:])
