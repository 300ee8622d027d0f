"""Grouping readings into minute bins and deciding when a minute is closed.

A bin is (device, minute start, stream). A device's minute closes when a reading from a later
minute arrives, or, when no newer data comes, once a poll has drained the analyzer's buffer at a
device time `close_after_s` past the end of the minute (the poller says so in the same queue as
its readings, so no reading can overtake that mark). After a disconnect nothing is drained, so a
minute stays open until the analyzer's buffered records arrive.
Bins not yet closed at shutdown are rebuilt from the raw table at the next start, so a restart
neither loses nor repeats a minute.

Auxiliary quantities (`[processing] auxiliary`, e.g. "met-1:humidity"): `AuxiliaryMinutes` keeps,
per minute, the sum and count of each configured quantity of the auxiliary devices' valid readings
(status ok, finite), fed by their pollers as they read (a dict update under a lock: polling never
waits on the store). An analyzer's minute then carries each quantity's mean over the same minute as
a diagnostic named "<device>:<quantity>"; a quantity with no valid reading that minute is absent
(never 0). Minutes are those of the readings' own stamps (the agent's clock for auxiliary devices,
the analyzer's for its minute), so an analyzer clock a few seconds off shifts the window as much.
At a start the last hour's auxiliary raw readings are counted again (Agent._restore_auxiliary), so
the minutes still open at the stop get them too.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from drivers.reading import Reading
from ghgnet.timeutil import minute_start


@dataclass
class MinuteBin:
    device: str
    minute: datetime
    stream: str
    readings: list[Reading] = field(default_factory=list)

    def arrays(self) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray, np.ndarray]:
        """Sample times (epoch s), values by quantity (NaN where missing), status_ok, flushing."""
        times = np.fromiter((r.time.timestamp() for r in self.readings), float, len(self.readings))
        names = sorted({k for r in self.readings for k in r.values})
        values = {
            name: np.fromiter(
                (r.values.get(name, np.nan) for r in self.readings), float, len(self.readings)
            )
            for name in names
        }
        ok = np.fromiter((r.status_ok for r in self.readings), bool, len(self.readings))
        flushing = np.fromiter((r.flushing for r in self.readings), bool, len(self.readings))
        return times, values, ok, flushing


class MinuteAssembler:
    def __init__(self, close_after_s: float) -> None:
        self.close_after = timedelta(seconds=close_after_s)
        self._bins: dict[tuple[str, datetime, str], MinuteBin] = {}
        self.late_readings = 0
        self._closed_until: dict[str, datetime] = {}

    def closed_until(self, device: str) -> datetime | None:
        """Minutes of `device` before this time are closed (stored or skipped)."""
        return self._closed_until.get(device)

    def pending(self) -> int:
        return len(self._bins)

    def mark_closed_until(self, device: str, minute: datetime) -> None:
        """Minutes of `device` before `minute` are already stored (used when restoring)."""
        self._closed_until[device] = minute

    def add(self, readings: list[Reading]) -> list[MinuteBin]:
        """Add readings (in time order per device); returns the bins this closes."""
        closed: list[MinuteBin] = []
        for r in readings:
            m = minute_start(r.time)
            done = self._closed_until.get(r.device)
            if done is not None and m < done:
                self.late_readings += 1
                continue
            closed += self._close(r.device, before=m)
            key = (r.device, m, r.stream)
            b = self._bins.get(key)
            if b is None:
                b = self._bins[key] = MinuteBin(r.device, m, r.stream)
            b.readings.append(r)
        return closed

    def drained(self, device: str, until: datetime) -> list[MinuteBin]:
        """The analyzer's buffer was emptied at device time `until`: close the bins that ended at
        least close_after before it."""
        return self._close(device, before=minute_start(until - self.close_after - timedelta(minutes=1))
                           + timedelta(minutes=1))

    def _close(self, device: str, before: datetime) -> list[MinuteBin]:
        keys = sorted(
            (k for k in self._bins if k[0] == device and k[1] < before), key=lambda k: (k[1], k[2])
        )
        out = [self._bins.pop(k) for k in keys]
        if out:
            last = max(b.minute for b in out) + timedelta(minutes=1)
            if self._closed_until.get(device) is None or last > self._closed_until[device]:
                self._closed_until[device] = last
        return out


AUX_KEEP = timedelta(hours=24)
"""How long the auxiliary minute means are kept: an analyzer's minute closed later than this after
the newest auxiliary reading (its buffer delivered after a day offline) goes without them."""


class AuxiliaryMinutes:
    """Per-minute means of auxiliary device quantities, for the analyzers' minutes. Thread-safe:
    pollers add, the store writer reads."""

    def __init__(self, sources: Iterable[str], keep: timedelta = AUX_KEEP) -> None:
        self.sources = tuple(dict.fromkeys(sources))
        self._wanted: dict[str, set[str]] = {}
        for s in self.sources:
            device, _, quantity = s.partition(":")
            self._wanted.setdefault(device, set()).add(quantity)
        self.keep = keep
        self._sums: dict[datetime, dict[str, list[float]]] = {}  # minute -> source -> [sum, n]
        self._newest: datetime | None = None
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self.sources)

    def add(self, readings: Iterable[Reading]) -> None:
        """Count the valid values of the configured quantities; readings of other devices are ignored."""
        for r in readings:
            wanted = self._wanted.get(r.device)
            if not wanted or not r.status_ok or r.conditions:
                continue
            m = minute_start(r.time)
            with self._lock:
                acc = self._sums.setdefault(m, {})
                for q in wanted:
                    v = r.values.get(q)
                    if v is None or not math.isfinite(v):
                        continue
                    s = acc.setdefault(f"{r.device}:{q}", [0.0, 0])
                    s[0] += v
                    s[1] += 1
                if self._newest is None or m > self._newest:
                    self._newest = m
                    for old in [k for k in self._sums if k < m - self.keep]:
                        del self._sums[old]

    def means(self, minute: datetime) -> dict[str, float]:
        """"device:quantity" -> mean of the minute's valid values; a quantity without one is absent."""
        with self._lock:
            acc = self._sums.get(minute, {})
            return {name: s / n for name, (s, n) in acc.items() if n}
