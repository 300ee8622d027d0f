"""Validation and row building in a process of its own, beside storage.

Central's ingest runs in one Python process, and its threads take turns for one GIL: decoding a
minute record (validating it and building its row) holds the GIL for about 6 us and storing it
for about 5-10, so a decode thread and a storage thread barely overlapped (tests/benchmarks/
replay.py: the receiver's thread CPU added up to its wall time). `DecodeProcess` runs
`central.ingest.decode_group` in a child process instead, which has a GIL of its own: while the
receiver stores one group, the child decodes the next.

Across the pipe go a group's (topic, payload) pairs and its receive time, and back the indexes of
the messages with something to store and the prepared items: rows, dead letters, status
messages, never the decoded records (`MinuteRows`). Unpickling a minute row costs the receiver
about 1.3 us.

Nothing depends on the child being there. When it has not started yet, has died or hangs,
`decode` returns None and the receiver decodes the group in its own thread, as it would without
a child; a lost child is replaced after `restart_interval_s`. The child ignores SIGINT and
SIGTERM (a Ctrl-C or systemd's stop signal reaches the whole process group): the receiver drains
its queue, then tells the child to stop. If the receiver dies, the child reads the end of the
pipe and exits.
"""

from __future__ import annotations

import gc
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any

import structlog

from .store import Prepared

log = structlog.get_logger(component="decoder")  # lazy: picks up configure_logging done later

READY = "ready"


class DecodeProcess:
    """A child process that runs `decode_group` for one store backend (`RemoteDecoder`).

    Used by one thread at a time (the receiver's decode thread); `stop` after that thread ends.
    """

    def __init__(
        self,
        backend: str,
        max_payload_bytes: int,
        log_level: str = "info",
        log_format: str = "auto",
        restart_interval_s: float = 5.0,
        timeout_s: float = 60.0,
    ) -> None:
        self.backend = backend
        self.max_payload_bytes = max_payload_bytes
        self.log_args = (log_level, log_format)
        self.restart_interval_s = restart_interval_s
        self.timeout_s = timeout_s
        """How long one group may take in the child before it is given up as hung."""
        self.groups = 0
        """Groups decoded in the child so far."""
        self.losses = 0
        """Children lost (died or hung) so far."""
        self._process: Any = None
        self._conn: Connection | None = None
        self._ready = False
        self._started_at = float("-inf")
        self._stopped = False

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self) -> DecodeProcess:
        """Start the child; returns at once (it becomes ready after its imports, about 0.5 s).

        A fresh interpreter (`python -m central.decoder`), not a fork: the receiver has threads
        (paho's, the storage thread) whose locks a fork would copy in whatever state they are;
        nor multiprocessing's spawn, which runs the parent's main script again in the child."""
        ours, theirs = socket.socketpair()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self._started_at = time.monotonic()
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "central.decoder", str(theirs.fileno()), self.backend,
                 str(self.max_payload_bytes), *self.log_args],
                stdin=subprocess.DEVNULL, pass_fds=[theirs.fileno()], env=env,
            )
        except OSError as exc:
            ours.close()
            log.error("decode_process_not_started", error=str(exc), retry_in_s=self.restart_interval_s)
            return self
        finally:
            theirs.close()
        self._process, self._conn, self._ready = process, Connection(ours.detach()), False
        log.info("decode_process_started", pid=process.pid)
        return self

    def wait_ready(self, timeout_s: float) -> bool:
        """Whether the child is ready to decode, waiting up to `timeout_s` for it."""
        if self._conn is None:
            return False
        if not self._ready:
            try:
                if not self._conn.poll(timeout_s):
                    return False
                if self._conn.recv() != READY:
                    raise EOFError("the decode process said something else than ready")
            except (EOFError, OSError) as exc:
                self._lost(exc)
                return False
            self._ready = True
        return True

    def decode(self, messages: Sequence[tuple[str, bytes]], received_at: datetime) -> tuple[list[int], Prepared] | None:
        """`decode_group(messages, ...)` done by the child; None when it cannot do it now."""
        if self._conn is None:
            if not self._stopped and time.monotonic() - self._started_at >= self.restart_interval_s:
                self.start()
            return None
        if not self.wait_ready(0):
            return None
        conn = self._conn
        try:
            conn.send((received_at, messages))
            if not conn.poll(self.timeout_s):
                raise TimeoutError(f"no answer in {self.timeout_s:g} s")
            result = conn.recv()
        except (EOFError, OSError, TimeoutError) as exc:  # OSError: BrokenPipeError and the like
            self._lost(exc)
            return None
        self.groups += 1
        return result

    def _lost(self, exc: BaseException) -> None:
        """The child died or hangs: end it; `decode` starts another after `restart_interval_s`."""
        self.losses += 1
        process, self._process = self._process, None
        exitcode = None
        if process is not None:
            process.kill()
            exitcode = process.wait()
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        log.error("decode_process_lost", error=f"{type(exc).__name__}: {exc}", exitcode=exitcode,
                  restart_in_s=self.restart_interval_s)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Tell the child to exit (it has no work queued: calls are synchronous); kill it if it
        does not."""
        self._stopped = True
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


def main(argv: list[str]) -> None:
    """The child's entry: `python -m central.decoder FD BACKEND MAX_PAYLOAD_BYTES LEVEL FORMAT`."""
    fd, backend, max_payload_bytes, log_level, log_format = argv
    _serve(Connection(int(fd)), backend, int(max_payload_bytes), log_level, log_format)


def _serve(conn: Connection, backend: str, max_payload_bytes: int, log_level: str, log_format: str) -> None:
    """The child: decode groups until told to stop or the receiver is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from station_agent.logs import configure_logging

    configure_logging(None, log_level, log_format)  # type: ignore[arg-type]
    from .ingest import decode_group
    from .store import row_preparer

    prepare = row_preparer(backend)
    # as the receiver (central.receiver.tune_for_ingest): decoding allocates many short-lived
    # objects; keep the collector's walks off the imported modules and run it less often
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    conn.send(READY)
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return  # the receiver is gone
        if job is None:
            return
        received_at, messages = job
        conn.send(decode_group(messages, max_payload_bytes, prepare, received_at))


__all__ = ["DecodeProcess"]

if __name__ == "__main__":
    main(sys.argv[1:])
