"""The lean minute decoder (msgspec) against the pydantic models: for any payload, central's
parse_batch_lean must accept and reject exactly what ghgnet.wire.parse_batch does, with the same values and the same
reasons; and a record stored from either path must read back the same."""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from support.mqtt import minute

from central.ingest import parse_batch_lean
from central.lean_minutes import MinuteLean, canonical_times
from central.store import open_store
from ghgnet.timeutil import iso_utc
from ghgnet.wire import MinuteWire, ParsedBatch, WireError, encode_batch, parse_batch

TOPIC = "ghg/v1/st-a/minute"
SENT = datetime(2026, 3, 2, tzinfo=UTC)
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _value(v: Any) -> Any:
    """repr keeps what == hides: 0.0 vs -0.0, 1 vs 1.0, and a time's zone."""
    if isinstance(v, dict):
        return {k: _value(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_value(x) for x in v]
    if hasattr(v, "mean") and hasattr(v, "raw_mean"):
        return tuple(repr(getattr(v, f)) for f in ("mean", "std", "n", "raw_mean", "cal_mean"))
    return repr(v)


def _record(r: Any) -> dict[str, Any]:
    fields = ("seq", "time", "device", "stream", "species", "h2o", "flag", "reasons", "n_total",
              "calibration_id", "diagnostics")
    return {f: _value(getattr(r, f)) for f in fields}


def _outcome(payload: bytes) -> tuple:
    try:
        p = parse_batch(TOPIC, payload)
    except WireError as exc:
        return ("error", type(exc).__name__, exc.message)
    return ("ok", p.station, p.store, p.kind, repr(p.sent), [_record(r) for r in p.records],
            [(r.index, r.seq, r.reason, json.dumps(r.raw, sort_keys=True, default=repr)) for r in p.rejected])


def _lean_outcome(payload: bytes) -> tuple:
    try:
        p = parse_batch_lean(TOPIC, payload)
    except WireError as exc:
        return ("error", type(exc).__name__, exc.message)
    return ("ok", p.station, p.store, p.kind, repr(p.sent), [_record(r) for r in p.records],
            [(r.index, r.seq, r.reason, json.dumps(r.raw, sort_keys=True, default=repr)) for r in p.rejected])


STORE = "0123456789abcdef0123456789abcdef"


def _doc(seqs: list[int]) -> dict[str, Any]:
    return json.loads(encode_batch("st-a", "minute", [minute(s) for s in seqs], SENT, store=STORE))


CANONICAL_TIMES = [  # iso_utc's form, which the lean decoder keeps as text: in range or not
    "2026-03-01T00:01:00.000Z", "2026-02-29T00:00:00.000Z", "2024-02-29T23:59:59.999Z", "2026-04-31T00:00:00.000Z",
    "2026-03-01T24:00:00.000Z", "2026-03-01T00:60:00.000Z", "2026-03-01T00:01:60.000Z", "2026-13-01T00:00:00.000Z",
    "2026-00-01T00:00:00.000Z", "1899-12-31T23:59:59.999Z", "1900-01-01T00:00:00.000Z", "2999-12-31T23:59:59.000Z",
    "2999-12-31T23:59:59.001Z", "0000-01-01T00:00:00.000Z", "2026-03-01T00:01:00.000z", "2026-W09-1T00:01:00.000Z",
]
times = st.from_regex(
    r"\A[0-9+-]{0,2}[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}[Tt _][0-9]{2}:[0-9]{2}(:[0-9]{2})?([.,][0-9]{0,12})?"
    r"([Zz]|[+-][0-9]{2}:?[0-9]{2}(:[0-9]{2})?)?\Z"
) | st.sampled_from([
    "2026-03-01T00:01:00Z", "2026-03-01T00:01:00.1234567Z", "2026-03-01T00:01:00.123456Z",
    "2026-03-01T08:01:00+08:00", "2026-03-01T00:01:00-00:00", "2026-03-01T00:01:00+23:59",
    "2026-03-01T00:01:00+24:00", "1899-12-31T23:59:59Z", "1900-01-01T00:00:00+00:01",
    "2999-12-31T23:59:59Z", "2999-12-31T23:59:59-00:01", "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00", "2026-02-29T00:00:00Z", "2026-03-01T24:00:00Z", "1767225600",
    "２０２６-03-01T00:01:00Z", *CANONICAL_TIMES,
])
numbers = st.sampled_from([
    "0", "-0", "-0.0", "1", "1.0", "1e2", "1E400", "-1e400", "1" + "0" * 400, "0.1e-400", "4.9e-324",
    "9007199254740993", "2147483647", "2147483648", "9223372036854775807", "9223372036854775808",
    "true", "false", "null", '"1"', "NaN", "Infinity", "-Infinity", "[]", "{}", "1.00000000000000011102230246251565404236316680908203125",
])
strings = st.text(max_size=70) | st.sampled_from([
    "", "A", "Z", "a", "AB", "A\n", "\n", "\u00c9", "A\u0000", "\u0000", "x" * 64, "x" * 65, "\U0001F600" * 64,
    "\U0001F600" * 65,
])
raw_strings = st.sampled_from([
    '"\\u0000"', '"\\ud800"', '"\\udc00"', '"\\ud800\\u0041"', '"\\ud83d\\ude00"', '"\\u0041"', '"a\\/b"',
    '"\\x41"', '"\u00ff"', '"\\n"',
])
json_leaf = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | strings
)
json_values = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(strings, inner, max_size=3), max_leaves=6)

