"""The lean batch encoding, for stations on metered links: the same batch as the JSON one, in fewer bytes.

A lean payload is announced by its MQTT v5 Content Type (`LEAN_CONTENT_TYPE`, which carries the
version); a payload without a content type, or with `application/json`, is today's JSON batch.
Central turns a lean payload back into the JSON batch it stands for (`lean_to_json`) and validates
that with the models like any other, so the two encodings accept the same records with the same
values, and a record stored from one is a duplicate of the same record sent in the other.

Version 1 (`ghg-lean/1`): raw DEFLATE (RFC 1951, zlib wbits -15, no header or checksum: TCP and TLS
carry the message) with the preset dictionary `DICTIONARY_V1`, of one document in one of two forms,
told apart by its first byte. The JSON form (``{``) is the JSON batch itself: a station sends it for
batches of more than `POSITIONAL_MAX_RECORDS` records (backlogs), which central then reads as fast as
plain JSON. The positional form (a MessagePack array of 5, byte 0x95), for the few records a live
link sends at a time, where names and envelope would be most of the bytes::

    [station: str, store: bin 16 | nil, kind: str, sent: int | str, records: [record, ...]]

``store`` is the store identity's 16 bytes (nil: a station older than store identities); ``sent``
milliseconds since 1970-01-01T00:00:00Z (or the envelope's text, when not in iso_utc's form); the
schema is 1. Each record is one of (MessagePack arrays, tag first)::

    [0, seq, time, device, stream, [species names], [n per species], values: bin, flag, reasons,
        n_total, calibration_id, [diagnostic names]]      a minute record with exactly its 11 keys
    [1, seq, json: bin]                                   any record: its JSON object without seq
    [2, seq, ...as tag 0...]                              a minute whose species carry `u` (issue 21)

``time`` is milliseconds after ``sent`` (negative: before it), or the record's text when it or
``sent`` is not in iso_utc's form. ``values`` is little-endian doubles: per species mean, std,
raw_mean, cal_mean (tag 2: and u), then h2o, then the diagnostics in their names' order; NaN stands for null (no
wire float may be NaN), an infinity is refused. Positions keep a minute's names off the wire (a live
minute travels alone: names were half its compressed bytes); any record the positional form does not
fit exactly travels as its JSON text, so nothing a station stores is changed on the way.
Central bounds the inflated document and the JSON built from it by its payload limit (a
decompression bomb is refused early), and refuses trailing bytes, a truncated stream and any
document out of this shape (`MalformedLean`).

A released dictionary never changes (tests pin its hash): a better one is a new version, and
central keeps decoding every version it has known. Tag 2 (a minute with each species' standard
uncertainty `u`, a fifth double per species) was added to version 1 with the same dictionary: a
station sends it only for minutes that carry a `u`, and a central older than it refuses such a
batch as malformed, so central is upgraded first.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated

import msgspec

from ghgnet.timeutil import iso_utc

from .encode import BatchEncoder
from .errors import MalformedLean, PayloadTooLarge, UnknownContentType
from .models import SCHEMA_VERSION, STORE_RE
from .topics import BATCH_KINDS, check_station_id

JSON_CONTENT_TYPE = "application/json"
LEAN_CONTENT_TYPE = "ghg-lean/1"
"""Short on purpose: a content type travels in every message, and a live minute is ~150 bytes."""
ENCODINGS = {"json": None, "lean": LEAN_CONTENT_TYPE}
"""A station's `[forwarding] encoding` -> the content type it announces (None: none, JSON)."""

POSITIONAL_MAX_RECORDS = 16
"""Batches of more records go in the JSON form: deflated, a backlog's record takes about a fifth more
bytes than in the positional one, and central reads the JSON straight, several times faster."""

_DBL_MAX = 1.7976931348623157e308
_Finite = Annotated[float, msgspec.Meta(ge=-_DBL_MAX, le=_DBL_MAX)]  # NaN fails both bounds
_Stat = _Finite | None
_NAN = math.nan
_INF = math.inf
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def _ms(text: str) -> int | None:
    """Milliseconds since the epoch of a time in iso_utc's form (None for any other text, which
    then travels as it is: the same text comes back either way)."""
    try:
        t = datetime.fromisoformat(text)
        ms = (t - _EPOCH) // _MS
    except (ValueError, TypeError, OverflowError):
        return None
    return ms if iso_utc(_EPOCH + ms * _MS) == text else None


