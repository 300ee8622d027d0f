"""The MQTT wire contract between a station and central: topics, payload models, acks.

Both sides import this module (central imports nothing else from the station). Version 1:

Topics
    ``ghg/v1/<station>/minute``       station -> central, QoS 1, batches of minute records
    ``ghg/v1/<station>/calibration``  station -> central, QoS 1, calibration and target results
    ``ghg/v1/<station>/event``        station -> central, QoS 1, events
    ``ghg/v1/<station>/status``       station -> central, QoS 1, retained; also the last will
    ``ghg/v1/<station>/ack``          central -> station, QoS 1, sent only after central's commit

Batch payload (UTF-8 JSON, one object)::

    {"schema": 1, "station": "<id>", "store": "<32 hex digits>", "kind": "minute"|"calibration"|"event",
     "sent": "<ISO 8601 Z>", "records": [{"seq": <int >= 1>, ...record fields}, ...]}

``store`` is the identity of the station database the records come from, created with it (a random
UUID's 32 hex digits): a station whose database is replaced starts again at seq 1 under a new store,
so central keys records by (station, store, seq). A batch without it comes from a station older than
store identities (the "legacy" store). ``seq`` is per store and monotonic across all kinds, so one
topic sees gaps. Record fields:

- minute (mirrors ``station_agent.records.MinuteRecord``): ``time`` (start of the minute, UTC),
  ``device``, ``stream``, ``species`` {name: {mean, std, n, raw_mean, cal_mean}} (CO2 ppm; CH4, CO,
  N2O ppb), ``h2o`` (%), ``flag`` (one ICOS letter: U, N, O, K, R, H), ``reasons`` [codes],
  ``n_total``, ``calibration_id``, ``diagnostics`` {name: float}.
- event: ``time``, ``kind``, ``severity`` (info|warning|error|critical), ``message``, ``device``,
  ``data`` (any JSON object).
- calibration, discriminated by ``record_type``:
  ``"calibration"``: ``id``, ``time_start``, ``time_end``,
  ``standards`` [{cylinder, measured {sp: v}, assigned {sp: v}, scale {sp: name}}],
  ``fits`` {sp: {coefficients [...], residuals [...], r2, rmse, n}};
  ``"target"``: ``id``, ``time``, ``cylinder``, ``measured``, ``assigned``, ``bias`` {sp: v}
  (measured - assigned), ``within_goal`` {sp: bool}.

Every float is finite or null (NaN and Infinity are not JSON); every time is an ISO 8601 string
with a zone (``Z`` on output); every object refuses unknown keys; no string may hold NUL or a lone
surrogate (neither survives a database).

Ack payload (central -> station)::

    {"schema": 1, "station": "<id>", "store": "<32 hex digits>", "acked": [[lo, hi], ...]}

inclusive seq ranges of that store central now holds (``store`` only when the batches carried one: a
station older than store identities refuses an ack with a key it does not know): records newly stored, duplicates already stored, and single
records central dead-lettered (so a station never resends a poison record forever). A payload
rejected as a whole (oversize, malformed JSON, unknown schema, station or kind differing from the
topic, an envelope that does not validate) is dead-lettered and acked to nobody.

Status payload (retained; the last will is the same with ``"state": "down"``)::

    {"schema": 1, "station": ..., "state": "up"|"down", "time": ..., "backlog": int,
     "oldest_unacked_age_s": float|null, "agent_version": str,
     "interval_s": float|null, "last_seq": int|null, "details": {...}}

``interval_s`` is how often the station republishes its status (central calls a station down after
two missed intervals); ``details`` carries free-form extras without a schema change.
"""

from __future__ import annotations

import bisect
import json
import math
import re
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Union

import msgspec
import pydantic_core
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    StringConstraints,
    StrictBool,
    StrictFloat,
    StrictInt,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from ghgnet.timeutil import iso_utc

SCHEMA_VERSION = 1
TOPIC_ROOT = "ghg/v1"
BATCH_KINDS: tuple[str, ...] = ("minute", "calibration", "event")
UPLINK_KINDS: tuple[str, ...] = (*BATCH_KINDS, "status")
ALL_KINDS: tuple[str, ...] = (*UPLINK_KINDS, "ack")
STATION_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"
_STATION_RE = re.compile(STATION_ID_PATTERN)
STORE_ID_PATTERN = r"^[0-9a-f]{32}$"
"""A station database's identity: a random UUID's hex digits, lower case (`uuid.uuid4().hex`)."""
_STORE_RE = re.compile(STORE_ID_PATTERN)
MAX_SEQ = 2**63 - 1
"""Largest seq: a signed 64-bit integer, what SQLite and PostgreSQL bigint hold."""
DEFAULT_MAX_PAYLOAD_BYTES = 1_048_576

