"""From minutes to the hourly table the fit reads: pure functions, numpy in, arrays out.

A site's hour holds the sensor's mean over its valid minutes (at least `min_minutes`), the mean of
each environment quantity over the minutes that report it, and the reference's mean over its valid
minutes of the same hour (at least `min_minutes` too). Hours are keyed by their start in epoch
seconds (UTC); stamps at the start of the hour, as central's hourly table.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

HOUR_S = 3600


@dataclass(frozen=True)
class HourlyMeans:
    """Per hour (start, epoch s): mean and count of the minutes' values."""

    hours: NDArray[np.int64]
    mean: NDArray[np.float64]
    n: NDArray[np.int64]

    def as_dict(self, min_n: int = 1) -> dict[int, float]:
        return {int(h): float(m) for h, m, k in zip(self.hours, self.mean, self.n) if k >= min_n}


def hourly_means(points: Iterable[tuple[float, float]]) -> HourlyMeans:
    """(minute start epoch s, value) pairs -> per-hour means; NaN values are left out."""
    arr = np.array([(t, v) for t, v in points if v is not None and np.isfinite(v)], float).reshape(-1, 2)
    if arr.size == 0:
        return HourlyMeans(np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64))
    hours = (arr[:, 0] // HOUR_S).astype(np.int64) * HOUR_S
    uniq, inv = np.unique(hours, return_inverse=True)
    n = np.bincount(inv)
    return HourlyMeans(uniq, np.bincount(inv, weights=arr[:, 1]) / n, n)


@dataclass(frozen=True)
class PairedHours:
    """The hours a site's sensor and its reference both have: arrays in hour order."""

    hours: NDArray[np.int64]
    sensor: NDArray[np.float64]
    n_minutes: NDArray[np.int64]
    reference: NDArray[np.float64]
    env: dict[str, NDArray[np.float64]]

    @property
    def days(self) -> NDArray[np.float64]:
        """Hour midpoints in days since the Unix epoch."""
        return (self.hours + HOUR_S / 2) / 86400.0

    def select(self, keep: NDArray[np.bool_]) -> "PairedHours":
        return PairedHours(self.hours[keep], self.sensor[keep], self.n_minutes[keep], self.reference[keep],
                           {q: v[keep] for q, v in self.env.items()})


def sensor_hours(sensor: HourlyMeans, env: dict[str, HourlyMeans], min_minutes: int,
                 reference: dict[int, float] | None = None) -> PairedHours:
    """The sensor's hours with at least `min_minutes` minutes, their environment means (NaN where
    none) and the reference's mean (NaN where none)."""
    keep = sensor.n >= min_minutes
    hours = sensor.hours[keep]
    envs = {q: m.as_dict() for q, m in env.items()}
    ref = reference or {}
    return PairedHours(
        hours, sensor.mean[keep], sensor.n[keep],
        np.array([ref.get(int(h), np.nan) for h in hours], float),
        {q: np.array([e.get(int(h), np.nan) for h in hours], float) for q, e in envs.items()},
    )


def local_hour_mask(hours: NDArray[np.int64], zone: str, start_h: int, end_h: int) -> NDArray[np.bool_]:
    """Hours (UTC starts, epoch s) whose local start hour in `zone` lies in [start_h, end_h): the
    well-mixed afternoon when the reference is a background station, not a co-located one."""
    tz = ZoneInfo(zone)
    local = [datetime.fromtimestamp(int(h), UTC).astimezone(tz).hour for h in hours]
    return np.array([start_h <= h < end_h for h in local], bool)


def period_key(hour_s: int, period: str) -> str:
    """The report period an hour falls in: day (2026-03-01), week (2026-W09) or month (2026-03)."""
    t = datetime.fromtimestamp(int(hour_s), UTC)
    if period == "day":
        return t.strftime("%Y-%m-%d")
    if period == "week":
        iso = t.isocalendar()
        return f"{iso.year}-W{iso.week:02d}"
    return t.strftime("%Y-%m")


def as_datetime(hour_s: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=int(hour_s))
