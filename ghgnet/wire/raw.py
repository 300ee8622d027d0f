"""Raw readings (L0) on the wire: one device's raw rows over a time window, compressed, as a chunk.

A station archives its raw table at central in the background (station_agent/forwarding/
raw_upload.py) on ``ghg/v1/<station>/raw``; central stores each chunk as it came, once per key
(station, store, device, start), and answers on ``ghg/v1/<station>/raw_ack``
(central/archive/). Version 1, announced by the MQTT v5 content type ``ghg-raw/1``:

    <header: one line of UTF-8 JSON> LF <body: a zlib stream>

Header::

    {"schema": 1, "station": "<id>", "store": "<32 hex digits>", "device": "<id>",
     "start": "<ISO 8601 Z>", "end": "<ISO 8601 Z>", "rows": <int >= 1>,
     "body_bytes": <int>, "sha256": "<64 hex digits>"}

The chunk holds every row of `device` with start <= time < end that the station had when it made
the chunk. `sha256` is the SHA-256 of the body before compression (`body_bytes` long), so two
chunks with the same rows have the same hash whatever zlib made of them: central tells a repeat
(same key, same hash: absorbed) from a conflict (same key, other rows).

The body is one JSON object, columns rather than rows (a column of like values compresses far
better than rows of mixed ones)::

    {"time_ms": [ms after start, then ms after the previous row, ...]  (or "time": [texts]),
     "stream": RLE, "flushing": RLE, "status": RLE, "status_ok": RLE, "status_flags": RLE,
     "conditions": RLE, "keys": RLE of each row's value names (in the row's order),
     "values": {name: [the values of the rows that have it, in row order]}}

RLE is ``[[value, count], ...]``. Times go as millisecond offsets when every time is the
station's own fixed-width text (`ghgnet.timeutil.iso_utc`), which they then reproduce exactly;
otherwise as the texts. The rows a chunk decodes to are the dicts `StationStore.raw_rows` yields,
key for key and type for type (a value null where the station stored null: NaN).

Raw ack (central -> station, JSON)::

    {"schema": 1, "station": "<id>", "store": "<32 hex digits>", "device": "<id>",
     "start": "<ISO 8601 Z>", "end": "<ISO 8601 Z>", "result": "stored"|"duplicate"|"conflict"|"refused",
     "reason": "<text>"}

Every chunk whose header central could read is acknowledged once it is committed (stored,
found stored, or dead-lettered: a chunk refused for its content would be refused again), so the
station advances its cursor; `reason` says why a chunk was refused. A payload whose header cannot
be read, or whose station differs from its topic's, is dead-lettered and acknowledged to nobody.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, model_validator

from ghgnet.timeutil import iso_utc, parse_utc

from .errors import InvalidPayload, PayloadTooLarge, StationMismatch, UnknownContentType, UnknownSchema, WireError
from .models import Name, StoreId, UtcTime
from .parse import describe_validation_error
from .topics import STATION_ID_PATTERN, parse_topic

RAW_SCHEMA_VERSION = 1
RAW_CONTENT_TYPE = "ghg-raw/1"
HEADER_MAX_BYTES = 2048
"""A header longer than this is not a header."""
MAX_CHUNK_ROWS = 1_000_000
MAX_CHUNK_SPAN = timedelta(days=1)
DEFAULT_MAX_INFLATED_BYTES = 64 << 20
"""The most a chunk's body may inflate to (a zlib bomb stops here)."""
ROW_KEYS = ("device", "time", "stream", "flushing", "status", "status_ok", "status_flags", "values", "conditions")
"""The keys of a raw row, as `StationStore.raw_rows` yields them."""
RESULTS = ("stored", "duplicate", "conflict", "refused")


class MalformedRaw(WireError):
    code = "malformed_raw"


class HashMismatch(WireError):
    code = "hash_mismatch"


