"""A transport that connects a driver straight to a simulated device, in process.

The driver writes bytes, the device's `receive()` answers, the driver reads the answer: the same
bytes as over a pty or TCP, with no thread and no socket in between. Used where a test runs the
engine on a ManualClock (simulated time with no wall clock), which a socket's real-time timeouts
would defeat. Like pyserial's `loop://`, it is a real transport, not a stand-in for the device.
"""

from __future__ import annotations

from drivers.transport import TransportError, TransportTimeout
from simulators.serve import Disconnect, LineDevice


class InProcessTransport:
    def __init__(self, device: LineDevice, url: str = "inprocess://") -> None:
        self.device = device
        self.url = url
        self._open = False
        self._buffer = b""

    @property
    def is_open(self) -> bool:
        return self._open

    def open(self) -> None:
        self._open = True
        self._buffer = b""

    def close(self) -> None:
        self._open = False

    def write(self, data: bytes) -> None:
        if not self._open:
            raise TransportError(f"{self.url} is not open")
        try:
            self._buffer += self.device.receive(data)
        except Disconnect:
            self._open = False
            raise TransportError(f"{self.url}: connection dropped") from None

    def read_until(self, terminator: bytes, max_bytes: int = 65536) -> bytes:
        if not self._open:
            raise TransportError(f"{self.url} is not open")
        cut = self._buffer.find(terminator)
        if cut < 0:
            partial, self._buffer = self._buffer, b""
            raise TransportTimeout(f"no complete reply from {self.url}", partial=partial)
        line, self._buffer = self._buffer[: cut + len(terminator)], self._buffer[cut + len(terminator) :]
        return line

    def discard_input(self) -> None:
        self._buffer = b""
