"""ghgnet.wire: topics, models, parse_batch's errors, ack ranges, and the two batch encoders."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.mqtt import minute

from ghgnet.records import Event, MinuteRecord, SpeciesMinute
from ghgnet.wire import (
    AckMessage,
    BadTopic,
    BatchEncoder,
    MinuteWire,
    SeqRanges,
    StatusMessage,
    WireError,
    compress_seqs,
    encode_ack,
    encode_batch,
    parse_ack,
    parse_batch,
    parse_status,
    parse_topic,
    subscription_filters,
    topic_for,
)
from station_agent.storage.store import StationStore

SENT = datetime(2026, 3, 2, 12, tzinfo=UTC)


def test_topics_round_trip_and_refuse_strangers():
    assert topic_for("st-a", "minute") == "ghg/v1/st-a/minute"
    assert parse_topic("ghg/v1/st-a/ack") == ("st-a", "ack")
    for bad in ["ghg/v2/st-a/minute", "ghg/v1/st-a/minute/x", "ghg/v1/ST/minute", "ghg/v1/st-a/l0", "ghg/v1//minute"]:
        with pytest.raises(BadTopic):
            parse_topic(bad)
    with pytest.raises(BadTopic, match="unknown topic kind"):
        topic_for("st-a", "foo")


def test_shared_subscription_leaves_status_unshared():
    f = subscription_filters("grp")
    assert f["minute"] == "$share/grp/ghg/v1/+/minute"
    assert f["status"] == "ghg/v1/+/status"  # retained messages never reach shared subscriptions
    assert subscription_filters()["event"] == "ghg/v1/+/event"


def test_batch_encodes_to_the_documented_json():
    d = json.loads(encode_batch("st-a", "minute", [minute(1)], SENT))
    assert list(d) == ["schema", "station", "kind", "sent", "records"]
    assert (d["schema"], d["station"], d["kind"], d["sent"]) == (1, "st-a", "minute", "2026-03-02T12:00:00.000Z")
    r = d["records"][0]
    assert r["seq"] == 1 and r["time"] == "2026-03-01T00:01:00.000Z"
    assert set(r["species"]["co2"]) == {"mean", "std", "n", "raw_mean", "cal_mean", "u"}


def test_times_with_offsets_become_utc_and_naive_times_are_refused():
    d = json.loads(encode_batch("st-a", "minute", [minute(1)], SENT))
    d["records"][0]["time"] = "2026-03-01T08:01:00+08:00"
    p = parse_batch("ghg/v1/st-a/minute", json.dumps(d).encode())
    assert p.records[0].time == datetime(2026, 3, 1, 0, 1, tzinfo=UTC)
    d["records"][0]["time"] = "2026-03-01T00:01:00"
    p = parse_batch("ghg/v1/st-a/minute", json.dumps(d).encode())
    assert "timezone info" in p.rejected[0].reason


def test_non_finite_floats_cannot_be_built():
    with pytest.raises(ValueError, match="finite"):
        minute(1).model_copy(update={}).model_validate({**minute(1).model_dump(), "h2o": float("inf")})


def test_a_bad_record_is_rejected_alone_with_its_seq():
    d = json.loads(encode_batch("st-a", "minute", [minute(1), minute(2), minute(3)], SENT))
    d["records"][1]["flag"] = 7
    d["records"][2].pop("seq")
    p = parse_batch("ghg/v1/st-a/minute", json.dumps(d).encode())
    assert [r.seq for r in p.records] == [1]
    assert [(r.index, r.seq) for r in p.rejected] == [(1, 2), (2, None)]
    assert "records.1.flag" in p.rejected[0].reason and "records.2.seq: Field required" in p.rejected[1].reason
    assert p.seqs_held() == [1, 2]


def test_nul_characters_are_refused_per_record():
    d = json.loads(encode_batch("st-a", "minute", [minute(1)], SENT))
    d["records"][0]["device"] = "g24\u000001"
    p = parse_batch("ghg/v1/st-a/minute", json.dumps(d).encode())
    assert "records.0.device" in p.rejected[0].reason


def test_status_and_ack_parse():
    s = StatusMessage(station="st-a", state="down", time=SENT, backlog=3, oldest_unacked_age_s=None)
    assert parse_status("ghg/v1/st-a/status", s.to_json()) == s
    a = encode_ack("st-a", [3, 1, 2, 9])
    assert json.loads(a) == {"schema": 1, "station": "st-a", "acked": [[1, 3], [9, 9]]}
    assert parse_ack("ghg/v1/st-a/ack", a) == AckMessage(station="st-a", acked=[(1, 3), (9, 9)])
    with pytest.raises(ValueError, match="lo > hi"):
        AckMessage(station="st-a", acked=[(5, 4)])


@given(st.sets(st.integers(1, 500), max_size=200))
def test_compressed_ranges_cover_exactly_the_seqs(seqs):
    ranges = compress_seqs(seqs)
    assert all(lo <= hi for lo, hi in ranges)
    assert all(ranges[i][1] + 1 < ranges[i + 1][0] for i in range(len(ranges) - 1))  # minimal
    r = SeqRanges(ranges)
    assert set(r) == seqs and len(r) == len(seqs)
    assert all((s in r) == (s in seqs) for s in range(0, 502))


def test_seq_ranges_merge_overlaps():
    r = SeqRanges([(5, 9), (1, 3), (4, 4), (20, 30), (25, 26)])
    assert r.ranges == [(1, 9), (20, 30)]
    assert 0 not in r and "x" not in r and 30 in r


def test_sent_zone_is_kept_as_utc():
    later = datetime(2026, 3, 2, 20, tzinfo=timezone(timedelta(hours=8)))
    p = parse_batch("ghg/v1/st-a/minute", encode_batch("st-a", "minute", [minute(1)], later))
    assert p.sent == datetime(2026, 3, 2, 12, tzinfo=UTC)
    assert isinstance(p.records[0], MinuteWire)


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+08:00", "1899-12-31T23:59:59Z", "3000-01-01T00:00:00Z", "now"])
def test_impossible_times_are_refused_with_a_reason(text):
    d = json.loads(encode_batch("st-a", "minute", [minute(1)], SENT))
    d["records"][0]["time"] = text
    p = parse_batch("ghg/v1/st-a/minute", json.dumps(d).encode())
    assert p.records == [] and "records.0.time" in p.rejected[0].reason


STORE = "0123456789abcdef0123456789abcdef"


def test_a_batch_carries_its_store_identity():
    payload = encode_batch("st-a", "minute", [minute(1)], SENT, store=STORE)
    assert json.loads(payload)["store"] == STORE
    assert parse_batch("ghg/v1/st-a/minute", payload).store == STORE


def test_a_batch_without_store_is_a_legacy_stations():
    payload = encode_batch("st-a", "minute", [minute(1)], SENT)
    assert "store" not in json.loads(payload)
    assert parse_batch("ghg/v1/st-a/minute", payload).store is None


@pytest.mark.parametrize("bad", ["0123", STORE.upper(), STORE + "\n", 12, "g" * 32])
def test_a_malformed_store_identity_rejects_the_batch(bad):
    body = json.loads(encode_batch("st-a", "minute", [minute(1)], SENT))
    body["store"] = bad
    with pytest.raises(WireError, match="store"):
        parse_batch("ghg/v1/st-a/minute", json.dumps(body).encode())


def test_an_ack_names_the_store_only_when_given():
    assert "store" not in json.loads(encode_ack("st-a", [1]))
    ack = parse_ack("ghg/v1/st-a/ack", encode_ack("st-a", [1, 2], store=STORE))
    assert ack.store == STORE and ack.acked == [(1, 2)]


def _parsed(topic: str, payload: bytes) -> tuple:
    p = parse_batch(topic, payload)
    return (p.station, p.store, p.kind, p.sent, [r.model_dump() for r in p.records],
            [(r.index, r.seq, r.reason) for r in p.rejected])


def _station_outbox(path) -> list[tuple[int, str, str]]:
    """A station database's outbox rows (seq, kind, record JSON without seq), as the forwarder reads them."""
    t = datetime(2026, 3, 1, 0, 5, tzinfo=UTC)
    store = StationStore(path)
    try:
        store.insert_minutes([
            MinuteRecord(time=t, device="g2401", stream="inlet:10m",
                         species={"co2": SpeciesMinute(mean=420.125, std=0.05, n=55, raw_mean=420.0, cal_mean=420.1),
                                  "ch4": SpeciesMinute(mean=None, std=None, n=0, raw_mean=None)},
                         h2o=None, flag="N", reasons=("no_data",), n_total=60, calibration_id="cal-1",
                         diagnostics={"cavity_pressure": 140.0}),
            MinuteRecord(time=t + timedelta(minutes=1), device="g2401", stream="inlet:50m",
                         species={"co2": SpeciesMinute(mean=-0.0, std=1e-300, n=1, raw_mean=1e300)},
                         h2o=1.5, flag="U", reasons=(), n_total=1),
        ], t)
        store.insert_event(Event(time=t, kind="alarm", severity="error", message="é \\ \" \u2028", device="g2401",
                                 data={"a": [1.5, None, {"b": True}]}))
        store.insert_event(Event(time=t, kind="boot", severity="info", message=""))
        return store.outbox_after(0, 100)
    finally:
        store.close()


