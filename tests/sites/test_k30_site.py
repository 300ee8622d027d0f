"""configs/sites/k30-lowcost: a Senseair K30 on Modbus RTU over a serial device server, no valve and
no cylinders, run as real station-sim and station-agent processes for a simulated hour at
--speed 480. Its minutes are stored uncalibrated; a status fault on the sensor invalidates the
minutes it covers; `station-agent probe` and `drivers list` know the driver."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta

import pytest
from support.site import BIN, site

SPEED = 480.0


def iso(t: datetime) -> str:
    """As the export writes minute times."""
    return t.strftime("%Y-%m-%dT%H:%M:%S.000Z")


@pytest.fixture(scope="module")
def hour(tmp_path_factory):
    pair = site("k30-lowcost", tmp_path_factory.mktemp("k30-site"), SPEED)
    try:
        pair.start_agent()
        first = pair.started.replace(second=0, microsecond=0) + timedelta(minutes=2)
        pair.run_until(first + timedelta(minutes=30))
        fault_at = pair.sim_now()
        pair.control({"device": "k30-1", "fault": "status", "duration_s": 180, "word": 32})
        pair.run_until(first + timedelta(minutes=61))
        assert pair.stop_agent() == 0
        # the agent held the line; stopped, the technician's probe asks the sensor itself
        probe = subprocess.run([BIN / "station-agent", "probe", "k30-1", "--config", pair.config, "--json"],
                               capture_output=True, text=True, timeout=60)
        listed = subprocess.run([BIN / "station-agent", "drivers", "list"], capture_output=True, text=True, timeout=60)
        return {"minute": pair.export("minute"), "probe": probe, "drivers": listed, "first": iso(first),
                "end": iso(first + timedelta(hours=1)), "fault": (iso(fault_at - timedelta(minutes=1)),
                                                                  iso(fault_at + timedelta(minutes=4))),
                "truth": pair.truth("k30-1")}
    finally:
        pair.close()


def test_an_hour_of_minutes_is_stored_uncalibrated(hour):
    hourly = [r for r in hour["minute"] if hour["first"] <= r["time_utc"] < hour["end"]]
    assert len(hourly) == 60
    with_mean = [r for r in hour["minute"] if r["co2_mean"]]
    assert all("uncalibrated" in r["reasons"] and not r["co2_cal_mean"] for r in with_mean)
    valid = [r for r in hourly if r["flag"] == "U"]
    assert len(valid) >= 50 and all(int(r["co2_n"]) >= 6 for r in valid)
    for r in valid:
        t = hour["truth"][r["time_utc"]]["co2"]
        assert abs(float(r["co2_raw_mean"]) - (1.02 * t - 5.0)) < 3.0, (r["time_utc"], r["co2_raw_mean"], t)


def test_a_status_fault_invalidates_the_minutes_it_covers(hour):
    flagged = [r for r in hour["minute"] if "status" in r["reasons"]]
    assert 2 <= len(flagged) <= 5, [(r["time_utc"], r["reasons"]) for r in flagged]
    assert all(hour["fault"][0] <= r["time_utc"] <= hour["fault"][1] for r in flagged)
    assert any(r["flag"] == "N" for r in flagged)


def test_probe_and_drivers_list_know_the_sensor(hour):
    assert hour["probe"].returncode == 0, hour["probe"].stdout + hour["probe"].stderr
    info = json.loads(hour["probe"].stdout)
    assert info["driver"] == "senseair.k30" and info["unit_id"] == 254 and 380 < info["co2_ppm"] < 500
    assert info["abc_period_h"] == 180
    for name in ("senseair.k30", "senseair.s8", "lgr.gga", "lgr.ugga", "lgr.mgga"):
        assert name in hour["drivers"].stdout
