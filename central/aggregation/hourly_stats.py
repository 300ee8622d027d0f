"""Hourly, daily-afternoon and monthly aggregates of minute data: pure numpy, no I/O.

Conventions (ICOS L2, WDCGG): every average is stamped at the START of its interval, in UTC
(afternoon days are local calendar days). Times are int64 seconds since 1970 UTC.

Hourly uncertainty is kept in two parts that must not be mixed:

- ``repeatability``: the standard error of the hourly mean propagated from the minutes' own
  noise, sqrt(sum_i std_i^2 / n_i) / N, with std_i and n_i the analyzer standard deviation and the
  sample count of minute i, and N the number of minutes (instrument precision);
- ``std``: the standard deviation of the N minute means (ddof=1), the atmospheric variability
  within the hour.

The hourly output carries every statistic twice, as ICOS L2 does: without spikes (``mean``,
``std``, ``n``, ``repeatability``) and with them (``*_all``).

``u`` (issue 21): the standard uncertainty of the hourly mean of calibrated values, from each
minute's combined u (ghgnet.processing.uncertainty, set at the station). A minute's u holds a
random part (its repeatability, std_i / sqrt(n_i)) and a systematic part s_i = sqrt(u_i^2 -
std_i^2 / n_i) (calibration and water correction). The systematic part is the same error for every
minute of the hour that went through the same calibration, so it does not average down: the hour
keeps the root mean square of its minutes' s_i. The random part averages, as ``repeatability``
above. u = sqrt(mean(s_i^2) + repeatability^2) over the spike-free minutes (GUM, JCGM 100:2008,
eq. 10); NaN when any of them has no u (unknown is never taken as 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

HOUR_S = 3600
VALID_MINUTE_FLAGS = frozenset("UOR")
"""Minute flags whose values are used: U (valid, automatic QC), O (valid after manual QC),
R (valid: a manual decision on hourly data propagated back to the minutes)."""


def latest_seq_index(minute_key: np.ndarray, seq: np.ndarray) -> np.ndarray:
    """Indices of the rows to keep when a station resent a reprocessed minute under a new seq:
    per distinct `minute_key` (an integer code of station, device, time and stream) the row with
    the highest seq. Returned sorted by key."""
    minute_key = np.asarray(minute_key)
    seq = np.asarray(seq)
    if minute_key.size == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((seq, minute_key))  # by key, then seq ascending
    k = minute_key[order]
    last = np.ones(k.size, dtype=bool)
    last[:-1] = k[1:] != k[:-1]
    return order[last]


@dataclass(frozen=True, slots=True)
class HourlyStats:
    """One row per hour holding at least one valid minute. Units: those of the minute values."""

    hour_s: np.ndarray
    n: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    repeatability: np.ndarray
    n_all: np.ndarray
    mean_all: np.ndarray
    std_all: np.ndarray
    repeatability_all: np.ndarray
    n_spikes: np.ndarray
    u: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.hour_s.size)


def _grouped(idx: np.ndarray, size: int, x: np.ndarray, var: np.ndarray, w: np.ndarray):
    """Per-group count, mean, sample std (ddof=1) and propagated standard error, weights 0/1."""
    n = np.bincount(idx, weights=w, minlength=size)
    s = np.bincount(idx, weights=w * x, minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s / n
        dev = np.where(w > 0, x - mean[idx], 0.0)
        ss = np.bincount(idx, weights=w * dev * dev, minlength=size)
        std = np.where(n >= 2, np.sqrt(ss / (n - 1)), np.nan)
        sv = np.bincount(idx, weights=w * var, minlength=size)
        rep = np.sqrt(sv) / n
    return n.astype(np.int64), mean, std, rep


def hourly_stats(
    time_s: np.ndarray,
    value: np.ndarray,
    minute_std: np.ndarray,
    minute_n: np.ndarray,
    spike: np.ndarray | None = None,
    minute_u: np.ndarray | None = None,
) -> HourlyStats:
    """Hourly statistics of VALID minute values (select them before: calibrated, flag U/O/R, one
    row per minute after `latest_seq_index`). `spike` marks minutes found to be spikes: they are
    left out of `mean/std/n/repeatability` and kept in the `*_all` statistics. `minute_u`: each
    minute's standard uncertainty (NaN unknown); given, the result's `u` is the hour's (see the
    module docstring), else None.

    A minute without std or n (NaN / 0) counts in the mean but adds nothing to the repeatability.
    """
    time_s = np.asarray(time_s, dtype=np.int64)
    value = np.asarray(value, dtype=float)
    minute_std = np.asarray(minute_std, dtype=float)
    minute_n = np.asarray(minute_n, dtype=float)
    spike = np.zeros(time_s.size, dtype=bool) if spike is None else np.asarray(spike, dtype=bool)
    hours = time_s - np.mod(time_s, HOUR_S)
    uniq, idx = np.unique(hours, return_inverse=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.where((minute_n > 0) & np.isfinite(minute_std), minute_std**2 / minute_n, 0.0)
    all_w = np.ones(time_s.size)
    clean_w = (~spike).astype(float)
    n_all, mean_all, std_all, rep_all = _grouped(idx, uniq.size, value, var, all_w)
    n, mean, std, rep = _grouped(idx, uniq.size, value, var, clean_w)
    u = None
    if minute_u is not None:
        mu = np.asarray(minute_u, dtype=float)
        systematic2 = np.clip(np.nan_to_num(mu) ** 2 - var, 0.0, None)
        unknown = np.bincount(idx, weights=clean_w * ~np.isfinite(mu), minlength=uniq.size)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_s2 = np.bincount(idx, weights=clean_w * systematic2, minlength=uniq.size) / n
            u = np.where(unknown > 0, np.nan, np.sqrt(mean_s2 + rep**2))
    return HourlyStats(uniq, n, mean, std, rep, n_all, mean_all, std_all, rep_all, n_all - n, u)


def hourly_flag(n: np.ndarray, min_minutes: int) -> np.ndarray:
    """Automatic hourly flag: U (valid) with at least `min_minutes` spike-free minutes, else N."""
    return np.where(np.asarray(n) >= min_minutes, "U", "N")


def effective_minute_flags(station_flags: np.ndarray, covered: Sequence[np.ndarray],
                           letters: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Minute flags after the operators' manual decisions (ICOS: R/H are manual decisions on
    hourly data propagated back to the minutes), and which decision set each one.

    `covered[k]` is a boolean mask of the minutes decision k applies to (its time range, stream
    and species already matched by the caller), `letters[k]` its letter, decisions oldest first.
    A later decision overrides an earlier one: K makes a covered minute H; O makes it R when the
    station judged it valid (U/O/R) and gives back the station's own letter otherwise (a manual
    "valid" cannot repair a minute the station measured during a flush).

    Returns (letters, decided): `decided[i]` is the index of the decision that set minute i's
    letter, -1 where the station's own letter stands."""
    station = np.asarray(station_flags, dtype="<U1")
    out = station.copy()
    decided = np.full(station.size, -1, dtype=np.int64)
    station_valid = np.isin(station, list(VALID_MINUTE_FLAGS))
    for k, (mask, letter) in enumerate(zip(covered, letters)):
        mask = np.asarray(mask, dtype=bool)
        if letter == "K":
            out[mask] = "H"
            decided[mask] = k
        elif letter == "O":
            ok = mask & station_valid
            out[ok] = "R"
            decided[ok] = k
            back = mask & ~station_valid
            out[back] = station[back]
            decided[back] = -1
        else:
            raise ValueError(f"a manual flag is K or O, not {letter!r}")
    return out, decided


