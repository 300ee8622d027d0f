"""Daily sums of the hourly table, kept by the aggregator: what long windows are drawn from.

One row per (station, stream, species, UTC day): the count, sum and sum of squares of the day's
valid hourly means (flag U or O, mean not null) and the count and sum of every hourly mean. Means
and standard deviations are derived when read (central/web/daily.py), so a row is a plain sum that
the aggregator can rebuild from the hourly table at any time and get the same answer.

Kept fresh by `refresh_daily`, called by the aggregator (central/aggregation/worker.py) in the
transaction that replaces the hours it recomputed: the days those hours fall in are summed again
from the hourly table. The migration that makes the table fills it from the hourly rows already
stored. Shared by both SQL backends through `DailyStoreMixin`, which uses the primitives of
`SqlStore`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

DAY = timedelta(days=1)

VALID = "flag IN ('U', 'O') AND mean IS NOT NULL"
"""An hour that counts in the day's valid mean."""

_SUMS = (f"SUM(CASE WHEN {VALID} THEN mean END), SUM(CASE WHEN {VALID} THEN mean * mean END), "
         f"COUNT(CASE WHEN {VALID} THEN 1 END), SUM(mean), COUNT(mean)")
"""The sums of a group of hourly rows, in the order of the daily table's value columns."""

DAILY_VALUES = ("mean_sum", "mean_sq_sum", "n", "mean_all_sum", "n_all")


def migration_daily(types: dict[str, str]) -> list[str | Callable[[Any], None]]:
    """The daily table, filled from the hourly rows already stored (append-only: never edit once released)."""
    t = types
    return [
        f"""CREATE TABLE daily (
            station {t['text']} NOT NULL, stream {t['text']} NOT NULL, species {t['text']} NOT NULL,
            day {t['time']} NOT NULL, mean_sum {t['real']}, mean_sq_sum {t['real']}, n {t['int']} NOT NULL,
            mean_all_sum {t['real']}, n_all {t['int']} NOT NULL, PRIMARY KEY (station, day, stream, species))""",
        lambda store: store._execute(
            f"INSERT INTO daily (station, stream, species, day, {', '.join(DAILY_VALUES)}) "
            f"SELECT station, stream, species, {store._day_of('hour')}, {_SUMS} FROM hourly "
            f"GROUP BY station, stream, species, {store._day_of('hour')}"),
    ]


def floor_day(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def ceil_day(t: datetime) -> datetime:
    f = floor_day(t)
    return f if f == t else f + DAY


class DailyStoreMixin:
    """Methods added to SqlStore (which supplies _execute, _query, _sql, _t, TIMES_AS_TEXT)."""

    TIMES_AS_TEXT: bool

    def _day_of(self, column: str) -> str:
        """SQL: the start of the UTC day of a time column, as the backend keeps times."""
        if self.TIMES_AS_TEXT:  # iso_utc text: the day is its first 10 characters
            return f"(substr({column}, 1, 10) || 'T00:00:00.000Z')"
        return f"(date_trunc('day', {column} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')"

    def refresh_daily(self, station: str, hours: Sequence[datetime]) -> None:
        """Within the aggregation transaction: sum again, from the hourly table, the station's days
        holding `hours` (sorted)."""
        if not hours:
            return
        t = self._t  # type: ignore[attr-defined]
        days = sorted({floor_day(h) for h in hours})
        spans: list[list[datetime]] = []  # runs of consecutive days, each one delete and one insert
        for d in days:
            if spans and d - spans[-1][1] <= DAY:
                spans[-1][1] = d
            else:
                spans.append([d, d])
        for first, last in spans:
            start, end = t(first), t(last + DAY)
            self._execute(  # type: ignore[attr-defined]
                self._sql("DELETE FROM daily WHERE station = ? AND day >= ? AND day < ?"),  # type: ignore[attr-defined]
                (station, start, end))
            self._execute(self._sql(  # type: ignore[attr-defined]
                f"INSERT INTO daily (station, stream, species, day, {', '.join(DAILY_VALUES)}) "
                f"SELECT station, stream, species, {self._day_of('hour')}, {_SUMS} FROM hourly "
                f"WHERE station = ? AND hour >= ? AND hour < ? GROUP BY station, stream, species, "
                f"{self._day_of('hour')}"), (station, start, end))

    def daily_sums(self, station: str, start: datetime, end: datetime, stream: str | None = None,
                   species: str | None = None, from_table: bool = True) -> list[tuple]:
        """Per (stream, species, UTC day) with hours in [start, end): (stream, species, day start,
        mean_sum, mean_sq_sum, n, mean_all_sum, n_all), ordered by stream, species, day. One query:
        whole days from the daily table, the partial days at either end summed from the hourly
        table (`from_table=False`: every day summed from the hourly table, as before the table)."""
        t = self._t  # type: ignore[attr-defined]
        where, params = "", []
        for name, value in (("stream", stream), ("species", species)):
            if value is not None:
                where += f" AND {name} = ?"
                params.append(value)
        hourly = (f"SELECT stream, species, {self._day_of('hour')} AS day, {_SUMS} FROM hourly "
                  "WHERE station = ? AND {hours}" + where + f" GROUP BY stream, species, {self._day_of('hour')}")
        first, last = ceil_day(start), floor_day(end)  # the whole days inside the window
        if not from_table or first >= last:
            sql = hourly.format(hours="hour >= ? AND hour < ?")
            args = [station, t(start), t(end), *params]
        else:
            sql = (f"SELECT stream, species, day, {', '.join(DAILY_VALUES)} FROM daily "
                   "WHERE station = ? AND day >= ? AND day < ?" + where + " UNION ALL "
                   + hourly.format(hours="((hour >= ? AND hour < ?) OR (hour >= ? AND hour < ?))"))
            args = [station, t(first), t(last), *params, station, t(start), t(first), t(last), t(end), *params]
        return self._query(sql + " ORDER BY 1, 2, 3", args)  # type: ignore[attr-defined]
