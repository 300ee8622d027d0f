"""Time stamps for instruments that stream records at a fixed rate without a clock of their own
(a sonic anemometer, a fast gas analyzer): record k of the stream is at t0 + k / rate.

Stamping each poll's records backwards from the poll's time would shift them by however late the
poll saw them, differently for each instrument, and two 10-20 Hz streams would no longer line up.
A record cannot have been made after it arrived, so every poll bounds the stream's start:
t0 <= poll time - (records so far - 1) / rate; the least delayed poll gives the tightest bound, and
t0 is the smallest bound over the last `window_s` seconds (a window, so a clock that runs slow
against the station's is followed). A gap in the stream (a timeout, a reconnection) starts again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from datetime import datetime, timedelta


class RecordClock:
    def __init__(self, rate_hz: float, window_s: float = 600.0) -> None:
        self.step = timedelta(seconds=1.0 / rate_hz)
        self.window = timedelta(seconds=window_s)
        self.restart()

    def restart(self) -> None:
        """Forget the stream (after a gap): the next poll anchors it again."""
        self.count = 0
        self._bounds: deque[tuple[datetime, datetime]] = deque()

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
        t0 = self._bounds[0][1]
        return [t0 + self.step * k for k in positions]
