"""Versioned data levels: a minute's and an hour's near-real-time and reprocessed versions.

Schema (appended to the migrations in sql.py). The `minute` table stays the ledger of what the
stations sent (keyed by station, store, seq: exactly once, acknowledged); versions are read over it.

A minute is identified by (station, device, time, stream). Its versions, oldest first:

- every copy the station sent (`minute` rows), in the order central received them (received_at,
  then seq): the first is the near-real-time (nrt) version; a copy the station re-sent after its
  `recalibrate` (a new seq, same device, time and stream) is a later version, not a second minute;
- every version a central reprocess run made (`minute_version` rows, central/reprocess/), placed
  right after the station copy it was made from (`base_seq`, `base_store`: the latest one when the
  run read it), runs in id order.

A version's number is its place in that order, from 1 (nrt). Numbers are stable: a new copy or run
only ever comes last (central's receive times and run ids grow). `latest` is the last version: a
station copy re-sent after a central reprocess is newer than it and wins (the station's own
recalibration, with the station's cylinder values: reprocess again at central to override it).

An hour's version (the `hourly` row, per stream and species) is the highest version among the
minutes of its stream and hour: an hour of nrt minutes only is version 1; an hour with one minute
re-sent by the station or reprocessed at central takes that minute's number. The `hourly` table holds
each hour's current (latest) version, recomputed in place while its version stays (late minutes,
manual flags); when an hour's version changes, the row it replaces moves to `hourly_version`, kept
as it was (never edited), so the nrt hour and every reprocessed hour stay readable. An hour is kept
in the versions it was aggregated in: one whose minutes were re-sent before the aggregator first
saw it has no version 1 to read (its minutes' nrt versions still are).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from .base import StoredMinute, dumps, store_key, store_name
from .hourly import HOUR, HourlyRow, floor_hour
from .species import load_species

Level = Literal["nrt", "latest", "all"]
LEVELS: tuple[str, ...] = ("nrt", "latest", "all")
STATION_PROCESSING = "station"
"""The processing of a version the station made (its near-real-time processing or `recalibrate`)."""

HOURLY_STATS = ("n", "mean", "std", "repeatability", "n_all", "mean_all", "std_all", "repeatability_all",
                "n_spikes", "flag", "computed_at")
HOURLY_VERSION_COLUMNS = ("version", "processing", "calibration_ids", "run_id", "u")


def migration_levels(types: dict[str, str]) -> list[str]:
    """The steps of the data-levels schema (append-only: never edit once released)."""
    t = types
    return [
        f"""CREATE TABLE reprocess_run (
            id {t['autoid']}, station {t['text']} NOT NULL, time_from {t['time']} NOT NULL,
            time_to {t['time']} NOT NULL, reason {t['text']} NOT NULL, operator {t['text']} NOT NULL,
            processing {t['text']} NOT NULL, cylinders {t['json']} NOT NULL, created_at {t['time']} NOT NULL,
            minutes {t['bigint']} NOT NULL DEFAULT 0, hours {t['bigint']} NOT NULL DEFAULT 0,
            summary {t['json']} NOT NULL DEFAULT '{{}}')""",
        "CREATE INDEX reprocess_run_station ON reprocess_run (station, time_from)",
        f"""CREATE TABLE minute_version (
            station {t['text']} NOT NULL, device {t['text']} NOT NULL, time {t['time']} NOT NULL,
            stream {t['text']} NOT NULL, run_id {t['bigint']} NOT NULL, base_seq {t['bigint']} NOT NULL,
            base_store {t['text']} NOT NULL, flag {t['text']} NOT NULL, reasons {t['json']} NOT NULL,
            calibration_id {t['text']}, calibration_ids {t['json']} NOT NULL, species {t['json']} NOT NULL,
            PRIMARY KEY (station, device, time, stream, run_id))""",
        "CREATE INDEX minute_version_time ON minute_version (station, time)",
        f"ALTER TABLE hourly ADD COLUMN version {t['int']} NOT NULL DEFAULT 1",
        f"ALTER TABLE hourly ADD COLUMN processing {t['text']} NOT NULL DEFAULT '{STATION_PROCESSING}'",
        f"ALTER TABLE hourly ADD COLUMN calibration_ids {t['json']} NOT NULL DEFAULT '[]'",
        f"ALTER TABLE hourly ADD COLUMN run_id {t['bigint']}",
        f"""CREATE TABLE hourly_version (
            station {t['text']} NOT NULL, stream {t['text']} NOT NULL, species {t['text']} NOT NULL,
            hour {t['time']} NOT NULL, n {t['int']} NOT NULL, mean {t['real']}, std {t['real']},
            repeatability {t['real']}, n_all {t['int']} NOT NULL, mean_all {t['real']}, std_all {t['real']},
            repeatability_all {t['real']}, n_spikes {t['int']} NOT NULL, flag {t['text']} NOT NULL,
            computed_at {t['time']} NOT NULL, version {t['int']} NOT NULL, processing {t['text']} NOT NULL,
            calibration_ids {t['json']} NOT NULL, run_id {t['bigint']}, u {t['real']},
            PRIMARY KEY (station, stream, species, hour, version))""",
        "CREATE INDEX hourly_version_time ON hourly_version (station, hour)",
    ]


@dataclass(frozen=True, slots=True)
class MinuteVersion(StoredMinute):
    """One version of a minute: the station's record fields (for a central version: its own
    values, flag, reasons and calibration, with the rest of the station copy it was made from:
    `seq`, `store`, `received_at`, `h2o`, `n_total`, `diagnostics`) and where the version comes from."""

    version: int = 1
    """1: near real time; higher: reprocessed (module docstring)."""
    latest: bool = True
    processing: str = STATION_PROCESSING
    """"station", or the central reprocess's processing version (central/reprocess/)."""
    calibration_ids: tuple[str, ...] = ()
    """The calibrations whose coefficients made the values (two when interpolated between them)."""
    made_at: datetime | None = None
    """When central received the station copy, or when the reprocess run made the version."""
    run_id: int | None = None
    """The reprocess run that made it (None: a station copy)."""
    reason: str | None = None
    """Why the run was made (the operator's words)."""


