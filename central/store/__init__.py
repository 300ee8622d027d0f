"""Central's storage: one `CentralStore` interface, SQLite (default) and PostgreSQL backends."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from pathlib import Path

from ..config import CentralConfig
from .base import (
    Alarm,
    BatchOutcome,
    CentralStore,
    DeadLetter,
    DeadLetterOutcome,
    DeadLetterRow,
    FutureRecord,
    Inbound,
    Outcome,
    Prepared,
    StationStatus,
    StationSummary,
    StatusOutcome,
    StoredCalibration,
    StoredEvent,
    StoredFit,
    StoredMinute,
    StoredSpecies,
    StoredTarget,
    StoredTargetValue,
    StoreError,
)
from .hourly import HourlyRow, ManualFlag

BACKENDS = ("sqlite", "postgresql")


def open_store(
    backend: str,
    *,
    path: str | Path | None = None,
    dsn: str | None = None,
    schema: str = "public",
    dead_letter_keep_bytes: int = 65_536,
) -> CentralStore:
    """Open (creating or migrating) a store. Backends are imported lazily, so a SQLite-only site
    never loads psycopg."""
    if backend == "sqlite":
        if path is None:
            raise StoreError("the sqlite backend needs a path")
        from .sqlite import SqliteStore

        return SqliteStore(path, dead_letter_keep_bytes=dead_letter_keep_bytes)
    if backend == "postgresql":
        if not dsn:
            raise StoreError("the postgresql backend needs a dsn")
        from .postgres import PostgresStore

        return PostgresStore(dsn, schema=schema, dead_letter_keep_bytes=dead_letter_keep_bytes)
    raise StoreError(f"unknown storage backend {backend!r}; known: {', '.join(BACKENDS)}")


def open_configured_store(config: CentralConfig) -> CentralStore:
    """Open the store that `config`'s [storage] names (receiver, aggregation, dashboard, CLI)."""
    s = config.storage
    return open_store(s.backend, path=s.path, dsn=s.dsn, schema=s.schema_name,
                      dead_letter_keep_bytes=s.dead_letter_keep_bytes)


def row_preparer(backend: str) -> Callable[[Sequence[Inbound], datetime], Prepared]:
    """`CentralStore.prepare` of `backend`'s stores, which needs no database: the decoding
    process (central/decoder.py) builds the rows with it. Imports the backend, as `open_store`."""
    from .sql import prepare_items

    if backend == "sqlite":
        from .sqlite import SqliteStore as store_type
    elif backend == "postgresql":
        from .postgres import PostgresStore as store_type  # type: ignore[assignment]
    else:
        raise StoreError(f"unknown storage backend {backend!r}; known: {', '.join(BACKENDS)}")
    return partial(prepare_items, t=store_type._t, times_as_text=store_type.TIMES_AS_TEXT)


def transient_errors() -> tuple[type[Exception], ...]:
    """Storage errors after which retrying the same transaction may succeed (a locked SQLite
    file, a PostgreSQL server restarting, a deadlock between two receivers)."""
    import sqlite3

    errors: tuple[type[Exception], ...] = (sqlite3.OperationalError,)
    try:
        from .postgres import TRANSIENT_ERRORS
    except ImportError:
        return errors
    return errors + TRANSIENT_ERRORS


__all__ = [
    "BACKENDS", "Alarm", "BatchOutcome", "FutureRecord", "HourlyRow", "ManualFlag", "CentralStore", "DeadLetter", "DeadLetterOutcome", "DeadLetterRow",
    "Inbound", "Outcome", "Prepared", "StationStatus", "StationSummary", "StatusOutcome", "StoreError",
    "StoredCalibration", "StoredEvent", "StoredFit", "StoredMinute", "StoredSpecies", "StoredTarget",
    "StoredTargetValue", "open_configured_store", "open_store", "row_preparer", "transient_errors",
]