def _time_text(ms: int) -> str:
    try:
        return iso_utc(_EPOCH + ms * _MS)
    except (OverflowError, ValueError):
        raise MalformedLean(f"lean payload: time {ms} ms after 1970 is out of range") from None


class _LeanMinute(msgspec.Struct, array_like=True, tag=0, gc=False):
    seq: int
    time: int | str  # int: milliseconds after the batch's sent time (negative: before it); str: as sent
    device: str
    stream: str
    species: list[str]
    n: list[int]
    values: bytes  # little-endian doubles: per species mean, std, raw_mean, cal_mean; then h2o; then diagnostics
    flag: str
    reasons: list[str]
    n_total: int
    calibration_id: str | None
    diagnostics: list[str]


class _LeanJson(msgspec.Struct, array_like=True, tag=1, gc=False):
    seq: int
    json: bytes


class _LeanMinuteU(msgspec.Struct, array_like=True, tag=2, gc=False):
    """Tag 0's layout with five doubles per species: mean, std, raw_mean, cal_mean, u."""

    seq: int
    time: int | str
    device: str
    stream: str
    species: list[str]
    n: list[int]
    values: bytes
    flag: str
    reasons: list[str]
    n_total: int
    calibration_id: str | None
    diagnostics: list[str]


class _LeanBatch(msgspec.Struct, array_like=True, gc=False):
    station: str
    store: bytes | None
    kind: str
    sent: int | str  # int: milliseconds since 1970-01-01T00:00:00Z; str: as sent
    records: list[_LeanMinute | _LeanJson | _LeanMinuteU]