BatchKind = Literal["minute", "calibration", "event"]


# ---------------------------------------------------------------------------------------------
# Errors


class WireError(ValueError):
    """A message that cannot be accepted as a whole. `code` is a stable reason code (stored with
    the dead letter); the message says what was wrong, in words a person can act on."""

    code = "invalid"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadTopic(WireError):
    code = "bad_topic"


class PayloadTooLarge(WireError):
    code = "oversize"


class MalformedJSON(WireError):
    code = "malformed_json"


class UnknownSchema(WireError):
    code = "unknown_schema"


class StationMismatch(WireError):
    code = "forged_station"


class KindMismatch(WireError):
    code = "kind_mismatch"


class InvalidPayload(WireError):
    code = "invalid_payload"


# ---------------------------------------------------------------------------------------------
# Field types


NO_NUL = r"^[^\x00]*$"


def _check_text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("string holds a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("string holds a lone surrogate (not valid UTF-8)") from None
    return value


WireStr = Annotated[str, StringConstraints(pattern=NO_NUL)]
"""A string without NUL (JSON cannot carry lone surrogates: the parser refuses them)."""

Name = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=NO_NUL)]
"""Short identifiers: device, stream, species, cylinder and calibration ids."""

StoreId = Annotated[str, StringConstraints(pattern=STORE_ID_PATTERN)]
"""The identity of the station database a batch comes from (see the module docstring)."""

MIN_TIME = datetime(1900, 1, 1, tzinfo=UTC)
MAX_TIME = datetime(2999, 12, 31, 23, 59, 59, tzinfo=UTC)
"""Times outside these are refused: they cannot be real, and ISO strings stay fixed-width (sortable)."""


def _utc_in_range(t: datetime) -> datetime:
    if t.tzinfo is not UTC:
        try:
            t = t.astimezone(UTC)
        except OverflowError:
            raise ValueError("time out of range") from None
    if not MIN_TIME <= t <= MAX_TIME:
        raise ValueError(f"time {t.isoformat()} outside {MIN_TIME.year}-{MAX_TIME.year}")
    return t


def _utc_time(value: Any) -> datetime:
    """Parse a time given as an ISO 8601 string with a zone (for envelope fields checked by hand)."""
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO 8601 UTC time string, got {type(value).__name__}")
    try:
        return _UTC_TIME_JSON.validate_json(json.dumps(value))
    except ValidationError as exc:
        raise ValueError(exc.errors(include_url=False)[0]["msg"]) from None


UtcTime = Annotated[
    AwareDatetime,
    AfterValidator(_utc_in_range),
    PlainSerializer(iso_utc, return_type=str, when_used="json"),
]
"""A timezone-aware UTC datetime; on the wire an ISO 8601 string with a zone (Z on output,
milliseconds). A time without a zone is refused."""
_UTC_TIME_JSON: TypeAdapter[datetime] = TypeAdapter(UtcTime, config=ConfigDict(strict=True))

Seq = Annotated[StrictInt, Field(ge=1, le=MAX_SEQ)]
FiniteFloat = Annotated[StrictFloat, Field(allow_inf_nan=False)]
Count = Annotated[StrictInt, Field(ge=0, le=2**31 - 1)]


def _json_value(value: Any, depth: int = 0) -> Any:
    if depth > 16:
        raise ValueError("JSON nested deeper than 16 levels")
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("number is not finite")
        return value
    if isinstance(value, str):
        return _check_text(value)
    if isinstance(value, list):
        return [_json_value(v, depth + 1) for v in value]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError("object keys must be strings")
            out[_check_text(k)] = _json_value(v, depth + 1)
        return out
    raise ValueError(f"not a JSON value: {type(value).__name__}")


def _json_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    return _json_value(value)


JsonObject = Annotated[dict[str, Any], PlainValidator(_json_object)]
"""Free-form JSON object: finite numbers, clean strings, at most 16 levels deep."""


