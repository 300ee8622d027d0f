"""The SQL both backends share: table definitions, migrations, ingest logic and queries.

A backend supplies a connection, how a time is stored, its column types, and one primitive:
insert rows keyed by (station, store, seq) and say which seqs were new. Everything else is here, so the
two backends cannot drift apart in what they keep.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from ghgnet.timeutil import iso_utc
from ghgnet.wire import (
    CalibrationWire,
    EmissionWire,
    EventWire,
    FluxWire,
    MinuteWire,
    ParsedBatch,
    StatusMessage,
    TargetWire,
    record_to_json,
    topic_for,
)

from ..lean_minutes import MinuteLean
from .base import (
    DEFAULT_DEAD_LETTER_KEEP_BYTES,
    Alarm,
    BatchOutcome,
    Counters,
    DeadLetter,
    DeadLetterOutcome,
    DeadLetterRow,
    Inbound,
    MinuteRows,
    Outcome,
    Prepared,
    StationStatus,
    StationSummary,
    StatusOutcome,
    StoredCalibration,
    StoredEvent,
    StoredFit,
    StoredMinute,
    StoredTarget,
    StoredTargetValue,
    StoreError,
    calibration_rows,
    dumps,
    emission_rows,
    event_rows,
    minute_rows,
    record_dead_letters,
    store_key,
    store_name,
    target_rows,
)
from .daily import DailyStoreMixin, migration_daily
from .devices import MinuteDevicesMixin
from .flux import FLUX_COLUMNS, flux_rows, migration_flux
from .hourly import HourlyStoreMixin, migration_hourly_u, migration_v2
from .identity import content_columns, differing, migration_v5, normalised, seq_ranges_text
from .levels import LevelsStoreMixin, migration_levels
from .medium_precision import MediumPrecisionStoreMixin, migration_medium_precision
from .operations import ALARM_COLUMNS, OperationsStoreMixin, migration_v6
from .raw_chunks import RawChunkStoreMixin, migration_raw_chunk
from .revisions import RevisionStoreMixin, migration_scale_revision
from .species import load_species, migration_v4, species_names
from .status import migration_record_counts, migration_v3, status_upsert_sql

# Abstract column types: text, bigint, int, real, time, json (stored as text), bool, bytes.
V1_TABLES: dict[str, list[tuple[str, str]]] = {
    "minute": [
        ("station", "text"), ("seq", "bigint"), ("time", "time"), ("device", "text"),
        ("stream", "text"), ("h2o", "real"), ("flag", "text"), ("reasons", "json"),
        ("n_total", "int"), ("calibration_id", "text"), ("diagnostics", "json"),
        ("received_at", "time"),
    ],
    "minute_value": [
        ("station", "text"), ("seq", "bigint"), ("species", "text"), ("mean", "real"),
        ("std", "real"), ("n", "int"), ("raw_mean", "real"), ("cal_mean", "real"),
    ],
    "event": [
        ("station", "text"), ("seq", "bigint"), ("time", "time"), ("kind", "text"),
        ("severity", "text"), ("message", "text"), ("device", "text"), ("data", "json"),
        ("received_at", "time"),
    ],
    "calibration": [
        ("station", "text"), ("seq", "bigint"), ("id", "text"), ("time_start", "time"),
        ("time_end", "time"), ("standards", "json"), ("received_at", "time"),
    ],
    "calibration_fit": [
        ("station", "text"), ("seq", "bigint"), ("species", "text"), ("coefficients", "json"),
        ("residuals", "json"), ("r2", "real"), ("rmse", "real"), ("n", "int"),
    ],
    "target": [
        ("station", "text"), ("seq", "bigint"), ("id", "text"), ("time", "time"),
        ("cylinder", "text"), ("received_at", "time"),
    ],
    "target_value": [
        ("station", "text"), ("seq", "bigint"), ("species", "text"), ("measured", "real"),
        ("assigned", "real"), ("bias", "real"), ("within_goal", "bool"),
    ],
}
"""The tables of schema 1, as migration 1 creates them (history: never edit)."""

EMISSION_COLUMNS: list[tuple[str, str]] = [
    ("station", "text"), ("seq", "bigint"), ("time", "time"), ("unit", "text"), ("period", "text"),
    ("operating_h", "real"), ("co2_dry_pct", "real"), ("standard_flow_m3_h", "real"), ("mass_kg", "real"),
    ("co2_valid", "bool"), ("flow_valid", "bool"), ("co2_modc", "text"), ("flow_modc", "text"),
    ("reasons", "json"), ("received_at", "time"), ("store", "text"),
]
"""Schema 6: a stack CEMS's emission minutes and hours (ghgnet.wire.EmissionWire), `store` last."""

TABLES: dict[str, list[tuple[str, str]]] = {
    name: cols + [("store", "text")]  # schema 5: central/store/identity.py
    for name, cols in {
        **{name: cols for name, cols in V1_TABLES.items() if name != "minute_value"},
        "minute": V1_TABLES["minute"] + [("species", "json")],  # schema 4: central/store/species.py
        "flux": FLUX_COLUMNS,  # schema 7: central/store/flux.py
    }.items()
} | {"emission": EMISSION_COLUMNS}
"""The tables written now, with their columns in insert order, `store` last."""

TABLES_V5: dict[str, list[tuple[str, str]]] = {name: list(cols) for name, cols in TABLES.items()}
"""The record tables as schema 5 rebuilt them (history: columns added later are not in them)."""

FIT_U_COLUMNS = {"calibration_fit": [("covariance", "json")],
                 "target_value": [("u", "real"), ("within_u", "bool")]}
"""Schema 14 (`migration_fit_u`): a fit's coefficient covariance and a target's u and within_u
(issue 21), as the station sends them (ghgnet.wire FitWire.covariance, TargetWire.u/within_u)."""
for _name, _cols in FIT_U_COLUMNS.items():
    TABLES[_name] = TABLES[_name][:-1] + _cols + TABLES[_name][-1:]


