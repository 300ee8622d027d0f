"""The raw chunk codec (ghgnet/wire/raw.py): rows come back exactly, key for key and type for type,
whatever they hold; the header and the body are checked, each fault named."""

from __future__ import annotations

import hashlib
import json
import zlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ghgnet.timeutil import iso_utc
from ghgnet.wire import WireError
from ghgnet.wire.raw import (
    RAW_CONTENT_TYPE,
    HashMismatch,
    MalformedRaw,
    RawChunkHeader,
    encode_chunk,
    encode_raw_ack,
    parse_chunk,
    parse_raw_ack,
)

T0 = datetime(2026, 3, 1, tzinfo=UTC)
END = T0 + timedelta(minutes=10)
STORE = "0123456789abcdef0123456789abcdef"
TOPIC = "ghg/v1/st-a/raw"

names = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), min_size=1, max_size=8)
numbers = st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False), st.integers(-2**53, 2**53))


@st.composite
def raw_rows(draw):
    offsets = sorted(draw(st.lists(st.integers(0, 600_000 - 1), min_size=1, max_size=40)))
    rows = []
    for ms in offsets:
        rows.append({
            "device": "picarro-1", "time": iso_utc(T0 + timedelta(milliseconds=ms)),
            "stream": draw(st.sampled_from(["inlet:top", "cal:CAL-1", "zero"])), "flushing": draw(st.booleans()),
            "status": draw(st.one_of(st.none(), st.integers(0, 2**31))), "status_ok": draw(st.booleans()),
            "status_flags": draw(st.lists(names, max_size=2)),
            "values": draw(st.dictionaries(names, numbers, max_size=5)),
            "conditions": draw(st.lists(names, max_size=2)),
        })
    return rows


@settings(max_examples=150, deadline=None)
@given(raw_rows())
def test_rows_come_back_exactly(rows):
    chunk = encode_chunk("st-a", STORE, "picarro-1", T0, END, rows)
    back = parse_chunk(TOPIC, chunk.frame, RAW_CONTENT_TYPE, 1 << 20).rows()
    assert back == rows
    assert [[type(v) for v in r["values"].values()] for r in back] == [[type(v) for v in r["values"].values()]
                                                                       for r in rows]
    assert [list(r["values"]) for r in back] == [list(r["values"]) for r in rows]  # key order too


def test_times_in_another_form_travel_as_text():
    rows = [{"device": "d", "time": "2026-03-01T00:00:01.5+00:00", "stream": "s", "flushing": False, "status": None,
             "status_ok": True, "status_flags": [], "values": {"co2": 1.0}, "conditions": []}]
    chunk = encode_chunk("st-a", STORE, "d", T0, END, rows)
    assert b'"time":["2026-03-01T00:00:01.5+00:00"]' in zlib.decompress(chunk.body)
    assert parse_chunk(TOPIC, chunk.frame, RAW_CONTENT_TYPE, 1 << 20).rows() == rows


def good(n: int = 5) -> bytes:
    rows = [{"device": "d", "time": iso_utc(T0 + timedelta(seconds=i)), "stream": "s", "flushing": False,
             "status": 1, "status_ok": True, "status_flags": [], "values": {"co2": 400.0 + i}, "conditions": []}
            for i in range(n)]
    return encode_chunk("st-a", STORE, "d", T0, END, rows).frame


def with_body(body: dict, **head) -> bytes:
    text = json.dumps(body, separators=(",", ":")).encode()
    header = json.loads(good().split(b"\n", 1)[0]) | {"body_bytes": len(text),
                                                        "sha256": hashlib.sha256(text).hexdigest()} | head
    return json.dumps(header).encode() + b"\n" + zlib.compress(text)


def rle(v, n):
    return [[v, n]]


BODY = {"time_ms": [0, 1000], "stream": rle("s", 2), "flushing": rle(False, 2), "status": rle(1, 2),
        "status_ok": rle(True, 2), "status_flags": rle([], 2), "conditions": rle([], 2), "keys": rle(["co2"], 2),
        "values": {"co2": [1.0, 2.0]}}