def local_hour_and_day(hour_s: np.ndarray, tz: str) -> tuple[np.ndarray, np.ndarray]:
    """Local clock hour (0-23) of each UTC hour start, and its local calendar day as days since
    1970-01-01 (so days group with integers). Offsets are looked up once per distinct UTC day and
    at both ends of it, so a DST change inside a day is honoured for whole-hour offsets."""
    hour_s = np.asarray(hour_s, dtype=np.int64)
    zone = ZoneInfo(tz)
    offsets = np.empty(hour_s.size, dtype=np.int64)
    cache: dict[int, int] = {}
    for i, t in enumerate(hour_s.tolist()):
        off = cache.get(t)
        if off is None:
            dt = datetime.fromtimestamp(t, UTC).astimezone(zone)
            off = cache[t] = int(dt.utcoffset().total_seconds())  # type: ignore[union-attr]
        offsets[i] = off
    local = hour_s + offsets
    return (np.mod(local, 86400) // HOUR_S).astype(np.int64), np.floor_divide(local, 86400)


@dataclass(frozen=True, slots=True)
class PeriodMeans:
    """Means of hourly means over periods: `period` is days since 1970 (daily) or a month code
    year*12 + month-1 (monthly); `std` is the std of the hourly means (ddof=1)."""

    period: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    n_hours: np.ndarray

    def __len__(self) -> int:
        return int(self.period.size)


def _period_means(period: np.ndarray, values: np.ndarray, min_hours: int) -> PeriodMeans:
    if period.size == 0:
        e = np.zeros(0)
        return PeriodMeans(e.astype(np.int64), e, e, e.astype(np.int64))
    uniq, idx = np.unique(period, return_inverse=True)
    n, mean, std, _ = _grouped(idx, uniq.size, values, np.zeros(values.size), np.ones(values.size))
    keep = n >= min_hours
    return PeriodMeans(uniq[keep], mean[keep], std[keep], n[keep])


def afternoon_means(
    hour_s: np.ndarray,
    mean: np.ndarray,
    valid: np.ndarray,
    tz: str,
    start_h: int = 12,
    end_h: int = 16,
    min_hours: int = 1,
) -> PeriodMeans:
    """Daily means of the valid hourly means whose local start hour h is start_h <= h < end_h
    (default 12-16 h: the four well-mixed afternoon hours 12:00 to 15:59 local time). Days are
    local calendar days (days since 1970); days with fewer than `min_hours` hours are left out."""
    hour_s = np.asarray(hour_s, dtype=np.int64)
    mean = np.asarray(mean, dtype=float)
    ok = np.asarray(valid, dtype=bool) & np.isfinite(mean)
    lh, day = local_hour_and_day(hour_s, tz)
    sel = ok & (lh >= start_h) & (lh < end_h)
    return _period_means(day[sel], mean[sel], min_hours)


def month_code(time_s: np.ndarray) -> np.ndarray:
    """year*12 + (month-1) of each UTC time."""
    months = np.asarray(time_s, dtype="datetime64[s]").astype("datetime64[M]").astype(np.int64)
    return months + 1970 * 12


def monthly_means(hour_s: np.ndarray, mean: np.ndarray, valid: np.ndarray, min_hours: int = 1) -> PeriodMeans:
    """Monthly (UTC calendar month) means of the valid hourly means."""
    hour_s = np.asarray(hour_s, dtype=np.int64)
    mean = np.asarray(mean, dtype=float)
    ok = np.asarray(valid, dtype=bool) & np.isfinite(mean)
    return _period_means(month_code(hour_s[ok]), mean[ok], min_hours)


def day_start(day: int) -> datetime:
    """The date (as midnight UTC datetime) of a day number since 1970."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=int(day))


def month_start(code: int) -> datetime:
    return datetime(int(code) // 12, int(code) % 12 + 1, 1, tzinfo=UTC)


def decimal_year(time_s: np.ndarray) -> np.ndarray:
    """Decimal date (year + fraction of the year elapsed) of UTC times, as in ICOS L2 files."""
    t = np.asarray(time_s, dtype="datetime64[s]")
    years = t.astype("datetime64[Y]")
    start = years.astype("datetime64[s]").astype(np.int64)
    end = (years + 1).astype("datetime64[s]").astype(np.int64)
    return years.astype(np.int64) + 1970 + (t.astype(np.int64) - start) / (end - start)


def completeness_per_day(time_s: np.ndarray, valid: np.ndarray, minutes_per_day: int = 1440):
    """Per UTC day: (day numbers, fraction of the day's minutes with a record, fraction with a
    valid ambient value). `time_s` holds one entry per distinct minute; `valid` whether that
    minute gave a valid ambient value."""
    time_s = np.asarray(time_s, dtype=np.int64)
    if time_s.size == 0:
        e = np.zeros(0)
        return e.astype(np.int64), e, e
    day = np.floor_divide(time_s, 86400)
    uniq, idx = np.unique(day, return_inverse=True)
    seen = np.bincount(idx, minlength=uniq.size)
    ok = np.bincount(idx, weights=np.asarray(valid, dtype=float), minlength=uniq.size)
    return uniq, seen / minutes_per_day, ok / minutes_per_day
