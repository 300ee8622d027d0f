"""Central and the lean encoding: the content type decides the decoding, a record sent once in
JSON and once lean is stored once, and a broken, forged, oversized or bomb lean payload is
dead-lettered with its reason, never raising (in the receiver's thread or its decode process)."""

from __future__ import annotations

import json
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.mqtt import event, minute
from support.records import central_records

from central.decoder import DecodeProcess
from central.ingest import Ingestor, Message, group_acks
from central.store import BatchOutcome, DeadLetterOutcome, open_store
from ghgnet.wire import LEAN_CONTENT_TYPE, BatchEncoder, LeanEncoder, parse_ack, topic_for
from ghgnet.wire.lean import DICTIONARY_V1

STATION = "st-a"
STORE = "0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a"
SENT = datetime(2026, 3, 2, 0, 0, 30, 250000, tzinfo=UTC)
NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
MAX = 65_536
TOPIC = topic_for(STATION, "minute")


def rows(records, kind: str = "minute") -> list[tuple[int, str, bytes]]:
    return [(r.seq, kind, r.model_dump_json(exclude={"seq"}).encode()) for r in records]


def as_json(batch, kind: str = "minute") -> Message:
    return Message(topic_for(STATION, kind), BatchEncoder(STATION, STORE).encode_rows(kind, SENT, batch))


def as_lean(batch, kind: str = "minute", station: str = STATION) -> Message:
    return Message(topic_for(STATION, kind), LeanEncoder(station, STORE).encode_rows(kind, SENT, batch),
                   LEAN_CONTENT_TYPE)


@pytest.fixture
def ingestor(tmp_path: Path):
    store = open_store("sqlite", path=tmp_path / "central.sqlite")
    yield Ingestor(store, MAX, now=lambda: NOW)
    store.close()


def outcome(ingestor: Ingestor, msg: Message):
    (handled,) = ingestor.handle([msg])
    return handled.outcome


@pytest.mark.parametrize("first", ["json", "lean"])
def test_a_record_sent_once_in_json_and_once_lean_is_stored_once(ingestor, first):
    minutes = rows([minute(s) for s in range(1, 21)] + [minute(21, flag="N")])
    events = rows([event(s) for s in (30, 31)], "event")
    senders = [as_json, as_lean] if first == "json" else [as_lean, as_json]
    firsts = [outcome(ingestor, senders[0](minutes)), outcome(ingestor, senders[0](events, "event"))]
    again = [outcome(ingestor, senders[1](minutes)), outcome(ingestor, senders[1](events, "event"))]
    assert [(o.new, o.duplicate, o.dead_lettered) for o in firsts] == [(21, 0, 0), (2, 0, 0)]
    assert [(o.new, o.duplicate, o.dead_lettered, o.conflicts) for o in again] == [(0, 21, 0, []), (0, 2, 0, [])]
    assert ingestor.store.minute_count(STATION) == 21
    assert ingestor.store.dead_letters(10) == []
    held = central_records(ingestor.store, STATION)
    assert sorted(held["minute"]) == list(range(1, 22)) and sorted(held["event"]) == [30, 31]


def deflated(doc: bytes) -> bytes:
    d = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, zdict=DICTIONARY_V1)
    return d.compress(doc) + d.flush()


def bad_lean_messages() -> dict[str, tuple[Message, str]]:
    good = as_lean(rows([minute(1), minute(2)]))
    return {
        "truncated": (Message(TOPIC, good.payload[:-4], LEAN_CONTENT_TYPE), "malformed_lean"),
        "garbage": (Message(TOPIC, b"\xff" * 64, LEAN_CONTENT_TYPE), "malformed_lean"),
        "json announced as lean": (Message(TOPIC, as_json(rows([minute(1)])).payload, LEAN_CONTENT_TYPE),
                                   "malformed_lean"),
        "lean without its content type": (Message(TOPIC, good.payload), "malformed_json"),
        "unknown content type": (Message(TOPIC, good.payload, "application/zstd"), "unknown_content_type"),
        "forged station": (as_lean(rows([minute(3)]), station="st-b"), "forged_station"),
        "decompression bomb": (Message(TOPIC, deflated(b"\x00" * 20_000_000), LEAN_CONTENT_TYPE), "oversize"),
        "stands for too much JSON": (as_lean(rows([minute(s) for s in range(1, 300)])), "oversize"),
    }


def test_bad_lean_payloads_are_dead_lettered_with_their_reason_and_acked_to_nobody(ingestor):
    cases = bad_lean_messages()
    handled = ingestor.handle([m for m, _ in cases.values()])
    for name, h in zip(cases, handled):
        assert isinstance(h.outcome, DeadLetterOutcome), name
    letters = ingestor.store.dead_letters(20)
    assert sorted(d.reason_code for d in letters) == sorted(code for _, code in cases.values())
    bomb = next(d for d in letters if d.reason_code == "oversize" and "inflates" in d.reason)
    assert f"beyond the limit of {MAX} bytes" in bomb.reason
    assert group_acks(handled) == []
    # the good records of the same station still go in
    assert outcome(ingestor, as_lean(rows([minute(5)]))).new == 1


def test_the_decode_process_reads_the_content_type_too(tmp_path: Path):
    store = open_store("sqlite", path=tmp_path / "central.sqlite")
    decoder = DecodeProcess("sqlite", MAX, "warning", "json").start()
    try:
        assert decoder.wait_ready(30)
        ingestor = Ingestor(store, MAX, now=lambda: NOW, decoder=decoder)
        bad = bad_lean_messages()
        handled = ingestor.handle([as_lean(rows([minute(s) for s in range(1, 11)])), bad["truncated"][0],
                                   bad["decompression bomb"][0], as_json(rows([minute(s) for s in range(5, 13)]))])
        assert decoder.groups == 1, "decoded here, not in the child"
        first, truncated, bomb, last = (h.outcome for h in handled)
        assert isinstance(first, BatchOutcome) and first.new == 10
        assert isinstance(truncated, DeadLetterOutcome) and isinstance(bomb, DeadLetterOutcome)
        assert isinstance(last, BatchOutcome) and (last.new, last.duplicate) == (2, 6)
        (ack,) = group_acks(handled)
        assert parse_ack(*ack).acked == [(1, 12)]
        assert sorted(d.reason_code for d in store.dead_letters(10)) == ["malformed_lean", "oversize"]
    finally:
        decoder.stop()
        store.close()


def test_a_lean_record_the_models_refuse_is_dead_lettered_alone(ingestor):
    good = json.loads(rows([minute(1)])[0][2])
    batch = [(1, "minute", json.dumps(good).encode()), (2, "minute", json.dumps({**good, "flag": "lower"}).encode())]
    o = outcome(ingestor, as_lean(batch))
    assert (o.new, o.dead_lettered, o.ack_seqs) == (1, 1, [1, 2])
    (letter,) = ingestor.store.dead_letters(10)
    assert letter.seq == 2 and "flag" in letter.reason
