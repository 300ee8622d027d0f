"""What the valve was doing when: the engine writes it, pollers read it to tag readings.

A reading is tagged by the segment in force at its time on the agent's clock. The analyzer stamps
its records with its own clock, so the pollers first shift the reading's time by the analyzer's
clock offset (see `OffsetEstimator`); a record the offset's lower bound puts after a switch is
tagged as the new stream's flush, so a record taken just before a switch may be tagged as the new
stream's flush, never the other way round.
"""

from __future__ import annotations

import bisect
import threading
from collections import deque
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from drivers.reading import Reading

CONDITIONS = ("valve_mismatch", "maintenance", "interlock")
"""Engine conditions that make a sample invalid (reason codes of ghgnet.records)."""


@dataclass(frozen=True)
class Segment:
    start: datetime
    stream: str
    flush_until: datetime
    port: int | None
    conditions: frozenset[str] = frozenset()


class StreamTimeline:
    """Segments in time order; keeps the last `keep` of them (a day of switching is far fewer)."""

    def __init__(self, keep: int = 5000) -> None:
        self._lock = threading.Lock()
        self._segments: deque[Segment] = deque(maxlen=keep)
        self._starts: list[datetime] = []

    def _append(self, seg: Segment) -> None:
        if self._segments and seg.start < self._segments[-1].start:
            seg = replace(seg, start=self._segments[-1].start)
        self._segments.append(seg)
        self._starts = [s.start for s in self._segments]

    def switch(self, t: datetime, stream: str, flush_s: float, port: int | None,
               conditions: frozenset[str] = frozenset()) -> Segment:
        """The valve was commanded to `stream` at `t`: flush from now."""
        seg = Segment(t, stream, t + timedelta(seconds=flush_s), port, conditions)
        with self._lock:
            self._append(seg)
        return seg

    def set_condition(self, t: datetime, condition: str, on: bool) -> None:
        """Start or end a condition (maintenance, interlock, valve_mismatch) from `t` on."""
        with self._lock:
            cur = self._segments[-1] if self._segments else Segment(t, "unknown", t, None)
            conds = cur.conditions | {condition} if on else cur.conditions - {condition}
            if conds != cur.conditions:
                self._append(replace(cur, start=t, conditions=frozenset(conds)))

    def reflush(self, t: datetime, flush_s: float) -> None:
        """Flush the current stream again from `t` (after the flow was interrupted)."""
        with self._lock:
            if self._segments:
                cur = self._segments[-1]
                self._append(replace(cur, start=t, flush_until=t + timedelta(seconds=flush_s)))

    def current(self) -> Segment | None:
        with self._lock:
            return self._segments[-1] if self._segments else None

    def at(self, t: datetime) -> Segment | None:
        with self._lock:
            i = bisect.bisect_right(self._starts, t) - 1
            return self._segments[i] if i >= 0 else None

    def tag(self, r: Reading, offset_s: float = 0.0, low_s: float | None = None) -> Reading:
        """The segment in force at the reading's time, its clock shifted by `offset_s`.

        `low_s` is the smallest offset the analyzer's clock can have (OffsetEstimator.low): with it
        the reading may have been taken as late as `r.time - low_s` on the agent's clock. When that
        is past a switch the estimate put it before, nobody can tell which stream it saw, and it is
        tagged as the flush of the new one (the old stream's last minute must not get new gas).
        """
        t = r.time - timedelta(seconds=offset_s)
        seg = self.at(t)
        if low_s is not None and low_s < offset_s:
            late = self.at(r.time - timedelta(seconds=low_s))
            if late is not None and (seg is None or (late.start > seg.start and
                                                     (late.stream, late.port) != (seg.stream, seg.port))):
                return replace(r, stream=late.stream, flushing=True, conditions=tuple(sorted(late.conditions)))
        if seg is None:
            return replace(r, stream="unknown", flushing=True, conditions=("valve_mismatch",))
        return replace(r, stream=seg.stream, flushing=t < seg.flush_until,
                       conditions=tuple(sorted(seg.conditions)))


class OffsetEstimator:
    """Analyzer clock minus agent clock, in seconds, bounded from both sides.

    A poll sent at agent time `before` and answered by `after` returns records up to the
    analyzer's `newest`, made between `before - max_age` and `after` (agent time). So the offset
    lies in [newest - after, newest - before + max_age]. Over a sliding window of polls the bounds
    are intersected: `low` is what the drained-buffer mark uses (never late), and `offset_s` is 0
    when the bounds allow it (a clock we cannot prove wrong is not corrected: at high simulation
    speed the bounds are wide because real latency is multiplied), otherwise the nearest bound.
    """

    def __init__(self, window: int = 30, max_age_s: float = 3.0) -> None:
        self._low: deque[float] = deque(maxlen=window)
        self._high: deque[float] = deque(maxlen=window)
        self.max_age_s = max_age_s

    def update(self, newest: datetime, before: datetime, after: datetime | None = None) -> None:
        after = before if after is None else after
        self._low.append((newest - after).total_seconds())
        self._high.append((newest - before).total_seconds() + self.max_age_s)

    @property
    def low(self) -> float:
        return max(self._low) if self._low else 0.0

    @property
    def high(self) -> float:
        return min(self._high) if self._high else 0.0

    @property
    def offset_s(self) -> float:
        if not self._low:
            return 0.0
        lo, hi = self.low, self.high
        if lo > hi:  # inconsistent (the analyzer's clock was set): trust the freshest evidence
            return self._low[-1]
        return min(max(0.0, lo), hi)

    @property
    def known(self) -> bool:
        return bool(self._low)