def calibration_ids_of(calibration_id: str | None) -> tuple[str, ...]:
    """The calibrations named in a minute's calibration id: the station writes `A~B` for
    coefficients interpolated between A and B (station_agent/storage/calibration_results.py)."""
    return tuple(calibration_id.split("~")) if calibration_id else ()


@dataclass(frozen=True, slots=True)
class ReprocessRun:
    id: int
    station: str
    time_from: datetime
    time_to: datetime
    reason: str
    operator: str
    processing: str
    cylinders: list[dict[str, Any]]
    created_at: datetime
    minutes: int
    hours: int
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NewMinuteVersion:
    """A version a reprocess run writes: the minute's key, the station copy it was made from, and
    its values (species as `species_json` objects: mean, std, n, raw_mean, cal_mean)."""

    device: str
    time: datetime
    stream: str
    base_seq: int
    base_store: str | None
    flag: str
    reasons: Sequence[str]
    calibration_ids: Sequence[str]
    species: dict[str, dict[str, Any]]


def order_versions(copies: Sequence[Sequence[Any]], central: Sequence[Sequence[Any]]) -> list[tuple[str, int]]:
    """The version order of one minute (module docstring), pure: `copies` the station copies as
    (received_at as the store keeps it, seq, store as kept, ...), `central` the central versions as
    (base_seq, base_store as kept, run_id, ...); returns ("copy", i) / ("run", j) indices in version order."""
    ranked = sorted(range(len(copies)), key=lambda i: (copies[i][0], copies[i][1]))
    where = {(copies[i][1], copies[i][2]): k for k, i in enumerate(ranked)}
    keys: list[tuple[tuple[int, int, int], tuple[str, int]]] = [((k, 0, 0), ("copy", i)) for k, i in enumerate(ranked)]
    for j, c in enumerate(central):
        keys.append(((where.get((c[0], c[1]), len(ranked)), 1, c[2]), ("run", j)))
    return [v for _, v in sorted(keys)]


