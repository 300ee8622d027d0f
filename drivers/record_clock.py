"""Time stamps for instruments that stream records at a fixed rate without a clock of their own
(a sonic anemometer, a fast gas analyzer): record k of the stream is at t0 + k / rate.

Stamping each poll's records backwards from the poll's time would shift them by however late the
poll saw them, differently for each instrument, and two 10-20 Hz streams would no longer line up.
A record cannot have been made after it arrived, so every poll bounds the stream's start:
t0 <= poll time - (records so far - 1) / rate; the least delayed poll gives the tightest bound.
The bounds of the last `window_s` seconds are kept (a window, so that an instrument clock running
slow against the station's is followed), and t0 moves with their least:
- back at once when a poll shows the stream started earlier (a record cannot be stamped after it
  arrived);
- forward, when the least bound has left the window and the next is later, by at most `max_slew`
  seconds a second. A forward step would put a gap into the stream, stamped records apart by more
  than their spacing, and the next well-timed poll would step back over them: how late the best
  poll of a window is depends on scheduling, not on the instrument. At real time that is a few ms,
  under a record; under --speed X every real ms is X ms of the stream (at speed 120 a 10 ms
  scheduling delay is a whole second, 10 records at 10 Hz), and the window of simulated seconds holds
  X times fewer real seconds of polls. 2e-4 (200 ppm) follows any crystal-driven instrument clock
  (tens of ppm) and moves t0 by at most 0.36 s in a half hour.
A gap in the stream (a timeout, a reconnection) starts again.
Under --speed the window is simulated seconds but what it waits out is real scheduling delay: a
simulated site (which has no clock drift to follow: its instruments run on the agent's clock)
wants a window as long as its run, e.g. 7200 s at speed 120 (tests/sites/test_flux_tower.py).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from datetime import datetime, timedelta

MAX_SLEW = 2e-4
"""Fastest forward drift of the stream start followed (s/s): faster than an instrument's crystal runs
slow, slow enough that a late poll never puts a gap into the stream."""


class RecordClock:
    def __init__(self, rate_hz: float, window_s: float = 600.0, max_slew: float = MAX_SLEW) -> None:
        if rate_hz <= 0 or window_s <= 0 or max_slew < 0:
            raise ValueError(f"record clock: rate_hz {rate_hz} and window_s {window_s} must be > 0, "
                             f"max_slew {max_slew} >= 0")
        self.step = timedelta(seconds=1.0 / rate_hz)
        self.window = timedelta(seconds=window_s)
        self.max_slew = max_slew
        self.restart()

    def restart(self) -> None:
        """Forget the stream (after a gap): the next poll anchors it again."""
        self.count = 0
        self._bounds: deque[tuple[datetime, datetime]] = deque()
        self._t0: datetime | None = None
        self._t0_at: datetime | None = None

    def stamps(self, now: datetime, advances: Sequence[int]) -> list[datetime]:
        """Times of a poll's records at `now`; `advances[i]` is how far record i moves the stream on:
        1, or more when the instrument's record counter shows records lost just before it."""
        if not advances:
            return []
        positions = []
        for a in advances:
            positions.append(self.count + a - 1 if self.count else 0)
            self.count = positions[-1] + 1
        bound = now - self.step * positions[-1]
        while self._bounds and self._bounds[-1][1] >= bound:
            self._bounds.pop()
        self._bounds.append((now, bound))
        while now - self._bounds[0][0] > self.window:
            self._bounds.popleft()
        least = self._bounds[0][1]
        if self._t0 is None or self._t0_at is None or least <= self._t0:
            self._t0 = least
        else:
            self._t0 = min(least, self._t0 + max(now - self._t0_at, timedelta(0)) * self.max_slew)
        self._t0_at = now
        return [self._t0 + self.step * k for k in positions]