@pytest.mark.parametrize("payload, content_type, code, words", [
    (good(), None, "unknown_content_type", "is not 'ghg-raw/1'"),
    (good(), "ghg-lean/1", "unknown_content_type", "is not"),
    (b"{}", RAW_CONTENT_TYPE, "malformed_raw", "no header line"),
    (b"[1]\n", RAW_CONTENT_TYPE, "malformed_raw", "not an object"),
    (good().replace(b'"schema":1', b'"schema":2', 1), RAW_CONTENT_TYPE, "unknown_schema", "schema '2'"),
    (good().replace(b'"station":"st-a"', b'"station":"st-b"', 1), RAW_CONTENT_TYPE, "forged_station", "st-b"),
    (good().replace(b'"rows":5', b'"rows":0', 1), RAW_CONTENT_TYPE, "invalid_payload", "rows"),
    (good().replace(b'"end":"2026-03-01T00:10:00.000Z"', b'"end":"2026-03-01T00:00:00.000Z"', 1),
     RAW_CONTENT_TYPE, "invalid_payload", "is not after start"),
    (good().replace(b'"device":"d"', b'"device":"d","extra":1', 1), RAW_CONTENT_TYPE, "invalid_payload", "extra"),
    (good() + b"x" * 5000, RAW_CONTENT_TYPE, "oversize", "exceeds the limit of 4000"),
])
def test_a_bad_header_is_named(payload, content_type, code, words):
    with pytest.raises(WireError) as got:
        parse_chunk(TOPIC, payload, content_type, 4000)
    assert got.value.code == code and words in got.value.message, got.value.message


@pytest.mark.parametrize("body, head, error, words", [
    (BODY | {"time_ms": [0, 600_000]}, {"rows": 2}, MalformedRaw, "outside"),
    (BODY | {"time_ms": [1000, -500]}, {"rows": 2}, MalformedRaw, "before the previous row"),
    (BODY | {"time": ["2026-03-01T00:00:01Z", "x"]} | {"time_ms": None}, {"rows": 2}, MalformedRaw,
     "row 1: time 'x' outside"),
    (BODY | {"stream": rle(3, 2)}, {"rows": 2}, MalformedRaw, "stream"),
    (BODY | {"flushing": rle(False, 3)}, {"rows": 2}, MalformedRaw, "flushing holds 3 values for 2 rows"),
    (BODY | {"values": {"co2": [1.0]}}, {"rows": 2}, MalformedRaw, "missing"),
    (BODY | {"values": {"co2": [1.0, 2.0, 3.0]}}, {"rows": 2}, MalformedRaw, "more values"),
    (BODY | {"values": {"co2": [1.0, "x"]}}, {"rows": 2}, MalformedRaw, "not a list of numbers"),
    (BODY, {"rows": 3}, MalformedRaw, "time_ms is not a list of 3"),
])
def test_a_bad_body_is_named(body, head, error, words):
    chunk = parse_chunk(TOPIC, with_body({k: v for k, v in body.items() if v is not None}, **head),
                        RAW_CONTENT_TYPE, 1 << 20)
    with pytest.raises(error) as got:
        chunk.rows()
    assert words in got.value.message, got.value.message


def test_the_hash_and_the_size_are_checked():
    head, body = good().split(b"\n", 1)
    text = zlib.decompress(body)
    with pytest.raises(HashMismatch, match="SHA-256"):
        parse_chunk(TOPIC, head + b"\n" + zlib.compress(text.replace(b"400.0", b"400.5")), RAW_CONTENT_TYPE,
                    1 << 20).rows()
    with pytest.raises(HashMismatch, match="inflates to"):
        parse_chunk(TOPIC, head + b"\n" + zlib.compress(text + b" "), RAW_CONTENT_TYPE, 1 << 20).rows()
    with pytest.raises(WireError, match="inflates beyond the limit of 1000"):
        parse_chunk(TOPIC, head + b"\n" + zlib.compress(b" " * 100_000), RAW_CONTENT_TYPE, 1 << 20).rows(1000)
    with pytest.raises(MalformedRaw, match="after the end of its zlib stream"):
        parse_chunk(TOPIC, head + b"\n" + body + b"junk", RAW_CONTENT_TYPE, 1 << 20).rows()


def test_an_ack_names_its_chunk():
    header = RawChunkHeader.model_validate_json(good().split(b"\n", 1)[0])
    ack = parse_raw_ack("ghg/v1/st-a/raw_ack", encode_raw_ack(header, "refused", "hash_mismatch: ..."))
    assert (ack.device, ack.start, ack.end, ack.result, ack.reason) == ("d", T0, END, "refused", "hash_mismatch: ...")
    with pytest.raises(WireError, match="on 'st-b'"):
        parse_raw_ack("ghg/v1/st-b/raw_ack", encode_raw_ack(header, "stored"))