@pytest.mark.parametrize("store", [STORE, None])
def test_the_stations_encoder_and_encode_batch_are_read_alike(tmp_path, store):
    rows = _station_outbox(tmp_path / "station.sqlite")
    encoder = BatchEncoder("st-a", store)
    for kind in ("minute", "event"):
        topic = f"ghg/v1/st-a/{kind}"
        stored = [(seq, payload) for seq, k, payload in rows if k == kind]
        from_station = encoder.encode(kind, SENT, stored)
        parsed = parse_batch(topic, from_station)
        assert len(parsed.records) == len(stored) == 2 and parsed.rejected == []
        from_models = encode_batch("st-a", kind, parsed.records, SENT, store=store)
        assert _parsed(topic, from_models) == _parsed(topic, from_station)
        for payload in (from_station, from_models):
            body = json.loads(payload)
            assert list(body) == ["schema", "station"] + ["store"] * (store is not None) + ["kind", "sent", "records"]
            assert [r["seq"] for r in body["records"]] == [seq for seq, _ in stored]


def test_a_stored_empty_object_becomes_a_record_with_only_its_seq():
    boot = '{"time":"2026-03-01T00:00:00.000Z","kind":"boot","severity":"info","message":""}'
    p = parse_batch("ghg/v1/st-a/event", BatchEncoder("st-a").encode("event", SENT, [(7, "{}"), (8, boot)]))
    assert [r.seq for r in p.records] == [8]
    assert p.rejected[0].seq == 7 and "records.0.time" in p.rejected[0].reason


def test_the_encoder_refuses_what_would_make_a_foreign_envelope():
    with pytest.raises(BadTopic):
        BatchEncoder("St A")
    with pytest.raises(ValueError, match="store identity"):
        BatchEncoder("st-a", STORE.upper())
    with pytest.raises(ValueError, match="unknown batch kind 'status'"):
        BatchEncoder("st-a").encode("status", SENT, [(1, "{}")])
    with pytest.raises(ValueError, match="does not belong in a event batch"):
        encode_batch("st-a", "event", [minute(1)], SENT)
