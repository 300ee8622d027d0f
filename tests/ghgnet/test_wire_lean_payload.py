"""The lean encoding (ghgnet/wire/lean.py): it stands for exactly the JSON batch the station would
have sent, it is small, its dictionary never changes, and every broken payload is refused with one
of the wire's own errors (fuzzed)."""

from __future__ import annotations

import hashlib
import json
import random
import zlib
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.mqtt import event, minute

from ghgnet.wire import (
    BatchEncoder,
    LeanEncoder,
    MalformedLean,
    PayloadTooLarge,
    UnknownContentType,
    WireError,
    batch_json,
    parse_batch,
    topic_for,
)
from ghgnet.wire.lean import DICTIONARY_V1, LEAN_CONTENT_TYPE, POSITIONAL_MAX_RECORDS, lean_to_json

STATION = "st-a"
STORE = "5f0c4a8e9d2b4c1e8a7f6b5d4c3b2a19"
SENT = datetime(2026, 3, 2, 0, 1, 20, 123000, tzinfo=UTC)
MAX = 1_048_576
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def rows(records) -> list[tuple[int, str, bytes]]:
    kind = {"MinuteWire": "minute", "EventWire": "event"}.get(type(records[0]).__name__, "calibration")
    return [(r.seq, kind, r.model_dump_json(exclude={"seq"}).encode()) for r in records]


def both(kind: str, batch: list[tuple[int, str, bytes]], store: str | None = STORE) -> tuple[bytes, bytes]:
    """(the JSON batch, the lean payload) of the same rows."""
    return (BatchEncoder(STATION, store).encode_rows(kind, SENT, batch),
            LeanEncoder(STATION, store).encode_rows(kind, SENT, batch))


def full_precision_minute(seq: int, rng: random.Random) -> bytes:
    """A minute as a 1 Hz analyzer's means are: every float at full precision (the hard case)."""
    def stats(level: float, noise: float) -> dict:
        mean = sum(rng.gauss(level, noise) for _ in range(60)) / 60
        return {"mean": mean, "std": rng.uniform(0.5, 1.5) * noise, "n": 60, "raw_mean": mean * 1.013 - 0.7,
                "cal_mean": mean}
    obj = {"time": (SENT - timedelta(seconds=80)).strftime("%Y-%m-%dT%H:%M:00.000Z"), "device": "picarro-1",
           "stream": "inlet:top", "species": {"co2": stats(420, 0.05), "ch4": stats(2000, 0.6), "co": stats(150, 4.8)},
           "h2o": rng.uniform(0.5, 2.0), "flag": "U", "reasons": [], "n_total": 60,
           "calibration_id": "cal-picarro-1-20260301T0600Z",
           "diagnostics": {"h2o_low_fraction": 0.0, "cavity_pressure": rng.gauss(140, 0.01),
                           "cavity_temp": rng.gauss(45, 0.001)}}
    return json.dumps(obj, separators=(",", ":")).encode()


def test_lean_batches_of_every_kind_stand_for_the_json_batch_they_replace():
    target = {"seq": 9, "record_type": "target", "id": "tgt-1", "time": "2026-03-01T06:00:00.000Z",
              "cylinder": "TGT-1", "measured": {"co2": 430.01}, "assigned": {"co2": 430.0}, "bias": {"co2": 0.01},
              "within_goal": {"co2": True}}
    calibration = {"seq": 8, "record_type": "calibration", "id": "cal-1", "time_start": "2026-03-01T05:00:00.000Z",
                   "time_end": "2026-03-01T05:40:00.000Z",
                   "standards": [{"cylinder": "CAL-1", "measured": {"co2": 380.2}, "assigned": {"co2": 380.0}}],
                   "fits": {"co2": {"coefficients": [0.1, 0.999], "residuals": [0.001], "r2": 0.99, "n": 4}}}
    cases = [
        ("minute", rows([minute(s) for s in range(1, 6)] + [minute(6, flag="N")])),  # positional form
        ("minute", rows([minute(s) for s in range(1, POSITIONAL_MAX_RECORDS + 30)])),  # JSON form
        ("event", rows([event(s) for s in (3, 4, 7)])),
        ("calibration", [(r["seq"], "calibration", json.dumps({k: v for k, v in r.items() if k != "seq"}).encode())
                         for r in (calibration, target)]),
    ]
    for kind, batch in cases:
        for store in (STORE, None):
            plain, lean = both(kind, batch, store)
            back = batch_json(LEAN_CONTENT_TYPE, lean, MAX)
            assert json.loads(back) == json.loads(plain), kind
            topic = topic_for(STATION, kind)
            assert parse_batch(topic, back) == parse_batch(topic, plain), kind
            assert len(lean) < len(plain) / 2, kind


