"""Raw readings (L0) archived at central: table `raw_chunk`, one row per chunk as the station sent it
(ghgnet/wire/raw.py), its body kept compressed as received.

A chunk is keyed by (station, store, device, start): a repeat of a stored key with the same
content hash is a duplicate and changes nothing; one with another hash is a conflict (the stored
copy stays, the caller dead-letters the incoming one). Chunks are pruned by their end time
(`[archive] raw_retention_days`). Shared by both SQL backends through `RawChunkStoreMixin`, which
uses the primitives of `SqlStore`; central/archive/ reads them back as raw rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the codec is the archiver's: the decoding process, which imports the store, needs none of it
    from ghgnet.wire.raw import RawChunk


def migration_raw_chunk(types: dict[str, str]) -> list[str]:
    """The raw_chunk table (append-only: never edit once released)."""
    t = types
    return [
        f"""CREATE TABLE raw_chunk (
            station {t['text']} NOT NULL, store {t['text']} NOT NULL, device {t['text']} NOT NULL,
            time_start {t['time']} NOT NULL, time_end {t['time']} NOT NULL, rows {t['bigint']} NOT NULL,
            body_bytes {t['bigint']} NOT NULL, bytes {t['bigint']} NOT NULL, sha256 {t['text']} NOT NULL,
            content_type {t['text']} NOT NULL, data {t['bytes']} NOT NULL, received_at {t['time']} NOT NULL,
            PRIMARY KEY (station, store, device, time_start))""",
        "CREATE INDEX raw_chunk_end ON raw_chunk (time_end)",
    ]


@dataclass(frozen=True, slots=True)
class StoredChunk:
    """A chunk's place in the archive (its body is read on its own: `raw_chunk_body`)."""

    station: str
    store: str
    device: str
    start: datetime
    end: datetime
    rows: int
    bytes: int


class RawChunkStoreMixin:
    """Raw chunks in a `SqlStore` (needs _t, _from_t, _begin, _commit, _rollback, _execute, _query, _sql)."""

    def put_raw_chunk(self, chunk: RawChunk, received_at: datetime, content_type: str = "ghg-raw/1") -> str:
        """Store a chunk (its header checked, its body verified by the caller) once per key, in one
        transaction; returns "stored", "duplicate" (the same hash is stored) or "conflict"."""
        h = chunk.header
        self._begin()  # type: ignore[attr-defined]
        try:
            cur = self._execute(self._sql(  # type: ignore[attr-defined]
                "INSERT INTO raw_chunk (station, store, device, time_start, time_end, rows, body_bytes, bytes, sha256, "
                "content_type, data, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"),
                (h.station, h.store, h.device, self._t(h.start), self._t(h.end), h.rows,  # type: ignore[attr-defined]
                 h.body_bytes, len(chunk.body), h.sha256, content_type, chunk.body,
                 self._t(received_at)))  # type: ignore[attr-defined]
            if cur.rowcount > 0:
                result = "stored"
            else:
                held = self._query(  # type: ignore[attr-defined]
                    "SELECT sha256 FROM raw_chunk WHERE station = ? AND store = ? AND device = ? AND time_start = ?",
                    (h.station, h.store, h.device, self._t(h.start)))  # type: ignore[attr-defined]
                result = "duplicate" if held and held[0][0] == h.sha256 else "conflict"
            self._commit()  # type: ignore[attr-defined]
            return result
        except BaseException:
            self._rollback()  # type: ignore[attr-defined]
            raise

    def raw_chunk_index(self, station: str, start: datetime, end: datetime,
                        device: str | None = None) -> list[StoredChunk]:
        """The chunks of `station` (every store) that overlap [start, end), by store, device, start."""
        sql = ("SELECT store, device, time_start, time_end, rows, bytes FROM raw_chunk WHERE station = ? "
               "AND time_start < ? AND time_end > ?")
        params: list[Any] = [station, self._t(end), self._t(start)]  # type: ignore[attr-defined]
        if device is not None:
            sql += " AND device = ?"
            params.append(device)
        f = self._from_t  # type: ignore[attr-defined]
        return [StoredChunk(station, r[0], r[1], f(r[2]), f(r[3]), r[4], r[5])
                for r in self._query(sql + " ORDER BY store, device, time_start", params)]  # type: ignore[attr-defined]

    def raw_chunk_body(self, chunk: StoredChunk) -> tuple[bytes, dict[str, Any]]:
        """A stored chunk's compressed body and its header fields (rows, body_bytes, sha256)."""
        rows = self._query(  # type: ignore[attr-defined]
            "SELECT data, rows, body_bytes, sha256 FROM raw_chunk WHERE station = ? AND store = ? AND device = ? "
            "AND time_start = ?", (chunk.station, chunk.store, chunk.device, self._t(chunk.start)))  # type: ignore[attr-defined]
        if not rows:
            raise KeyError(f"no raw chunk {chunk.station} {chunk.device} {chunk.start.isoformat()} (pruned meanwhile?)")
        data, n, body_bytes, sha = rows[0]
        return bytes(data), {"rows": n, "body_bytes": body_bytes, "sha256": sha}

    def raw_archive_summary(self) -> list[dict[str, Any]]:
        """Per station, store and device: the archived span, chunks, rows and bytes (compressed and not)."""
        f = self._from_t  # type: ignore[attr-defined]
        return [{"station": r[0], "store": r[1], "device": r[2], "first": f(r[3]), "last": f(r[4]), "chunks": r[5],
                 "rows": r[6], "bytes": r[7], "body_bytes": r[8], "first_received": f(r[10]),
                 "last_received": f(r[9])}
                for r in self._query(  # type: ignore[attr-defined]
                    "SELECT station, store, device, min(time_start), max(time_end), count(*), sum(rows), sum(bytes), "
                    "sum(body_bytes), max(received_at), min(received_at) FROM raw_chunk "
                    "GROUP BY station, store, device ORDER BY station, store, device")]

    def prune_raw_chunks(self, before: datetime) -> int:
        """Delete the chunks that end at or before `before` (retention); returns how many went."""
        self._begin()  # type: ignore[attr-defined]
        try:
            n = self._execute(self._sql("DELETE FROM raw_chunk WHERE time_end <= ?"),  # type: ignore[attr-defined]
                              (self._t(before),)).rowcount  # type: ignore[attr-defined]
            self._commit()  # type: ignore[attr-defined]
            return int(n)
        except BaseException:
            self._rollback()  # type: ignore[attr-defined]
            raise


def iter_chunk_index(index: list[StoredChunk]) -> Iterator[list[StoredChunk]]:
    """The index split per (store, device), each part in start order."""
    part: list[StoredChunk] = []
    for c in index:
        if part and (part[-1].store, part[-1].device) != (c.store, c.device):
            yield part
            part = []
        part.append(c)
    if part:
        yield part