PLACEHOLDER = "\u2603PLACEHOLDER\u2603"


@st.composite
def mutated(draw) -> bytes:
    """A valid minute batch with edits aimed at where two parsers could differ."""
    seqs = draw(st.lists(st.integers(1, 40), min_size=1, max_size=4))
    doc = _doc(seqs)
    raw_subs: list[str] = []
    for _ in range(draw(st.integers(0, 4))):
        where = draw(st.sampled_from(["envelope", "record", "species", "stats", "diagnostics"]))
        if where == "envelope" or not doc.get("records") or not isinstance(doc["records"], list):
            node = doc
        else:
            rec = draw(st.sampled_from(doc["records"]))
            if not isinstance(rec, dict):
                continue
            node = rec
            if where in ("species", "stats") and isinstance(rec.get("species"), dict):
                node = rec["species"]
                if where == "stats" and node:
                    node = node[draw(st.sampled_from(sorted(node)))]
            elif where == "diagnostics" and isinstance(rec.get("diagnostics"), dict):
                node = rec["diagnostics"]
        if not isinstance(node, dict):
            continue
        keys = sorted(node) or ["x"]
        key = draw(st.sampled_from(keys) | strings)
        action = draw(st.sampled_from(["time", "number", "string", "raw", "value", "drop", "rename"]))
        if action == "time":
            node[key] = draw(times)
        elif action == "number":
            node[key] = PLACEHOLDER
            raw_subs.append(draw(numbers))
        elif action == "string":
            node[key] = draw(strings)
        elif action == "raw":
            node[key] = PLACEHOLDER
            raw_subs.append(draw(raw_strings))
        elif action == "value":
            node[key] = draw(json_values)
        elif action == "drop":
            node.pop(key, None)
        else:
            if key in node:
                node[draw(strings)] = node.pop(key)
    if draw(st.booleans()) and isinstance(doc.get("records"), list) and doc["records"]:
        doc["records"].append(draw(st.sampled_from(doc["records"])))  # a repeated seq
    text = json.dumps(doc, allow_nan=True)
    for sub in raw_subs:
        text = text.replace(json.dumps(PLACEHOLDER), sub, 1)
    if draw(st.integers(0, 9)) == 0:
        key = draw(st.sampled_from(['"seq":', '"station":', '"mean":', '"time":', '"device":']))
        i = text.find(key)
        if i >= 0:  # a duplicated key: which copy wins must not differ
            text = text[:i] + key + draw(st.sampled_from(['7,', '"st-b",', '1.5,', '"x",', 'null,'])) + text[i:]
    return text.encode("utf-8", "surrogatepass")