def test_minutes_the_positional_form_does_not_fit_travel_as_their_json_and_come_back_the_same():
    good = json.loads(rows([minute(1)])[0][2])
    odd = [
        {**good, "time": "2026-03-01T00:01:00Z"},  # a time not in iso_utc's form
        {**good, "time": "2026-03-01T00:01:00.123456+00:00"},
        {k: v for k, v in good.items() if k != "h2o"},  # a key left to its default
        {**good, "extra": 1},  # a key the models refuse: refused at central as from JSON
        {**good, "species": {"co2": {"mean": 420, "std": None, "n": 3, "raw_mean": 1e-300, "cal_mean": -0.0}}},
        {**good, "species": {"co2": {"mean": 420.0, "std": 0.1, "n": 3, "raw_mean": 419.0}}},  # no cal_mean
        {**good, "h2o": 1e308, "reasons": ["\u00e9t\u00e9", "x\\y\"z"], "calibration_id": None},
        {**good, "device": "\u0000"},  # NUL: refused at central, as from JSON
    ]
    batch = [(i, "minute", json.dumps(o, ensure_ascii=False).encode()) for i, o in enumerate(odd, 1)]
    plain, lean = both("minute", batch)
    back = lean_to_json(lean, MAX)
    assert json.loads(back) == json.loads(plain)
    topic = topic_for(STATION, "minute")
    from_json, from_lean = parse_batch(topic, plain), parse_batch(topic, back)
    assert from_lean.records == from_json.records
    assert [r.reason for r in from_lean.rejected] == [r.reason for r in from_json.rejected]
    assert {r.seq for r in from_lean.rejected} == {4, 8}


def test_a_live_minute_alone_takes_under_a_quarter_of_its_json_bytes():
    rng = random.Random(17)
    for seq in range(1, 50):
        plain, lean = both("minute", [(seq, "minute", full_precision_minute(seq, rng))])
        assert len(lean) < len(plain) / 4, (len(lean), len(plain))
        assert json.loads(lean_to_json(lean, MAX)) == json.loads(plain)


def test_the_released_dictionary_never_changes():
    # a better dictionary is a new version (ghg-lean/2), with central reading both
    assert len(DICTIONARY_V1) <= 32768  # DEFLATE's window
    assert hashlib.sha256(DICTIONARY_V1).hexdigest() == (
        "1bd8be7e1ab0704f8e154bc10630be2855931b9dea450a267329a3547c506375")


def deflate(doc: bytes, zdict: bytes = DICTIONARY_V1) -> bytes:
    d = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, zdict=zdict)
    return d.compress(doc) + d.flush()


