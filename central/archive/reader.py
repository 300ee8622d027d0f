"""Reading the raw archive back: the rows the station's raw table held (`StationStore.raw_rows`)."""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from ghgnet.timeutil import iso_utc, parse_utc
from ghgnet.wire.raw import RAW_SCHEMA_VERSION, RawChunkHeader, decode_body

from ..store.raw_chunks import StoredChunk, iter_chunk_index


def raw_readings(store, station: str, start: datetime, end: datetime, device: str | None = None) -> Iterator[dict]:
    """`station`'s raw readings with start <= time < end (of `device` only, when given), as dicts
    with the keys and value types of `StationStore.raw_rows` (device, time as ISO text, stream,
    flushing, status, status_ok, status_flags, values, conditions), ordered by time, then device.

    Every store (database) the station sent from is read: a reinstalled station's readings come
    in too. Chunks are read one at a time (a year of one device is some 50,000 of them); each is
    checked against its hash as it is read. `store`: a central store (SQLite or PostgreSQL)."""
    lo, hi = iso_utc(start), iso_utc(end)
    parts = [_rows(store, part, lo, hi) for part in iter_chunk_index(store.raw_chunk_index(station, start, end,
                                                                                            device))]
    yield from heapq.merge(*parts, key=lambda r: (r["time"], r["device"]))


def _within(text: str, lo: str, hi: str) -> bool:
    if len(text) == 24:  # iso_utc's fixed-width form: text order is time order
        return lo <= text < hi
    return lo <= iso_utc(parse_utc(text)) < hi


def _rows(store, chunks: list[StoredChunk], lo: str, hi: str) -> Iterator[dict]:
    for c in chunks:
        body, meta = store.raw_chunk_body(c)
        header = RawChunkHeader(schema=RAW_SCHEMA_VERSION, station=c.station, store=c.store, device=c.device,
                                start=c.start, end=c.end, **meta)
        for row in decode_body(header, body):
            if _within(row["time"], lo, hi):
                yield row


def archive_status(store) -> list[dict[str, Any]]:
    """Per station and device (and store, when a station sent from several): the archived span
    (first chunk's start, last chunk's end), chunks, rows, bytes kept (compressed), the bytes
    the rows take as the body's JSON, and when the first and the last chunk arrived."""
    return [dict(r, first=iso_utc(r["first"]), last=iso_utc(r["last"]), first_received=iso_utc(r["first_received"]),
                 last_received=iso_utc(r["last_received"])) for r in store.raw_archive_summary()]
