"""Serving a device that talks without being asked (a record stream on RS-232) over TCP or a pty.

simulators.serve answers what a client writes; a streaming analyzer instead pushes its records.
A streaming device has `attach() -> client id`, `take(client) -> bytes` (what that client has not
been sent yet; raising serve.Disconnect drops it), `detach(client)` and `pause_s()`, the real
seconds to wait before the next `take` (so records leave close to when they are made, also in
simulated time).
"""

from __future__ import annotations

import errno
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from simulators.serve import Disconnect, PtyServer, TcpServer

SEND_TIMEOUT_S = 5.0
"""A client that takes no bytes for this long (real seconds) is dropped, as a device server would."""


class StreamDevice(Protocol):
    def attach(self) -> int: ...

    def take(self, client: int) -> bytes: ...

    def detach(self, client: int) -> None: ...

    def pause_s(self) -> float: ...


def pump(device: StreamDevice, stop: threading.Event, write: Callable[[bytes], None]) -> None:
    """Hand the stream of a newly attached client to `write` until `stop` or a Disconnect."""
    client = device.attach()
    try:
        while not stop.is_set():
            try:
                data = device.take(client)
            except Disconnect:
                return
            if data:
                write(data)
            stop.wait(device.pause_s())
    finally:
        device.detach(client)


class StreamTcpServer(TcpServer):
    """The stream behind a listening TCP socket (a serial-to-Ethernet device server); every client
    gets the stream from when it connected."""

    thread_name = "sim-stream-tcp"

    def __init__(self, device: StreamDevice, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(device, host, port)  # type: ignore[arg-type]  # written to, never asked

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(SEND_TIMEOUT_S)
        pump(self.device, self._stop, conn.sendall)


class StreamPty(PtyServer):
    """The stream on a pseudo-terminal (a serial device path): the line is always attached, and
    bytes nobody reads are lost once the terminal's buffer is full, as on a real RS-232 line."""

    def __init__(self, device: StreamDevice, link: str | Path | None = None) -> None:
        super().__init__(device, link)  # type: ignore[arg-type]  # written to, never asked
        os.set_blocking(self._master, False)
        self.dropped_bytes = 0

    def _loop(self) -> None:
        while not self._stop.is_set():  # a serial line cannot be dropped: after a Disconnect, re-attach
            pump(self.device, self._stop, self._write)  # type: ignore[arg-type]

    def _write(self, data: bytes) -> None:
        try:
            sent = os.write(self._master, data)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EIO):
                raise
            sent = 0
        self.dropped_bytes += len(data) - sent
