"""The `flux` record kind on the wire: a processed half hour travels as JSON and lean, NaN as null,
and a bad record is refused alone."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache

from ghgnet.wire import (
    BATCH_KINDS,
    FluxWire,
    LeanEncoder,
    batch_json,
    encode_batch,
    parse_batch,
    topic_for,
)
from ghgnet.wire.lean import LEAN_CONTENT_TYPE
from simulators.flux_site import FluxSiteSpec, simulate_half_hour
from station_agent.processing.flux import FluxSettings, block_from_columns, process_half_hour

SENT = datetime(2026, 6, 1, 13, 0, 5, tzinfo=UTC)
STORE = "ab" * 16


@cache
def flux_json() -> dict:
    sim = simulate_half_hour(FluxSiteSpec(fs_hz=10.0), 3, datetime(2026, 6, 1, 12, 0, tzinfo=UTC))
    rec = process_half_hour(block_from_columns(sim.start, sim.fs_hz, sim.columns), FluxSettings(path="open"))
    return rec.wire_dict()


def wire(seq: int, d: dict) -> FluxWire:
    return FluxWire.model_validate_json(json.dumps({"seq": seq, **d}))


def test_flux_is_a_batch_kind_with_its_own_topic():
    assert "flux" in BATCH_KINDS and topic_for("t1", "flux") == "ghg/v1/t1/flux"


def test_a_processed_half_hour_round_trips_as_json_and_lean():
    rec = wire(7, flux_json())
    payload = encode_batch("t1", "flux", [rec], SENT, store=STORE)
    batch = parse_batch("ghg/v1/t1/flux", payload)
    assert batch.kind == "flux" and not batch.rejected and batch.records == [rec]
    lean = LeanEncoder("t1", STORE).encode_rows("flux", SENT, [(7, "flux", rec.model_dump_json(exclude={"seq"}).encode())])
    again = parse_batch("ghg/v1/t1/flux", batch_json(LEAN_CONTENT_TYPE, lean, 1 << 20))
    assert again.records == [rec] and again.store == STORE


def test_not_computable_values_travel_as_null_and_nan_is_refused():
    d = {**flux_json(), "obukhov_m": None, "cov": {"w_ts": None}}
    assert wire(1, d).obukhov_m is None
    raw = json.dumps({"schema": 1, "station": "t1", "store": STORE, "kind": "flux", "sent": "2026-06-01T13:00:05Z",
                      "records": [{"seq": 1, **d}, {"seq": 2, **{**d, "flag_co2": 3}}]}).encode()
    batch = parse_batch("ghg/v1/t1/flux", raw)
    assert [r.seq for r in batch.records] == [1]
    assert batch.rejected[0].seq == 2 and "flag_co2" in batch.rejected[0].reason