class WireModel(BaseModel):
    """Base of every wire model: unknown keys refused, floats finite, no type coercion."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True, strict=True)


# ---------------------------------------------------------------------------------------------
# Records


class SpeciesStats(WireModel):
    """One species over one minute, in its unit (CO2 ppm; CH4, CO, N2O ppb)."""

    mean: FiniteFloat | None
    std: FiniteFloat | None
    n: Count
    raw_mean: FiniteFloat | None
    cal_mean: FiniteFloat | None = None


class MinuteWire(WireModel):
    seq: Seq
    time: UtcTime
    device: Name
    stream: Name
    species: dict[Name, SpeciesStats]
    h2o: FiniteFloat | None = None
    flag: Annotated[WireStr, Field(pattern=r"^[A-Z]$")]
    reasons: list[Name] = Field(default_factory=list, max_length=64)
    n_total: Count = 0
    calibration_id: Name | None = None
    diagnostics: dict[Name, FiniteFloat] = Field(default_factory=dict)


class EventWire(WireModel):
    seq: Seq
    time: UtcTime
    kind: Name
    severity: Literal["debug", "info", "warning", "error", "critical"]
    message: Annotated[WireStr, Field(max_length=4000)]
    device: Name | None = None
    data: JsonObject = Field(default_factory=dict)


class StandardWire(WireModel):
    cylinder: Name
    measured: dict[Name, FiniteFloat | None]
    assigned: dict[Name, FiniteFloat]
    scale: dict[Name, Name] = Field(default_factory=dict)


class FitWire(WireModel):
    """A calibration fit for one species: coefficients lowest order first (intercept, slope, ...)."""

    coefficients: list[FiniteFloat]
    residuals: list[FiniteFloat] = Field(default_factory=list)
    r2: FiniteFloat | None = None
    rmse: FiniteFloat | None = None
    n: Count = 0


class CalibrationWire(WireModel):
    seq: Seq
    record_type: Literal["calibration"]
    id: Name
    time_start: UtcTime
    time_end: UtcTime
    standards: list[StandardWire]
    fits: dict[Name, FitWire]

    @model_validator(mode="after")
    def _ordered(self) -> CalibrationWire:
        if self.time_end < self.time_start:
            raise ValueError("time_end is before time_start")
        return self


class TargetWire(WireModel):
    seq: Seq
    record_type: Literal["target"]
    id: Name
    time: UtcTime
    cylinder: Name
    measured: dict[Name, FiniteFloat | None]
    assigned: dict[Name, FiniteFloat]
    bias: dict[Name, FiniteFloat | None]
    within_goal: dict[Name, StrictBool | None]


CalibrationRecord = Annotated[Union[CalibrationWire, TargetWire], Field(discriminator="record_type")]
WireRecord = Union[MinuteWire, EventWire, CalibrationWire, TargetWire]

_RECORD_ADAPTERS: dict[str, TypeAdapter[Any]] = {
    "minute": TypeAdapter(MinuteWire),
    "event": TypeAdapter(EventWire),
    "calibration": TypeAdapter(CalibrationRecord),
}


# ---------------------------------------------------------------------------------------------
# Envelopes


class _Envelope(WireModel):
    schema_version: Literal[1] = Field(default=SCHEMA_VERSION, alias="schema")
    station: Annotated[WireStr, Field(pattern=STATION_ID_PATTERN)]

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()


class _BatchEnvelope(_Envelope):
    store: StoreId | None = None


class Batch(_BatchEnvelope):
    """A batch as a station builds it (records already validated models)."""

    kind: BatchKind
    sent: UtcTime
    records: list[MinuteWire | EventWire | CalibrationWire | TargetWire]

    @model_validator(mode="after")
    def _records_match_kind(self) -> Batch:
        want = {"minute": (MinuteWire,), "event": (EventWire,), "calibration": (CalibrationWire, TargetWire)}
        for r in self.records:
            if not isinstance(r, want[self.kind]):
                raise ValueError(f"a {type(r).__name__} does not belong in a {self.kind} batch")
        return self


class _MinuteBatchIn(_BatchEnvelope):
    kind: Literal["minute"]
    sent: UtcTime
    records: list[MinuteWire]


class _EventBatchIn(_BatchEnvelope):
    kind: Literal["event"]
    sent: UtcTime
    records: list[EventWire]


class _CalibrationBatchIn(_BatchEnvelope):
    kind: Literal["calibration"]
    sent: UtcTime
    records: list[CalibrationRecord]


# ---------------------------------------------------------------------------------------------
# The lean decoder: central's hot path for minute batches
#
# The pydantic models above are the contract. Validating a backlog through them costs about 20 us
# a record, most of central's ingest time, so a minute batch is first decoded with msgspec into
# the plain structs below (about 3 us a record). These accept a strict SUBSET of what the models
# accept, with the same values: anything they refuse, or are not sure of, goes to the pydantic path,
# which then accepts or rejects it with its own reasons. So both paths accept and reject exactly
# the same inputs, and every reason a station or an operator reads comes from the models
# (tests/central/test_wire_lean.py fuzzes the two against each other).
# Where msgspec alone would differ from the models, the subset is cut narrower:
# - NUL (the models refuse it in every string): a payload holding the escape \u0000 anywhere
#   goes to pydantic. JSON cannot carry a raw NUL, nor lone surrogates (both parsers refuse them).
# - times: msgspec rounds fractions beyond microseconds where pydantic truncates, and each reads
#   formats the other does not; so a time is taken as text and only the plain RFC 3339 form
#   (T, seconds, at most 6 fraction digits, Z or +hh:mm) is parsed here (`_lean_time`).
# - a seq repeated within the batch: pydantic's path names it and dead-letters the copy.
# Two things are kept as text for the store, as they came: the times when they are in iso_utc's
# form (`_canonical_times`), and each record's `species` object, which is decoded (validated) apart
# from the rest, for the whole batch at once, from its own span of the payload (`_lean_species`).

_LeanFloat = float  # finite: msgspec refuses a number beyond the double range (1e400), JSON has no NaN
_LeanName = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
_LeanCount = Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)]
_LeanSeq = Annotated[int, msgspec.Meta(ge=1, le=MAX_SEQ)]
_LeanFlag = Literal[tuple(string.ascii_uppercase)]  # what r"^[A-Z]$" matches (pydantic's regex: no \n before $)
_LeanTimeText = Annotated[str, msgspec.Meta(max_length=40)]
_LEAN_STORE_PATTERN = r"^[0-9a-f]{32}\Z"  # Python's $ would let a trailing newline through; pydantic's does not
_LEAN_TIME_RE = re.compile(  # fields in range: fromisoformat reads +00:60 as +01:00, pydantic refuses it
    r"[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(?:\.[0-9]{1,6})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
_fromisoformat = datetime.fromisoformat
_CANONICAL_SHAPE = "0000-00-00T00:00:00.000Z\n"  # iso_utc's form (what stations send), digits as 0
_DIGITS_TO_ZERO = str.maketrans("0123456789", "0" * 10)
_MIN_TIME_TEXT = iso_utc(MIN_TIME)
_MAX_TIME_TEXT = iso_utc(MAX_TIME)


class SpeciesLean(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """`SpeciesStats`, as the lean decoder gives it (same fields, same values)."""

    mean: _LeanFloat | None
    std: _LeanFloat | None
    n: _LeanCount
    raw_mean: _LeanFloat | None
    cal_mean: _LeanFloat | None = None


class MinuteLean(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, gc=False):
    """`MinuteWire`, as the lean decoder gives it (same fields, same values). `time` is decoded
    as text and replaced by the UTC datetime before `parse_batch` returns it."""

    seq: _LeanSeq
    time: Any  # str while decoding (_LeanTimeText on the wire), then a UTC datetime
    device: _LeanName
    stream: _LeanName
    species: dict[_LeanName, SpeciesLean]
    h2o: _LeanFloat | None = None
    flag: _LeanFlag
    reasons: Annotated[list[_LeanName], msgspec.Meta(max_length=64)] = []
    n_total: _LeanCount = 0
    calibration_id: _LeanName | None = None
    diagnostics: dict[_LeanName, _LeanFloat] = {}


class _MinuteLeanWire(MinuteLean, forbid_unknown_fields=True, kw_only=True, gc=False):
    time: _LeanTimeText  # type: ignore[assignment]
    species: msgspec.Raw  # type: ignore[assignment]  # then the dict, by _lean_species


class _MinuteBatchLean(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, gc=False):
    schema: Literal[1]
    station: str
    store: Annotated[str, msgspec.Meta(pattern=_LEAN_STORE_PATTERN)] | None = None
    kind: Literal["minute"]
    sent: _LeanTimeText
    records: list[_MinuteLeanWire]


_LEAN_MINUTE_DECODER = msgspec.json.Decoder(_MinuteBatchLean)
_LEAN_SPECIES_DECODER = msgspec.json.Decoder(list[dict[_LeanName, SpeciesLean]])


def _lean_time(text: str) -> datetime:
    """What `UtcTime` makes of `text`, for the plain RFC 3339 form only; ValueError otherwise
    (then the pydantic path decides)."""
    if _LEAN_TIME_RE.fullmatch(text) is None:
        raise ValueError(text)
    t = _fromisoformat(text)
    if t.tzinfo is not UTC:
        t = t.astimezone(UTC)  # OverflowError near year 1 or 9999: refused below or by pydantic
    if not MIN_TIME <= t <= MAX_TIME:
        raise ValueError(text)
    return t


def _parse_minutes_lean(station: str, payload: bytes) -> ParsedBatch | None:
    """A minute batch through the lean decoder; None when the pydantic path must decide."""
    # a payload without any backslash holds no escape: one memchr instead of a substring search
    if not isinstance(payload, bytes) or (b"\\" in payload and b"\\u0000" in payload):
        return None
    try:
        batch = _LEAN_MINUTE_DECODER.decode(payload)
    except msgspec.DecodeError:  # ValidationError included
        return None
    records = batch.records
    if batch.station != station or not records or len({r.seq for r in records}) != len(records):
        return None
    species = _lean_species(records)
    if species is None:
        return None
    texts = [r.time for r in records]
    try:
        sent = _lean_time(batch.sent)
        if _canonical_times(texts):
            for r, text in zip(records, texts):
                r.time = _fromisoformat(text)  # refuses fields out of range (month 13, 30 February, 00:60)
        else:
            texts = None  # the store formats the times itself
            for r in records:
                r.time = _lean_time(r.time)
    except (ValueError, OverflowError):
        return None
    # _MinuteLeanWire differs from MinuteLean only in how `time` and `species` are decoded
    return ParsedBatch(station, "minute", sent, records, time_texts=texts,  # type: ignore[arg-type]
                       species_texts=species, store=batch.store)


def _lean_species(records: list[_MinuteLeanWire]) -> list[str] | None:
    """Decode every record's `species` span (msgspec.Raw) in one go, put the dicts in the records
    and return the spans' texts; None when one does not validate. The texts are what the station
    wrote: storing them costs no float formatting (decoding a minute and building its row took 41,100
    CPU instructions with msgspec writing the species text, 36,500 like this; callgrind)."""
    spans = [r.species for r in records]
    joined = b",".join(spans)  # each span is one whole JSON value, so this is a list of len(spans)
    try:
        values = _LEAN_SPECIES_DECODER.decode(b"[" + joined + b"]")
    except msgspec.DecodeError:
        return None
    if len(values) != len(records):
        return None
    for r, v in zip(records, values):
        r.species = v
    return [bytes(s).decode() for s in spans]  # valid UTF-8: the decoder has read it


def _canonical_times(texts: list[str]) -> bool:
    """Whether every text has iso_utc's form (`2026-11-22T02:53:12.345Z`: ASCII digits where it
    has them), an hour below 24, and lies between MIN_TIME and MAX_TIME. The other fields' ranges
    (month, day of the month, hours 25-99, minute, second) are `_fromisoformat`'s to refuse, which
    the caller runs on each; hour 24 is refused here, as Python 3.14's fromisoformat reads
    `T24:00:00` as the next midnight, which the models refuse. One translation and two searches
    over the batch, in C: this runs for every minute central stores (a regular expression doing
    the same took 1,400 instructions a record)."""
    joined = "\n".join(texts) + "\n"
    # the length also rules out a text holding a newline of its own: each is then one shape,
    # whose only T comes before its hour
    return (len(joined) == len(_CANONICAL_SHAPE) * len(texts)
            and joined.translate(_DIGITS_TO_ZERO) == _CANONICAL_SHAPE * len(texts)
            and "T24" not in joined
            and _MIN_TIME_TEXT <= min(texts) and max(texts) <= _MAX_TIME_TEXT)


_FAST_BATCH: dict[str, type[_BatchEnvelope]] = {
    "minute": _MinuteBatchIn, "event": _EventBatchIn, "calibration": _CalibrationBatchIn,
}


class StatusMessage(_Envelope):
    state: Literal["up", "down"]
    time: UtcTime
    backlog: Count = 0
    oldest_unacked_age_s: Annotated[FiniteFloat, Field(ge=0)] | None = None
    agent_version: Annotated[WireStr, Field(max_length=64)] = ""
    interval_s: Annotated[FiniteFloat, Field(gt=0)] | None = None
    last_seq: Annotated[StrictInt, Field(ge=0, le=MAX_SEQ)] | None = None
    details: JsonObject = Field(default_factory=dict)


class AckMessage(_Envelope):
    store: StoreId | None = None
    acked: list[tuple[Seq, Seq]]

    @field_validator("acked")
    @classmethod
    def _ranges_ordered(cls, v: list[tuple[int, int]]) -> list[tuple[int, int]]:
        for lo, hi in v:
            if lo > hi:
                raise ValueError(f"range [{lo}, {hi}] has lo > hi")
        return v

    def ranges(self) -> SeqRanges:
        return SeqRanges(self.acked)


# ---------------------------------------------------------------------------------------------
# Topics


def check_station_id(station: str) -> str:
    if not isinstance(station, str) or not _STATION_RE.match(station):
        raise BadTopic(f"station id {station!r} is not lower case letters, digits, - and _ (max 32)")
    return station


def topic_for(station: str, kind: str) -> str:
    """`ghg/v1/<station>/<kind>` for kind in minute, calibration, event, status, ack."""
    check_station_id(station)
    if kind not in ALL_KINDS:
        raise BadTopic(f"unknown topic kind {kind!r}; known: {', '.join(ALL_KINDS)}")
    return f"{TOPIC_ROOT}/{station}/{kind}"


def parse_topic(topic: str) -> tuple[str, str]:
    """(station, kind) of a ghgnet topic; BadTopic names what is wrong with any other."""
    parts = topic.split("/")
    if len(parts) != 4 or f"{parts[0]}/{parts[1]}" != TOPIC_ROOT:
        raise BadTopic(f"topic {topic[:120]!r} is not {TOPIC_ROOT}/<station>/<kind>")
    station, kind = parts[2], parts[3]
    check_station_id(station)
    if kind not in ALL_KINDS:
        raise BadTopic(f"topic {topic[:120]!r}: unknown kind {kind!r}")
    return station, kind


def subscription_filters(shared_group: str | None = None) -> dict[str, str]:
    """The filters central subscribes to, by kind. Batch kinds go through `$share/<group>/` when a
    group is given; status never does, because MQTT 5 sends no retained messages to shared
    subscriptions and every receiver should know every station's state."""
    out = {}
    for kind in UPLINK_KINDS:
        f = f"{TOPIC_ROOT}/+/{kind}"
        if shared_group and kind != "status":
            f = f"$share/{shared_group}/{f}"
        out[kind] = f
    return out


