"""/api/hourly's answer for long windows: daily means, one row per (stream, species, UTC day)
instead of 24 (a year of a station is 2,200 rows, not 52,000), read from the daily table the
aggregator keeps (central/store/daily.py), the partial days at the window's ends summed from the
hourly table, in one query.

Per day: `mean` is the mean of the day's valid hours (flag U or O), `std` the standard deviation of
those hourly means and `n` their number; `mean_all`/`n_all` the same over every hour with a mean.
`flag` is U when the day has a valid hour, else N (then `mean` is `mean_all`, drawn as flagged)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from ghgnet.timeutil import iso_utc

DAILY_AFTER_DAYS = 60
"""Windows longer than this many days are answered with daily means."""


def _finite(v: Any) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def _std(n: int, s: float | None, ss: float | None) -> float | None:
    """Sample standard deviation from the count, sum and sum of squares (None under 2 values)."""
    if n < 2 or s is None or ss is None:
        return None
    return math.sqrt(max(ss - s * s / n, 0.0) / (n - 1))


def daily_series(store, station: str, start: datetime, end: datetime, stream: str | None = None,
                 species: str | None = None, from_table: bool = True) -> list[dict[str, Any]]:
    """The daily means of the station's hours in [start, end) by (stream, species); `from_table`
    False sums every day from the hourly table instead (the answer before the daily table: the
    tests and the benchmark compare the two)."""
    out: list[dict[str, Any]] = []
    key = None
    g: dict[str, Any] = {}
    texts: dict[Any, str] = {}
    for stream_, species_, d, s, ss, n, s_all, n_all in store.daily_sums(station, start, end, stream, species,
                                                                          from_table=from_table):
        if (stream_, species_) != key:
            key = (stream_, species_)
            g = {"stream": stream_, "species": species_, "time": [], "mean": [], "std": [], "n": [],
                 "mean_all": [], "n_all": [], "flag": []}
            out.append(g)
        t = texts.get(d)
        if t is None:
            t = texts[d] = iso_utc(store._from_t(d))
        g["time"].append(t)
        s, ss, s_all = _finite(s), _finite(ss), _finite(s_all)
        mean_all = s_all / n_all if n_all and s_all is not None else None
        g["mean"].append(s / n if n and s is not None else mean_all)
        g["std"].append(_std(n, s, ss))
        g["n"].append(n)
        g["mean_all"].append(mean_all)
        g["n_all"].append(n_all)
        g["flag"].append("U" if n else "N")
    return out
