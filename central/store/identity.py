"""Station databases' identities (schema 5): records keyed by (station, store, seq), conflicts, alarms.

A station database has an identity created with it (`store`, 32 hex digits on every batch:
ghgnet/wire). A station whose database is replaced (new disk, reinstall) starts again at
seq 1 under a new store, so central keys every record table by (station, store, seq); a batch
without `store` comes from a station older than store identities and is kept under the legacy
store, '' (the migration puts every record stored before it there).

Within one store, a seq that arrives again is a duplicate when its content is the stored one's
(a redelivery: counted, nothing changes) and a conflict when it differs: the stored copy stays,
the incoming one goes to the dead letters with reason code `seq_conflict` (both versions kept),
the batch is acknowledged all the same (the station must not resend it forever), and central
raises an alarm. Only rows whose keys already existed are compared, so the common path (new
records) costs nothing more.

Alarms (table `alarm`) are what central itself tells its operators, per station: `central-receiver
status` and the dashboard list them beside the dead letters.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from ghgnet.wire import compress_seqs

KEYS: dict[str, tuple[str, ...]] = {
    "minute": ("station", "seq", "store"),
    "event": ("station", "seq", "store"),
    "calibration": ("station", "seq", "store"),
    "calibration_fit": ("station", "seq", "store", "species"),
    "target": ("station", "seq", "store"),
    "target_value": ("station", "seq", "store", "species"),
}
"""The record tables of schema 5 and their primary keys: `store` after `seq`, so that finding a
new key's place compares two columns with most keys (seqs differ), not three."""

INDEXES: dict[str, list[str]] = {
    "minute": ["CREATE INDEX minute_time ON minute (station, time)"],
    "event": ["CREATE INDEX event_time ON event (station, time)"],
    "calibration": ["CREATE INDEX calibration_time ON calibration (station, time_start)"],
    "target": ["CREATE INDEX target_time ON target (station, time)"],
}
"""The record tables' other indexes (schema 1's), made again when SQLite rebuilds a table."""

NOT_COMPARED = frozenset({"station", "store", "seq", "received_at"})
"""Columns that are not a record's content: its key, and when central received it."""

Step = str | Callable[[Any], None]


def migration_v5(types: dict[str, str], tables: dict[str, list[tuple[str, str]]],
                 not_null: frozenset[str] | set[str]) -> list[Step]:
    """Steps of schema 5. `tables`: the record tables' columns as written now (`store` last)."""

    def key_by_store(store: Any) -> None:
        for name, key in KEYS.items():
            for sql in _rekey_sql(store.backend, name, key, types, tables[name], not_null):
                store._execute(sql)

    return [
        key_by_store,
        f"ALTER TABLE dead_letter ADD COLUMN store {types['text']}",
        "UPDATE dead_letter SET store = '' WHERE seq IS NOT NULL",
        "DROP INDEX dead_letter_record",
        # a record dead-lettered once (refused, or a conflicting copy) is not stored again when redelivered
        "CREATE UNIQUE INDEX dead_letter_record ON dead_letter (station, store, seq) WHERE seq IS NOT NULL",
        f"ALTER TABLE station ADD COLUMN store {types['text']}",
        "UPDATE station SET store = ''",
        f"""CREATE TABLE alarm (
            id {types['autoid']}, time {types['time']} NOT NULL, station {types['text']}, store {types['text']},
            kind {types['text']} NOT NULL, message {types['text']} NOT NULL, data {types['json']} NOT NULL)""",
        "CREATE INDEX alarm_station ON alarm (station, id)",
        _thaw_statuses,
    ]


THAW_BEYOND = timedelta(hours=1)
"""A kept "up" stamped this far beyond its receive time (the default future tolerance) froze its station."""


def _thaw_statuses(store: Any) -> None:
    """A status stamped far in the future froze its station's state (every later "up" was older);
    such statuses are refused now (central/ingest.py), and what one left behind is undone."""
    rows = store._query("SELECT station, last_up_time, received_at FROM status WHERE last_up_time IS NOT NULL")
    frozen = [(r[0],) for r in rows if store._from_t(r[1]) - store._from_t(r[2]) > THAW_BEYOND]
    if frozen:
        store._executemany(store._sql("UPDATE status SET last_up_time = received_at WHERE station = ?"), frozen)


def _rekey_sql(backend: str, name: str, key: tuple[str, ...], types: dict[str, str],
               columns: list[tuple[str, str]], not_null: frozenset[str] | set[str]) -> list[str]:
    """Add `store` (every row: the legacy store) and make `key` the table's primary key."""
    if backend == "postgresql":
        return [
            f"ALTER TABLE {name} ADD COLUMN store {types['text']} NOT NULL DEFAULT ''",
            f"ALTER TABLE {name} DROP CONSTRAINT {name}_pkey",
            f"ALTER TABLE {name} ADD PRIMARY KEY ({', '.join(key)})",
        ]
    # SQLite cannot change a primary key: the table is made again, its rows copied over
    cols = ", ".join(
        f"{c} {types[t]}{' NOT NULL' if c in not_null else ''}{' DEFAULT ' + repr('') if c == 'store' else ''}"
        for c, t in columns
    )
    old = ", ".join(c for c, _ in columns if c != "store")
    return [
        f"CREATE TABLE {name}_v5 ({cols}, PRIMARY KEY ({', '.join(key)}))",
        f"INSERT INTO {name}_v5 ({old}) SELECT {old} FROM {name}",
        f"DROP TABLE {name}",
        f"ALTER TABLE {name}_v5 RENAME TO {name}",
        *INDEXES.get(name, []),
    ]


def content_columns(columns: list[tuple[str, str]]) -> list[tuple[int, str, str]]:
    """(index in a row, name, type) of the columns that make a record's content."""
    return [(i, c, t) for i, (c, t) in enumerate(columns) if c not in NOT_COMPARED]


def normalised(values: Sequence[Any], types: Sequence[str], from_t: Callable[[Any], Any]) -> tuple:
    """Values as comparable whichever way they were kept: JSON texts read (key order and number
    spelling aside), times as datetimes, reals as floats, booleans as bools."""
    out = []
    for v, t in zip(values, types):
        if v is None:
            out.append(None)
        elif t == "json":
            out.append(json.loads(v))
        elif t == "time":
            out.append(from_t(v))
        elif t == "real":
            out.append(float(v))
        elif t == "bool":
            out.append(bool(v))
        else:
            out.append(v)
    return tuple(out)


def differing(stored: tuple, incoming: tuple, names: Sequence[str]) -> list[str]:
    """The names of the columns whose values differ (both `normalised`)."""
    return [n for n, a, b in zip(names, stored, incoming) if a != b]


def seq_ranges_text(seqs: Sequence[int]) -> str:
    """`3-5, 9` for seqs 3, 4, 5, 9."""
    return ", ".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in compress_seqs(seqs))