# ---------------------------------------------------------------------------------------------
# Ack ranges


def compress_seqs(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Minimal sorted list of inclusive ranges covering exactly `seqs` (duplicates allowed)."""
    ordered = sorted(set(seqs))
    if ordered and ordered[-1] - ordered[0] == len(ordered) - 1:  # one run (a whole batch, usually)
        return [(ordered[0], ordered[-1])]
    ranges: list[tuple[int, int]] = []
    for s in ordered:
        if ranges and s == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], s)
        else:
            ranges.append((s, s))
    return ranges


class SeqRanges:
    """Membership test over inclusive seq ranges (as an ack carries them), by bisection."""

    def __init__(self, ranges: Iterable[Sequence[int]]) -> None:
        merged = compress_ranges(ranges)
        self.ranges = merged
        self._lows = [lo for lo, _ in merged]

    def __contains__(self, seq: object) -> bool:
        if not isinstance(seq, int):
            return False
        i = bisect.bisect_right(self._lows, seq) - 1
        return i >= 0 and seq <= self.ranges[i][1]

    def __len__(self) -> int:
        """How many seqs the ranges cover."""
        return sum(hi - lo + 1 for lo, hi in self.ranges)

    def __iter__(self):
        for lo, hi in self.ranges:
            yield from range(lo, hi + 1)

    def __repr__(self) -> str:
        return f"SeqRanges({self.ranges})"


def compress_ranges(ranges: Iterable[Sequence[int]]) -> list[tuple[int, int]]:
    """Sort and merge overlapping or adjacent inclusive ranges."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted((int(r[0]), int(r[1])) for r in ranges):
        if lo > hi:
            raise ValueError(f"range [{lo}, {hi}] has lo > hi")
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


# ---------------------------------------------------------------------------------------------
# Decoding


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
    """A batch that passed validation. `records` are the wire models, or for `parse_batch(...,
    lean=True)` possibly `MinuteLean` structs (same attributes and values)."""

    station: str
    kind: str
    sent: datetime
    records: list[WireRecord] | list[MinuteLean]
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


def parse_batch(topic: str, payload: bytes, max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES, *,
                lean: bool = False) -> ParsedBatch:
    """Validate a batch received on `topic`.

    Raises a WireError subclass when the payload is rejected as a whole. Single records that fail
    validation, or repeat a seq already in the batch, come back in `rejected` with the reason.
    `lean`: a valid minute batch may come back as `MinuteLean` structs, decoded about seven times
    faster (central's ingest); what is accepted and rejected, and why, is the same.
    """
    station, kind = parse_topic(topic)
    if kind not in BATCH_KINDS:
        raise BadTopic(f"topic {topic!r} does not carry batches")
    if len(payload) > max_bytes:
        raise PayloadTooLarge(f"payload of {len(payload)} bytes exceeds the limit of {max_bytes} bytes")
    if lean and kind == "minute":
        parsed = _parse_minutes_lean(station, payload)
        if parsed is not None:
            return parsed
    try:
        # fast path: the whole payload validated in one pass (pydantic-core, no Python per field)
        fast: Any = _FAST_BATCH[kind].model_validate_json(payload)
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
    if store is not None and (not isinstance(store, str) or _STORE_RE.fullmatch(store) is None):
        raise InvalidPayload(f"store: {str(store)[:40]!r} is not a store identity (32 lower-case hex digits)")
    if data.get("kind") != kind:
        raise KindMismatch(f"payload kind {str(data.get('kind'))[:32]!r} differs from the topic's kind {kind!r}")
    try:
        sent = _utc_time(data.get("sent"))
    except ValueError as exc:
        raise InvalidPayload(f"sent: {exc}") from None
    raws = data.get("records")
    if not isinstance(raws, list):
        raise InvalidPayload(f"records: expected a list, got {type(raws).__name__}")
    if not raws:
        raise InvalidPayload("records: the batch is empty")
    adapter = _RECORD_ADAPTERS[kind]
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


# ---------------------------------------------------------------------------------------------
# Encoding


def encode_batch(station: str, kind: str, records: Sequence[WireRecord], sent: datetime,
                 store: str | None = None) -> bytes:
    """The JSON bytes of a batch (validates the envelope; records are already models); without a
    `store` key when `store` is None, as a station older than store identities sends it."""
    batch = Batch(station=station, store=store, kind=kind, sent=sent, records=list(records))
    return batch.model_dump_json(by_alias=True, exclude={"store"} if store is None else None).encode()


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


# ---------------------------------------------------------------------------------------------
# From the station's dataclasses


def minute_to_wire(seq: int, rec: Any) -> MinuteWire:
    """`station_agent.records.MinuteRecord` -> MinuteWire."""
    return MinuteWire(
        seq=seq,
        time=rec.time,
        device=rec.device,
        stream=rec.stream,
        species={
            name: SpeciesStats(mean=s.mean, std=s.std, n=s.n, raw_mean=s.raw_mean, cal_mean=s.cal_mean)
            for name, s in rec.species.items()
        },
        h2o=rec.h2o,
        flag=rec.flag,
        reasons=list(rec.reasons),
        n_total=rec.n_total,
        calibration_id=rec.calibration_id,
        diagnostics=dict(rec.diagnostics),
    )


def event_to_wire(seq: int, ev: Any) -> EventWire:
    """`station_agent.records.Event` -> EventWire."""
    return EventWire(
        seq=seq, time=ev.time, kind=ev.kind, severity=ev.severity, message=ev.message,
        device=ev.device, data=dict(ev.data),
    )