def test_broken_lean_payloads_are_refused_with_a_reason():
    _, lean = both("minute", rows([minute(1), minute(2)]))
    good_doc = zlib.decompressobj(-15, zdict=DICTIONARY_V1).decompress(lean)
    minute_doc = msgspec.msgpack.decode(good_doc)
    bad_values = [*minute_doc[:4], [[0, 1, 0, "d", "s", ["co2"], [1], b"\x00" * 7, "U", [], 1, None, []]]]
    infinite = [*minute_doc[:4], [[0, 1, 0, "d", "s", [], [], b"\x00\x00\x00\x00\x00\x00\xf0\x7f", "U", [], 1, None,
                                   []]]]
    twice = [*minute_doc[:4], [[0, 1, 0, "d", "s", ["co2", "co2"], [1, 1], b"\x00" * 72, "U", [], 1, None, []]]]
    cases = {
        b"": (MalformedLean, "truncated"),
        b"{\"schema\":1}": (MalformedLean, "DEFLATE"),
        lean[:-3]: (MalformedLean, "truncated"),
        lean + b"\x00junk": (MalformedLean, "after the end"),
        deflate(b"\x93\x01\x02"): (MalformedLean, "lean payload"),  # an array of the wrong shape
        deflate(msgspec.msgpack.encode([*minute_doc[:4], [[2, 1, b"{}"]]])): (MalformedLean, "lean payload"),
        deflate(msgspec.msgpack.encode([*minute_doc[:4], [[1, 1, b"[1]"]]])): (MalformedLean, "not a JSON object"),
        deflate(msgspec.msgpack.encode(bad_values)): (MalformedLean, "do not agree"),
        deflate(msgspec.msgpack.encode(infinite)): (MalformedLean, "infinite"),
        deflate(msgspec.msgpack.encode(twice)): (MalformedLean, "twice"),
        deflate(msgspec.msgpack.encode([minute_doc[0], b"\x01" * 3, *minute_doc[2:]])): (MalformedLean, "store"),
        deflate(msgspec.msgpack.encode([*minute_doc[:3], 10**18, minute_doc[4]])): (MalformedLean, "out of range"),
    }
    for payload, (error, words) in cases.items():
        with pytest.raises(error, match=words):
            lean_to_json(payload, MAX)


def test_a_decompression_bomb_is_refused_before_it_is_inflated():
    bomb = deflate(b"\x00" * 50_000_000)  # 50 MB of zeros in ~50 kB
    with pytest.raises(PayloadTooLarge, match="inflates beyond the limit of 65536 bytes"):
        lean_to_json(bomb, 65536)
    # a positional document within the bound whose JSON is not: refused too
    few = rows([minute(s) for s in range(1, POSITIONAL_MAX_RECORDS + 1)])
    lean = LeanEncoder(STATION, STORE).encode_rows("minute", SENT, few)
    assert zlib.decompressobj(-15, zdict=DICTIONARY_V1).decompress(lean)[:1] == b"\x95"
    with pytest.raises(PayloadTooLarge, match="stands for .* bytes of JSON"):
        lean_to_json(lean, 5000)


def test_the_content_type_decides_the_decoding():
    plain, lean = both("minute", rows([minute(1)]))
    assert batch_json(None, plain, MAX) == plain
    assert batch_json("application/json", plain, MAX) == plain
    with pytest.raises(UnknownContentType, match="'application/cbor' is not one this receiver reads"):
        batch_json("application/cbor", lean, MAX)
    with pytest.raises(MalformedLean):
        batch_json(LEAN_CONTENT_TYPE, plain, MAX)  # JSON announced as lean


@st.composite
def damaged(draw) -> bytes:
    """A valid lean payload, or its inflated document, with a few bytes changed, cut or added."""
    seqs = draw(st.lists(st.integers(1, 50), min_size=1, max_size=4))
    kind = draw(st.sampled_from(["minute", "event"]))
    batch = rows([minute(s) for s in seqs] if kind == "minute" else [event(s) for s in seqs])
    lean = bytearray(LeanEncoder(STATION, STORE).encode_rows(kind, SENT, batch))
    inner = draw(st.booleans())
    data = bytearray(zlib.decompressobj(-15, zdict=DICTIONARY_V1).decompress(bytes(lean))) if inner else lean
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, max(0, len(data) - 1)))
        action = draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip" and data:
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif action == "cut":
            del data[i:i + draw(st.integers(1, 8))]
        else:
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
    return deflate(bytes(data)) if inner else bytes(data)


@FUZZ
@given(payload=damaged() | st.binary(max_size=300))
def test_fuzzed_lean_payloads_raise_only_wire_errors(payload):
    try:
        out = lean_to_json(payload, 65536)
    except WireError as exc:
        assert exc.code in ("malformed_lean", "oversize") and exc.message
        return
    assert len(out) <= 65536
    try:  # what it stands for is then the models' to judge, as any JSON batch
        parse_batch(topic_for(STATION, "minute"), out, 65536)
    except WireError:
        pass
