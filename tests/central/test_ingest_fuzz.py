"""Property-based fuzzing: whatever arrives, nothing escapes, and every input ends stored,
deduplicated or dead-lettered (parse_batch, and the receiver's handler `Ingestor.handle`)."""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.mqtt import event, minute

from central.ingest import Ingestor, Message, group_acks
from central.store import BatchOutcome, DeadLetterOutcome, StatusOutcome, open_store
from ghgnet.wire import ParsedBatch, SeqRanges, WireError, encode_batch, parse_ack, parse_batch

SENT = datetime(2026, 3, 2, tzinfo=UTC)
MAX = 16_384
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def valid_payload(draw_seqs: list[int], kind: str = "minute") -> dict[str, Any]:
    make = minute if kind == "minute" else event
    return json.loads(encode_batch("st-a", kind, [make(s) for s in draw_seqs], SENT))


@st.composite
def mutated_payloads(draw) -> bytes:
    """A valid batch with a few random edits: values replaced, keys dropped or added."""
    kind = draw(st.sampled_from(["minute", "event"]))
    seqs = draw(st.lists(st.integers(1, 50), min_size=1, max_size=5))
    doc = valid_payload(seqs, kind)
    for _ in range(draw(st.integers(1, 4))):
        # walk to a random container inside the document
        node: Any = doc
        for _ in range(draw(st.integers(0, 4))):
            children = list(node.values()) if isinstance(node, dict) else node
            children = [c for c in children if isinstance(c, dict | list) and c]
            if not children:
                break
            node = draw(st.sampled_from(children))
        action = draw(st.sampled_from(["replace", "drop", "add"]))
        if isinstance(node, dict) and node:
            key = draw(st.sampled_from(sorted(node)))
            if action == "replace":
                node[key] = draw(json_values)
            elif action == "drop":
                del node[key]
            else:
                node[draw(st.text(max_size=8))] = draw(json_values)
        elif isinstance(node, list) and node:
            i = draw(st.integers(0, len(node) - 1))
            if action == "drop":
                del node[i]
            else:
                node[i] = draw(json_values)
    text = json.dumps(doc, allow_nan=True)
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(text)))
        text = text[:cut] + draw(st.text(max_size=3)) + text[cut:]
    return text.encode("utf-8", "surrogatepass")


topics = st.sampled_from(["ghg/v1/st-a/minute", "ghg/v1/st-a/event", "ghg/v1/st-a/calibration",
                          "ghg/v1/st-a/status", "ghg/v1/st-b/minute", "ghg/v1/ST/minute", "other/topic"])


@FUZZ
@given(topic=topics, payload=st.binary(max_size=300) | mutated_payloads())
def test_parse_batch_raises_only_wire_errors(topic, payload):
    try:
        p = parse_batch(topic, payload, MAX)
    except WireError as exc:
        assert exc.code and exc.message
        return
    assert isinstance(p, ParsedBatch)
    assert len(p.records) + len(p.rejected) >= 1
    assert len({r.seq for r in p.records}) == len(p.records)  # no seq twice among the stored


@FUZZ
@given(messages=st.lists(st.tuples(topics, st.binary(max_size=200) | mutated_payloads()), min_size=1, max_size=4))
def test_every_message_ends_stored_deduplicated_or_dead_lettered(messages):
    with tempfile.TemporaryDirectory() as d:
        store = open_store("sqlite", path=Path(d) / "c.sqlite")
        try:
            handled = Ingestor(store, MAX).handle([Message(t, p) for t, p in messages])
            assert len(handled) == len(messages)
            letters = 0
            for (topic, payload), h in zip(messages, handled):
                o = h.outcome
                if o is None:  # only an empty retained status is ignored
                    assert topic.endswith("/status") and payload == b""
                elif isinstance(o, BatchOutcome):
                    decoded = parse_batch(topic, payload, MAX)
                    assert o.new + o.duplicate == len(decoded.records)
                    assert o.ack_seqs == decoded.seqs_held()
                    assert bool(group_acks([h])) == bool(o.ack_seqs)  # nothing to ack: no ack
                    letters += o.dead_lettered
                elif isinstance(o, DeadLetterOutcome):
                    assert o.stored and group_acks([h]) == []
                    letters += 1
                else:
                    assert isinstance(o, StatusOutcome)
            assert store.dead_letter_count() == letters
            held = set(store.held_seqs("st-a")) | set(store.held_seqs("st-b"))
            acked = {s for h in handled if isinstance(h.outcome, BatchOutcome) for s in h.outcome.ack_seqs}
            dead_seqs = {d.seq for d in store.dead_letters(limit=1000) if d.seq is not None}
            assert acked == held | dead_seqs  # an ack covers exactly what central holds
            sent = {}  # what the group's acks say, station by station
            for topic, payload in group_acks(handled):
                ack = parse_ack(topic, payload)
                assert ack.station not in sent, "two acks for one station in one group"
                sent[ack.station] = set(SeqRanges(ack.acked))
            assert sent == {st: set(store.held_seqs(st)) | {d.seq for d in store.dead_letters(limit=1000)
                                                             if d.seq is not None and d.station == st}
                            for st in ("st-a", "st-b") if st in sent}
            assert set().union(*sent.values()) == acked
        finally:
            store.close()


def test_a_replayed_mixture_is_idempotent(tmp_path):
    store = open_store("sqlite", path=tmp_path / "c.sqlite")
    try:
        good = encode_batch("st-a", "minute", [minute(s) for s in (1, 2, 3)], SENT)
        bad = good.replace(b'"seq":2,', b'"seq":2,"bogus":true,')
        ing = Ingestor(store, MAX)
        first = ing.handle([Message("ghg/v1/st-a/minute", bad), Message("ghg/v1/st-a/minute", b"{")])
        second = ing.handle([Message("ghg/v1/st-a/minute", bad)])
        assert first[0].outcome.new == 2 and second[0].outcome.duplicate == 2
        assert group_acks(first) == group_acks(second)  # the broken JSON earns no ack
        assert store.dead_letter_count() == 2  # the bad record once, the broken JSON once
    finally:
        store.close()


def test_a_row_builder_that_fails_on_one_message_loses_nothing(tmp_path, monkeypatch):
    """The decode thread builds the rows (`prepare`); a bug there for one message must neither stop
    the receiver nor cost the other messages: their rows are built again when written, and the
    message that still fails is dead-lettered with its payload."""
    import central.store.sql as sql

    built = sql.minute_rows

    def fragile(station, recs, *args):
        if any(r.seq == 5 for r in recs):
            raise RuntimeError("row builder bug")
        return built(station, recs, *args)

    monkeypatch.setattr(sql, "minute_rows", fragile)
    store = open_store("sqlite", path=tmp_path / "c.sqlite")
    try:
        ing = Ingestor(store, MAX)
        batches = [encode_batch("st-a", "minute", [minute(s) for s in seqs], SENT) for seqs in ((1, 2), (5, 6), (7,))]
        handled = ing.handle([Message("ghg/v1/st-a/minute", b) for b in batches])
        assert [h.outcome.new for h in (handled[0], handled[2])] == [2, 1]
        assert isinstance(handled[1].outcome, DeadLetterOutcome) and group_acks([handled[1]]) == []
        (letter,) = store.dead_letters()
        assert (letter.reason_code, letter.payload) == ("store_error", batches[1])
        assert store.held_seqs("st-a") == [1, 2, 7]
    finally:
        store.close()
