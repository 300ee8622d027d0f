"""The domestic NDIR site (configs/sites/domestic-ndir/) as real processes: a simulated NDIR CO2
analyzer streaming the illustrative format of configs/analyzers/ndir-co2-stream.toml over TCP, read
by generic.line from the same definition, for a simulated hour; a burst of line noise and a spell
of bad status on the way. The minutes must be stored and agree with the bench's truth."""

from __future__ import annotations

from datetime import timedelta

import pytest
from site_pair import START_TIME, SitePair

from ghgnet.timeutil import iso_utc, parse_utc
from station_agent.storage.store import StationStore

pytestmark = pytest.mark.slow
SPEED = 120.0


@pytest.fixture(scope="module")
def hour(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ndir-site")
    pair = SitePair("domestic-ndir", tmp, SPEED)
    try:
        pair.start_agent()
        pair.wait_until(START_TIME + timedelta(minutes=20))
        pair.control({"device": "ndir-1", "fault": "garbage", "count": 3})
        pair.control({"device": "ndir-1", "fault": "bad_status", "duration_s": 120})
        pair.wait_until(START_TIME + timedelta(minutes=62))
        assert pair.stop_agent() == 0
        truth = pair.control({"cmd": "truth", "device": "ndir-1", "from": iso_utc(START_TIME),
                              "to": iso_utc(START_TIME + timedelta(hours=2))})["truth"]
        stats = pair.control({"cmd": "stats", "device": "ndir-1"})["stats"]["ndir-1"]
        store = StationStore(tmp / "station.sqlite", read_only=True)
        try:
            minutes = list(store.minute_rows(START_TIME, START_TIME + timedelta(hours=2), "ndir-1"))
            events = store.event_rows(200)
        finally:
            store.close()
        yield {"truth": {parse_utc(t["time"]): t for t in truth}, "minutes": minutes, "events": events,
               "stats": stats}
    finally:
        pair.close()


def test_every_minute_from_the_agents_start_is_stored(hour):
    # the analyzer streams from the bench's start; what it sent before the agent was up is gone
    times = [parse_utc(m["time"]) for m in hour["minutes"]]
    assert times == [times[0] + timedelta(minutes=i) for i in range(len(times))]
    assert times[0] < START_TIME + timedelta(minutes=20) and len(times) >= 40
    assert all(m["stream"] == "inlet:ambient" for m in hour["minutes"])


def test_valid_minutes_agree_with_the_bench_truth(hour):
    checked = 0
    for m in hour["minutes"]:
        if m["flag"] != "U":
            continue
        truth = hour["truth"][parse_utc(m["time"])]
        co2 = m["species"]["co2"]
        assert co2["raw_mean"] == pytest.approx(truth["co2"], abs=0.3), m["time"]
        assert "uncalibrated" in m["reasons"]
        checked += 1
    assert checked >= 35


def test_bad_status_minutes_are_flagged_and_noise_is_reported(hour):
    assert any("status" in m["reasons"] for m in hour["minutes"])
    kinds = {e["kind"] for e in hour["events"]}
    assert "fault.garbage" in kinds
    assert hour["stats"]["garbage"] == 3 and hour["stats"]["bad_status"] >= 50
