"""Parsing received messages against the models: batches (record by record when the whole fails),
status and ack. A payload is rejected whole (a WireError) or split into records and rejected ones."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pydantic_core
from pydantic import ValidationError

from .errors import (
    BadTopic,
    InvalidPayload,
    KindMismatch,
    MalformedJSON,
    PayloadTooLarge,
    StationMismatch,
    UnknownSchema,
)
from .models import (
    BATCH_MODELS,
    DEFAULT_MAX_PAYLOAD_BYTES,
    MAX_SEQ,
    RECORD_ADAPTERS,
    SCHEMA_VERSION,
    STORE_RE,
    AckMessage,
    StatusMessage,
    WireRecord,
    utc_time,
)
from .topics import BATCH_KINDS, parse_topic


@dataclass(frozen=True, slots=True)
class RejectedRecord:
    """One record of an otherwise valid batch that central dead-letters on its own.
    `seq` is None when the record carries no usable seq (then it cannot be acked)."""

    index: int
    seq: int | None
    reason: str
    raw: Any


@dataclass(frozen=True, slots=True)
class ParsedBatch:
    """A batch that passed validation. `records` are the wire models, or structs with the same
    attributes and values (central's lean minute decoder, central/lean_minutes.py)."""

    station: str
    kind: str
    sent: datetime
    records: list[WireRecord] | list[Any]
    rejected: list[RejectedRecord] = field(default_factory=list)
    time_texts: list[str] | None = None
    """The records' times as the text they came in, when that was iso_utc's form for every one
    (the lean decoder checks it): a store that keeps times in that form keeps these texts."""
    species_texts: list[str] | None = None
    """The records' `species` objects as the JSON text they came in (the lean decoder), which
    reads back as the same values (an integer where a float belongs: as that float)."""
    store: str | None = None
    """The identity of the station database the records come from; None from a station older than
    store identities."""

    def seqs_held(self) -> list[int]:
        """Every seq this batch settles: valid records plus rejected records with a seq."""
        return [r.seq for r in self.records] + [r.seq for r in self.rejected if r.seq is not None]


def describe_validation_error(exc: ValidationError, limit: int = 5, prefix: str = "") -> str:
    """`field.path: message; ...` for the first `limit` errors, without echoing whole inputs."""
    parts = []
    errors = exc.errors(include_url=False, include_input=False)
    for err in errors[:limit]:
        loc = ".".join([prefix] * bool(prefix) + [str(p) for p in err["loc"]]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        parts.append(f"{loc}: {msg}")
    if len(errors) > limit:
        parts.append(f"... {len(errors) - limit} more")
    return "; ".join(parts)


def _load_json(payload: bytes, max_bytes: int) -> Any:
    if len(payload) > max_bytes:
        raise PayloadTooLarge(f"payload of {len(payload)} bytes exceeds the limit of {max_bytes} bytes")
    try:
        return pydantic_core.from_json(payload, allow_inf_nan=False)
    except ValueError as exc:
        raise MalformedJSON(f"malformed JSON: {exc}") from None


def _check_envelope(data: Any, topic_station: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InvalidPayload(f"payload is a JSON {type(data).__name__}, not an object")
    if "schema" not in data:
        raise UnknownSchema("payload has no 'schema' key")
    schema = data["schema"]
    if type(schema) is not int or schema != SCHEMA_VERSION:
        raise UnknownSchema(f"unknown schema version {schema!r} (this receiver reads {SCHEMA_VERSION})")
    station = data.get("station")
    if station != topic_station:
        raise StationMismatch(
            f"payload station {str(station)[:64]!r} differs from the topic's station {topic_station!r}"
        )
    extra = sorted(set(data) - allowed)
    if extra:
        raise InvalidPayload(f"unknown key(s) in payload: {', '.join(repr(k)[:40] for k in extra[:5])}")
    return data


def _raw_seq(raw: Any) -> int | None:
    if isinstance(raw, dict):
        s = raw.get("seq")
        if type(s) is int and 1 <= s <= MAX_SEQ:
            return s
    return None


def parse_batch(topic: str, payload: bytes, max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> ParsedBatch:
    """Validate a batch received on `topic`.

    Raises a WireError subclass when the payload is rejected as a whole. Single records that fail
    validation, or repeat a seq already in the batch, come back in `rejected` with the reason.
    """
    station, kind = parse_topic(topic)
    if kind not in BATCH_KINDS:
        raise BadTopic(f"topic {topic!r} does not carry batches")
    if len(payload) > max_bytes:
        raise PayloadTooLarge(f"payload of {len(payload)} bytes exceeds the limit of {max_bytes} bytes")
    try:
        # fast path: the whole payload validated in one pass (pydantic-core, no Python per field)
        fast: Any = BATCH_MODELS[kind].model_validate_json(payload)
    except ValidationError:
        return _parse_batch_slowly(station, kind, payload, max_bytes)
    if fast.station != station:
        raise StationMismatch(f"payload station {fast.station!r} differs from the topic's station {station!r}")
    if not fast.records:
        raise InvalidPayload("records: the batch is empty")
    return _dedupe(station, kind, fast.sent, list(fast.records), [], fast.store)


def _dedupe(station: str, kind: str, sent: datetime, items: list[Any], raws: list[Any],
            store: str | None) -> ParsedBatch:
    records: list[WireRecord] = []
    rejected: list[RejectedRecord] = []
    seen: set[int] = set()
    for i, item in enumerate(items):
        if isinstance(item, RejectedRecord):
            rejected.append(item)
        elif item.seq in seen:
            raw = raws[i] if raws else item.model_dump(mode="json", by_alias=True)
            rejected.append(RejectedRecord(i, item.seq, f"records.{i}: duplicated seq {item.seq} within the batch", raw))
        else:
            seen.add(item.seq)
            records.append(item)
    return ParsedBatch(station, kind, sent, records, rejected, store=store)


def _parse_batch_slowly(station: str, kind: str, payload: bytes, max_bytes: int) -> ParsedBatch:
    """Find out what is wrong, record by record: a bad envelope rejects the payload, a bad record
    only itself."""
    data = _check_envelope(_load_json(payload, max_bytes), station,
                           {"schema", "station", "store", "kind", "sent", "records"})
    store = data.get("store")
    if store is not None and (not isinstance(store, str) or STORE_RE.fullmatch(store) is None):
        raise InvalidPayload(f"store: {str(store)[:40]!r} is not a store identity (32 lower-case hex digits)")
    if data.get("kind") != kind:
        raise KindMismatch(f"payload kind {str(data.get('kind'))[:32]!r} differs from the topic's kind {kind!r}")
    try:
        sent = utc_time(data.get("sent"))
    except ValueError as exc:
        raise InvalidPayload(f"sent: {exc}") from None
    raws = data.get("records")
    if not isinstance(raws, list):
        raise InvalidPayload(f"records: expected a list, got {type(raws).__name__}")
    if not raws:
        raise InvalidPayload("records: the batch is empty")
    adapter = RECORD_ADAPTERS[kind]
    items: list[Any] = []
    for i, raw in enumerate(raws):
        try:
            items.append(adapter.validate_json(json.dumps(raw, allow_nan=True)))
        except ValidationError as exc:
            items.append(RejectedRecord(i, _raw_seq(raw), describe_validation_error(exc, prefix=f"records.{i}"), raw))
    return _dedupe(station, kind, sent, items, raws, store)


def parse_status(topic: str, payload: bytes, max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> StatusMessage:
    station, kind = parse_topic(topic)
    if kind != "status":
        raise BadTopic(f"topic {topic!r} is not a status topic")
    _check_envelope(_load_json(payload, max_bytes), station, set(StatusMessage.model_fields) - {"schema_version"} | {"schema"})
    try:
        return StatusMessage.model_validate_json(payload)
    except ValidationError as exc:
        raise InvalidPayload(describe_validation_error(exc)) from None


def parse_ack(topic: str, payload: bytes, max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> AckMessage:
    station, kind = parse_topic(topic)
    if kind != "ack":
        raise BadTopic(f"topic {topic!r} is not an ack topic")
    _check_envelope(_load_json(payload, max_bytes), station, {"schema", "station", "store", "acked"})
    try:
        return AckMessage.model_validate_json(payload)
    except ValidationError as exc:
        raise InvalidPayload(describe_validation_error(exc)) from None
