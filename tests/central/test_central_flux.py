"""Flux records at central, on both backends: stored exactly once per (station, store, seq), read
back whole, a seq arriving again with other content dead-lettered, and the table added to an older
database by its migration."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache

from support.central import central_config, open_at_schema
from support.mqtt import TestStation

from central.store import open_store
from ghgnet.wire import FluxWire, ParsedBatch, encode_batch, parse_batch
from simulators.flux_site import FluxSiteSpec, simulate_half_hour
from station_agent.processing.flux import FluxSettings, block_from_columns, process_half_hour

NOW = datetime(2026, 6, 1, 13, 0, 5, tzinfo=UTC)
STORE = "cd" * 16
START = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@cache
def record_json() -> dict:
    sim = simulate_half_hour(FluxSiteSpec(fs_hz=10.0), 5, START)
    return process_half_hour(block_from_columns(sim.start, sim.fs_hz, sim.columns), FluxSettings()).wire_dict()


def flux_batch(seqs, **change) -> ParsedBatch:
    records = [{"seq": s, **record_json(), **change} for s in seqs]
    raw = {"schema": 1, "station": "st-a", "store": STORE, "kind": "flux", "sent": "2026-06-01T13:00:05Z",
           "records": records}
    return parse_batch("ghg/v1/st-a/flux", json.dumps(raw).encode())


def test_a_flux_batch_is_stored_once_and_read_back_whole(store):
    first = store.store_batch(flux_batch([3, 4]), NOW)
    again = store.store_batch(flux_batch([4, 5]), NOW)
    assert (first.new, first.duplicate, again.new, again.duplicate) == (2, 0, 1, 1)
    stored = store.fluxes("st-a", START, datetime(2026, 6, 2, tzinfo=UTC))
    assert [r["seq"] for r in stored] == [3, 4, 5] and all(r["store"] == STORE for r in stored)
    want = FluxWire.model_validate_json(json.dumps({"seq": 3, **record_json()}))
    got = FluxWire.model_validate_json(json.dumps({k: v for k, v in stored[0].items() if k != "store"}))
    assert got == want
    assert store.held_seqs("st-a", STORE) == [3, 4, 5]
    assert store.fluxes("st-a", datetime(2026, 6, 2, tzinfo=UTC), datetime(2026, 6, 3, tzinfo=UTC)) == []


def test_the_same_seq_with_other_content_is_a_conflict_not_an_overwrite(store):
    store.store_batch(flux_batch([3]), NOW)
    out = store.store_batch(flux_batch([3], co2_flux_umol_m2_s=99.0), NOW)
    assert out.new == 0 and out.conflicts == [3]
    assert store.fluxes("st-a", START, NOW)[0]["co2_flux_umol_m2_s"] == record_json()["co2_flux_umol_m2_s"]
    (letter,) = store.dead_letters()
    assert letter.reason_code == "seq_conflict" and letter.seq == 3


def test_an_older_database_gains_the_flux_table(store_location):
    open_at_schema(store_location, 6).close()  # schema 6: the last before the flux table
    store = open_store(**store_location)
    try:
        assert store.store_batch(flux_batch([1]), NOW).new == 1
        assert [r["seq"] for r in store.fluxes("st-a", START, NOW)] == [1]
    finally:
        store.close()


def test_the_receiver_stores_a_flux_batch_from_the_broker_once_and_acks_it(mosquitto, tmp_path, start_receiver):
    db = tmp_path / "central.sqlite"
    start_receiver(central_config(mosquitto, db))
    station = TestStation(mosquitto, "st-a")
    try:
        recs = [FluxWire.model_validate_json(json.dumps({"seq": s, **record_json()})) for s in (1, 2)]
        payload = encode_batch("st-a", "flux", recs, NOW)
        assert station.publish("flux", payload).value == 0
        station.wait_acked([1, 2])
        assert station.publish("flux", payload).value == 0  # a redelivery
        station.wait_acked([1, 2])
    finally:
        station.close()
    reader = open_store("sqlite", path=db)
    try:
        assert [r["seq"] for r in reader.fluxes("st-a", START, NOW)] == [1, 2]
    finally:
        reader.close()
