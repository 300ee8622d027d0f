"""What the valve was doing when: the engine writes it, pollers read it to tag readings.

A reading is tagged by the segment in force at its time on the agent's clock. The analyzer stamps
its records with its own clock, so the pollers first shift the reading's time by the analyzer's
clock offset; the offset is estimated from above (see `OffsetEstimator`), so a record taken just
before a switch may be tagged as the new stream's flush, never the other way round.
"""

from __future__ import annotations

import bisect
import threading
from collections import deque
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from station_agent.reading import Reading

CONDITIONS = ("valve_mismatch", "maintenance", "interlock")
"""Engine conditions that make a sample invalid (reason codes of station_agent.records)."""


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

    def tag(self, r: Reading, offset_s: float = 0.0) -> Reading:
        t = r.time - timedelta(seconds=offset_s)
        seg = self.at(t)
        if seg is None:
            return replace(r, stream="unknown", flushing=True, conditions=("valve_mismatch",))
        return replace(r, stream=seg.stream, flushing=t < seg.flush_until,
                       conditions=tuple(sorted(seg.conditions)))


class OffsetEstimator:
    """Analyzer clock minus agent clock, in seconds, estimated from above.

    Measured after each poll returns, `newest record time - now` is the offset minus the newest
    record's age, so never more than the offset. The largest value over a sliding window of polls
    is the estimate: never larger than the true offset, smaller by at most the age of the freshest
    record seen (about one record interval).
    """

    def __init__(self, window: int = 30) -> None:
        self._samples: deque[float] = deque(maxlen=window)

    def update(self, newest: datetime, now: datetime) -> None:
        self._samples.append((newest - now).total_seconds())

    @property
    def offset_s(self) -> float:
        return max(self._samples) if self._samples else 0.0

    @property
    def known(self) -> bool:
        return bool(self._samples)