def migration_fit_u(types: dict[str, str]) -> list[Step]:
    """Schema 14: the columns of FIT_U_COLUMNS (NULL for the rows stored before)."""
    return [f"ALTER TABLE {name} ADD COLUMN {c} {types[t]}" for name, cols in FIT_U_COLUMNS.items() for c, t in cols]

ROW_COLUMNS: dict[str, list[tuple[str, str]]] = {name: cols[:-1] for name, cols in TABLES.items()}
"""The columns of the rows the row builders make (central/store/base.py): every column but `store`,
which is one batch's for all its rows, and bound once per statement by `_insert`."""

_NOT_NULL = {"station", "seq", "time", "device", "stream", "flag", "reasons", "n_total", "diagnostics",
             "received_at", "species", "n", "kind", "severity", "message", "data", "id", "time_start",
             "time_end", "standards", "coefficients", "residuals", "cylinder"}
_CHILD = {"calibration": "calibration_fit", "target": "target_value"}
"""Tables whose records have rows in a second table (one per species), part of their content."""
_IDENTITY: dict[str, tuple[str, ...]] = {
    "minute": ("device", "time", "stream"),
    "event": ("kind", "time"),
    "calibration": ("id", "time_start", "time_end"),
    "target": ("id", "time", "cylinder"),
    "emission": ("unit", "period", "time"),
    "flux": ("time",),
}
"""Per record kind (its table), the columns that identify a record, as the station's own database
keeps them too (`record_identities`, `central-receiver records`)."""
_TIME_FIELDS = {"time", "time_start", "time_end"}
_KEYS = {"minute_value": ("station", "seq", "species"), "calibration_fit": ("station", "seq", "species"),
         "target_value": ("station", "seq", "species")}


def _table_ddl(name: str, types: dict[str, str]) -> list[str]:
    cols = ", ".join(
        f"{c} {types[t]}{' NOT NULL' if c in _NOT_NULL else ''}" for c, t in V1_TABLES[name]
    )
    key = ", ".join(_KEYS.get(name, ("station", "seq")))
    return [f"CREATE TABLE {name} ({cols}, PRIMARY KEY ({key}))"]


Step = str | Callable[["SqlStore"], None]
"""A migration step: an SQL statement, or a function given the store (inside the transaction)."""


def migrations(types: dict[str, str]) -> list[list[Step]]:
    """Migration i+1 is migrations[i]; each runs in one transaction. Append, never edit."""
    v1: list[Step] = []
    for name in V1_TABLES:
        v1 += _table_ddl(name, types)
    v1 += [
        "CREATE INDEX minute_time ON minute (station, time)",
        "CREATE INDEX event_time ON event (station, time)",
        "CREATE INDEX calibration_time ON calibration (station, time_start)",
        "CREATE INDEX target_time ON target (station, time)",
        f"""CREATE TABLE station (
            station {types['text']} PRIMARY KEY, first_seen {types['time']} NOT NULL,
            last_seen {types['time']} NOT NULL, last_seq {types['bigint']} NOT NULL DEFAULT 0,
            minutes {types['bigint']} NOT NULL DEFAULT 0, events {types['bigint']} NOT NULL DEFAULT 0,
            calibrations {types['bigint']} NOT NULL DEFAULT 0, targets {types['bigint']} NOT NULL DEFAULT 0,
            duplicates {types['bigint']} NOT NULL DEFAULT 0, dead_letters {types['bigint']} NOT NULL DEFAULT 0)""",
        f"""CREATE TABLE status (
            station {types['text']} PRIMARY KEY, state {types['text']} NOT NULL, time {types['time']} NOT NULL,
            received_at {types['time']} NOT NULL, backlog {types['bigint']} NOT NULL,
            oldest_unacked_age_s {types['real']}, agent_version {types['text']} NOT NULL,
            interval_s {types['real']}, last_seq {types['bigint']}, details {types['json']} NOT NULL)""",
        f"""CREATE TABLE dead_letter (
            id {types['autoid']}, received_at {types['time']} NOT NULL, topic {types['text']} NOT NULL,
            station {types['text']}, seq {types['bigint']}, reason_code {types['text']} NOT NULL,
            reason {types['text']} NOT NULL, payload {types['bytes']} NOT NULL,
            payload_size {types['bigint']} NOT NULL)""",
        # A record dead-lettered once is not stored again when its batch is redelivered.
        "CREATE UNIQUE INDEX dead_letter_record ON dead_letter (station, seq) WHERE seq IS NOT NULL",
        "CREATE INDEX dead_letter_station ON dead_letter (station, id)",
    ]
    return [v1, migration_v2(types), migration_v3(types), migration_v4(types),
            migration_v5(types, {k: v for k, v in TABLES_V5.items() if k != "flux"}, _NOT_NULL | {"store"}),
            migration_v6(types), migration_v7(types), migration_flux(types),
            migration_hourly_u(types), migration_medium_precision(types),
            migration_daily(types) + migration_record_counts(types), migration_levels(types),
            migration_raw_chunk(types), migration_fit_u(types), migration_scale_revision(types)]



def migration_v7(types: dict[str, str]) -> list[Step]:
    """Schema 7: the emission table (issue 18), keyed like every record table by (station, seq, store)."""
    not_null = {"station", "seq", "time", "unit", "period", "operating_h", "reasons", "received_at", "store"}
    cols = ", ".join(f"{c} {types[t]}{' NOT NULL' if c in not_null else ''}" for c, t in EMISSION_COLUMNS)
    return [f"CREATE TABLE emission ({cols}, PRIMARY KEY (station, seq, store))",
            "CREATE INDEX emission_unit_time ON emission (unit, period, time)"]


def _minute_records(batch: ParsedBatch) -> list[MinuteWire | MinuteLean]:
    """A minute batch's records: `parse_batch` gives a minute batch minute records only."""
    return batch.records  # type: ignore[return-value]


