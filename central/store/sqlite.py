"""SQLite backend: the embedded default. One file, WAL, synchronous=FULL.

FULL because central acknowledges a record to its station right after the commit, and the station
then forgets it: a commit that a power cut can undo would lose data for good.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from itertools import chain
from pathlib import Path
from typing import Any

import msgspec

from ghgnet.timeutil import iso_utc, parse_utc

from .base import DEFAULT_DEAD_LETTER_KEEP_BYTES, StoreError
from .sql import ROW_COLUMNS, TABLES, SqlStore, migrations

_encode_json = msgspec.json.encode
PAGE_SIZE = 16384
WAL_CHECKPOINT_BYTES = 16 << 20
"""The WAL is checkpointed into the database once it holds this much (SQLite counts pages)."""
ROWS_PER_INSERT = 500
"""Rows per INSERT statement at most (fewer when SQLite's limit on bound values says so)."""

TYPES = {
    "text": "TEXT", "bigint": "INTEGER", "int": "INTEGER", "real": "REAL", "time": "TEXT",
    "json": "TEXT", "bool": "INTEGER", "bytes": "BLOB", "autoid": "INTEGER PRIMARY KEY",
}


def time_text(t: datetime) -> str:
    """A time as this backend stores it: iso_utc's format (`...T02:53:12.345Z`, fixed width, so
    text order is time order)."""
    # Cut from msgspec's RFC 3339 text of a UTC time (C, a quarter of isoformat's cost: this runs
    # once per stored record), which has either no fraction or six digits of one.
    if t.tzinfo is not UTC and (t.tzinfo is None or t.utcoffset()):
        return iso_utc(t)  # refuses naive times; converts other zones
    text = _encode_json(t).decode()  # '"2026-11-22T02:53:12Z"' or '"2026-11-22T02:53:12.345678Z"'
    return text[1:20] + ".000Z" if len(text) == 22 else text[1:24] + "Z"


class SqliteStore(SqlStore):
    backend = "sqlite"
    PARAM = "?"
    GREATEST = "max"
    TIMES_AS_TEXT = True

    def __init__(
        self,
        path: str | Path,
        dead_letter_keep_bytes: int = DEFAULT_DEAD_LETTER_KEEP_BYTES,
        busy_timeout_s: float = 30.0,
    ) -> None:
        super().__init__(dead_letter_keep_bytes)
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we issue BEGIN IMMEDIATE / COMMIT ourselves.
            self._conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_s
            )
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"{self.path}: cannot open the SQLite database: {exc}") from None
        # 16 KiB pages for a new database (an existing one keeps its own): a quarter of the pages,
        # WAL frames and writes per stored minute (8, 32 and 64 KiB measured too: 16 was best).
        self._conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
        self._conn.execute("PRAGMA journal_mode=WAL")
        # FULL stays: an ack follows the commit and lets the station forget the records, so the
        # commit must survive a power cut (NORMAL in WAL mode may lose the last transactions).
        # Speed comes from big transactions instead (one sync per group of messages), and from
        # settings that cost no durability: a 64 MB page cache for the key indexes and a WAL
        # checkpointed every 16 MiB (SQLite's default: 1000 pages, 4 MiB at 4 KiB pages).
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA cache_size=-65536")
        page_size = self._conn.execute("PRAGMA page_size").fetchone()[0]
        self._conn.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_BYTES // page_size}")
        self._conn.execute("PRAGMA temp_store=MEMORY")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._migrate(migrations(TYPES))

    _t = staticmethod(time_text)

    def _from_t(self, v: Any) -> datetime:
        return parse_utc(v)

    def _begin(self) -> None:
        # IMMEDIATE takes the write lock now, so the existence check and the insert below see
        # the same database even if a second process writes the same file.
        self._conn.execute("BEGIN IMMEDIATE")

    def _commit(self) -> None:
        self._conn.execute("COMMIT")

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def _execute(self, sql: str, params=()) -> sqlite3.Cursor:
        return self._conn.execute(sql, params)

    def _executemany(self, sql: str, rows: list[tuple]) -> None:
        self._conn.executemany(sql, rows)

    def _insert(self, table: str, rows: list[tuple], store: str) -> None:
        # Many rows per statement (a VALUES list) rather than executemany's statement per row:
        # cheaper per row, and one release of the GIL per statement instead of one per row (each costs a wait when the decode thread is busy: central/receiver.py).
        # The store, the same for every row, is bound once a statement: `?1`, first in every row,
        # then plain parameters from 2 on (a numbered parameter anywhere after the first row's
        # plain ones would cost SQLite a time quadratic in the row count to prepare).
        if not rows:
            return
        n = len(ROW_COLUMNS[table])
        limit = self._conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        per = max(1, min(ROWS_PER_INSERT, (limit - 1) // n))
        head = f"INSERT INTO {table} (store, {', '.join(c for c, _ in ROW_COLUMNS[table])}) VALUES "
        row = f"(?1, {', '.join('?' * n)})"
        for i in range(0, len(rows), per):
            part = rows[i:i + per]
            self._conn.execute(head + ", ".join([row] * len(part)), [store, *chain.from_iterable(part)])

    def _insert_new(self, table: str, rows: list[tuple], store: str) -> set[int]:
        if not rows:
            return set()
        station = rows[0][0]
        seqs = [r[1] for r in rows]
        existing = {
            r[0]
            for r in self._conn.execute(
                f"SELECT seq FROM {table} WHERE station = ? AND store = ? AND seq BETWEEN ? AND ?",
                (station, store, min(seqs), max(seqs)),
            )
        }
        fresh_rows = [r for r in rows if r[1] not in existing]
        self._insert(table, fresh_rows, store)
        return {r[1] for r in fresh_rows}

    def _insert_new_keyed(self, table: str, rows: list[tuple]) -> set[tuple[str, int, str]]:
        # One multi-row INSERT that skips stored keys and returns the new ones (RETURNING: SQLite 3.35)
        # instead of a SELECT and an INSERT per (station, store).
        if not rows or sqlite3.sqlite_version_info < (3, 35, 0):
            return super()._insert_new_keyed(table, rows)
        n = len(ROW_COLUMNS[table]) + 1
        limit = self._conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        per = max(1, min(ROWS_PER_INSERT, limit // n))
        head = f"INSERT INTO {table} (store, {', '.join(c for c, _ in ROW_COLUMNS[table])}) VALUES "
        row = f"({', '.join('?' * n)})"
        fresh: set[tuple[str, int, str]] = set()
        for i in range(0, len(rows), per):
            part = rows[i:i + per]
            cur = self._conn.execute(head + ", ".join([row] * len(part)) + " ON CONFLICT DO NOTHING "
                                     "RETURNING station, seq, store", list(chain.from_iterable(part)))
            fresh.update(cur.fetchall())
        return fresh

    def close(self) -> None:
        self._conn.close()


__all__ = ["SqliteStore", "TABLES"]