@FUZZ
@example(b'{"schema":1,"station":"st-a","kind":"minute","sent":"2026-03-02T00:00:00Z","records":[]}')
@example(b'{"schema":true,"station":"st-a","kind":"minute","sent":"2026-03-02T00:00:00Z","records":[]}')
@example(b'\xef\xbb\xbf' + json.dumps(_doc([1])).encode())
@example(json.dumps(_doc([1])).encode() + b" x")
@given(payload=mutated())
def test_lean_and_pydantic_paths_agree_on_every_payload(payload):
    assert _lean_outcome(payload) == _outcome(payload)


@pytest.mark.parametrize("text", ["2026-03-01T00:01:00.1234567Z", "2026-03-01T00:01:00,5Z", "2026-03-01 00:01:00Z",
                                  "2026-03-01t00:01:00z", "2026-03-01T00:01Z"])
def test_times_only_pydantic_reads_are_left_to_it(text):
    doc = _doc([1])
    doc["records"][0]["time"] = text
    payload = json.dumps(doc).encode()
    assert _lean_outcome(payload) == _outcome(payload)
    assert not isinstance(parse_batch_lean(TOPIC, payload).records[0], MinuteLean)


def test_a_plain_batch_takes_the_lean_path_with_the_models_values():
    payload = encode_batch("st-a", "minute", [minute(1), minute(2, flag="N")], SENT)
    lean = parse_batch_lean(TOPIC, payload)
    full = parse_batch(TOPIC, payload)
    assert all(isinstance(r, MinuteLean) for r in lean.records)
    assert all(isinstance(r, MinuteWire) for r in full.records)
    assert [_record(r) for r in lean.records] == [_record(r) for r in full.records]
    assert lean.sent == full.sent == SENT and lean.rejected == full.rejected == []


def test_records_from_either_path_are_stored_the_same():
    payload = encode_batch("st-a", "minute", [minute(s, flag="UN"[s % 2]) for s in range(1, 6)], SENT)
    stored = []
    with tempfile.TemporaryDirectory() as d:
        for name, parse in (("lean", parse_batch_lean), ("models", parse_batch)):
            store = open_store("sqlite", path=Path(d) / f"{name}.sqlite")
            try:
                batch = parse(TOPIC, payload)
                assert isinstance(batch, ParsedBatch)
                store.store_batch(batch, SENT)
                stored.append([m for m in store.minutes("st-a", datetime(2000, 1, 1, tzinfo=UTC),
                                                        datetime(2100, 1, 1, tzinfo=UTC))])
            finally:
                store.close()
    assert len(stored[0]) == 5 and stored[0] == stored[1]


def test_times_in_iso_utc_form_are_kept_as_text_for_the_store():
    payload = encode_batch("st-a", "minute", [minute(s) for s in (1, 2, 3)], SENT)
    lean = parse_batch_lean(TOPIC, payload)
    assert lean.time_texts == [iso_utc(r.time) for r in lean.records] == [r["time"] for r in json.loads(payload)["records"]]
    assert parse_batch(TOPIC, payload).time_texts is None  # the models' path leaves formatting to the store
    doc = json.loads(payload)
    doc["records"][1]["time"] = "2026-03-01T00:02:00Z"  # valid, another form: every time formatted by the store
    other = parse_batch_lean(TOPIC, json.dumps(doc).encode())
    assert isinstance(other.records[0], MinuteLean) and other.time_texts is None


@pytest.mark.parametrize("texts, canonical", [
    (["2026-03-01T00:01:00.000Z", "2026-03-01T00:00:00.000Z"], True),
    (["1900-01-01T00:00:00.000Z", "2999-12-31T23:59:59.000Z"], True),
    (["1899-12-31T23:59:59.999Z"], False),
    (["2999-12-31T23:59:59.001Z"], False),
    (["2026-03-01T00:01:00.000Z\n2026-03-01T00:0", "1:00.000Z"], False),  # a newline of its own
    (["2026-03-01T00:01:00.000Z\n"], False),
    (["2026-03-01T00:01:00.000"], False),
    (["2026-03-01T00:01:00.00\u0663Z"], False),  # a digit, but not an ASCII one
    (["2026-13-01T23:60:60.000Z"], True),  # the shape only: the fields' ranges are fromisoformat's to refuse
    (["2026-03-01T00:00:00.000Z", "2026-03-01T24:00:00.000Z"], False),  # but hour 24 (Python 3.14 reads the next day)
])
def test_which_batches_count_as_iso_utc_times(texts, canonical):
    assert canonical_times(texts) is canonical


