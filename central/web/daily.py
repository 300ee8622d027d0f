"""/api/hourly's answer for long windows: daily means computed in SQL from the hourly table, one row
per (stream, species, UTC day) instead of 24 (a year of a station is 2,200 rows, not 52,000).

Per day: `mean` is the mean of the day's valid hours (flag U or O), `std` the standard deviation of
those hourly means and `n` their number; `mean_all`/`n_all` the same over every hour with a mean.
`flag` is U when the day has a valid hour, else N (then `mean` is `mean_all`, drawn as flagged)."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from typing import Any

from ghgnet.timeutil import iso_utc

DAILY_AFTER_DAYS = 60
"""Windows longer than this many days are answered with daily means."""

VALID = "flag IN ('U', 'O') AND mean IS NOT NULL"


def _day_sql(store) -> str:
    # SQLite keeps times as ISO text (the day is its first 10 characters); PostgreSQL as timestamptz
    return "substr(hour, 1, 10)" if store.TIMES_AS_TEXT else "((hour AT TIME ZONE 'UTC')::date)"


def _finite(v: Any) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def _std(n: int, s: float | None, ss: float | None) -> float | None:
    """Sample standard deviation from the count, sum and sum of squares (None under 2 values)."""
    if n < 2 or s is None or ss is None:
        return None
    return math.sqrt(max(ss - s * s / n, 0.0) / (n - 1))


def daily_series(store, station: str, start: datetime, end: datetime, stream: str | None = None,
                 species: str | None = None) -> list[dict[str, Any]]:
    day = _day_sql(store)
    sql = (f"SELECT stream, species, {day} AS day, "
           f"SUM(CASE WHEN {VALID} THEN mean END), SUM(CASE WHEN {VALID} THEN mean * mean END), "
           f"COUNT(CASE WHEN {VALID} THEN 1 END), SUM(mean), COUNT(mean) "
           "FROM hourly WHERE station = ? AND hour >= ? AND hour < ?")
    params: list[Any] = [station, store._t(start), store._t(end)]
    for name, value in (("stream", stream), ("species", species)):
        if value is not None:
            sql += f" AND {name} = ?"
            params.append(value)
    sql += " GROUP BY stream, species, day ORDER BY stream, species, day"
    out: list[dict[str, Any]] = []
    key = None
    g: dict[str, Any] = {}
    for stream_, species_, d, s, ss, n, s_all, n_all in store._query(sql, params):
        if (stream_, species_) != key:
            key = (stream_, species_)
            g = {"stream": stream_, "species": species_, "time": [], "mean": [], "std": [], "n": [],
                 "mean_all": [], "n_all": [], "flag": []}
            out.append(g)
        d = d if isinstance(d, date) else date.fromisoformat(d)
        g["time"].append(iso_utc(datetime(d.year, d.month, d.day, tzinfo=UTC)))
        s, ss, s_all = _finite(s), _finite(ss), _finite(s_all)
        mean_all = s_all / n_all if n_all and s_all is not None else None
        g["mean"].append(s / n if n and s is not None else mean_all)
        g["std"].append(_std(n, s, ss))
        g["n"].append(n)
        g["mean_all"].append(mean_all)
        g["n_all"].append(n_all)
        g["flag"].append("U" if n else "N")
    return out
