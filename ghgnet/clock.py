"""One injectable clock for everything that waits or stamps time.

`ScaledClock(speed=1)` is the wall clock. With `speed=X` simulated time runs X times faster than
real time from a start instant, so a simulated day runs in about a minute at X=1440. `ManualClock`
only moves when told to (or when something sleeps on it): sequences and timers are tested with it
without any wall clock.

All times are timezone-aware UTC datetimes; `monotonic()` is in simulated seconds.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    speed: float

    def now(self) -> datetime:
        """Current (simulated) UTC time."""

    def monotonic(self) -> float:
        """Seconds of simulated time from an arbitrary origin; never goes back."""

    def sleep(self, seconds: float) -> None:
        """Wait `seconds` of simulated time."""

    def wait(self, event: threading.Event, seconds: float | None) -> bool:
        """Wait for `event` at most `seconds` of simulated time; True if it was set."""


class ScaledClock:
    """Wall clock, optionally running `speed` times faster from `start`.

    Simulated time is `start` at the real instant `anchor` (default: when the clock is made) and
    runs `speed` times faster from there. Processes given the same start and anchor (the demo, the
    hardware-in-the-loop tests) share one simulated time however far apart they were launched.
    """

    def __init__(self, speed: float = 1.0, start: datetime | None = None, anchor: datetime | None = None) -> None:
        if speed <= 0:
            raise ValueError(f"clock speed must be > 0, got {speed}")
        self.speed = float(speed)
        self._mono0 = time.monotonic()
        real_now = datetime.now(UTC)
        self._start = (start or real_now).astimezone(UTC)
        # the start instant on this process's monotonic clock
        self._anchor_mono = self._mono0 - ((real_now - anchor).total_seconds() if anchor else 0.0)
        self._scaled = speed != 1.0 or start is not None

    def now(self) -> datetime:
        if not self._scaled:
            return datetime.now(UTC)
        return self._start + timedelta(seconds=(time.monotonic() - self._anchor_mono) * self.speed)

    def monotonic(self) -> float:
        return (time.monotonic() - self._mono0) * self.speed

    def real_seconds(self, seconds: float) -> float:
        return max(0.0, seconds) / self.speed

    def sleep(self, seconds: float) -> None:
        time.sleep(self.real_seconds(seconds))

    def wait(self, event: threading.Event, seconds: float | None) -> bool:
        return event.wait(None if seconds is None else self.real_seconds(seconds))


class ManualClock:
    """A clock that moves only through `advance()` or `sleep()`: deterministic tests, no wall time.

    `sleep` advances the clock immediately; `wait` returns at once with the event's state after
    advancing (an event cannot be set by anyone while a single-threaded test sleeps).
    """

    speed = float("inf")

    def __init__(self, start: datetime | None = None) -> None:
        self._now = (start or datetime(2026, 1, 1, tzinfo=UTC)).astimezone(UTC)
        self._mono = 0.0
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not go back")
        with self._lock:
            self._now += timedelta(seconds=seconds)
            self._mono += seconds

    def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))

    def wait(self, event: threading.Event, seconds: float | None) -> bool:
        if not event.is_set() and seconds is not None:
            self.advance(max(0.0, seconds))
        return event.is_set()


def make_clock(speed: float | None = None, start: datetime | None = None,
               anchor: datetime | None = None) -> ScaledClock:
    """The clock a command runs on: real time, or `--speed X` simulated time from `start` at the
    real instant `anchor`."""
    return ScaledClock(speed or 1.0, start, anchor)