SPECIES_TEXTS = [  # as a station (or anyone) may write a minute's species object
    '{"co2":{"mean":420.5,"std":0.05,"n":55,"raw_mean":420.2,"cal_mean":420.5}}',
    '{"co2":{"mean":420,"std":0,"n":55,"raw_mean":-0,"cal_mean":4.205e2}}',  # integers, an exponent
    '{"co2":{"mean":-0.0,"std":1e-400,"n":0,"raw_mean":9007199254740993,"cal_mean":null}}',
    '{"co2":{"mean":1.00000000000000011102230246251565404236316680908203125,"std":null,"n":1,"raw_mean":null}}',
    '{ "co2" : { "mean" : 1.5 , "std" : null , "n" : 1 , "raw_mean" : null } ,\n "ch4":{"mean":2.0,"std":null,'
    '"n":2,"raw_mean":null}}',
    '{"\\u0063o\\u2082":{"mean":1.5,"std":null,"n":1,"raw_mean":null},"n\u00b2o":{"mean":0.3,"std":null,"n":1,"raw_mean":null}}',
    '{"co2":{"mean":1.0,"mean":2.0,"std":null,"n":1,"raw_mean":null},"co2":{"mean":3.0,"std":null,"n":1,"raw_mean":null}}',
    '{}',
]


@pytest.mark.parametrize("species", SPECIES_TEXTS)
def test_species_kept_as_their_text_read_back_as_the_models_values(species):
    doc = _doc([1, 2])
    payload = json.dumps(doc).replace(json.dumps(doc["records"][1]["species"], separators=(", ", ": ")), species)
    payload = payload.encode()
    assert species in payload.decode()
    lean = parse_batch_lean(TOPIC, payload)
    full = parse_batch(TOPIC, payload)
    assert isinstance(lean.records[1], MinuteLean) and lean.species_texts[1] == species
    assert [_record(r) for r in lean.records] == [_record(r) for r in full.records]
    read = []
    with tempfile.TemporaryDirectory() as d:
        for batch in (lean, full):
            store = open_store("sqlite", path=Path(d) / f"{batch is lean}.sqlite")
            try:
                store.store_batch(batch, SENT)
                if batch is lean:
                    assert store._query("SELECT species FROM minute WHERE seq = 2")[0][0] == species
                read.append([_value(m.species) for m in store.minutes("st-a", datetime(2000, 1, 1, tzinfo=UTC),
                                                                      datetime(2100, 1, 1, tzinfo=UTC))])
            finally:
                store.close()
    assert read[0] == read[1] and len(read[0]) == 2