def minute_item(batch: ParsedBatch, received: Any, t: Callable[[datetime], Any], times_as_text: bool) -> MinuteRows:
    """A minute batch's rows and dead letters (`received`: the receive time as the store keeps it)."""
    texts = batch.time_texts if times_as_text else None
    rows = minute_rows(batch.station, _minute_records(batch), t, received, texts, batch.species_texts)
    return MinuteRows(batch.station, rows, record_dead_letters(batch), batch.store)


def prepare_items(items: Sequence[Inbound], received_at: datetime, t: Callable[[datetime], Any],
                  times_as_text: bool) -> Prepared:
    """`CentralStore.prepare` for a backend that stores times as `t` gives them: no database
    needed, so the decoding process (central/decoder.py) runs it too."""
    received = t(received_at)
    return Prepared([
        minute_item(it, received, t, times_as_text) if isinstance(it, ParsedBatch) and it.kind == "minute" else it
        for it in items
    ], received_at)


SMALL_MINUTE_ROWS = 16
"""Minute items of at most this many rows are inserted together, one statement for the transaction
(`SqlStore._insert_small_minutes`); larger ones (an MQTT batch) one by one, as ever."""


def _first(row: tuple) -> Any:
    return row[0]


def _store_label(store: str) -> str:
    """A store (as kept) for a message to operators."""
    return f"store {store}" if store else "the legacy store (batches without a store identity)"


def _clean(text: str, limit: int = 2000) -> str:
    """Reason texts may quote input: no NUL, no lone surrogates, bounded length."""
    text = text.replace("\x00", "\\x00")
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text[:limit]


