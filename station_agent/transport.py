"""Byte transports a driver is handed; the driver never chooses its own.

Everything goes through pyserial's URL handlers, so one driver talks to a serial port
(`/dev/ttyUSB0`, a pty path), a TCP socket (`socket://host:port`, also spelled `tcp://host:port`)
or an in-process loop (`loop://`). Errors are typed: a timeout (the device said nothing, or not all
of it) is not a broken link (the connection is gone and must be reopened).
"""

from __future__ import annotations

from typing import Protocol

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


def normalize_url(url: str) -> str:
    if url.startswith("tcp://"):
        return "socket://" + url[len("tcp://") :]
    return url


class SerialTransport:
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
        self.url = url
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

    def read_until(self, terminator: bytes, max_bytes: int = 65536) -> bytes:
        port = self._require()
        try:
            data = port.read_until(terminator, max_bytes)
        except (serial.SerialException, OSError) as exc:
            self.close()
            raise TransportError(f"read from {self.url} failed: {exc}") from exc
        if not data.endswith(terminator):
            raise TransportTimeout(
                f"no complete reply from {self.url} within {port.timeout} s", partial=data
            )
        return data

    def discard_input(self) -> None:
        port = self._require()
        try:
            port.reset_input_buffer()
        except (serial.SerialException, OSError) as exc:
            self.close()
            raise TransportError(f"flush of {self.url} failed: {exc}") from exc
