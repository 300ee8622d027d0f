"""Encoding messages: batches, acks, status, and a record for a dead letter.

A batch is built from each record's JSON object without its seq (what the station's outbox
keeps): `BatchEncoder` splices the seq in front instead of decoding and encoding every record
again; `encode_batch` is the same encoder given validated models.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from ghgnet.timeutil import iso_utc

from .acks import compress_seqs
from .models import (
    SCHEMA_VERSION,
    STORE_RE,
    AckMessage,
    CalibrationWire,
    EmissionWire,
    EventWire,
    FluxWire,
    MinuteWire,
    StatusMessage,
    TargetWire,
    WireRecord,
)
from .topics import BATCH_KINDS, check_station_id

_RECORD_MODELS: dict[str, tuple[type[BaseModel], ...]] = {
    "minute": (MinuteWire,), "event": (EventWire,), "calibration": (CalibrationWire, TargetWire),
    "emission": (EmissionWire,),
    "flux": (FluxWire,),
}


class BatchEncoder:
    """Batch payloads of one station and store. The envelope's head is built once per kind from
    checked ids; records come as (seq, JSON object without seq) and are taken as they are, unchecked
    (the station's outbox holds them; tests/ghgnet/test_wire.py reads its rows through the models)."""

    __slots__ = ("_heads", "head_bytes")

    def __init__(self, station: str, store: str | None = None) -> None:
        check_station_id(station)
        if store is not None and (not isinstance(store, str) or STORE_RE.fullmatch(store) is None):
            raise ValueError(f"store {str(store)[:40]!r} is not a store identity (32 lower-case hex digits)")
        store_key = "" if store is None else f'"store":"{store}",'  # absent: a station older than store ids
        self._heads = {
            kind: f'{{"schema":{SCHEMA_VERSION},"station":"{station}",{store_key}"kind":"{kind}","sent":"'.encode()
            for kind in BATCH_KINDS}
        # bytes of the longest kind's head (the envelope up to its sent time), for size budgets
        self.head_bytes = max(len(h) for h in self._heads.values())

    def encode(self, kind: str, sent: datetime, records: Iterable[tuple[int, str]]) -> bytes:
        """The JSON bytes of a `kind` batch sent at `sent` holding `records`: (seq, the record's JSON
        object without its seq), in order."""
        return self.encode_rows(kind, sent, ((seq, kind, obj.encode()) for seq, obj in records))

    def encode_rows(self, kind: str, sent: datetime, rows: Iterable[tuple[int, str, bytes]]) -> bytes:
        """`encode` given the outbox's rows as the station reads them to send: (seq, kind, the JSON
        object without its seq as UTF-8 bytes), all of `kind` (not checked); nothing is decoded."""
        try:
            head = self._heads[kind]
        except KeyError:
            raise ValueError(f"unknown batch kind {kind!r}; known: {', '.join(BATCH_KINDS)}") from None
        body = b",".join(b'{"seq":%d,%b' % (seq, obj[1:]) if obj != b"{}" else b'{"seq":%d}' % seq
                         for seq, _, obj in rows)
        return b"".join((head, iso_utc(sent).encode(), b'","records":[', body, b"]}"))


def encode_batch(station: str, kind: str, records: Sequence[WireRecord], sent: datetime,
                 store: str | None = None) -> bytes:
    """`BatchEncoder` given validated models of `kind`; without a `store` key when `store` is None."""
    encoder = BatchEncoder(station, store)
    want = _RECORD_MODELS.get(kind, ())
    for r in records:
        if not isinstance(r, want):
            raise ValueError(f"a {type(r).__name__} does not belong in a {kind} batch")
    return encoder.encode(kind, sent, [(r.seq, r.model_dump_json(exclude={"seq"})) for r in records])


def encode_ack(station: str, seqs: Iterable[int], store: str | None = None) -> bytes:
    """An ack of `seqs` from `store` (None: a station older than store identities, whose ack
    carries no `store` key)."""
    ack = AckMessage(station=station, store=store, acked=compress_seqs(seqs))
    return ack.model_dump_json(by_alias=True, exclude_none=True).encode()


def encode_status(status: StatusMessage) -> bytes:
    return status.to_json()


def record_to_json(raw: Any) -> str:
    """A record (model or raw JSON value) as JSON text, for a dead letter; never raises."""
    try:
        if isinstance(raw, BaseModel):
            return raw.model_dump_json()
        return json.dumps(raw, ensure_ascii=True, allow_nan=True, default=repr)
    except (TypeError, ValueError, RecursionError):
        return repr(raw)[:65536]