class SqlStore(HourlyStoreMixin, OperationsStoreMixin, MediumPrecisionStoreMixin, DailyStoreMixin, MinuteDevicesMixin,
               LevelsStoreMixin, RawChunkStoreMixin, RevisionStoreMixin, ABC):
    backend = "sql"
    PARAM = "?"
    GREATEST = "max"
    TIMES_AS_TEXT = False
    """Whether `_t` gives iso_utc's text (then a batch's `time_texts` are stored as they came)."""

    def __init__(self, dead_letter_keep_bytes: int = DEFAULT_DEAD_LETTER_KEEP_BYTES) -> None:
        self.keep_bytes = dead_letter_keep_bytes

    # -- backend primitives --------------------------------------------------------------------

    @abstractmethod
    def _t(self, t: datetime) -> Any:
        """A datetime as this backend stores it."""

    @abstractmethod
    def _from_t(self, v: Any) -> datetime: ...

    @abstractmethod
    def _begin(self) -> None: ...

    @abstractmethod
    def _commit(self) -> None: ...

    @abstractmethod
    def _rollback(self) -> None: ...

    @abstractmethod
    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement; returns a cursor."""

    @abstractmethod
    def _executemany(self, sql: str, rows: list[tuple]) -> None: ...

    @abstractmethod
    def _insert_new(self, table: str, rows: list[tuple], store: str) -> set[int]:
        """Insert rows (ROW_COLUMNS) of one station from `store` (as kept), whose first two
        columns are (station, seq), skipping keys already stored; return the seqs that were new.
        Called inside a transaction."""

    def _insert_new_keyed(self, table: str, rows: list[tuple]) -> set[tuple[str, int, str]]:
        """Insert rows of many stations and stores, each row (store, *ROW_COLUMNS), no key twice,
        skipping keys already stored; return the (station, seq, store) that were new. Called inside
        a transaction. Default: one `_insert_new` per (station, store); backends do it in one statement."""
        by_key: dict[tuple[str, str], list[tuple]] = {}
        for r in rows:
            by_key.setdefault((r[1], r[0]), []).append(r[1:])
        return {(st, seq, store) for (st, store), part in by_key.items()
                for seq in self._insert_new(table, part, store)}

    def _sql(self, sql: str) -> str:
        return sql if self.PARAM == "?" else sql.replace("?", self.PARAM)

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return list(self._execute(self._sql(sql), params).fetchall())

    def _insert(self, table: str, rows: list[tuple], store: str) -> None:
        """Insert rows (ROW_COLUMNS) from `store` (as kept)."""
        if rows:
            cols = [c for c, _ in TABLES[table]]
            marks = ", ".join("?" * len(cols))
            self._executemany(self._sql(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})"),
                              [(*r, store) for r in rows])

    # -- schema --------------------------------------------------------------------------------

    def _migrate(self, steps: list[list[Step]]) -> None:
        self._begin()
        try:
            self._execute("CREATE TABLE IF NOT EXISTS ghgnet_schema (version INTEGER NOT NULL)")
            rows = self._query("SELECT version FROM ghgnet_schema")
            if not rows:
                self._execute(self._sql("INSERT INTO ghgnet_schema (version) VALUES (?)"), (0,))
            self._commit()
        except Exception:
            self._rollback()
            raise
        current = self.schema_version()
        if current > len(steps):
            raise StoreError(
                f"database schema version {current} is newer than this software's ({len(steps)}); "
                "upgrade ghgnet"
            )
        for version in range(current + 1, len(steps) + 1):
            self._begin()
            try:
                have = self._query("SELECT version FROM ghgnet_schema")[0][0]
                if have < version:  # another process may have migrated meanwhile
                    for step in steps[version - 1]:
                        if callable(step):
                            step(self)
                        else:
                            self._execute(step)
                    self._execute(self._sql("UPDATE ghgnet_schema SET version = ?"), (version,))
                self._commit()
            except Exception:
                self._rollback()
                raise

    def schema_version(self) -> int:
        return int(self._query("SELECT version FROM ghgnet_schema")[0][0])

    # -- writing -------------------------------------------------------------------------------

    def ingest(self, items: Sequence[Inbound], received_at: datetime) -> list[Outcome]:
        return self.write(self.prepare(items, received_at))

    def prepare(self, items: Sequence[Inbound], received_at: datetime) -> Prepared:
        return prepare_items(items, received_at, self._t, self.TIMES_AS_TEXT)

    def write(self, prepared: Prepared) -> list[Outcome]:
        received_at = prepared.received_at
        received = self._t(received_at)
        counters: dict[str, Counters] = {}
        dirty: dict[str, list[datetime]] = {}  # the hours to mark, marked once for the transaction
        items = [minute_item(it, received, self._t, self.TIMES_AS_TEXT)  # rows not built yet
                 if isinstance(it, ParsedBatch) and it.kind == "minute" else it for it in prepared.items]
        self._begin()
        try:
            fresh_of = self._insert_small_minutes(items)
            out: list[Outcome] = []
            for i, item in enumerate(items):
                if isinstance(item, MinuteRows):
                    out.append(self._ingest_minutes(item, received, received_at, counters, dirty, fresh_of.get(i)))
                elif isinstance(item, ParsedBatch):
                    out.append(self._ingest_batch(item, received, received_at, counters))
                elif isinstance(item, StatusMessage):
                    out.append(self._ingest_status(item, received, received_at, counters))
                elif isinstance(item, DeadLetter):
                    out.append(self._ingest_dead_letter(item, received, received_at, counters))
                else:
                    raise TypeError(f"cannot store a {type(item).__name__}")
            self._mark_dirty_many(dirty)
            self._apply_counters(counters, received)
            self._commit()
            return out
        except BaseException:
            self._rollback()
            raise

    def store_batch(self, batch: ParsedBatch, received_at: datetime) -> BatchOutcome:
        return self.ingest([batch], received_at)[0]  # type: ignore[return-value]

    def store_status(self, status: StatusMessage, received_at: datetime) -> StatusOutcome:
        return self.ingest([status], received_at)[0]  # type: ignore[return-value]

    def add_dead_letter(self, letter: DeadLetter, received_at: datetime) -> DeadLetterOutcome:
        return self.ingest([letter], received_at)[0]  # type: ignore[return-value]

    def _counter(self, counters: dict[str, Counters], station: str, at: datetime) -> Counters:
        c = counters.get(station)
        if c is None:
            c = counters[station] = Counters(last_seen=at)
        return c

    @staticmethod
    def _count_seqs(c: Counters, store: str, seqs: Sequence[int]) -> None:
        """A station's last seq is its latest batch's store's (a reinstalled station starts again at 1)."""
        if not seqs:
            return
        top = max(seqs)
        if c.store != store:
            c.store, c.last_seq = store, top
        else:
            c.last_seq = max(c.last_seq, top)

    def _insert_small_minutes(self, items: list[Any]) -> dict[int, set[int]]:
        """Insert the rows of the small minute items (at most SMALL_MINUTE_ROWS rows: an HJ 212 packet,
        a station sending in real time) of a transaction in one statement, not two per item;
        {item index: its new seqs}. A key that comes twice is inserted from its first item only: the
        later copies go the per-item way (duplicate or conflict, as if stored one after the other)."""
        small = [i for i, it in enumerate(items) if isinstance(it, MinuteRows) and 0 < len(it.rows) <= SMALL_MINUTE_ROWS]
        if len(small) < 2:
            return {}
        rows: list[tuple] = []
        seen: set[tuple[str, int, str]] = set()
        mine: dict[int, list[tuple[str, int, str]]] = {}
        for i in small:
            item = items[i]
            store = store_key(item.store)
            keys = mine[i] = []
            for r in item.rows:
                key = (r[0], r[1], store)
                if key not in seen:
                    seen.add(key)
                    keys.append(key)
                    rows.append((store, *r))
        fresh = self._insert_new_keyed("minute", rows)
        return {i: {k[1] for k in keys if k in fresh} for i, keys in mine.items()}

    def _ingest_minutes(self, item: MinuteRows, received: Any, at: datetime, counters,
                        dirty: dict[str, list[datetime]] | None = None, fresh: set[int] | None = None) -> BatchOutcome:
        """Store one minute item (`fresh`: its new seqs when its rows were inserted already); the
        hours to mark dirty are added to `dirty` (marked by the caller) or marked now."""
        st, rows, store = item.station, item.rows, store_key(item.store)
        c = self._counter(counters, st, at)
        if fresh is None:
            fresh = self._insert_new("minute", rows, store)
        # the hourly aggregates to redo: the new rows' hours (a row's time as the store keeps it)
        times = [r[2] for r in rows] if len(fresh) == len(rows) else [r[2] for r in rows if r[1] in fresh]
        hours = self._dirty_hours((), times) if self.TIMES_AS_TEXT else self._dirty_hours(times)
        if dirty is None:
            self._mark_dirty_many({st: hours})
        elif hours:
            have = dirty.setdefault(st, [])
            have += [h for h in hours if h not in have]
        conflicts = self._conflicts("minute", st, store, rows, fresh) if len(fresh) < len(rows) else {}
        new = len(fresh)
        duplicate = len(rows) - new - len(conflicts)
        c.minutes += new
        c.duplicates += duplicate
        dead = 0
        for letter in item.rejected:
            dead += self._ingest_dead_letter(letter, received, at, counters).stored
        if conflicts:
            by_seq = {r[1]: r for r in rows}
            dead += self._settle_conflicts(st, store, "minute", conflicts,
                                           lambda seq: self._row_json("minute", by_seq[seq]), received, at, counters)
        seqs = [r[1] for r in rows]
        self._count_seqs(c, store, seqs)
        seqs += [d.seq for d in item.rejected if d.seq is not None]  # settled too: refused for good
        return BatchOutcome(st, "minute", new, duplicate, dead, seqs, item.store, sorted(conflicts))

    def _ingest_batch(self, batch: ParsedBatch, received: Any, at: datetime, counters) -> BatchOutcome:
        st, store = batch.station, store_key(batch.store)
        c = self._counter(counters, st, at)
        new = 0
        conflicts: dict[int, list[str]] = {}
        if batch.kind == "event":
            recs_e = [r for r in batch.records if isinstance(r, EventWire)]
            rows = event_rows(st, recs_e, self._t, received)
            fresh = self._insert_new("event", rows, store)
            if len(fresh) < len(rows):
                conflicts |= self._conflicts("event", st, store, rows, fresh)
            c.events += len(fresh)
            new += len(fresh)
        elif batch.kind == "calibration":
            cals = [r for r in batch.records if isinstance(r, CalibrationWire)]
            tgts = [r for r in batch.records if isinstance(r, TargetWire)]
            rows, fits = calibration_rows(st, cals, self._t, received)
            fresh = self._insert_new("calibration", rows, store)
            self._insert("calibration_fit", [f for f in fits if f[1] in fresh], store)
            if len(fresh) < len(rows):
                conflicts |= self._conflicts("calibration", st, store, rows, fresh, fits)
            c.calibrations += len(fresh)
            new += len(fresh)
            rows, values = target_rows(st, tgts, self._t, received)
            fresh = self._insert_new("target", rows, store)
            self._insert("target_value", [v for v in values if v[1] in fresh], store)
            if len(fresh) < len(rows):
                conflicts |= self._conflicts("target", st, store, rows, fresh, values)
            c.targets += len(fresh)
            new += len(fresh)
        elif batch.kind == "emission":
            recs_x = [r for r in batch.records if isinstance(r, EmissionWire)]
            rows = emission_rows(st, recs_x, self._t, received)
            fresh = self._insert_new("emission", rows, store)
            if len(fresh) < len(rows):
                conflicts |= self._conflicts("emission", st, store, rows, fresh)
            c.emissions += len(fresh)
            new += len(fresh)
        elif batch.kind == "flux":
            rows = flux_rows(st, [r for r in batch.records if isinstance(r, FluxWire)], self._t, received, dumps)
            fresh = self._insert_new("flux", rows, store)
            if len(fresh) < len(rows):
                conflicts |= self._conflicts("flux", st, store, rows, fresh)
            c.fluxes += len(fresh)
            new += len(fresh)
        else:
            raise TypeError(f"unknown batch kind {batch.kind!r}")
        duplicate = len(batch.records) - new - len(conflicts)
        c.duplicates += duplicate
        dead = 0
        for letter in record_dead_letters(batch):
            dead += self._ingest_dead_letter(letter, received, at, counters).stored
        if conflicts:
            by_seq = {r.seq: r for r in batch.records}
            dead += self._settle_conflicts(st, store, batch.kind, conflicts, lambda seq: record_to_json(by_seq[seq]),
                                           received, at, counters)
        seqs = batch.seqs_held()  # the records' seqs first
        self._count_seqs(c, store, seqs[:len(batch.records)])
        return BatchOutcome(st, batch.kind, new, duplicate, dead, seqs, batch.store, sorted(conflicts))

    # -- conflicts (central/store/identity.py) -------------------------------------------------

    def _conflicts(self, table: str, station: str, store: str, rows: list[tuple], fresh: set[int],
                   child_rows: Sequence[tuple] = ()) -> dict[int, list[str]]:
        """{seq: names of the differing columns} of the rows not new (their keys were stored)
        whose content differs from the stored copy's; a record's rows in its child table
        (`child_rows`, e.g. calibration fits) are part of its content."""
        old = {r[1]: r for r in rows if r[1] not in fresh}
        lo, hi = min(old), max(old)
        cols = content_columns(ROW_COLUMNS[table])
        names, types = [n for _, n, _ in cols], [t for _, _, t in cols]
        have = {
            r[0]: normalised(r[1:], types, self._from_t)
            for r in self._query(
                f"SELECT seq, {', '.join(names)} FROM {table} WHERE station = ? AND store = ? AND seq BETWEEN ? AND ?",
                (station, store, lo, hi))
            if r[0] in old
        }
        child = _CHILD.get(table)
        have_child: dict[int, list[tuple]] = {}
        want_child: dict[int, list[tuple]] = {}
        if child is not None:
            ccols = content_columns(ROW_COLUMNS[child])
            cnames, ctypes = [n for _, n, _ in ccols], [t for _, _, t in ccols]
            for r in self._query(f"SELECT seq, {', '.join(cnames)} FROM {child} WHERE station = ? AND store = ? "
                                 "AND seq BETWEEN ? AND ?", (station, store, lo, hi)):
                if r[0] in old:
                    have_child.setdefault(r[0], []).append(normalised(r[1:], ctypes, self._from_t))
            for r in child_rows:
                if r[1] in old:
                    want_child.setdefault(r[1], []).append(normalised([r[i] for i, _, _ in ccols], ctypes, self._from_t))
        out = {}
        for seq, row in old.items():
            stored = have.get(seq)
            if stored is None:  # cannot be: the key was there when the insert skipped it
                continue
            fields = differing(stored, normalised([row[i] for i, _, _ in cols], types, self._from_t), names)
            if child is not None and (sorted(have_child.get(seq, []), key=_first)
                                      != sorted(want_child.get(seq, []), key=_first)):
                fields.append(child)
            if fields:
                out[seq] = fields
        return out

    def _row_json(self, table: str, row: tuple) -> str:
        """A stored row's record as JSON (a conflicting minute's dead letter: the decoding process
        sends rows, not records)."""
        doc: dict[str, Any] = {"seq": row[1]}
        for i, name, kind in content_columns(ROW_COLUMNS[table]):
            v = row[i]
            doc[name] = json.loads(v) if kind == "json" else iso_utc(self._from_t(v)) if kind == "time" else v
        return json.dumps(doc, allow_nan=True)

    def _settle_conflicts(self, station: str, store: str, kind: str, conflicts: dict[int, list[str]],
                          record_json: Callable[[int], str], received: Any, at: datetime, counters) -> int:
        """Dead-letter the conflicting copies (`record_json`: a seq's incoming record as JSON) and
        raise one alarm for those new to the dead letters (a redelivered conflicting batch is
        no news); returns the letters stored."""
        new: dict[int, list[str]] = {}
        for seq, fields in conflicts.items():
            letter = DeadLetter(
                topic_for(station, kind), record_json(seq).encode("utf-8", "backslashreplace"), "seq_conflict",
                f"seq {seq} of {_store_label(store)} is stored already with other content ({', '.join(fields)} "
                "differ): the stored copy stays, this one is kept here",
                station, seq, store_name(store))
            if self._ingest_dead_letter(letter, received, at, counters).stored:
                new[seq] = fields
        if new:
            fields = sorted({f for fs in new.values() for f in fs})
            message = (f"{len(new)} {kind} record(s) of {_store_label(store)} reuse seqs stored already with "
                       f"other content (seqs {seq_ranges_text(list(new))}; {', '.join(fields)} differ): the "
                       "stored copies stay, the incoming ones are in the dead letters (seq_conflict)")
            self._add_alarm(received, station, store_name(store), "seq_conflict", message,
                            {"record_kind": kind, "seqs": sorted(new), "fields": fields})
        return len(new)

    def _add_alarm(self, received: Any, station: str | None, store: str | None, kind: str, message: str,
                   data: dict[str, Any]) -> None:
        self._execute(
            self._sql("INSERT INTO alarm (time, station, store, kind, message, data) VALUES (?, ?, ?, ?, ?, ?)"),
            (received, station, store, kind, _clean(message), dumps(data)),
        )

    # -- statuses, dead letters, counters ------------------------------------------------------

    def _ingest_status(self, s: StatusMessage, received: Any, at: datetime, counters) -> StatusOutcome:
        # which status is kept, and why by received time: central/store/status.py
        cur = self._execute(
            self._sql(status_upsert_sql()),
            (s.station, s.state, self._t(s.time), received, s.backlog, s.oldest_unacked_age_s,
             s.agent_version, s.interval_s, s.last_seq, dumps(s.details),
             self._t(s.time) if s.state == "up" else None),
        )
        stored = cur.rowcount > 0
        if stored:  # a status handed out again (retained, redelivered) is not the station speaking
            self._counter(counters, s.station, at)
        return StatusOutcome(s.station, stored)

    def _ingest_dead_letter(self, d: DeadLetter, received: Any, at: datetime, counters) -> DeadLetterOutcome:
        cur = self._execute(
            self._sql(
                "INSERT INTO dead_letter (received_at, topic, station, seq, reason_code, reason, payload, "
                "payload_size, store) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
            ),
            (received, _clean(d.topic, 512), d.station, d.seq, d.reason_code, _clean(d.reason),
             bytes(d.payload[: self.keep_bytes]), len(d.payload),
             # a record's letter is keyed by its store (legacy: ''), a whole message's has none
             store_key(d.store) if d.seq is not None else d.store),
        )
        stored = cur.rowcount > 0
        if d.station is not None:
            self._counter(counters, d.station, at).dead_letters += int(stored)
        return DeadLetterOutcome(d.station, stored)

    def _apply_counters(self, counters: dict[str, Counters], received: Any) -> None:
        if not counters:
            return
        g = self.GREATEST
        sql = self._sql(
            "INSERT INTO station (station, first_seen, last_seen, last_seq, minutes, events, calibrations, "
            "targets, duplicates, dead_letters, store, emissions, fluxes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (station) DO UPDATE SET "
            f"last_seen = {g}(station.last_seen, excluded.last_seen), "
            # the last seq of the store the station sent from last (a reinstalled station starts at 1)
            "last_seq = CASE WHEN excluded.store IS NULL THEN station.last_seq "
            f"WHEN excluded.store = station.store THEN {g}(station.last_seq, excluded.last_seq) "
            "ELSE excluded.last_seq END, "
            "store = COALESCE(excluded.store, station.store), "
            "minutes = station.minutes + excluded.minutes, events = station.events + excluded.events, "
            "calibrations = station.calibrations + excluded.calibrations, "
            "targets = station.targets + excluded.targets, "
            "duplicates = station.duplicates + excluded.duplicates, "
            "dead_letters = station.dead_letters + excluded.dead_letters, "
            "emissions = station.emissions + excluded.emissions, fluxes = station.fluxes + excluded.fluxes"
        )
        rows = [
            (st, received, received, c.last_seq, c.minutes, c.events, c.calibrations, c.targets,
             c.duplicates, c.dead_letters, c.store, c.emissions, c.fluxes)
            for st, c in sorted(counters.items())
        ]
        self._executemany(sql, rows)

    # -- reading -------------------------------------------------------------------------------

    def minutes(self, station: str, start: datetime, end: datetime) -> Iterator[StoredMinute]:
        rows = self._query(
            "SELECT seq, time, device, stream, h2o, flag, reasons, n_total, calibration_id, diagnostics, "
            "received_at, species, store FROM minute WHERE station = ? AND time >= ? AND time < ? "
            "ORDER BY time, seq, store",
            (station, self._t(start), self._t(end)),
        )
        for r in rows:
            yield StoredMinute(
                station=station, seq=r[0], time=self._from_t(r[1]), device=r[2], stream=r[3],
                species=load_species(r[11]), h2o=r[4], flag=r[5], reasons=json.loads(r[6]), n_total=r[7],
                calibration_id=r[8], diagnostics=json.loads(r[9]), received_at=self._from_t(r[10]),
                store=store_name(r[12]),
            )

    def minute_species(self, station: str, start: datetime, end: datetime) -> list[str]:
        rows = self._query(
            "SELECT DISTINCT species FROM minute WHERE station = ? AND time >= ? AND time < ?",
            (station, self._t(start), self._t(end)),
        )
        return sorted({name for r in rows for name in species_names(r[0])})

    def events(self, station: str, start: datetime, end: datetime) -> list[StoredEvent]:
        rows = self._query(
            "SELECT seq, time, kind, severity, message, device, data, received_at, store FROM event "
            "WHERE station = ? AND time >= ? AND time < ? ORDER BY time, seq, store",
            (station, self._t(start), self._t(end)),
        )
        return [
            StoredEvent(station, r[0], self._from_t(r[1]), r[2], r[3], r[4], r[5] or None, json.loads(r[6]),
                        self._from_t(r[7]), store_name(r[8]))
            for r in rows
        ]

    def fluxes(self, station: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        rows = self._query(
            "SELECT seq, store, record FROM flux WHERE station = ? AND time >= ? AND time < ? ORDER BY time, seq, store",
            (station, self._t(start), self._t(end)),
        )
        return [{**json.loads(r[2]), "seq": r[0], "store": store_name(r[1])} for r in rows]

    def calibrations(self, station: str, start: datetime, end: datetime) -> list[StoredCalibration]:
        rows = self._query(
            "SELECT seq, id, time_start, time_end, standards, received_at, store FROM calibration "
            "WHERE station = ? AND time_start >= ? AND time_start < ? ORDER BY time_start, seq, store",
            (station, self._t(start), self._t(end)),
        )
        # every fit of the window in one query (not one per calibration: 365 round trips for a year)
        fits: dict[tuple[str, int], dict[str, StoredFit]] = {}
        for f in self._query(
            "SELECT f.store, f.seq, f.species, f.coefficients, f.residuals, f.r2, f.rmse, f.n, f.covariance "
            "FROM calibration_fit f "
            "JOIN calibration c ON c.station = f.station AND c.store = f.store AND c.seq = f.seq "
            "WHERE c.station = ? AND c.time_start >= ? AND c.time_start < ? ORDER BY f.species",
            (station, self._t(start), self._t(end)),
        ):
            fits.setdefault((f[0], f[1]), {})[f[2]] = StoredFit(json.loads(f[3]), json.loads(f[4]), f[5], f[6], f[7],
                                                                     None if f[8] is None else json.loads(f[8]))
        return [StoredCalibration(station, r[0], r[1], self._from_t(r[2]), self._from_t(r[3]), json.loads(r[4]),
                                  fits.get((r[6], r[0]), {}), self._from_t(r[5]), store_name(r[6])) for r in rows]

    def targets(self, station: str, start: datetime, end: datetime) -> list[StoredTarget]:
        rows = self._query(
            "SELECT seq, id, time, cylinder, received_at, store FROM target "
            "WHERE station = ? AND time >= ? AND time < ? ORDER BY time, seq, store",
            (station, self._t(start), self._t(end)),
        )
        # every value of the window in one query (not one per target run)
        values: dict[tuple[str, int], dict[str, StoredTargetValue]] = {}
        for v in self._query(
            "SELECT v.store, v.seq, v.species, v.measured, v.assigned, v.bias, v.within_goal, v.u, v.within_u "
            "FROM target_value v "
            "JOIN target t ON t.station = v.station AND t.store = v.store AND t.seq = v.seq "
            "WHERE t.station = ? AND t.time >= ? AND t.time < ? ORDER BY v.species",
            (station, self._t(start), self._t(end)),
        ):
            values.setdefault((v[0], v[1]), {})[v[2]] = StoredTargetValue(
                v[3], v[4], v[5], None if v[6] is None else bool(v[6]), v[7], None if v[8] is None else bool(v[8]))
        return [StoredTarget(station, r[0], r[1], self._from_t(r[2]), r[3], values.get((r[5], r[0]), {}),
                             self._from_t(r[4]), store_name(r[5])) for r in rows]

    def target_biases(self, station: str, start: datetime, end: datetime) -> list[tuple[datetime, str, str, float]]:
        """(time, cylinder, species, bias) of every target value with a bias, of the runs whose time
        lies in [start, end), in time order: one query of the four columns the target history needs
        (targets() builds every run's record: 4x slower on a year of four runs a day)."""
        rows = self._query(
            "SELECT t.time, t.cylinder, v.species, v.bias FROM target t "
            "JOIN target_value v ON v.station = t.station AND v.store = t.store AND v.seq = t.seq "
            "WHERE t.station = ? AND t.time >= ? AND t.time < ? AND v.bias IS NOT NULL "
            "ORDER BY t.time, t.seq, t.store, v.species",
            (station, self._t(start), self._t(end)),
        )
        return [(self._from_t(r[0]), r[1], r[2], r[3]) for r in rows]

    def calibration_ends(self, station: str, start: datetime, end: datetime) -> list[datetime]:
        """time_end of the calibrations whose time_start lies in [start, end), in time order."""
        rows = self._query("SELECT time_end FROM calibration WHERE station = ? AND time_start >= ? AND time_start < ? "
                           "ORDER BY time_start, seq, store", (station, self._t(start), self._t(end)))
        return [self._from_t(r[0]) for r in rows]

    def calibration_fit_rows(self, station: str, start: datetime, end: datetime
                             ) -> list[tuple[datetime, str, str, list[float], list[float], float | None]]:
        """(time_start, id, species, coefficients, residuals, rmse) of every fit of the calibrations
        whose time_start lies in [start, end), by species then time: one query of the columns the
        calibration history needs (not the standards, not one record per calibration)."""
        rows = self._query(
            "SELECT c.time_start, c.id, f.species, f.coefficients, f.residuals, f.rmse FROM calibration c "
            "JOIN calibration_fit f ON f.station = c.station AND f.store = c.store AND f.seq = c.seq "
            "WHERE c.station = ? AND c.time_start >= ? AND c.time_start < ? "
            "ORDER BY f.species, c.time_start, c.seq, c.store",
            (station, self._t(start), self._t(end)),
        )
        # the fits' JSON in one decode (one json.loads per list costs more than the query on a year)
        try:
            lists = json.loads("[" + ",".join(x for r in rows for x in (r[3], r[4])) + "]") if rows else []
        except json.JSONDecodeError:  # a broken fit: decoded one by one, the error is its own
            lists = [json.loads(x) for r in rows for x in (r[3], r[4])]
        return [(self._from_t(r[0]), r[1], r[2], lists[2 * i], lists[2 * i + 1], r[5]) for i, r in enumerate(rows)]

    def record_identities(self, station: str) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for kind, fields in _IDENTITY.items():
            rows = self._query(f"SELECT seq, store, {', '.join(fields)} FROM {kind} WHERE station = ? "
                               "ORDER BY seq, store", (station,))
            out[kind] = [
                {"seq": r[0], "store": store_name(r[1]),
                 **{f: iso_utc(self._from_t(v)) if f in _TIME_FIELDS else v for f, v in zip(fields, r[2:])}}
                for r in rows
            ]
        per_species: dict[str, dict[tuple[str, int], dict[str, Any]]] = {"calibration": {}, "target": {}}
        for store, seq, sp, rmse in self._query(
                "SELECT store, seq, species, rmse FROM calibration_fit WHERE station = ? ORDER BY species", (station,)):
            per_species["calibration"].setdefault((store_name(store), seq), {})[sp] = rmse
        for store, seq, sp, bias, ok in self._query(
                "SELECT store, seq, species, bias, within_goal FROM target_value WHERE station = ? ORDER BY species",
                (station,)):
            per_species["target"].setdefault((store_name(store), seq), {})[sp] = {
                "bias": bias, "within_goal": None if ok is None else bool(ok)}
        for kind, name in (("calibration", "rmse"), ("target", "bias")):
            for rec in out[kind]:
                rec[name] = per_species[kind].get((rec["store"], rec["seq"]), {})
        return out

    def emissions(self, unit: str, period: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """A unit's emission records of `period` (minute, hour) with start <= time < end, in time
        order, one per (station, time): the latest seq where a station sent a period twice."""
        rows = self._query(
            "SELECT station, seq, store, time, operating_h, co2_dry_pct, standard_flow_m3_h, mass_kg, co2_valid, "
            "flow_valid, co2_modc, flow_modc, reasons FROM emission WHERE unit = ? AND period = ? AND time >= ? "
            "AND time < ? ORDER BY time, received_at, seq", (unit, period, self._t(start), self._t(end)))
        out: dict[tuple[str, Any], dict[str, Any]] = {}
        for r in rows:
            out[(r[0], r[3])] = {
                "station": r[0], "seq": r[1], "store": store_name(r[2]), "time": self._from_t(r[3]),
                "operating_h": r[4], "co2_dry_pct": r[5], "standard_flow_m3_h": r[6], "mass_kg": r[7],
                "co2_valid": None if r[8] is None else bool(r[8]), "flow_valid": None if r[9] is None else bool(r[9]),
                "co2_modc": r[10], "flow_modc": r[11], "reasons": json.loads(r[12])}
        return list(out.values())

    def minute_count(self, station: str, device: str | None = None) -> int:
        if device is None:
            return int(self._query("SELECT count(*) FROM minute WHERE station = ?", (station,))[0][0])
        return int(self._query("SELECT count(*) FROM minute WHERE station = ? AND device = ?",
                               (station, device))[0][0])

    def held_seqs(self, station: str, store: str | None = None) -> list[int]:
        tables = ("minute", "event", "calibration", "target", "emission", "flux")
        rows = self._query(
            " UNION ALL ".join(f"SELECT seq FROM {t} WHERE station = ? AND store = ?" for t in tables),
            (station, store_key(store)) * len(tables),
        )
        return sorted(r[0] for r in rows)

    def stations(self) -> list[StationSummary]:
        rows = self._query(
            "SELECT s.station, s.first_seen, s.last_seen, s.last_seq, s.minutes, s.events, s.calibrations, "
            "s.targets, s.duplicates, s.dead_letters, t.state, t.time, t.received_at, t.backlog, "
            "t.oldest_unacked_age_s, t.agent_version, t.interval_s, t.last_seq, t.details, s.store, s.emissions, s.fluxes "
            "FROM station s LEFT JOIN status t ON t.station = s.station ORDER BY s.station"
        )
        out = []
        for r in rows:
            status = None
            if r[10] is not None:
                status = StationStatus(r[10], self._from_t(r[11]), self._from_t(r[12]), r[13], r[14],
                                       r[15], r[16], r[17], json.loads(r[18]))
            out.append(StationSummary(r[0], self._from_t(r[1]), self._from_t(r[2]), *r[3:10], status=status,
                                      store=store_name(r[19]), emissions=r[20], fluxes=r[21]))
        return out

    def dead_letters(self, limit: int = 100, station: str | None = None, unresolved: bool = False,
                     letter_id: int | None = None, before_id: int | None = None) -> list[DeadLetterRow]:
        cols = ("id, received_at, topic, station, seq, reason_code, reason, payload, payload_size, store, "
                "resolved_at, resolution, replays, last_replay_at, last_replay_result")
        sql, params = f"SELECT {cols} FROM dead_letter WHERE 1 = 1", []
        for cond, value in (("station = ?", station), ("id = ?", letter_id), ("id < ?", before_id)):
            if value is not None:
                sql += f" AND {cond}"
                params.append(value)
        if unresolved:
            sql += " AND resolved_at IS NULL"
        rows = self._query(sql + " ORDER BY id DESC LIMIT ?", [*params, limit])
        f = self._from_t
        return [DeadLetterRow(r[0], f(r[1]), r[2], r[3], r[4], r[5], r[6], bytes(r[7]), r[8], store_name(r[9]),
                              None if r[10] is None else f(r[10]), r[11], r[12],
                              None if r[13] is None else f(r[13]), r[14]) for r in rows]

    def dead_letter_count(self, station: str | None = None) -> int:
        if station is None:
            return int(self._query("SELECT count(*) FROM dead_letter")[0][0])
        return int(self._query("SELECT count(*) FROM dead_letter WHERE station = ?", (station,))[0][0])

    def alarms(self, limit: int = 100, station: str | None = None) -> list[Alarm]:
        if station is None:
            rows = self._query(f"SELECT {ALARM_COLUMNS} FROM alarm ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = self._query(f"SELECT {ALARM_COLUMNS} FROM alarm WHERE station = ? ORDER BY id DESC LIMIT ?",
                               (station, limit))
        return [self._alarm(r) for r in rows]

    def alarm_count(self, station: str | None = None) -> int:
        if station is None:
            return int(self._query("SELECT count(*) FROM alarm WHERE state <> 'cleared'")[0][0])
        return int(self._query("SELECT count(*) FROM alarm WHERE state <> 'cleared' AND station = ?",
                               (station,))[0][0])
