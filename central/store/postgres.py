"""PostgreSQL backend (psycopg 3): for networks that outgrow one machine.

Several receivers may write at once (MQTT shared subscriptions): new rows are found with
`INSERT ... ON CONFLICT (station, seq, store) DO NOTHING RETURNING seq`, so two receivers given the same batch store it
once between them, and the loser counts duplicates. Bulk inserts send one array per column
through `unnest`, one statement per table per batch.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql as pgsql

from .base import DEFAULT_DEAD_LETTER_KEEP_BYTES, StoreError
from .sql import ROW_COLUMNS, SqlStore, migrations

TYPES = {
    "text": "text", "bigint": "bigint", "int": "integer", "real": "double precision",
    "time": "timestamptz", "json": "text", "bool": "boolean", "bytes": "bytea",
    "autoid": "bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
}
_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    psycopg.OperationalError,
    psycopg.errors.DeadlockDetected,
    psycopg.errors.SerializationFailure,
)
"""Errors after which the same transaction may succeed when retried."""


def utc_time(t: datetime) -> datetime:
    """A time as this backend stores it (timestamptz): the aware datetime, in UTC."""
    if t.tzinfo is None:
        raise ValueError(f"naive datetime {t!r}")
    return t.astimezone(UTC)


class PostgresStore(SqlStore):
    backend = "postgresql"
    PARAM = "%s"
    GREATEST = "GREATEST"

    def __init__(
        self,
        dsn: str,
        schema: str = "public",
        dead_letter_keep_bytes: int = DEFAULT_DEAD_LETTER_KEEP_BYTES,
        connect_timeout_s: float = 10.0,
    ) -> None:
        super().__init__(dead_letter_keep_bytes)
        if not _SCHEMA_RE.match(schema):
            raise StoreError(f"PostgreSQL schema name {schema!r} must match {_SCHEMA_RE.pattern}")
        self.dsn = dsn
        self.schema = schema
        try:
            self._conn = psycopg.connect(dsn, autocommit=True, connect_timeout=int(connect_timeout_s))
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to PostgreSQL: {exc}") from None
        self._conn.execute(pgsql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(pgsql.Identifier(schema)))
        self._conn.execute(pgsql.SQL("SET search_path TO {}").format(pgsql.Identifier(schema)))
        self._conn.execute("SET TIME ZONE 'UTC'")
        self._migrate(migrations(TYPES))

    _t = staticmethod(utc_time)

    def _from_t(self, v: Any) -> datetime:
        return v.astimezone(UTC)

    def _begin(self) -> None:
        self._conn.execute("BEGIN")

    def _commit(self) -> None:
        self._conn.execute("COMMIT")

    def _rollback(self) -> None:
        if self._conn.closed:
            return
        if self._conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            try:
                self._conn.execute("ROLLBACK")
            except psycopg.OperationalError:
                pass

    def _execute(self, sql: str, params=()) -> psycopg.Cursor:
        return self._conn.execute(sql, params or None)

    def _executemany(self, sql: str, rows: list[tuple]) -> None:
        with self._conn.cursor() as cur:
            cur.executemany(sql, rows)

    def _unnest_insert(self, table: str, rows: list[tuple], store: str, suffix: str = "") -> psycopg.Cursor:
        """Rows (ROW_COLUMNS) as one array per column, the store as one value."""
        cols = ROW_COLUMNS[table]
        arrays = [list(col) for col in zip(*rows)]
        casts = ", ".join(f"%s::{TYPES[t]}[]" for _, t in cols)
        names = ", ".join(c for c, _ in cols)
        return self._conn.execute(
            f"INSERT INTO {table} (store, {names}) SELECT %s::text, * FROM unnest({casts}) {suffix}", [store, *arrays]
        )

    def _insert(self, table: str, rows: list[tuple], store: str) -> None:
        if rows:
            self._unnest_insert(table, rows, store)

    def _insert_new(self, table: str, rows: list[tuple], store: str) -> set[int]:
        if not rows:
            return set()
        cur = self._unnest_insert(table, rows, store, "ON CONFLICT (station, seq, store) DO NOTHING RETURNING seq")
        return {r[0] for r in cur.fetchall()}

    def _insert_new_keyed(self, table: str, rows: list[tuple]) -> set[tuple[str, int, str]]:
        if not rows:
            return set()
        cols = ROW_COLUMNS[table]
        arrays = [list(col) for col in zip(*rows)]
        casts = ", ".join(f"%s::{TYPES[t]}[]" for _, t in [("store", "text"), *cols])
        names = ", ".join(c for c, _ in cols)
        cur = self._conn.execute(
            f"INSERT INTO {table} (store, {names}) SELECT * FROM unnest({casts}) "
            "ON CONFLICT (station, seq, store) DO NOTHING RETURNING station, seq, store", arrays)
        return {(r[0], r[1], r[2]) for r in cur.fetchall()}

    def reconnect(self) -> None:
        """Open a fresh connection after the server went away."""
        try:
            self._conn.close()
        finally:
            self._conn = psycopg.connect(self.dsn, autocommit=True)
            self._conn.execute(pgsql.SQL("SET search_path TO {}").format(pgsql.Identifier(self.schema)))
            self._conn.execute("SET TIME ZONE 'UTC'")

    def drop_schema(self) -> None:
        """Remove everything this store created (tests, and decommissioning a network)."""
        self._conn.execute(pgsql.SQL("DROP SCHEMA {} CASCADE").format(pgsql.Identifier(self.schema)))

    def close(self) -> None:
        self._conn.close()
