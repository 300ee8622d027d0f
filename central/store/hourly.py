"""What central derives and decides: hourly aggregates, dirty hours, operators' manual flags.

Schema version 2 (appended to the migrations in sql.py). Shared by both SQL backends through
`HourlyStoreMixin`, which only uses the backend primitives of `SqlStore`.

Dirty hours: every minute record newly stored marks its (station, hour) dirty in the same
transaction (`_mark_dirty`), as does a manual flag over its range. A mark that arrives for an
hour already dirty bumps the row's `version`. The aggregator reads the dirty hours with their
versions, recomputes them and, in the same transaction, deletes only the marks whose version is
unchanged: a late record stored meanwhile keeps its hour dirty for the next pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .species import load_species

HOUR = timedelta(hours=1)
AGGREGATION_LOCK_KEY = 0x6768_676E_6574_01  # "ghgnet" + 1: PostgreSQL advisory lock of the aggregator


def floor_hour(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def migration_v2(types: dict[str, str]) -> list[str]:
    t = types
    return [
        f"""CREATE TABLE dirty_hour (
            station {t['text']} NOT NULL, hour {t['time']} NOT NULL,
            version {t['bigint']} NOT NULL DEFAULT 1, PRIMARY KEY (station, hour))""",
        f"""CREATE TABLE hourly (
            station {t['text']} NOT NULL, stream {t['text']} NOT NULL, species {t['text']} NOT NULL,
            hour {t['time']} NOT NULL, n {t['int']} NOT NULL, mean {t['real']}, std {t['real']},
            repeatability {t['real']}, n_all {t['int']} NOT NULL, mean_all {t['real']}, std_all {t['real']},
            repeatability_all {t['real']}, n_spikes {t['int']} NOT NULL, flag {t['text']} NOT NULL,
            computed_at {t['time']} NOT NULL, PRIMARY KEY (station, stream, species, hour))""",
        "CREATE INDEX hourly_time ON hourly (station, hour)",
        f"""CREATE TABLE manual_flag (
            id {t['autoid']}, station {t['text']} NOT NULL, time_from {t['time']} NOT NULL,
            time_to {t['time']} NOT NULL, flag {t['text']} NOT NULL, reason {t['text']} NOT NULL,
            operator {t['text']} NOT NULL, created_at {t['time']} NOT NULL, stream {t['text']},
            species {t['text']})""",
        "CREATE INDEX manual_flag_station ON manual_flag (station, time_from)",
    ]


@dataclass(frozen=True, slots=True)
class HourlyRow:
    """One hourly aggregate of one inlet stream and species, stamped at the start of the hour.
    Without spikes: n, mean, std (atmospheric variability), repeatability (propagated standard
    error); with spikes: the *_all fields. flag: U/N (automatic), O/K (after manual QC)."""

    station: str
    stream: str
    species: str
    hour: datetime
    n: int
    mean: float | None
    std: float | None
    repeatability: float | None
    n_all: int
    mean_all: float | None
    std_all: float | None
    repeatability_all: float | None
    n_spikes: int
    flag: str
    computed_at: datetime
    u: float | None = None
    """Standard uncertainty of `mean` (central/aggregation/hourly_stats.py: the systematic part of
    the minutes' u kept, the random part averaged), schema 9; None when a minute's u is unknown."""


def migration_hourly_u(types: dict[str, str]) -> list[str]:
    """Schema 9 (issue 21): the hourly mean's standard uncertainty, NULL on rows computed before."""
    return [f"ALTER TABLE hourly ADD COLUMN u {types['real']}"]


@dataclass(frozen=True, slots=True)
class ManualFlag:
    """An operator's decision over [time_from, time_to): K (invalid) or O (valid) after manual QC,
    optionally limited to one stream and/or species. Never edited: the audit trail."""

    id: int
    station: str
    time_from: datetime
    time_to: datetime
    flag: str
    reason: str
    operator: str
    created_at: datetime
    stream: str | None = None
    species: str | None = None
    reason_code: str | None = None
    """The flag's reason code (central/flags/reasons.py), schema 6; None on flags made before."""
    removed_by: str | None = None
    removed_at: datetime | None = None
    removal_reason: str | None = None
    """A removed flag no longer applies; it stays here, with who removed it, when and why."""

    @property
    def active(self) -> bool:
        return self.removed_at is None


def _none_if_nan(v: float | None) -> float | None:
    return None if v is None or v != v else float(v)


class HourlyStoreMixin:
    """Methods added to SqlStore (which supplies _execute, _query, _sql, _t, _from_t, ...)."""

    backend: str

    # -- dirty hours ---------------------------------------------------------------------------

    @staticmethod
    def _dirty_hours(times: Iterable[datetime], texts: Iterable[str] | None = None) -> list[datetime]:
        """The hours of `times` (or of `texts`, times in iso_utc's form), sorted, each once."""
        if texts is not None:  # the hour is the text's first 13 characters; text order is time order
            return [datetime.fromisoformat(h + ":00:00+00:00") for h in sorted({x[:13] for x in texts})]
        # once per stored minute: whole hours since the epoch, cheaper than flooring datetimes
        epoch_hours = sorted({t.timestamp() // 3600 for t in times})  # sorted: PG writers lock in one order
        return [datetime.fromtimestamp(h * 3600, UTC) for h in epoch_hours]

    def _mark_dirty(self, station: str, times: Iterable[datetime], texts: Iterable[str] | None = None) -> None:
        """Mark the hours of `times` dirty; or of `texts`, times in iso_utc's form, instead."""
        self._mark_dirty_many({station: self._dirty_hours(times, texts)})

    def _mark_dirty_many(self, hours: dict[str, list[datetime]]) -> None:
        """Mark dirty the hours of each station (`_dirty_hours`' lists): one statement, stations in
        order (PG writers lock in one order)."""
        rows = [(st, self._t(h)) for st in sorted(hours) for h in hours[st]]  # type: ignore[attr-defined]
        if not rows:
            return
        self._executemany(  # type: ignore[attr-defined]
            self._sql(  # type: ignore[attr-defined]
                "INSERT INTO dirty_hour (station, hour, version) VALUES (?, ?, 1) "
                "ON CONFLICT (station, hour) DO UPDATE SET version = dirty_hour.version + 1"
            ),
            rows,
        )

    def mark_dirty(self, station: str, start: datetime, end: datetime) -> int:
        """Mark every hour overlapping [start, end) dirty (e.g. to recompute after a config change)."""
        hours = hours_of(start, end)
        with self._transaction():
            self._mark_dirty(station, hours)
        return len(hours)

    def dirty_hours(self, limit: int = 1000) -> list[tuple[str, datetime, int]]:
        rows = self._query(  # type: ignore[attr-defined]
            "SELECT station, hour, version FROM dirty_hour ORDER BY station, hour LIMIT ?", (limit,))
        return [(r[0], self._from_t(r[1]), int(r[2])) for r in rows]  # type: ignore[attr-defined]

    @contextmanager
    def aggregation_transaction(self) -> Iterator[None]:
        """One aggregation pass: read dirty hours and minutes, write hourly rows, clear marks, as
        one transaction. Aggregators of several receivers on one PostgreSQL take turns through an
        advisory lock (ingest never takes it); SQLite's write lock serialises them anyway."""
        with self._transaction():
            if self.backend == "postgresql":
                self._execute("SELECT pg_advisory_xact_lock(%s)", (AGGREGATION_LOCK_KEY,))  # type: ignore[attr-defined]
            yield

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._begin()  # type: ignore[attr-defined]
        try:
            yield
            self._commit()  # type: ignore[attr-defined]
        except BaseException:
            self._rollback()  # type: ignore[attr-defined]
            raise

    def aggregation_minutes(self, station: str, start: datetime, end: datetime) -> list[tuple]:
        """Ambient (inlet:*) minute values with start <= time < end: rows of (rank, time, device,
        stream, flag, species, cal_mean, std, n, u) of each minute's latest version only
        (central/store/levels.py: a minute the station re-sent under a new seq, a reinstalled
        station's copy under a new store, or a central reprocess run's version supersedes the
        versions before it); `rank` is unique per minute, as the caller's latest-version pick wants."""
        t = self._t  # type: ignore[attr-defined]
        rows = self._query(  # type: ignore[attr-defined]
            "SELECT seq, time, device, stream, flag, species, received_at, store FROM minute "
            "WHERE station = ? AND time >= ? AND time < ? AND stream LIKE ?",
            (station, t(start), t(end), "inlet:%"),
        )
        runs = self._query(  # type: ignore[attr-defined]
            "SELECT time, device, stream, base_seq, base_store, run_id, flag, species FROM minute_version "
            "WHERE station = ? AND time >= ? AND time < ? AND stream LIKE ?",
            (station, t(start), t(end), "inlet:%"),
        )
        # the latest copy of each minute: received last, then the highest seq
        latest: dict[tuple, tuple] = {}
        for r in rows:
            key = (r[1], r[2], r[3])
            have = latest.get(key)
            if have is None or (r[6], r[0]) > (have[6], have[0]):
                latest[key] = r
        # a run's version supersedes the copy it was made from (the latest run of it wins)
        chosen: dict[tuple, tuple[str, str, Any]] = {k: (r[4], r[5], r[1]) for k, r in latest.items()}
        best_run: dict[tuple, int] = {}
        for v in runs:
            key = (v[0], v[1], v[2])
            copy = latest.get(key)
            if copy is None or (copy[0], copy[7]) != (v[3], v[4]) or v[5] < best_run.get(key, -1):
                continue
            best_run[key] = v[5]
            chosen[key] = (v[6], v[7], v[0])
        f = self._from_t  # type: ignore[attr-defined]
        out = []
        for rank, (key, (flag, species, time)) in enumerate(chosen.items()):
            tm = f(time)
            for sp, v in load_species(species).items():
                out.append((rank, tm, key[1], key[2], flag, sp, v.cal_mean, v.std, v.n, v.u))
        return out

    def replace_hourly(self, station: str, hours: Sequence[datetime], rows: Sequence[HourlyRow],
                       claimed: Sequence[tuple[datetime, int]]) -> int:
        """Within `aggregation_transaction`: replace the station's hourly rows of `hours` by `rows`
        and clear the dirty marks in `claimed` whose version is unchanged; returns marks cleared."""
        t = self._t  # type: ignore[attr-defined]
        ex = self._executemany  # type: ignore[attr-defined]
        versions = self._hour_versions(station, hours)  # type: ignore[attr-defined]
        self._archive_hours(station, hours, versions)  # type: ignore[attr-defined]
        ex(self._sql("DELETE FROM hourly WHERE station = ? AND hour = ?"),  # type: ignore[attr-defined]
           [(station, t(h)) for h in hours])
        if rows:
            ex(self._sql(  # type: ignore[attr-defined]
                "INSERT INTO hourly (station, stream, species, hour, n, mean, std, repeatability, n_all, "
                "mean_all, std_all, repeatability_all, n_spikes, flag, computed_at, u) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
                [(r.station, r.stream, r.species, t(r.hour), int(r.n), _none_if_nan(r.mean),
                  _none_if_nan(r.std), _none_if_nan(r.repeatability), int(r.n_all), _none_if_nan(r.mean_all),
                  _none_if_nan(r.std_all), _none_if_nan(r.repeatability_all), int(r.n_spikes), r.flag,
                  t(r.computed_at), _none_if_nan(r.u)) for r in rows])
            self._set_hour_versions(station, hours, versions)  # type: ignore[attr-defined]
        cleared = 0
        for h, version in claimed:
            cur = self._execute(  # type: ignore[attr-defined]
                self._sql("DELETE FROM dirty_hour WHERE station = ? AND hour = ? AND version = ?"),  # type: ignore[attr-defined]
                (station, t(h), version))
            cleared += max(cur.rowcount, 0)
        return cleared

    def hourly(self, station: str, start: datetime, end: datetime, stream: str | None = None,
               species: str | None = None) -> list[HourlyRow]:
        """Hourly rows with start <= hour < end, ordered by stream, species, hour."""
        sql = ("SELECT stream, species, hour, n, mean, std, repeatability, n_all, mean_all, std_all, "
               "repeatability_all, n_spikes, flag, computed_at, u FROM hourly "
               "WHERE station = ? AND hour >= ? AND hour < ?")
        params: list[Any] = [station, self._t(start), self._t(end)]  # type: ignore[attr-defined]
        if stream is not None:
            sql += " AND stream = ?"
            params.append(stream)
        if species is not None:
            sql += " AND species = ?"
            params.append(species)
        f = self._from_t  # type: ignore[attr-defined]
        rows = self._query(sql + " ORDER BY stream, species, hour", params)  # type: ignore[attr-defined]
        return [HourlyRow(station, r[0], r[1], f(r[2]), *r[3:13], f(r[13]), r[14]) for r in rows]

    def hourly_series(self, station: str) -> list[tuple[str, str]]:
        """(stream, species) pairs with hourly data."""
        rows = self._query(  # type: ignore[attr-defined]
            "SELECT DISTINCT stream, species FROM hourly WHERE station = ?", (station,))
        return sorted((r[0], r[1]) for r in rows)

    # -- manual flags --------------------------------------------------------------------------

    def add_manual_flag(self, station: str, time_from: datetime, time_to: datetime, flag: str, reason: str,
                        operator: str, created_at: datetime, stream: str | None = None,
                        species: str | None = None, reason_code: str | None = None) -> int:
        """Record an operator's flag (audit trail) and mark its hours dirty, in one transaction."""
        if flag not in ("K", "O"):
            raise ValueError(f"a manual flag is K (invalid) or O (valid), not {flag!r}")
        if time_to <= time_from:
            raise ValueError("time_to must be after time_from")
        if not reason.strip():
            raise ValueError("a manual flag needs a reason")
        t = self._t  # type: ignore[attr-defined]
        with self._transaction():
            cur = self._execute(  # type: ignore[attr-defined]
                self._sql(  # type: ignore[attr-defined]
                    "INSERT INTO manual_flag (station, time_from, time_to, flag, reason, operator, created_at, "
                    "stream, species, reason_code) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"),
                (station, t(time_from), t(time_to), flag, reason, operator, t(created_at), stream, species,
                 reason_code))
            flag_id = int(cur.fetchone()[0])
            self._mark_dirty(station, hours_of(time_from, time_to))
        return flag_id

    def manual_flags(self, station: str | None = None, start: datetime | None = None,
                     end: datetime | None = None, include_removed: bool = False) -> list[ManualFlag]:
        """Flags (oldest first) of one or every station, overlapping [start, end) when given; the
        flags in force only, unless `include_removed` (the whole audit trail)."""
        sql = ("SELECT id, station, time_from, time_to, flag, reason, operator, created_at, stream, species, "
               "reason_code, removed_by, removed_at, removal_reason FROM manual_flag WHERE 1 = 1")
        params: list[Any] = []
        if not include_removed:
            sql += " AND removed_at IS NULL"
        if station is not None:
            sql += " AND station = ?"
            params.append(station)
        if end is not None:
            sql += " AND time_from < ?"
            params.append(self._t(end))  # type: ignore[attr-defined]
        if start is not None:
            sql += " AND time_to > ?"
            params.append(self._t(start))  # type: ignore[attr-defined]
        f = self._from_t  # type: ignore[attr-defined]
        rows = self._query(sql + " ORDER BY id", params)  # type: ignore[attr-defined]
        return [ManualFlag(r[0], r[1], f(r[2]), f(r[3]), r[4], r[5], r[6], f(r[7]), r[8], r[9], r[10], r[11],
                           None if r[12] is None else f(r[12]), r[13]) for r in rows]

    # -- health inputs -------------------------------------------------------------------------

    def minute_presence(self, station: str, start: datetime, end: datetime) -> list[tuple[datetime, str, str]]:
        """(time, stream, flag) of every minute record in [start, end), for completeness."""
        rows = self._query(  # type: ignore[attr-defined]
            "SELECT time, stream, flag FROM minute WHERE station = ? AND time >= ? AND time < ?",
            (station, self._t(start), self._t(end)))  # type: ignore[attr-defined]
        f = self._from_t  # type: ignore[attr-defined]
        return [(f(r[0]), r[1], r[2]) for r in rows]

    def latest_minute_time(self, station: str) -> datetime | None:
        rows = self._query("SELECT max(time) FROM minute WHERE station = ?", (station,))  # type: ignore[attr-defined]
        return None if not rows or rows[0][0] is None else self._from_t(rows[0][0])  # type: ignore[attr-defined]


def hours_of(start: datetime, end: datetime) -> list[datetime]:
    """The hours (their starts) overlapping [start, end)."""
    out, h = [], floor_hour(start)
    while h < end:
        out.append(h)
        h += HOUR
    return out
