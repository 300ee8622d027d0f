"""Central's lean decoder for minute batches: msgspec structs that accept a strict subset of what
the wire models (ghgnet.wire) accept, with the same values, so it can go first and leave the rest to
`ghgnet.wire.parse_batch`.

Anything it refuses, or is not sure of, goes to the models, which accept or reject it with their own
reasons: both paths accept and reject exactly the same inputs, and every reason a station or an
operator reads comes from the models (tests/central/test_wire_lean.py fuzzes the two against each
other). Where msgspec alone would differ from the models, the subset is cut narrower:
- NUL (the models refuse it in every string): a payload holding the escape \\u0000 anywhere goes to
  the models. JSON cannot carry a raw NUL, nor lone surrogates (both parsers refuse them).
- times: msgspec rounds fractions beyond microseconds where pydantic truncates, and each reads
  formats the other does not; so a time is taken as text and only the plain RFC 3339 form (T,
  seconds, at most 6 fraction digits, Z or +hh:mm) is parsed here (`lean_time`).
- a seq repeated within the batch: the models' path names it and dead-letters the copy.
Two things are kept as text for the store, as they came: the times when they are in iso_utc's form
(`canonical_times`), and each record's `species` object, decoded (validated) apart from the rest,
for the whole batch at once, from its own span of the payload (`_lean_species`).
"""

from __future__ import annotations

import re
import string
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec

from ghgnet.timeutil import iso_utc
from ghgnet.wire import MAX_SEQ, MAX_TIME, MIN_TIME, ParsedBatch

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
    u: Annotated[float, msgspec.Meta(ge=0.0)] | None = None


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


def lean_time(text: str) -> datetime:
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


def decode_minutes(station: str, payload: bytes) -> ParsedBatch | None:
    """A minute batch from `station` through the lean decoder; None when the models must decide."""
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
        sent = lean_time(batch.sent)
        if canonical_times(texts):
            for r, text in zip(records, texts):
                r.time = _fromisoformat(text)  # refuses fields out of range (month 13, 30 February, 00:60)
        else:
            texts = None  # the store formats the times itself
            for r in records:
                r.time = lean_time(r.time)
    except (ValueError, OverflowError):
        return None
    # _MinuteLeanWire differs from MinuteLean only in how `time` and `species` are decoded
    return ParsedBatch(station, "minute", sent, records, time_texts=texts,  # type: ignore[arg-type]
                       species_texts=species, store=batch.store)


def _lean_species(records: list[_MinuteLeanWire]) -> list[str] | None:
    """Decode every record's `species` span (msgspec.Raw) in one go, put the dicts in the records
    and return the spans' texts; None when one does not validate. The texts are what the station
    wrote, so the store keeps them without formatting a float again."""
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


def canonical_times(texts: list[str]) -> bool:
    """Whether every text has iso_utc's form (`2026-11-22T02:53:12.345Z`: ASCII digits where it
    has them), an hour below 24, and lies between MIN_TIME and MAX_TIME. The other fields' ranges
    (month, day of the month, hours 25-99, minute, second) are `_fromisoformat`'s to refuse, which
    the caller runs on each; hour 24 is refused here, as Python 3.14's fromisoformat reads
    `T24:00:00` as the next midnight, which the models refuse. One translation and two searches
    over the whole batch, in C, rather than a regular expression per record: it runs for every minute."""
    joined = "\n".join(texts) + "\n"
    # the length also rules out a text holding a newline of its own: each is then one shape,
    # whose only T comes before its hour
    return (len(joined) == len(_CANONICAL_SHAPE) * len(texts)
            and joined.translate(_DIGITS_TO_ZERO) == _CANONICAL_SHAPE * len(texts)
            and "T24" not in joined
            and _MIN_TIME_TEXT <= min(texts) and max(texts) <= _MAX_TIME_TEXT)
