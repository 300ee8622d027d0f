"""Expected-communication tests for drivers: the exact bytes sent, the replies given.

    with expected_protocol(G2401, config, [(b"_Instr_GetStatus\\r", b"963\\r")]) as drv:
        assert drv.read_status().ok

A `ScriptedTransport` stands where the serial port or socket would be. Each pair is
(bytes the driver must write, bytes the device answers or None for no answer). A write that differs
from the script fails at once, naming both; leaving the block with pairs unused fails too.
This is the pattern of PyMeasure's `expected_protocol`, used for every driver in this project.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from drivers.base import DeviceConfig, Driver
from drivers.transport import TransportError, TransportTimeout

Pair = tuple[bytes | None, bytes | None]
D = TypeVar("D", bound=Driver)


class ProtocolMismatch(AssertionError):
    pass


class ScriptedTransport:
    """A transport that plays a script of (expected write, reply) pairs.

    A pair with `None` as the expected write is a reply the device sends unprompted (or a second
    reply line); a reply of `None` means the device stays silent (the read times out). A reply of
    `ScriptedTransport.DISCONNECT` makes the next read fail as a dropped link.
    """

    DISCONNECT = b"\x00<disconnect>\x00"

    def __init__(self, pairs: Sequence[Pair], url: str = "scripted://") -> None:
        self.url = url
        self._pairs = list(pairs)
        self._index = 0
        self._written = b""
        self._readable = b""
        self._open = False
        self.opened = 0

    @property
    def is_open(self) -> bool:
        return self._open

    def open(self) -> None:
        self._open = True
        self.opened += 1

    def close(self) -> None:
        self._open = False

    def _queue_unprompted(self) -> None:
        while self._index < len(self._pairs) and self._pairs[self._index][0] is None:
            reply = self._pairs[self._index][1]
            self._index += 1
            if reply is not None:
                self._readable += reply

    def write(self, data: bytes) -> None:
        if not self._open:
            raise TransportError(f"{self.url} is not open")
        self._written += data
        if self._index >= len(self._pairs):
            raise ProtocolMismatch(f"driver wrote {self._written!r} after the script ended")
        expected, reply = self._pairs[self._index]
        if expected is None:
            raise ProtocolMismatch(f"driver wrote {self._written!r}; the script expected a read")
        if not expected.startswith(self._written):
            raise ProtocolMismatch(f"driver wrote {self._written!r}, expected {expected!r}")
        if self._written == expected:
            self._written = b""
            self._index += 1
            if reply is not None:
                self._readable += reply
            self._queue_unprompted()

    def read_until(self, terminator: bytes, max_bytes: int = 65536) -> bytes:
        if not self._open:
            raise TransportError(f"{self.url} is not open")
        self._queue_unprompted()
        if self._readable.startswith(self.DISCONNECT):
            self._readable = self._readable[len(self.DISCONNECT) :]
            self._open = False
            raise TransportError(f"{self.url}: connection dropped")
        cut = self._readable.find(terminator)
        if cut < 0 or cut + len(terminator) > max_bytes:
            partial, self._readable = self._readable[:max_bytes], self._readable[max_bytes:]
            raise TransportTimeout(f"no complete reply from {self.url}", partial=partial)
        line, self._readable = self._readable[: cut + len(terminator)], self._readable[cut + len(terminator) :]
        return line

    def discard_input(self) -> None:
        self._readable = b""

    @property
    def unused(self) -> list[Pair]:
        return self._pairs[self._index :]


@contextmanager
def expected_protocol(
    driver_cls: type[D], config: DeviceConfig | dict[str, Any], pairs: Sequence[Pair]
) -> Iterator[D]:
    """Build `driver_cls` on a ScriptedTransport, open it, and check that the script was used up."""
    if isinstance(config, dict):
        config = driver_cls.Config.model_validate(config)
    transport = ScriptedTransport(pairs)
    driver = driver_cls(config, transport)
    driver.open()
    yield driver
    if transport.unused:
        raise ProtocolMismatch(f"script not used up; left: {transport.unused!r}")
    if transport._readable:
        raise ProtocolMismatch(f"replies never read: {transport._readable!r}")
