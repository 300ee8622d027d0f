"""The domestic NDIR site (configs/sites/domestic-ndir/) as real processes: a simulated NDIR CO2
analyzer streaming the illustrative format of configs/analyzers/ndir-co2-stream.toml over TCP,
read by generic.line from the same definition, behind a 4-port valve with three standards; a
simulated hour with a calibration at start, a burst of line noise and a spell of bad status. The
analyzer reads 3 % high and 8 ppm low; the calibrated roof minutes must agree with the bench's
truth."""

from __future__ import annotations

from datetime import timedelta

import pytest
from support.site import START_TIME, site

from ghgnet.timeutil import iso_utc, parse_utc
from station_agent.storage.store import StationStore

pytestmark = pytest.mark.slow
SPEED = 300.0


@pytest.fixture(scope="module")
def hour(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ndir-site")
    pair = site("domestic-ndir", tmp, SPEED)
    try:
        pair.start_agent()
        pair.run_until(START_TIME + timedelta(minutes=40))
        pair.control({"device": "ndir-1", "fault": "garbage", "count": 3})
        pair.control({"device": "ndir-1", "fault": "bad_status", "duration_s": 120})
        pair.run_until(START_TIME + timedelta(minutes=72))
        assert pair.stop_agent() == 0
        truth = pair.control({"cmd": "truth", "device": "ndir-1", "from": iso_utc(START_TIME),
                              "to": iso_utc(START_TIME + timedelta(hours=2))})["truth"]
        stats = pair.control({"cmd": "stats", "device": "ndir-1"})["stats"]["ndir-1"]
        store = StationStore(tmp / "station.sqlite", read_only=True)
        try:
            minutes = list(store.minute_rows(START_TIME, START_TIME + timedelta(hours=2), "ndir-1"))
            events = store.event_rows(500)
            calibrations = store.calibrations("ndir-1")
        finally:
            store.close()
        yield {"truth": {parse_utc(t["time"]): t for t in truth}, "minutes": minutes, "events": events,
               "stats": stats, "calibrations": calibrations}
    finally:
        pair.close()


def test_every_minute_from_the_agents_start_is_stored_on_its_stream(hour):
    # the analyzer streams from the bench's start; what it sent before the agent was up is gone
    times = sorted({parse_utc(m["time"]) for m in hour["minutes"]})  # a switch splits a minute in two
    assert times == [times[0] + timedelta(minutes=i) for i in range(len(times))]
    assert times[0] < START_TIME + timedelta(minutes=20) and len(times) >= 45
    assert {m["stream"] for m in hour["minutes"]} == {"inlet:roof", "cal:STD-1", "cal:STD-2", "cal:STD-3"}


def test_the_calibration_at_start_finds_the_analyzers_error(hour):
    # the one at start, and the 00:00 slot too when the agent came up just before midnight
    assert 1 <= len(hour["calibrations"]) <= 2, hour["calibrations"]
    for cal in hour["calibrations"]:
        fit = cal["fits"]["co2"]
        offset, slope = fit["coefficients"]  # true = offset + slope * measured
        assert slope == pytest.approx(1 / 1.03, abs=0.003) and offset == pytest.approx(8.0 / 1.03, abs=1.0)
        assert fit["rmse"] < 0.2


def test_calibrated_roof_minutes_agree_with_the_bench_truth(hour):
    checked = 0
    for m in hour["minutes"]:
        if m["flag"] != "U" or m["stream"] != "inlet:roof" or m["calibration_id"] is None:
            continue
        truth = hour["truth"][parse_utc(m["time"])]
        co2 = m["species"]["co2"]
        assert co2["raw_mean"] - truth["co2"] == pytest.approx(0.03 * truth["co2"] - 8.0, abs=0.5)
        assert co2["mean"] == pytest.approx(truth["co2"], abs=0.4), m["time"]
        checked += 1
    assert checked >= 20


def test_bad_status_minutes_are_flagged_and_noise_is_reported(hour):
    assert any("status" in m["reasons"] for m in hour["minutes"])
    kinds = {e["kind"] for e in hour["events"]}
    assert "fault.garbage" in kinds
    assert hour["stats"]["garbage"] == 3 and hour["stats"]["bad_status"] >= 50
