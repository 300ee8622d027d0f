"""Byte transports a driver is handed; the driver never chooses its own.

One driver talks to a serial port (`/dev/ttyUSB0`, a pty path, through pyserial), a TCP socket
(`socket://host:port`, also spelled `tcp://host:port`, a plain socket) or pyserial's in-process
loop (`loop://`). Both read in chunks: pyserial's own `read_until` reads one byte per call, which
cost more CPU than everything else the agent does. Errors are typed: a timeout (the device said nothing, or not all
of it) is not a broken link (the connection is gone and must be reopened).
"""

from __future__ import annotations

import socket
import time
from abc import ABC, abstractmethod
from typing import Protocol
from urllib.parse import urlsplit

import serial


class TransportError(Exception):
    """The link is unusable (cannot open, disconnected, I/O error): reopen it."""


class TransportTimeout(TransportError):
    """No complete reply within the timeout; `partial` holds what did arrive."""

    def __init__(self, message: str, partial: bytes = b"") -> None:
        super().__init__(message)
        self.partial = partial


class Transport(Protocol):
    url: str

    def open(self) -> None: ...

    def close(self) -> None: ...

    @property
    def is_open(self) -> bool: ...

    def write(self, data: bytes) -> None: ...

    def read_until(self, terminator: bytes, max_bytes: int = 65536) -> bytes:
        """Bytes up to and including `terminator`; TransportTimeout when it does not come."""

    def discard_input(self) -> None:
        """Drop whatever is waiting to be read (stale replies after a timeout)."""

    def read_available(self, max_bytes: int = 1 << 20) -> bytes:
        """Whatever has arrived, without waiting (b"" when nothing has): for streaming devices."""


def normalize_url(url: str) -> str:
    if url.startswith("tcp://"):
        return "socket://" + url[len("tcp://") :]
    return url


class _Buffered(ABC):
    """Line assembly over chunked reads, shared by the socket and serial transports."""

    url: str
    timeout_s: float

    def __init__(self) -> None:
        self._buf = b""

    @abstractmethod
    def _chunk(self, wait_s: float) -> bytes:
        """Up to a few KiB, waiting at most `wait_s` for the first byte; b"" on timeout."""

    def read_until(self, terminator: bytes, max_bytes: int = 65536) -> bytes:
        deadline = time.monotonic() + self.timeout_s
        while True:
            cut = self._buf.find(terminator)
            if cut >= 0:
                line, self._buf = self._buf[: cut + len(terminator)], self._buf[cut + len(terminator) :]
                return line
            remaining = deadline - time.monotonic()
            if remaining <= 0 or len(self._buf) >= max_bytes:
                partial, self._buf = self._buf[:max_bytes], self._buf[max_bytes:]
                raise TransportTimeout(
                    f"no complete reply from {self.url} within {self.timeout_s} s", partial=partial
                )
            self._buf += self._chunk(remaining)

    def discard_input(self) -> None:
        self._buf = b""
        while self._chunk(0.0):
            pass

    def read_available(self, max_bytes: int = 1 << 20) -> bytes:
        data, self._buf = self._buf, b""
        while len(data) < max_bytes:
            chunk = self._chunk(0.0)
            if not chunk:
                break
            data += chunk
        return data


class SocketTransport(_Buffered):
    """A TCP connection (`socket://host:port` or `tcp://host:port`)."""

    def __init__(self, url: str, timeout_s: float = 2.0) -> None:
        super().__init__()
        self.url = url
        self.timeout_s = timeout_s
        parts = urlsplit(normalize_url(url))
        if not parts.hostname or not parts.port:
            raise ValueError(f"{url!r}: expected socket://host:port")
        self._address = (parts.hostname, parts.port)
        self._sock: socket.socket | None = None

    @property
    def is_open(self) -> bool:
        return self._sock is not None

    def open(self) -> None:
        self.close()
        try:
            sock = socket.create_connection(self._address, timeout=self.timeout_s)
        except OSError as exc:
            raise TransportError(f"cannot open {self.url}: {exc}") from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        self._buf = b""

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def _require(self) -> socket.socket:
        if self._sock is None:
            raise TransportError(f"{self.url} is not open")
        return self._sock

    def write(self, data: bytes) -> None:
        sock = self._require()
        try:
            sock.sendall(data)
        except OSError as exc:
            self.close()
            raise TransportError(f"write to {self.url} failed: {exc}") from exc

    def _chunk(self, wait_s: float) -> bytes:
        sock = self._require()
        try:
            sock.settimeout(wait_s if wait_s > 0 else 0.0)  # 0.0: non-blocking, just what is there
            data = sock.recv(65536)
        except (TimeoutError, BlockingIOError):
            return b""
        except OSError as exc:
            self.close()
            raise TransportError(f"read from {self.url} failed: {exc}") from exc
        if not data:
            self.close()
            raise TransportError(f"{self.url}: connection closed by the device")
        return data


class SerialTransport(_Buffered):
    """A pyserial port opened from a URL, with line settings for real serial devices."""

    def __init__(
        self,
        url: str,
        *,
        baudrate: int = 9600,
        bytesize: int = 8,
        parity: str = "N",
        stopbits: float = 1,
        timeout_s: float = 2.0,
    ) -> None:
        super().__init__()
        self.url = url
        self.timeout_s = timeout_s
        self._settings = dict(
            baudrate=baudrate, bytesize=bytesize, parity=parity, stopbits=stopbits, timeout=timeout_s
        )
        self._port: serial.SerialBase | None = None

    @property
    def is_open(self) -> bool:
        return self._port is not None and self._port.is_open

    def open(self) -> None:
        self.close()
        try:
            self._port = serial.serial_for_url(normalize_url(self.url), **self._settings)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise TransportError(f"cannot open {self.url}: {exc}") from exc
        self._buf = b""

    def close(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except (serial.SerialException, OSError):
                pass

    def _require(self) -> serial.SerialBase:
        if self._port is None or not self._port.is_open:
            raise TransportError(f"{self.url} is not open")
        return self._port

    def write(self, data: bytes) -> None:
        port = self._require()
        try:
            port.write(data)
            port.flush()
        except (serial.SerialException, OSError) as exc:
            self.close()
            raise TransportError(f"write to {self.url} failed: {exc}") from exc

    def _chunk(self, wait_s: float) -> bytes:
        port = self._require()
        try:
            waiting = port.in_waiting
            if waiting:
                return port.read(waiting)
            if wait_s <= 0:
                return b""
            first = port.read(1)  # waits up to the port's timeout for the next byte
            return first + (port.read(port.in_waiting) if first and port.in_waiting else b"")
        except (serial.SerialException, OSError) as exc:
            self.close()
            raise TransportError(f"read from {self.url} failed: {exc}") from exc