class LevelsStoreMixin:
    """Methods added to SqlStore (which supplies _execute, _query, _sql, _t, _from_t, ...)."""

    def _versions(self, station: str, start: datetime, end: datetime, inlets_only: bool = False
                  ) -> list[MinuteVersion]:
        """Every version of every minute of the station with start <= time < end, each minute's in
        version order, minutes in (time, device, stream) order."""
        q, t, f = self._query, self._t, self._from_t  # type: ignore[attr-defined]
        cond = " AND stream LIKE ?" if inlets_only else ""
        extra: tuple = ("inlet:%",) if inlets_only else ()
        rows = q("SELECT seq, time, device, stream, h2o, flag, reasons, n_total, calibration_id, diagnostics, "
                 "received_at, species, store FROM minute WHERE station = ? AND time >= ? AND time < ?" + cond,
                 (station, t(start), t(end), *extra))
        runs = q("SELECT device, time, stream, run_id, base_seq, base_store, flag, reasons, calibration_id, "
                 "calibration_ids, species FROM minute_version WHERE station = ? AND time >= ? AND time < ?" + cond,
                 (station, t(start), t(end), *extra))
        copies: dict[tuple, list[tuple]] = {}
        for r in rows:
            copies.setdefault((r[1], r[2], r[3]), []).append(r)
        central: dict[tuple, list[tuple]] = {}
        for r in runs:
            central.setdefault((r[1], r[0], r[2]), []).append(r)
        run_info = self._run_info(sorted({r[3] for r in runs})) if runs else {}
        out: list[MinuteVersion] = []
        for key in sorted(copies, key=lambda k: (f(k[0]), k[1], k[2])):
            mine, made = copies[key], central.get(key, [])
            order = order_versions([(r[10], r[0], r[12]) for r in mine], [(r[4], r[5], r[3]) for r in made])
            by_seq = {(r[0], r[12]): r for r in mine}
            for n, (kind, i) in enumerate(order, start=1):
                last = n == len(order)
                if kind == "copy":
                    r = mine[i]
                    out.append(MinuteVersion(
                        station=station, seq=r[0], time=f(r[1]), device=r[2], stream=r[3],
                        species=load_species(r[11]), h2o=r[4], flag=r[5], reasons=json.loads(r[6]), n_total=r[7],
                        calibration_id=r[8], diagnostics=json.loads(r[9]), received_at=f(r[10]),
                        store=store_name(r[12]), version=n, latest=last, calibration_ids=calibration_ids_of(r[8]),
                        made_at=f(r[10])))
                else:
                    v = made[i]
                    base = by_seq.get((v[4], v[5])) or mine[-1]
                    run = run_info.get(v[3])
                    out.append(MinuteVersion(
                        station=station, seq=base[0], time=f(base[1]), device=base[2], stream=base[3],
                        species=load_species(v[10]), h2o=base[4], flag=v[6], reasons=json.loads(v[7]),
                        n_total=base[7], calibration_id=v[8], diagnostics=json.loads(base[9]),
                        received_at=f(base[10]), store=store_name(base[12]), version=n, latest=last,
                        processing=run.processing if run else "central", calibration_ids=tuple(json.loads(v[9])),
                        made_at=run.created_at if run else None, run_id=v[3], reason=run.reason if run else None))
        return out

    def minute_versions(self, station: str, start: datetime, end: datetime, level: str = "latest"
                        ) -> Iterator[MinuteVersion]:
        """The minutes of [start, end) at `level`: "latest" (each minute's last version), "nrt"
        (its first) or "all" (every version, oldest first); time, device, stream order."""
        if level not in LEVELS:
            raise ValueError(f"version {level!r}: choose one of {', '.join(LEVELS)}")
        for m in self._versions(station, start, end):
            if level == "all" or (level == "nrt" and m.version == 1) or (level == "latest" and m.latest):
                yield m

    def _run_info(self, ids: list[int]) -> dict[int, ReprocessRun]:
        if not ids:
            return {}
        marks = ", ".join("?" * len(ids))
        return {r.id: r for r in self._reprocess_runs(f" WHERE id IN ({marks})", ids)}

    def _reprocess_runs(self, where: str, params: Sequence[Any]) -> list[ReprocessRun]:
        f = self._from_t  # type: ignore[attr-defined]
        rows = self._query(  # type: ignore[attr-defined]
            "SELECT id, station, time_from, time_to, reason, operator, processing, cylinders, created_at, minutes, "
            "hours, summary FROM reprocess_run" + where + " ORDER BY id", params)
        return [ReprocessRun(r[0], r[1], f(r[2]), f(r[3]), r[4], r[5], r[6], json.loads(r[7]), f(r[8]), r[9], r[10],
                             json.loads(r[11])) for r in rows]

    def reprocess_runs(self, station: str | None = None) -> list[ReprocessRun]:
        """The reprocess runs (of one station), oldest first."""
        if station is None:
            return self._reprocess_runs("", ())
        return self._reprocess_runs(" WHERE station = ?", (station,))

    def add_reprocess_run(self, station: str, time_from: datetime, time_to: datetime, reason: str, operator: str,
                          processing: str, cylinders: list[dict[str, Any]], created_at: datetime,
                          versions: Sequence[NewMinuteVersion]) -> int:
        """Record a run and its minute versions, marking their hours dirty, in one transaction;
        returns the run's id. Hourly versions follow when the hours are aggregated again."""
        t = self._t  # type: ignore[attr-defined]
        with self._transaction():  # type: ignore[attr-defined]
            cur = self._execute(self._sql(  # type: ignore[attr-defined]
                "INSERT INTO reprocess_run (station, time_from, time_to, reason, operator, processing, cylinders, "
                "created_at, minutes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"),
                (station, t(time_from), t(time_to), reason, operator, processing, dumps(cylinders), t(created_at),
                 len(versions)))
            run_id = int(cur.fetchone()[0])
            if versions:
                self._executemany(self._sql(  # type: ignore[attr-defined]
                    "INSERT INTO minute_version (station, device, time, stream, run_id, base_seq, base_store, flag, "
                    "reasons, calibration_id, calibration_ids, species) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
                    [(station, v.device, t(v.time), v.stream, run_id, v.base_seq, store_key(v.base_store), v.flag,
                      dumps(list(v.reasons)), "~".join(v.calibration_ids) or None, dumps(list(v.calibration_ids)),
                      json.dumps(v.species, separators=(",", ":"), allow_nan=False)) for v in versions])
                self._mark_dirty(station, [v.time for v in versions])  # type: ignore[attr-defined]
        return run_id

    def finish_reprocess_run(self, run_id: int, hours: int, summary: dict[str, Any]) -> None:
        with self._transaction():  # type: ignore[attr-defined]
            self._execute(self._sql("UPDATE reprocess_run SET hours = ?, summary = ? WHERE id = ?"),  # type: ignore[attr-defined]
                          (hours, dumps(summary), run_id))

    # -- hourly versions -----------------------------------------------------------------------

    def _hour_versions(self, station: str, hours: Sequence[datetime]) -> dict[tuple[str, datetime], tuple]:
        """Per (inlet stream, hour) of `hours`: (version, processing, calibration ids, run id) of the
        hour as its minutes' latest versions make it (module docstring). A minute's latest version
        is its last, so its number is the count of its versions; nothing but keys and ids is read
        (this runs in every aggregation pass)."""
        out: dict[tuple[str, datetime], tuple] = {}
        if not hours:
            return out
        q, t, f = self._query, self._t, self._from_t  # type: ignore[attr-defined]
        window = (station, t(min(hours)), t(max(hours) + HOUR), "inlet:%")
        copies: dict[tuple, list[tuple]] = {}
        for r in q("SELECT time, device, stream, received_at, seq, store, calibration_id FROM minute "
                   "WHERE station = ? AND time >= ? AND time < ? AND stream LIKE ?", window):
            copies.setdefault(r[:3], []).append(r[3:])
        made: dict[tuple, list[tuple]] = {}
        for r in q("SELECT time, device, stream, base_seq, base_store, run_id, calibration_ids FROM minute_version "
                   "WHERE station = ? AND time >= ? AND time < ? AND stream LIKE ?", window):
            made.setdefault(r[:3], []).append(r[3:])
        runs = self._run_info(sorted({v[2] for vs in made.values() for v in vs}))
        cal: dict[tuple[str, datetime], set[str]] = {}
        hour_of: dict[Any, datetime] = {}
        for key, mine in copies.items():
            central = made.get(key, [])
            kind, i = order_versions(mine, central)[-1] if central or len(mine) > 1 else ("copy", 0)
            if kind == "copy":
                ids, run_id, processing = calibration_ids_of(mine[i][3]), None, STATION_PROCESSING
            else:
                run_id = central[i][2]
                ids, processing = tuple(json.loads(central[i][3])), runs[run_id].processing
            version = len(mine) + len(central)
            # an hour per distinct hour text (SQLite keeps iso_utc text: the hour is its first 13 characters)
            stamp = key[0][:13] if isinstance(key[0], str) else key[0].replace(minute=0, second=0, microsecond=0)
            hour = hour_of.get(stamp)
            if hour is None:
                hour = hour_of[stamp] = floor_hour(f(key[0]))
            hk = (key[2], hour)
            cal.setdefault(hk, set()).update(ids)
            have = out.get(hk)
            if have is None or (version, run_id or 0) > (have[0], have[3] or 0):
                out[hk] = (version, processing, (), run_id)
        return {k: (v[0], v[1], tuple(sorted(cal[k])), v[3]) for k, v in out.items()}

    def _archive_hours(self, station: str, hours: Sequence[datetime], versions: dict[tuple[str, datetime], tuple]
                       ) -> None:
        """Keep in `hourly_version` the hourly rows of `hours` whose version is about to change."""
        t = self._t  # type: ignore[attr-defined]
        cols = ("stream", "species", "hour", *HOURLY_STATS, *HOURLY_VERSION_COLUMNS)
        moving = []
        for h in hours:
            for r in self._query(f"SELECT {', '.join(cols)} FROM hourly WHERE station = ? AND hour = ?",  # type: ignore[attr-defined]
                                 (station, t(h))):
                new = versions.get((r[0], h))
                if new is None or new[0] != r[cols.index("version")]:
                    moving.append((station, *r))
        if moving:
            marks = ", ".join("?" * (len(cols) + 1))
            self._executemany(self._sql(  # type: ignore[attr-defined]
                f"INSERT INTO hourly_version (station, {', '.join(cols)}) VALUES ({marks}) "
                "ON CONFLICT DO NOTHING"), moving)

    def _set_hour_versions(self, station: str, hours: Sequence[datetime],
                           versions: dict[tuple[str, datetime], tuple]) -> None:
        t = self._t  # type: ignore[attr-defined]
        wanted = set(hours)
        rows = [(v[0], v[1], dumps(list(v[2])), v[3], station, stream, t(h))
                for (stream, h), v in versions.items() if h in wanted]
        if rows:
            self._executemany(self._sql(  # type: ignore[attr-defined]
                "UPDATE hourly SET version = ?, processing = ?, calibration_ids = ?, run_id = ? "
                "WHERE station = ? AND stream = ? AND hour = ?"), rows)

    def hourly_versions(self, station: str, start: datetime, end: datetime, level: str = "latest",
                        stream: str | None = None, species: str | None = None) -> list[HourlyVersion]:
        """Hourly rows of [start, end) at `level` ("latest": the current rows; "nrt": each hour's
        version 1, kept or current; "all": every version), ordered by stream, species, hour, version."""
        if level not in LEVELS:
            raise ValueError(f"version {level!r}: choose one of {', '.join(LEVELS)}")
        cols = ("stream", "species", "hour", *HOURLY_STATS, *HOURLY_VERSION_COLUMNS)
        cond, params = "station = ? AND hour >= ? AND hour < ?", [station, self._t(start), self._t(end)]  # type: ignore[attr-defined]
        for name, value in (("stream", stream), ("species", species)):
            if value is not None:
                cond += f" AND {name} = ?"
                params.append(value)
        current = self._query(f"SELECT {', '.join(cols)} FROM hourly WHERE {cond}", params)  # type: ignore[attr-defined]
        kept = [] if level == "latest" else self._query(  # type: ignore[attr-defined]
            f"SELECT {', '.join(cols)} FROM hourly_version WHERE {cond}", params)
        f = self._from_t  # type: ignore[attr-defined]
        out = []
        for rows, is_latest in ((current, True), (kept, False)):
            for r in rows:
                v = r[14]
                if level == "nrt" and v != 1:
                    continue
                out.append(HourlyVersion(station, r[0], r[1], f(r[2]), *r[3:13], f(r[13]), version=v,
                                         processing=r[15], calibration_ids=tuple(json.loads(r[16])), run_id=r[17],
                                         u=r[18], latest=is_latest))
        return sorted(out, key=lambda r: (r.stream, r.species, r.hour, r.version))


@dataclass(frozen=True, slots=True)
class HourlyVersion(HourlyRow):
    """One version of an hourly row (module docstring)."""

    version: int = 1
    processing: str = STATION_PROCESSING
    calibration_ids: tuple[str, ...] = ()
    run_id: int | None = None
    latest: bool = True
