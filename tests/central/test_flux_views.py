"""The flux views' answers (central/web/flux.py) on both store backends: the flux stations, a
window of half hours as columns, and the daily sums of the valid ones with u* filtering."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest

from central import query
from central.config import CentralConfig
from central.web.flux import FluxViews, ustar_thresholds
from ghgnet.wire import parse_batch
from simulators.flux_site import FluxSiteSpec, simulate_half_hour
from station_agent.processing.flux import FluxSettings, block_from_columns, process_half_hour

DAY0 = datetime(2026, 1, 10, tzinfo=UTC)
NOW = DAY0 + timedelta(days=2)


def stored_views(store) -> FluxViews:
    sim = simulate_half_hour(FluxSiteSpec(fs_hz=10.0), 5, DAY0)
    template = process_half_hour(block_from_columns(sim.start, sim.fs_hz, sim.columns), FluxSettings()).wire_dict()
    records = [{**template, "seq": i + 1, "start": (DAY0 + timedelta(minutes=30 * i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "co2_flux_umol_m2_s": -2.0, "flag_co2": 2 if i == 3 else 0, "ustar_ms": 0.05 if i < 10 else 0.3}
               for i in range(60)]
    raw = {"schema": 1, "station": "fx", "store": "cd" * 16, "kind": "flux", "sent": "2026-01-12T00:00:00Z",
           "records": records}
    assert store.store_batch(parse_batch("ghg/v1/fx/flux", json.dumps(raw).encode()), NOW).new == 60
    config = CentralConfig.model_validate({"central": {"name": "t"}, "storage": {"path": "unused.sqlite"}})
    return FluxViews(config, store, threading.Lock())


def test_the_views_answer_alike_on_both_backends(store):
    views = stored_views(store)
    (st,) = views.stations()
    assert (st["station"], st["half_hours"], st["first"], st["last"]) == (
        "fx", 60, "2026-01-10T00:00:00.000Z", "2026-01-11T05:30:00.000Z")
    hh = views.halfhours({"station": "fx", "days": "1"})
    assert (hh["from"], hh["to"]) == ("2026-01-10T06:00:00.000Z", "2026-01-11T06:00:00.000Z")
    assert len(hh["time"]) == 48 and hh["flag_co2"][0] == 0 and hh["ustar_ms"][-1] == 0.3
    daily = views.daily({"station": "fx", "days": "2", "ustar": "DJF=0.1"})
    assert daily["ustar_filter"] == "all half hours"  # no position: every half hour is filtered
    d1, d2 = daily["days"]
    assert (d1["day"], d1["n_records"], d1["n_valid"], d1["n_low_ustar"]) == ("2026-01-10", 48, 38, 9)
    assert (d2["n_records"], d2["n_valid"], d2["n_low_ustar"]) == (12, 12, 0)
    assert d1["co2_valid_g_c_m2"] == pytest.approx(-2.0 * 38 * 1800 * 12.011e-6)
    with pytest.raises(query.BadParameter, match="no flux records"):
        views.halfhours({"station": "other"})


def test_ustar_thresholds_one_value_or_by_season():
    assert ustar_thresholds("0.15") == {"DJF": 0.15, "JJA": 0.15, "MAM": 0.15, "SON": 0.15}
    assert ustar_thresholds("DJF=0.1, JJA=0.2") == {"DJF": 0.1, "JJA": 0.2}
    for bad in ("x", "DJF=0.1,DJF=0.2", "WINTER=0.1", "-1"):
        with pytest.raises(query.BadParameter, match="ustar"):
            ustar_thresholds(bad)
