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
import tty
from pathlib import Path
from typing import Protocol

from simulators.serve import Disconnect, Listener

SEND_TIMEOUT_S = 5.0
"""A client that takes no bytes for this long (real seconds) is dropped, as a device server would."""


class StreamDevice(Protocol):
    def attach(self) -> int: ...

    def take(self, client: int) -> bytes: ...

    def detach(self, client: int) -> None: ...

    def pause_s(self) -> float: ...


class StreamTcpServer(Listener):
    """The stream behind a listening TCP socket (a serial-to-Ethernet device server); every client
    gets the stream from when it connected."""

    thread_name = "sim-stream-tcp"

    def __init__(self, device: StreamDevice, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.device = device

    @property
    def url(self) -> str:
        return f"socket://{self.host}:{self.port}"

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(SEND_TIMEOUT_S)
        client = self.device.attach()
        try:
            while not self._stop.is_set():
                try:
                    data = self.device.take(client)
                except Disconnect:
                    return
                if data:
                    conn.sendall(data)
                self._stop.wait(self.device.pause_s())
        finally:
            self.device.detach(client)


class StreamPty:
    """The stream on a pseudo-terminal (a serial device path): the line is always attached, and
    bytes nobody reads are lost once the terminal's buffer is full, as on a real RS-232 line."""

    def __init__(self, device: StreamDevice, link: str | Path | None = None) -> None:
        self.device = device
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        self.link = Path(link) if link else None
        if self.link:
            self.link.parent.mkdir(parents=True, exist_ok=True)
            if self.link.is_symlink() or self.link.exists():
                self.link.unlink()
            self.link.symlink_to(self.path)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.dropped_bytes = 0

    @property
    def url(self) -> str:
        return str(self.link or self.path)

    def start(self) -> StreamPty:
        self._thread = threading.Thread(target=self._loop, name=f"sim-stream-pty-{self.path}", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        client = self.device.attach()
        try:
            while not self._stop.is_set():
                try:
                    data = self.device.take(client)
                except Disconnect:
                    data = b""  # a serial line cannot be dropped
                if data:
                    self._write(data)
                self._stop.wait(self.device.pause_s())
        finally:
            self.device.detach(client)

    def _write(self, data: bytes) -> None:
        try:
            sent = os.write(self._master, data)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EIO):
                raise
            sent = 0
        self.dropped_bytes += len(data) - sent

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=2)
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.link and self.link.is_symlink():
            self.link.unlink()
