"""Recomputing hourly aggregates of dirty hours: the I/O edge around central.aggregation.hourly_stats and central.qc.

Where it runs (a decision, see the module docstring of central/store/hourly.py for the marks):
not in the receiver's storage thread, whose only job is to commit and acknowledge fast, but in an
aggregation thread of its own (`Aggregator`, started by `central-receiver run` unless
`[aggregate] enabled = false`) with its own database connection, and as a one-shot step
(`central-receiver aggregate`). Each pass takes the dirty hours, reloads their minutes with
enough context for the spike test, recomputes and replaces the hours, and sums their days again
into the daily table (central/store/daily.py, what long windows are drawn from), in one transaction.

Which minutes count: ambient streams (`inlet:*`) only, per inlet; the latest record per (device,
time, stream) (a station may resend a reprocessed minute under a new seq, or a reinstalled station
send it again under a new store: `aggregation_minutes` ranks them as received); calibrated values
(cal_mean) only; flags U/O/R after the operators' manual flags are applied
(`central.aggregation.hourly_stats.effective_minute_flags`: K over a minute makes it H, O makes a valid minute R,
a later decision overrides an earlier one; ICOS: R/H are manual hourly decisions propagated back
to minutes).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import structlog

from ..config import CentralConfig
from ..qc import SpikeParams, detect_spikes
from ..store import open_configured_store
from ..store.hourly import HOUR, HourlyRow, ManualFlag
from ..store_thread import StoreThread
from .hourly_stats import (
    HOUR_S,
    VALID_MINUTE_FLAGS,
    effective_minute_flags,
    hourly_flag,
    hourly_stats,
    latest_seq_index,
)

log = structlog.get_logger(component="aggregator")


def spike_params(config: CentralConfig, species: str) -> SpikeParams:
    s = config.qc.spikes
    return SpikeParams(alpha=s.alpha, beta=s.beta.get(species, 0.0), half_window_min=s.half_window_min,
                       max_iterations=s.max_iterations, min_neighbours=s.min_neighbours,
                       positive_only=s.positive_only)


def _epoch(t: datetime) -> int:
    return int(t.timestamp())


def _applies(f: ManualFlag, stream: str, species: str) -> bool:
    return (f.stream is None or f.stream == stream) and (f.species is None or f.species == species)


@dataclass(frozen=True, slots=True)
class MinuteArrays:
    """One (stream, species) series after picking the latest seq per minute, sorted by time."""

    time_s: np.ndarray
    value: np.ndarray
    std: np.ndarray
    n: np.ndarray
    flag: np.ndarray  # effective flag letters after manual flags
    u: np.ndarray | None = None  # each minute's standard uncertainty, NaN unknown


def minute_arrays(rows: list[tuple], flags: list[ManualFlag]) -> dict[tuple[str, str], MinuteArrays]:
    """From `aggregation_minutes` rows to per-(stream, species) arrays with effective flags."""
    if not rows:
        return {}
    rank = np.array([r[0] for r in rows], dtype=np.int64)
    time_s = np.array([_epoch(r[1]) for r in rows], dtype=np.int64)
    dev_stream = [f"{r[2]}\x00{r[3]}" for r in rows]
    _, ds_code = np.unique(np.array(dev_stream), return_inverse=True)
    # one code per (device, stream, time): a resent minute (new seq) shares it with the original
    _, key = np.unique(np.stack([ds_code, time_s]), axis=1, return_inverse=True)
    # rows hold one line per species; the latest record per key wins for every species of it
    keep = set(rank[latest_seq_index(key.ravel(), rank)].tolist())
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        if r[0] in keep:
            groups[(r[3], r[5])].append(i)
    out = {}
    for (stream, species), idx in groups.items():
        sel = sorted(idx, key=lambda i: time_s[i])
        t = time_s[sel]
        mine = [f for f in flags if _applies(f, stream, species)]  # oldest first
        fl, _ = effective_minute_flags(np.array([rows[i][4] for i in sel], dtype="<U1"),
                                       [(t >= _epoch(f.time_from)) & (t < _epoch(f.time_to)) for f in mine],
                                       [f.flag for f in mine])
        out[(stream, species)] = MinuteArrays(
            t,
            np.array([np.nan if rows[i][6] is None else rows[i][6] for i in sel], dtype=float),
            np.array([np.nan if rows[i][7] is None else rows[i][7] for i in sel], dtype=float),
            np.array([rows[i][8] or 0 for i in sel], dtype=float),
            fl,
            np.array([np.nan if len(rows[i]) < 10 or rows[i][9] is None else rows[i][9] for i in sel], dtype=float),
        )
    return out


def hourly_rows(station: str, hours: list[datetime], series: dict[tuple[str, str], MinuteArrays],
                flags: list[ManualFlag], config: CentralConfig, now: datetime) -> list[HourlyRow]:
    """Hourly rows of `hours` for every (stream, species) with minutes in them. The spike test
    sees the whole series passed in (the caller loads context around the hours)."""
    wanted = np.array(sorted(_epoch(h) for h in hours), dtype=np.int64)
    out: list[HourlyRow] = []
    for (stream, species), m in sorted(series.items()):
        valid = np.isin(m.flag, list(VALID_MINUTE_FLAGS)) & np.isfinite(m.value)
        spikes = np.zeros(m.time_s.size, dtype=bool)
        if config.qc.spikes.enabled and valid.any():
            spikes[valid] = detect_spikes(m.time_s[valid], m.value[valid], spike_params(config, species))
        hour_of = m.time_s - np.mod(m.time_s, HOUR_S)
        in_wanted = np.isin(hour_of, wanted)
        sel = valid & in_wanted
        st = hourly_stats(m.time_s[sel], m.value[sel], m.std[sel], m.n[sel], spikes[sel],
                          None if m.u is None else m.u[sel])
        auto = hourly_flag(st.n, config.aggregate.min_minutes_per_hour)
        by_hour = {int(h): i for i, h in enumerate(st.hour_s)}
        for h in np.unique(hour_of[in_wanted]).tolist():
            hour = datetime.fromtimestamp(h, UTC)
            manual = [f for f in flags if _applies(f, stream, species)
                      and f.time_from < hour + HOUR and f.time_to > hour]
            i = by_hour.get(h)
            if i is None:
                row = HourlyRow(station, stream, species, hour, 0, None, None, None, 0, None, None, None, 0,
                                "K" if manual and manual[-1].flag == "K" else "N", now)
            else:
                flag = str(auto[i])
                if manual:
                    flag = "K" if manual[-1].flag == "K" else ("O" if flag == "U" else flag)
                row = HourlyRow(station, stream, species, hour, int(st.n[i]), float(st.mean[i]),
                                float(st.std[i]), float(st.repeatability[i]), int(st.n_all[i]),
                                float(st.mean_all[i]), float(st.std_all[i]), float(st.repeatability_all[i]),
                                int(st.n_spikes[i]), flag, now,
                                None if st.u is None or not np.isfinite(st.u[i]) else float(st.u[i]))
            out.append(row)
    return out


def _runs(hours: list[datetime]) -> list[list[datetime]]:
    """Split sorted hours into runs without gaps longer than 2 h (each loaded in one query)."""
    runs: list[list[datetime]] = []
    for h in hours:
        if runs and h - runs[-1][-1] <= 2 * HOUR:
            runs[-1].append(h)
        else:
            runs.append([h])
    return runs


@dataclass(frozen=True, slots=True)
class PassReport:
    hours: int
    rows: int
    cleared: int


def aggregate_pass(store, config: CentralConfig, now: datetime | None = None) -> PassReport:
    """Recompute up to `max_hours_per_pass` dirty hours in one transaction."""
    now = now or datetime.now(UTC)
    context = timedelta(minutes=config.qc.spikes.half_window_min)
    n_hours = n_rows = cleared = 0
    with store.aggregation_transaction():
        dirty = store.dirty_hours(limit=config.aggregate.max_hours_per_pass)
        by_station: dict[str, list[tuple[datetime, int]]] = defaultdict(list)
        for station, hour, version in dirty:
            by_station[station].append((hour, version))
        for station, claimed in by_station.items():
            hours = sorted(h for h, _ in claimed)
            for run in _runs(hours):
                start, end = run[0] - context, run[-1] + HOUR + context
                flags = store.manual_flags(station, start, end)
                series = minute_arrays(store.aggregation_minutes(station, start, end), flags)
                rows = hourly_rows(station, run, series, flags, config, now)
                in_run = set(run)
                cleared += store.replace_hourly(station, run, rows, [c for c in claimed if c[0] in in_run])
                store.refresh_daily(station, run)  # the daily sums of these hours' days (central/store/daily.py)
                n_rows += len(rows)
            n_hours += len(hours)
    return PassReport(n_hours, n_rows, cleared)


def aggregate_all(store, config: CentralConfig, now: Callable[[], datetime] = lambda: datetime.now(UTC),
                  max_passes: int = 10_000) -> PassReport:
    """Passes until no dirty hour is left (or `max_passes`); totals."""
    total = PassReport(0, 0, 0)
    for _ in range(max_passes):
        r = aggregate_pass(store, config, now())
        total = PassReport(total.hours + r.hours, total.rows + r.rows, total.cleared + r.cleared)
        if r.hours == 0:
            break
    return total


class Aggregator(StoreThread):
    """The aggregation thread of a receiver process, with its own store connection."""

    thread_name = "central-aggregator"
    failure_event = "aggregation_failed"

    def __init__(self, config: CentralConfig, now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 open_store: Callable[[], object] | None = None) -> None:
        super().__init__(open_store or (lambda: open_configured_store(config)), lambda: config.aggregate.interval_s)
        self.config = config
        self._now = now
        self.passes = 0
        self.idle = threading.Event()
        """Set after a pass that found no dirty hour."""

    def run_pass(self, store) -> bool:
        r = aggregate_pass(store, self.config, self._now())
        self.passes += 1
        if r.hours:
            log.debug("aggregated", hours=r.hours, rows=r.rows)
            return True  # more may be waiting: no pause between full passes
        self.idle.set()
        return False

    def after_pause(self) -> None:
        self.idle.clear()
