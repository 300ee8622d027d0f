"""Serving a simulated instrument over a real TCP socket or a real pty (a serial device path).

A simulated device is any object with `receive(data: bytes) -> bytes`: bytes the client wrote in,
bytes to answer out (possibly empty). Raising `Disconnect` drops the client's connection, as a
terminal server or a power-cycled instrument would. The device keeps its own state and lock; the
servers only move bytes.
"""

from __future__ import annotations

import os
import select
import socket
import threading
import tty
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self


class Disconnect(Exception):
    """Raised by a device to drop the current connection."""


class LineDevice(Protocol):
    def receive(self, data: bytes) -> bytes: ...


class CommandDevice(ABC):
    """A simulated instrument that answers commands: `receive` splits what a client writes into
    commands at `TERMINATOR` (the characters in `STRIP` and empty commands are dropped) and
    answers each, under the device's common faults (its `faults`, a simulators.faults.FaultSet):
    disconnect drops the connection, `SILENT_FAULT` loses the command, garbage puts a line of
    noise (`garbage()`) before the reply. The subclass answers one command (`_answer`) and sets
    `_lock`, `faults`, `_inbuf` and `commands`."""

    TERMINATOR: ClassVar[bytes] = b"\n"
    STRIP: ClassVar[str] = "\r\n "
    SILENT_FAULT: ClassVar[str] = "silent"

    _lock: Any
    faults: Any
    _inbuf: bytes
    commands: int

    def receive(self, data: bytes) -> bytes:
        """Bytes a client wrote -> bytes the instrument answers (complete commands only)."""
        with self._lock:
            self._inbuf += data
            out = b""
            while self.TERMINATOR in self._inbuf:
                raw, self._inbuf = self._inbuf.split(self.TERMINATOR, 1)
                line = raw.decode("ascii", errors="replace").strip(self.STRIP)
                if line:
                    out += self._execute(line)
            return out

    def _execute(self, line: str) -> bytes:
        self.commands += 1
        if self.faults.active("disconnect", consume=True):
            self._inbuf = b""
            raise Disconnect()
        if self.faults.active(self.SILENT_FAULT, consume=True):
            return b""
        reply = self._answer(line)
        if self.faults.active("garbage", consume=True):
            reply = self.garbage() + reply
        return reply

    @abstractmethod
    def _answer(self, line: str) -> bytes:
        """The reply to one command (terminator stripped)."""

    @abstractmethod
    def garbage(self) -> bytes:
        """A line of noise, as the instrument's reply lines end."""


class Listener(ABC):
    """A listening TCP socket whose clients each get their own thread running `_serve(conn)`.

    Subclasses say what a connection does; the listener accepts, tracks and drops connections.
    """

    thread_name = "listener"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._listener = socket.create_server((host, port), reuse_port=False)
        self._listener.settimeout(0.2)
        self.host, self.port = self._listener.getsockname()[:2]
        self._stop = threading.Event()
        self._clients: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.connections = 0

    def start(self) -> Self:
        t = threading.Thread(target=self._accept_loop, name=f"{self.thread_name}-{self.port}", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.settimeout(0.2)
            with self._lock:
                self._clients.add(conn)
                self.connections += 1
            t = threading.Thread(target=self._client, args=(conn,), name=f"{self.thread_name}-client", daemon=True)
            t.start()
            self._threads = [x for x in self._threads if x.is_alive()] + [t]

    def _client(self, conn: socket.socket) -> None:
        try:
            self._serve(conn)
        except OSError:
            return
        finally:
            with self._lock:
                self._clients.discard(conn)
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    @abstractmethod
    def _serve(self, conn: socket.socket) -> None:
        """What one client's connection does, until it returns (the listener then closes it)."""

    def _chunks(self, conn: socket.socket, size: int = 4096):
        """What the client sends, chunk by chunk, until it leaves or the listener stops."""
        while not self._stop.is_set():
            try:
                data = conn.recv(size)
            except TimeoutError:
                continue
            if not data:
                return
            yield data

    def drop_clients(self) -> None:
        """Close every client connection now (a network cut seen from the server's side)."""
        with self._lock:
            clients = list(self._clients)
        for c in clients:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self) -> None:
        self._stop.set()
        self._listener.close()
        self.drop_clients()
        for t in self._threads:
            t.join(timeout=2)


class TcpServer(Listener):
    """One device behind a listening TCP socket; each client gets its own thread."""

    thread_name = "sim-tcp"

    def __init__(self, device: LineDevice, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.device = device

    @property
    def url(self) -> str:
        return f"socket://{self.host}:{self.port}"

    def _serve(self, conn: socket.socket) -> None:
        for data in self._chunks(conn):
            if not self._answer(conn, data):
                return

    def _answer(self, conn: socket.socket, data: bytes) -> bool:
        """Hand the client's bytes to the device and send its reply; False when the device drops
        the connection."""
        try:
            reply = self.device.receive(data)
        except Disconnect:
            return False
        if reply:
            conn.sendall(reply)
        return True


class PtyServer:
    """One device behind a pseudo-terminal: clients open `path` as a serial port.

    The slave side is kept open by the server, so clients may open and close it at will.
    `link`, when given, is a symlink to the slave path with a stable name for config files.
    """

    def __init__(self, device: LineDevice, link: str | Path | None = None) -> None:
        self.device = device
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        self.link = Path(link) if link else None
        if self.link:
            self.link.parent.mkdir(parents=True, exist_ok=True)
            if self.link.is_symlink() or self.link.exists():
                self.link.unlink()
            self.link.symlink_to(self.path)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return str(self.link or self.path)

    def start(self) -> "PtyServer":
        self._thread = threading.Thread(target=self._loop, name=f"sim-pty-{self.path}", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self._master], [], [], 0.2)
            except (OSError, ValueError):
                return
            if not ready:
                continue
            try:
                data = os.read(self._master, 4096)
            except OSError:
                continue  # no client has the slave open right now
            if not data:
                continue
            try:
                reply = self.device.receive(data)
            except Disconnect:
                continue  # a serial line cannot be dropped; the reply is simply lost
            if reply:
                self._send(reply)

    def _send(self, data: bytes) -> None:
        """Write to the line; no client having it open loses the bytes, as on a serial line."""
        try:
            os.write(self._master, data)
        except OSError:
            pass

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