GRID_STRINGS = [
    "", "A", "Z", "a", "AB", "A\n", "\n", "\u00c9", "A\u0000", "\u0000", "x" * 64, "x" * 65, "\U0001F600" * 64,
    "\U0001F600" * 65, "2026-03-01T00:01:00Z", STORE, STORE + "\n", STORE.upper(), STORE[:-1],
]
GRID_RAW = [
    '"\\u0000"', '"a\\u0000"', '"\\ud800"', '"\\udc00"', '"\\ud800\\u0041"', '"\\ud83d\\ude00"', '"\\u0041"',
    '"a\\/b"', '"\\x41"', '"\u00ff"', '"\\n"', '"A\\n"', '"\\u0041\\u000a"',
]
GRID_NUMBERS = [
    "0", "-0", "-0.0", "1", "1.0", "1e2", "1E400", "-1e400", "1" + "0" * 400, "0.1e-400", "4.9e-324",
    "9007199254740993", "2147483647", "2147483648", "9223372036854775807", "9223372036854775808",
    "true", "false", "null", '"1"', "NaN", "Infinity", "[]", "{}",
]
GRID_TIMES = [
    "2026-03-01T00:01:00Z", "2026-03-01T00:01:00.1234567Z", "2026-03-01T00:01:00.123456Z", "2026-03-01T00:01:00.5Z",
    "2026-03-01T08:01:00+08:00", "2026-03-01T00:01:00-00:00", "2026-03-01T00:01:00+23:59", "2026-03-01T00:01:00+0100",
    "2026-03-01T00:01:00+24:00", "2026-03-01T00:01:00+00:60", "1899-12-31T23:59:59Z", "1900-01-01T00:00:00+00:01",
    "1900-01-01T00:00:00-00:01", "2999-12-31T23:59:59Z", "2999-12-31T23:59:59-00:01", "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00", "2026-02-29T00:00:00Z", "2026-03-01T24:00:00Z", "2026-03-01T00:01:60Z",
    "1767225600", "\uff12\uff10\uff12\uff16-03-01T00:01:00Z", "2026-03-01T00:01:00", "20260301T000100Z",
    "2026-03-01T00:01:00ZZ", "2026-03-01T00:01:00.Z", *CANONICAL_TIMES,
]
GRID_FIELDS = [
    ("schema",), ("station",), ("store",), ("kind",), ("sent",), ("records", 0, "seq"), ("records", 0, "time"),
    ("records", 0, "device"), ("records", 0, "stream"), ("records", 0, "flag"), ("records", 0, "h2o"),
    ("records", 0, "n_total"), ("records", 0, "calibration_id"), ("records", 0, "reasons"),
    ("records", 0, "species", "co2", "mean"), ("records", 0, "species", "co2", "n"),
    ("records", 0, "species", "co2", "cal_mean"), ("records", 0, "diagnostics", "cavity_pressure"),
    ("records", 0, "species", "<key>"), ("records", 0, "diagnostics", "<key>"), ("records", 0, "reasons", 0),
]


def _grid_payloads():
    values = [json.dumps(s) for s in GRID_STRINGS] + GRID_RAW + GRID_NUMBERS + [json.dumps(t) for t in GRID_TIMES]
    for path in GRID_FIELDS:
        for raw in values:
            doc = _doc([1, 2])
            doc["records"][0]["reasons"] = ["flush"]
            node: Any = doc
            for p in path[:-1]:
                node = node[p]
            if path[-1] == "<key>":  # the value goes in as a key (only string values make sense)
                if not raw.startswith('"'):
                    continue
                node[PLACEHOLDER] = node[sorted(node)[0]]
            else:
                node[path[-1]] = PLACEHOLDER
            yield path, json.dumps(doc).replace(json.dumps(PLACEHOLDER), raw, 1).encode("utf-8", "surrogatepass")


def test_lean_and_pydantic_paths_agree_field_by_field_on_tricky_values():
    took_lean = 0
    for path, payload in _grid_payloads():
        assert _lean_outcome(payload) == _outcome(payload), (path, payload)
        try:
            took_lean += isinstance(parse_batch_lean(TOPIC, payload).records[0], MinuteLean)
        except (WireError, IndexError):
            pass
    assert took_lean > 100  # the grid does exercise the lean path, not only the fallback


@pytest.mark.parametrize("store", [STORE, None])
def test_a_batch_carries_its_store_identity_through_the_lean_decoder(store):
    payload = encode_batch("st-a", "minute", [minute(1)], SENT, store=store)
    lean = parse_batch_lean(TOPIC, payload)
    assert isinstance(lean.records[0], MinuteLean) and lean.store == store


@pytest.mark.parametrize("bad", ["0123", STORE.upper(), STORE + "\n", 12, "g" * 32])
def test_a_malformed_store_identity_rejects_the_batch_through_the_lean_decoder(bad):
    body = json.loads(encode_batch("st-a", "minute", [minute(1)], SENT))
    body["store"] = bad
    with pytest.raises(WireError, match="store"):
        parse_batch_lean(TOPIC, json.dumps(body).encode())
