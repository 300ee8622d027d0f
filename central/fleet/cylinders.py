"""When does a cylinder run empty? A robust straight line through its pressure readings.

The readings are the station's dated `inventory.cylinder_installed` and `inventory.cylinder_pressure`
events (station_agent/fleet/inventory.py: each pressure a technician enters, stored at central exactly
once). A pressure that rises above the trend's, or a new serial under the same id, is a refill or a new cylinder: the
trend starts again from that reading. The line is a Theil-Sen fit (the median of the slopes between
every pair of readings, Sen 1968), so one mistyped reading does not move the forecast much; the
forecast is when the line reaches the cylinder's low-pressure threshold (the station's
`low_pressure_bar`, 20 bar by default). Pure: events in, forecasts out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

PRESSURE_KINDS = ("inventory.cylinder_installed", "inventory.cylinder_pressure", "inventory.cylinder_changed")
DEFAULT_LOW_BAR = 20.0
"""The station's default `low_pressure_bar` (station_agent/sequencing/sampling_config.py)."""
REFILL_RISE_BAR = 1.0
"""A rise of more than this between two readings is a refill or a new cylinder."""


@dataclass(frozen=True, slots=True)
class PressureReading:
    time: datetime
    bar: float
    serial: str | None


@dataclass(frozen=True, slots=True)
class CylinderForecast:
    cylinder: str
    status: str
    """'ok' (empty_at is set), 'not_enough_points', 'not_falling', or 'removed'."""
    points: int
    """Readings of the current trend (since the last refill or swap) inside the window."""
    latest_bar: float | None
    low_bar: float
    rate_bar_per_day: float | None
    empty_at: datetime | None
    """When the fitted line reaches `low_bar` (may be in the past)."""

    def days_left(self, now: datetime) -> float | None:
        return None if self.empty_at is None else (self.empty_at - now).total_seconds() / 86400.0

    def as_dict(self) -> dict:
        return {"cylinder": self.cylinder, "status": self.status, "points": self.points,
                "latest_bar": self.latest_bar, "low_bar": self.low_bar, "rate_bar_per_day": self.rate_bar_per_day,
                "empty_at": None if self.empty_at is None else self.empty_at.isoformat()}


def pressure_history(events) -> tuple[dict[str, list[PressureReading]], dict[str, float], set[str]]:
    """Per cylinder its readings in time order, its latest low-pressure threshold, and the cylinders
    removed since their last reading. `events`: StoredEvent-like (time, seq, kind, data)."""
    history: dict[str, list[PressureReading]] = {}
    low: dict[str, float] = {}
    removed: set[str] = set()
    for e in sorted(events, key=lambda e: (e.time, e.seq)):
        data = e.data or {}
        cyl = data.get("cylinder")
        if not isinstance(cyl, str):
            continue
        if e.kind == "inventory.cylinder_removed":
            removed.add(cyl)
            continue
        if e.kind not in PRESSURE_KINDS:
            continue
        now = data.get("to") if e.kind == "inventory.cylinder_changed" else data
        if not isinstance(now, dict):
            continue
        removed.discard(cyl)
        if isinstance(now.get("low_pressure_bar"), int | float):
            low[cyl] = float(now["low_pressure_bar"])
        bar = now.get("pressure_bar")
        if isinstance(bar, int | float) and np.isfinite(bar):
            history.setdefault(cyl, []).append(PressureReading(e.time, float(bar), now.get("serial")))
    return history, low, removed


def current_trend(readings: list[PressureReading]) -> list[PressureReading]:
    """The readings since the last refill or swap: another serial, or a pressure more than
    REFILL_RISE_BAR above every reading of the trend so far (so a reading mistyped low, followed by
    a true one, is not taken for a refill)."""
    start, top = 0, readings[0].bar if readings else 0.0
    for i in range(1, len(readings)):
        a, b = readings[i - 1], readings[i]
        swapped = a.serial is not None and b.serial is not None and a.serial != b.serial
        if swapped or b.bar - top > REFILL_RISE_BAR:
            start, top = i, b.bar
        top = max(top, b.bar)
    return readings[start:]


def theil_sen(t: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Slope and intercept: the median of pairwise slopes, then the median of y - slope * t."""
    i, j = np.triu_indices(len(t), k=1)
    dt = t[j] - t[i]
    ok = dt > 0
    slope = float(np.median((y[j] - y[i])[ok] / dt[ok]))
    return slope, float(np.median(y - slope * t))


def forecast_empty(cylinder: str, readings: list[PressureReading], low_bar: float, now: datetime,
                   window_days: float = 180.0, min_points: int = 3) -> CylinderForecast:
    """When the cylinder's pressure reaches `low_bar`, from the readings of its current trend within
    `window_days` before `now`; at least `min_points` readings over distinct times are needed."""
    trend = [r for r in current_trend(readings) if r.time >= now - timedelta(days=window_days) and r.time <= now]
    latest = trend[-1].bar if trend else (readings[-1].bar if readings else None)
    t0 = trend[0].time if trend else now
    t = np.array([(r.time - t0).total_seconds() / 86400.0 for r in trend])
    if len(trend) < min_points or len(np.unique(t)) < 2:
        return CylinderForecast(cylinder, "not_enough_points", len(trend), latest, low_bar, None, None)
    y = np.array([r.bar for r in trend])
    slope, intercept = theil_sen(t, y)
    if slope >= 0:
        return CylinderForecast(cylinder, "not_falling", len(trend), latest, low_bar, slope, None)
    empty_day = (low_bar - intercept) / slope
    return CylinderForecast(cylinder, "ok", len(trend), latest, low_bar, slope, t0 + timedelta(days=empty_day))


def station_forecasts(events, now: datetime, low_bar: dict[str, float] | None = None, window_days: float = 180.0,
                      min_points: int = 3) -> list[CylinderForecast]:
    """Every cylinder of a station with readings: its forecast ('removed' for one taken out).
    `low_bar`: thresholds known otherwise (the latest status inventory), over those in the events."""
    history, low, removed = pressure_history(events)
    out = []
    for cyl, readings in sorted(history.items()):
        threshold = (low_bar or {}).get(cyl, low.get(cyl, DEFAULT_LOW_BAR))
        if cyl in removed:
            out.append(CylinderForecast(cyl, "removed", 0, readings[-1].bar, threshold, None, None))
        else:
            out.append(forecast_empty(cyl, readings, threshold, now, window_days, min_points))
    return out