class _OutboxSpecies(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A species object as the station's outbox holds it, every key present (else: JSON form)."""

    mean: _Stat
    std: _Stat
    n: int
    raw_mean: _Stat
    cal_mean: _Stat
    u: _Stat | msgspec.UnsetType = msgspec.UNSET  # absent (a minute from before issue 21) or null/number


class _OutboxMinute(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    time: str
    device: str
    stream: str
    species: dict[str, _OutboxSpecies]
    h2o: _Stat
    flag: str
    reasons: list[str]
    n_total: int
    calibration_id: str | None
    diagnostics: dict[str, _Finite]


_OUTBOX_MINUTE = msgspec.json.Decoder(_OutboxMinute)
_LEAN_DECODER = msgspec.msgpack.Decoder(_LeanBatch)
_MSGPACK = msgspec.msgpack.Encoder()
_JSON = msgspec.json.Encoder()


def _pack_minute(seq: int, time: int | str, device: str, stream: str,
                 species: dict[str, tuple[float | None, float | None, int, float | None, float | None]],
                 h2o: float | None, flag: str, reasons: list[str], n_total: int, calibration_id: str | None,
                 diagnostics: dict[str, float], u: dict[str, float | None] | None = None
                 ) -> _LeanMinute | _LeanMinuteU:
    """A minute in positional form: its floats in one block of doubles (None as NaN, which no
    wire float may be), its names and counts in lists; tag 2 when its species carry `u` (given:
    every species has the key, null or a number)."""
    with_u = u is not None
    if with_u:
        floats = [v for sp, (mean, std, _, raw, cal) in species.items()
                  for v in (mean, std, raw, cal, u.get(sp))]  # type: ignore[union-attr]
    else:
        floats = [v for (mean, std, _, raw, cal) in species.values() for v in (mean, std, raw, cal)]
    floats.append(h2o)
    floats.extend(diagnostics.values())
    block = struct.pack(f"<{len(floats)}d", *[_NAN if v is None else v for v in floats])
    kind = _LeanMinuteU if with_u else _LeanMinute
    return kind(seq, time, device, stream, list(species), [s[2] for s in species.values()], block, flag,
                reasons, n_total, calibration_id, list(diagnostics))


def _positional(seq: int, obj: bytes, sent_ms: int | None) -> _LeanMinute | _LeanMinuteU | _LeanJson:
    """A minute record (its outbox JSON without seq) in positional form when it fits it exactly."""
    try:
        m = _OUTBOX_MINUTE.decode(obj)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return _LeanJson(seq, obj)
    present = [s.u is not msgspec.UNSET for s in m.species.values()]
    if any(present) and not all(present):  # `u` on some species only: the JSON form keeps that exactly
        return _LeanJson(seq, obj)
    ms = None if sent_ms is None else _ms(m.time)
    return _pack_minute(seq, m.time if ms is None else ms - sent_ms, m.device, m.stream,
                        {k: (s.mean, s.std, s.n, s.raw_mean, s.cal_mean) for k, s in m.species.items()},
                        m.h2o, m.flag, m.reasons, m.n_total, m.calibration_id, m.diagnostics,
                        {k: s.u for k, s in m.species.items()} if all(present) and present else None)


def _dictionary_v1() -> bytes:
    """The preset dictionary of version 1: what a batch is made of, the commonest last (DEFLATE
    reaches nearer bytes with shorter codes). Never edit: tests pin its hash."""
    t = "2026-01-01T00:00:00.000Z"
    json_records = [  # [1, seq, json] records: events, targets, calibrations
        b'{"record_type":"calibration","id":"cal-picarro-1-20260101T0000Z","time_start":"' + t.encode()
        + b'","time_end":"' + t.encode() + b'","standards":[{"cylinder":"CAL-1","measured":{"co2":380.0,"ch4":1800.0,'
        b'"co":80.0},"assigned":{"co2":380.0,"ch4":1800.0,"co":80.0},"scale":{"co2":"WMO-CO2-X2019"}}],'
        b'"fits":{"co2":{"coefficients":[0.1,1.0],"residuals":[0.001,-0.001],"r2":0.9999999,"rmse":0.002,"n":4}}}',
        b'{"record_type":"target","id":"tgt-picarro-1-20260101T0000Z","time":"' + t.encode() + b'","cylinder":"TGT-1",'
        b'"measured":{"co2":430.0},"assigned":{"co2":430.0},"bias":{"co2":0.01},"within_goal":{"co2":true}}',
        b'{"time":"' + t.encode() + b'","kind":"run.finished","severity":"info","message":"calibration finished",'
        b'"device":null,"data":{"kind":"calibration","name":"calibration","started":"' + t.encode() + b'"}}',
    ]
    words = ["n2o", "h2o", "inlet:low", "inlet:mid", "cal:CAL-1", "target:TGT-1", "zero", "span", "status",
             "out_of_range", "std_too_high", "spike", "too_few_samples", "valve_mismatch", "maintenance",
             "uncalibrated", "cavity_pressure", "cavity_temp", "h2o_low_fraction"]
    minutes = [
        _pack_minute(1, -80_123, "picarro-1", "inlet:top", {"co2": (420.0, 0.05, 60, 421.0, 420.0),
                                                       "ch4": (2000.0, 0.6, 60, 2040.0, 2000.0),
                                                       "co": (150.0, 4.8, 60, 151.0, 150.0)},
                     1.35, "U", [], 60, "cal-picarro-1-20260101T0000Z",
                     {"h2o_low_fraction": 0.0, "cavity_pressure": 140.0, "cavity_temp": 45.0}),
        _pack_minute(2, -20_456, "picarro-1", "inlet:top", {"co2": (None, None, 0, None, None)}, None, "N",
                     ["flush", "too_few_samples"], 60, None, {"cavity_pressure": 140.0, "cavity_temp": 45.0}),
    ]
    json_batch = (  # the JSON form (backlogs): farthest, its records are many and their names repeat
        b'{"schema":1,"station":"demo-tower","store":"' + b"0" * 32 + b'","kind":"minute","sent":"' + t.encode()
        + b'","records":[{"seq":1,"time":"' + t.encode() + b'","device":"picarro-1","stream":"inlet:top","species":'
        b'{"co2":{"mean":420.0,"std":0.05,"n":60,"raw_mean":421.0,"cal_mean":420.0},"ch4":{"mean":2000.0,'
        b'"std":0.6,"n":60,"raw_mean":2040.0,"cal_mean":2000.0},"co":{"mean":150.0,"std":4.8,"n":60,'
        b'"raw_mean":151.0,"cal_mean":150.0}},"h2o":1.35,"flag":"U","reasons":[],"n_total":60,'
        b'"calibration_id":"cal-picarro-1-20260101T0000Z","diagnostics":{"h2o_low_fraction":0.0,'
        b'"cavity_pressure":140.0,"cavity_temp":45.0}}]}'
    )
    head = _LeanBatch("demo-tower", bytes(16), "minute", t, [_LeanJson(1, r) for r in json_records])
    tail = _LeanBatch("demo-tower", bytes(16), "minute", _ms("2026-07-01T00:01:20.123Z"), minutes)
    return b"".join([json_batch, _MSGPACK.encode(head), _MSGPACK.encode(words), _MSGPACK.encode(tail)])


DICTIONARY_V1 = _dictionary_v1()


class LeanEncoder:
    """Lean payloads of one station and store (the station side; `BatchEncoder`'s lean twin)."""

    __slots__ = ("_json", "_station", "_store")

    def __init__(self, station: str, store: str | None = None) -> None:
        check_station_id(station)
        if store is not None and (not isinstance(store, str) or STORE_RE.fullmatch(store) is None):
            raise ValueError(f"store {str(store)[:40]!r} is not a store identity (32 lower-case hex digits)")
        self._station = station
        self._store = None if store is None else bytes.fromhex(store)
        self._json = BatchEncoder(station, store)

    def encode_rows(self, kind: str, sent: datetime, rows: Sequence[tuple[int, str, bytes]],
                    as_json: bytes | None = None) -> bytes:
        """The lean payload of a `kind` batch sent at `sent` holding the outbox's rows: (seq, kind, the
        record's JSON object without its seq as UTF-8 bytes), all of `kind` (not checked). `as_json`:
        the same batch as `BatchEncoder.encode_rows` made it (same `sent`), when the caller has it."""
        if kind not in BATCH_KINDS:
            raise ValueError(f"unknown batch kind {kind!r}; known: {', '.join(BATCH_KINDS)}")
        if len(rows) > POSITIONAL_MAX_RECORDS:
            if as_json is None:
                as_json = self._json.encode_rows(kind, sent, rows)
            deflate = zlib.compressobj(6, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, zdict=DICTIONARY_V1)
            return deflate.compress(as_json) + deflate.flush()
        sent_text = iso_utc(sent)
        sent_ms = _ms(sent_text)
        if kind == "minute":
            records = [_positional(seq, obj, sent_ms) for seq, _, obj in rows]
        else:
            records = [_LeanJson(seq, obj) for seq, _, obj in rows]
        doc = _MSGPACK.encode(_LeanBatch(self._station, self._store, kind,
                                         sent_text if sent_ms is None else sent_ms, records))
        deflate = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, zdict=DICTIONARY_V1)
        return deflate.compress(doc) + deflate.flush()


def inflate_bounded(payload: bytes, dictionary: bytes, max_bytes: int) -> bytes:
    """A raw DEFLATE stream inflated with its preset dictionary, at most `max_bytes` of it:
    PayloadTooLarge beyond, MalformedLean for a stream that is broken, truncated or followed by
    anything."""
    inflate = zlib.decompressobj(-15, zdict=dictionary)
    try:
        doc = inflate.decompress(payload, max_bytes + 1)
    except zlib.error as exc:
        raise MalformedLean(f"lean payload: not a DEFLATE stream ({exc})") from None
    if len(doc) > max_bytes or inflate.unconsumed_tail:
        raise PayloadTooLarge(f"lean payload of {len(payload)} bytes inflates beyond the limit of {max_bytes} bytes")
    if not inflate.eof:
        raise MalformedLean(f"lean payload: the DEFLATE stream is truncated after {len(payload)} bytes")
    if inflate.unused_data:
        raise MalformedLean(f"lean payload: {len(inflate.unused_data)} bytes after the end of its DEFLATE stream")
    return doc


def _json_record(r: _LeanMinute | _LeanMinuteU | _LeanJson, sent_ms: int | None) -> bytes:
    if type(r) is _LeanJson:
        obj = r.json
        if obj[:1] != b"{" or obj[-1:] != b"}":
            raise MalformedLean(f"lean payload: record seq {r.seq} is not a JSON object")
        return b'{"seq":%d,%b' % (r.seq, obj[1:]) if obj != b"{}" else b'{"seq":%d}' % r.seq
    k = len(r.species)
    per = 5 if type(r) is _LeanMinuteU else 4
    if len(r.n) != k or len(r.values) != 8 * (per * k + 1 + len(r.diagnostics)):
        raise MalformedLean(f"lean payload: minute seq {r.seq}: {k} species, {len(r.n)} counts, "
                            f"{len(r.diagnostics)} diagnostics and {len(r.values)} bytes of values do not agree")
    if len(set(r.species)) != k or len(set(r.diagnostics)) != len(r.diagnostics):
        raise MalformedLean(f"lean payload: minute seq {r.seq} names a species or diagnostic twice")
    floats = struct.unpack(f"<{len(r.values) // 8}d", r.values)
    if _INF in floats or -_INF in floats:
        raise MalformedLean(f"lean payload: minute seq {r.seq} holds an infinite value")
    v = [x if x == x else None for x in floats]  # NaN stands for None
    species = {name: {"mean": v[per * i], "std": v[per * i + 1], "n": r.n[i], "raw_mean": v[per * i + 2],
                      "cal_mean": v[per * i + 3]} for i, name in enumerate(r.species)}
    if per == 5:
        for i, name in enumerate(r.species):
            species[name]["u"] = v[5 * i + 4]
    return _JSON.encode({
        "seq": r.seq, "time": r.time if type(r.time) is str else _record_time(r, sent_ms),
        "device": r.device, "stream": r.stream,
        "species": species,
        "h2o": v[per * k], "flag": r.flag, "reasons": r.reasons, "n_total": r.n_total,
        "calibration_id": r.calibration_id, "diagnostics": dict(zip(r.diagnostics, v[per * k + 1:])),
    })


def _record_time(r: _LeanMinute | _LeanMinuteU, sent_ms: int | None) -> str:
    if sent_ms is None:
        raise MalformedLean(f"lean payload: minute seq {r.seq} gives its time after a sent time given as text")
    return _time_text(sent_ms + r.time)  # type: ignore[operator]


def lean_to_json(payload: bytes, max_bytes: int) -> bytes:
    """The JSON batch a version 1 lean payload stands for, at most `max_bytes` long (the inflated
    document too). Raises MalformedLean or PayloadTooLarge (both WireErrors), nothing else."""
    doc = inflate_bounded(payload, DICTIONARY_V1, max_bytes)
    if doc[:1] == b"{":  # the JSON form: the batch itself (a MessagePack document starts 0x95)
        return doc
    try:
        batch = _LEAN_DECODER.decode(doc)
    except msgspec.DecodeError as exc:  # ValidationError included
        raise MalformedLean(f"lean payload: {exc}") from None
    if batch.store is not None and len(batch.store) != 16:
        raise MalformedLean(f"lean payload: store of {len(batch.store)} bytes, not 16")
    try:
        head = _JSON.encode({"schema": SCHEMA_VERSION, "station": batch.station,
                             **({} if batch.store is None else {"store": batch.store.hex()}),
                             "kind": batch.kind,
                             "sent": batch.sent if type(batch.sent) is str else _time_text(batch.sent)})
        sent_ms = batch.sent if type(batch.sent) is int else None
        records = [_json_record(r, sent_ms) for r in batch.records]
    except (msgspec.EncodeError, OverflowError) as exc:
        raise MalformedLean(f"lean payload: {exc}") from None
    out = b"".join((head[:-1], b',"records":[', b",".join(records), b"]}"))
    if len(out) > max_bytes:
        raise PayloadTooLarge(f"lean payload stands for {len(out)} bytes of JSON, beyond the limit of "
                              f"{max_bytes} bytes")
    return out


_DECODERS = {LEAN_CONTENT_TYPE: lean_to_json}


def batch_json(content_type: str | None, payload: bytes, max_bytes: int) -> bytes:
    """The JSON batch a payload of `content_type` carries (a JSON payload as it is): what the
    content type announces decides the decoding. UnknownContentType for one this side does not know."""
    if content_type is None or content_type == JSON_CONTENT_TYPE:
        return payload
    decode = _DECODERS.get(content_type)
    if decode is None:
        known = ", ".join([JSON_CONTENT_TYPE, *_DECODERS])
        raise UnknownContentType(f"content type {content_type[:64]!r} is not one this receiver reads ({known})")
    return decode(payload, max_bytes)