class RawChunkHeader(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    schema_version: Literal[1] = Field(alias="schema")
    station: str = Field(pattern=STATION_ID_PATTERN)
    store: StoreId
    device: Name
    start: UtcTime
    end: UtcTime
    rows: StrictInt = Field(ge=1, le=MAX_CHUNK_ROWS)
    body_bytes: StrictInt = Field(ge=2)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    @model_validator(mode="after")
    def _window(self) -> RawChunkHeader:
        if not self.start < self.end:
            raise ValueError(f"end {iso_utc(self.end)} is not after start {iso_utc(self.start)}")
        if self.end - self.start > MAX_CHUNK_SPAN:
            raise ValueError(f"a chunk spans {self.end - self.start}, more than {MAX_CHUNK_SPAN}")
        return self

    def wire(self) -> bytes:
        return json.dumps({"schema": RAW_SCHEMA_VERSION, "station": self.station, "store": self.store,
                           "device": self.device, "start": iso_utc(self.start), "end": iso_utc(self.end),
                           "rows": self.rows, "body_bytes": self.body_bytes, "sha256": self.sha256},
                          separators=(",", ":")).encode()


class RawAck(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    schema_version: Literal[1] = Field(alias="schema")
    station: str = Field(pattern=STATION_ID_PATTERN)
    store: StoreId
    device: Name
    start: UtcTime
    end: UtcTime
    result: Literal["stored", "duplicate", "conflict", "refused"]
    reason: str = Field(default="", max_length=2000)


@dataclass(frozen=True, slots=True)
class RawChunk:
    """A chunk as sent and as central keeps it: its header and its compressed body."""

    header: RawChunkHeader
    body: bytes
    """The zlib stream, as it travelled."""

    @property
    def frame(self) -> bytes:
        return self.header.wire() + b"\n" + self.body

    def rows(self, max_inflated: int = DEFAULT_MAX_INFLATED_BYTES) -> list[dict[str, Any]]:
        return decode_body(self.header, self.body, max_inflated)


# -- encoding -------------------------------------------------------------------------------------

def _rle(values: Iterable[Any]) -> list[list[Any]]:
    out: list[list[Any]] = []
    for v in values:
        if out and out[-1][0] == v and type(out[-1][0]) is type(v):
            out[-1][1] += 1
        else:
            out.append([v, 1])
    return out


def _canonical_ms(text: str) -> int | None:
    """Milliseconds since the epoch of an iso_utc text, None for any other form."""
    if len(text) != 24 or text[-1] != "Z" or text[19] != ".":
        return None
    try:
        t = datetime.fromisoformat(text[:-1] + "+00:00")
    except ValueError:
        return None
    if iso_utc(t) != text:
        return None
    return _time_ms(t)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _time_ms(t: datetime) -> int:
    return (t - _EPOCH) // timedelta(milliseconds=1)


def encode_body(rows: Sequence[dict[str, Any]], start: datetime) -> bytes:
    """The uncompressed body (JSON) of `rows` (one device's, in time order)."""
    times = [r["time"] for r in rows]
    ms = [_canonical_ms(t) for t in times]
    body: dict[str, Any] = {}
    if None not in ms:
        prev = _time_ms(start)
        deltas = []
        for m in ms:
            deltas.append(m - prev)  # type: ignore[operator]
            prev = m  # type: ignore[assignment]
        body["time_ms"] = deltas
    else:
        body["time"] = times
    for key in ("stream", "flushing", "status", "status_ok", "status_flags", "conditions"):
        body[key] = _rle(r[key] for r in rows)
    body["keys"] = _rle(list(r["values"]) for r in rows)
    columns: dict[str, list[Any]] = {}
    for r in rows:
        for k, v in r["values"].items():
            columns.setdefault(k, []).append(v)
    body["values"] = columns
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()


def encode_chunk(station: str, store: str, device: str, start: datetime, end: datetime,
                 rows: Sequence[dict[str, Any]], level: int = 9) -> RawChunk:
    """One chunk of `device`'s rows with start <= time < end, in time order."""
    if not rows:
        raise ValueError("a chunk holds at least one row")
    body = encode_body(rows, start)
    header = RawChunkHeader(schema=RAW_SCHEMA_VERSION, station=station, store=store, device=device, start=start,
                            end=end, rows=len(rows), body_bytes=len(body), sha256=hashlib.sha256(body).hexdigest())
    return RawChunk(header, zlib.compress(body, level))


# -- decoding -------------------------------------------------------------------------------------

def parse_chunk(topic: str, payload: bytes, content_type: str | None, max_bytes: int) -> RawChunk:
    """A chunk received on `topic`, its header checked (not its body: `RawChunk.rows` does that).
    Raises a WireError subclass naming what is wrong."""
    station, kind = parse_topic(topic)
    if kind != "raw":
        raise InvalidPayload(f"topic {topic!r} does not carry raw chunks")
    if content_type != RAW_CONTENT_TYPE:
        raise UnknownContentType(f"content type {str(content_type)[:64]!r} is not {RAW_CONTENT_TYPE!r}")
    if len(payload) > max_bytes:
        raise PayloadTooLarge(f"raw chunk of {len(payload)} bytes exceeds the limit of {max_bytes} bytes")
    cut = payload.find(b"\n", 0, HEADER_MAX_BYTES + 1)
    if cut < 0:
        raise MalformedRaw(f"no header line within the first {HEADER_MAX_BYTES} bytes")
    try:
        head = json.loads(payload[:cut])
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedRaw(f"header: malformed JSON: {exc}") from None
    if not isinstance(head, dict):
        raise MalformedRaw(f"header: a JSON {type(head).__name__}, not an object")
    if head.get("schema") != RAW_SCHEMA_VERSION or type(head.get("schema")) is not int:
        raise UnknownSchema(f"raw chunk schema {str(head.get('schema'))[:20]!r} (this side reads {RAW_SCHEMA_VERSION})")
    if head.get("station") != station:
        raise StationMismatch(f"header station {str(head.get('station'))[:64]!r} differs from the topic's "
                              f"station {station!r}")
    try:
        header = RawChunkHeader.model_validate(head)
    except ValidationError as exc:
        raise InvalidPayload(f"header: {describe_validation_error(exc)}") from None
    return RawChunk(header, payload[cut + 1:])


def _inflate(body: bytes, max_inflated: int) -> bytes:
    inflate = zlib.decompressobj()
    try:
        out = inflate.decompress(body, max_inflated + 1)
    except zlib.error as exc:
        raise MalformedRaw(f"body: not a zlib stream ({exc})") from None
    if len(out) > max_inflated or inflate.unconsumed_tail:
        raise PayloadTooLarge(f"body inflates beyond the limit of {max_inflated} bytes")
    if not inflate.eof:
        raise MalformedRaw(f"body: the zlib stream is truncated after {len(body)} bytes")
    if inflate.unused_data:
        raise MalformedRaw(f"body: {len(inflate.unused_data)} bytes after the end of its zlib stream")
    return out


def _unrle(rle: Any, n: int, name: str, check) -> list[Any]:
    if not isinstance(rle, list):
        raise MalformedRaw(f"body: {name}: expected a list of [value, count]")
    out: list[Any] = []
    for item in rle:
        if not (isinstance(item, list) and len(item) == 2 and type(item[1]) is int and item[1] >= 1):
            raise MalformedRaw(f"body: {name}: {str(item)[:60]} is not [value, count >= 1]")
        if not check(item[0]):
            raise MalformedRaw(f"body: {name}: {str(item[0])[:60]} is not a valid value")
        out.extend([item[0]] * item[1])
        if len(out) > n:
            break
    if len(out) != n:
        raise MalformedRaw(f"body: {name} holds {len(out)} values for {n} rows")
    return out


def _texts(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _number(v: Any) -> bool:
    return v is None or (type(v) in (int, float) and v == v and v not in (float("inf"), float("-inf")))


_CHECKS = {
    "stream": lambda v: isinstance(v, str),
    "flushing": lambda v: type(v) is bool,
    "status": lambda v: v is None or type(v) is int,
    "status_ok": lambda v: type(v) is bool,
    "status_flags": _texts,
    "conditions": _texts,
}


def decode_body(header: RawChunkHeader, body: bytes, max_inflated: int = DEFAULT_MAX_INFLATED_BYTES) -> list[dict]:
    """The rows of a chunk, checked against its header: the hash, the row count, every field's
    type, every time within [start, end) and in order. Raises a WireError naming what is wrong."""
    text = _inflate(body, max_inflated)
    if len(text) != header.body_bytes:
        raise HashMismatch(f"body inflates to {len(text)} bytes, the header says {header.body_bytes}")
    if hashlib.sha256(text).hexdigest() != header.sha256:
        raise HashMismatch("the body's SHA-256 differs from the header's")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise MalformedRaw(f"body: malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MalformedRaw("body: not a JSON object")
    n = header.rows
    lo, hi = _time_ms(header.start), _time_ms(header.end)
    if "time_ms" in data:
        deltas = data["time_ms"]
        if not (isinstance(deltas, list) and len(deltas) == n and all(type(d) is int for d in deltas)):
            raise MalformedRaw(f"body: time_ms is not a list of {n} integers")
        stamps, t = [], lo
        for d in deltas:
            t += d
            stamps.append(t)
        times = [iso_utc(_EPOCH + timedelta(milliseconds=t)) if lo <= t < hi else "" for t in stamps]
    elif "time" in data:
        times = data["time"]
        if not (_texts(times) and len(times) == n):
            raise MalformedRaw(f"body: time is not a list of {n} texts")
        stamps = [_text_ms(t) for t in times]
    else:
        raise MalformedRaw("body: neither time_ms nor time")
    for i, t in enumerate(stamps):
        if t is None or not lo <= t < hi:
            raise MalformedRaw(f"body: row {i}: time {str(times[i] or t)[:40]!r} outside "
                               f"[{iso_utc(header.start)}, {iso_utc(header.end)})")
        if i and t < stamps[i - 1]:
            raise MalformedRaw(f"body: row {i}: time {times[i]} before the previous row's {times[i - 1]}")
    cols = {key: _unrle(data.get(key), n, key, check) for key, check in _CHECKS.items()}
    keys = _unrle(data.get("keys"), n, "keys", _texts)
    values = data.get("values")
    if not isinstance(values, dict):
        raise MalformedRaw("body: values is not an object")
    cursor = {k: 0 for k in values}
    for k, col in values.items():
        if not isinstance(col, list) or not all(_number(v) for v in col):
            raise MalformedRaw(f"body: values.{k[:40]}: not a list of numbers or nulls")
    rows: list[dict[str, Any]] = []
    for i in range(n):
        vals: dict[str, Any] = {}
        for k in keys[i]:
            col, j = values.get(k), cursor.get(k, 0)
            if col is None or j >= len(col) or k in vals:
                raise MalformedRaw(f"body: row {i}: value {k[:40]!r} missing from values")
            vals[k] = col[j]
            cursor[k] = j + 1
        rows.append({"device": header.device, "time": times[i], "stream": cols["stream"][i],
                     "flushing": cols["flushing"][i], "status": cols["status"][i],
                     "status_ok": cols["status_ok"][i], "status_flags": list(cols["status_flags"][i]),
                     "values": vals, "conditions": list(cols["conditions"][i])})
    left = [k for k, j in cursor.items() if j != len(values[k])]
    if left:
        raise MalformedRaw(f"body: values {left[:3]} hold more values than rows name them")
    return rows


def _text_ms(text: str) -> int | None:
    """Milliseconds since the epoch of a time text (any ISO 8601 form with a zone), None if it is none."""
    try:
        t = parse_utc(text)
    except (ValueError, OverflowError):
        return None
    return (t - _EPOCH) // timedelta(milliseconds=1)


# -- acks -----------------------------------------------------------------------------------------

def encode_raw_ack(header: RawChunkHeader, result: str, reason: str = "") -> bytes:
    if result not in RESULTS:
        raise ValueError(f"result {result!r} is not one of {RESULTS}")
    return json.dumps({"schema": RAW_SCHEMA_VERSION, "station": header.station, "store": header.store,
                       "device": header.device, "start": iso_utc(header.start), "end": iso_utc(header.end),
                       "result": result, "reason": reason[:2000]}, separators=(",", ":")).encode()


def parse_raw_ack(topic: str, payload: bytes) -> RawAck:
    station, kind = parse_topic(topic)
    if kind != "raw_ack":
        raise InvalidPayload(f"topic {topic!r} is not a raw ack topic")
    if len(payload) > 8192:
        raise PayloadTooLarge(f"raw ack of {len(payload)} bytes")
    try:
        ack = RawAck.model_validate_json(payload)
    except ValidationError as exc:
        raise InvalidPayload(describe_validation_error(exc)) from None
    if ack.station != station:
        raise StationMismatch(f"raw ack for station {ack.station!r} on {station!r}'s topic")
    return ack
