"""The medium-precision rooftop: configs/sites/gmp343-rooftop (its bench.toml and station.toml, as
shipped) run as real processes for one simulated hour. No valve, no cylinders: the GMP343's
minutes are stored with the reason `uncalibrated`; the station pushes its met sensor's pressure
and humidity to the probe, whose reading is only right when compensated with the real pressure
(1000 hPa here: uncompensated it would read about 2 % low)."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta

import pytest
from support.site import BIN, SITES, site

from ghgnet.config import ConfigError
from station_agent.config import load_station_config

SPEED = 480.0


@pytest.fixture(scope="module")
def hour(tmp_path_factory):
    run = site("gmp343-rooftop", tmp_path_factory.mktemp("gmp343-rooftop"), SPEED)
    try:
        run.start_agent()
        run.run_for(timedelta(hours=1, minutes=5), timeout=120)
        probe = run.stats("gmp343-1")
        assert run.stop_agent() == 0
        probe_cli = run.agent_cli("probe", "gmp343-1", "--json")
        result = {"minute": run.export("minute"), "probe": probe, "status": run.status(), "probe_cli": probe_cli,
                  "drivers": subprocess.run([BIN / "station-agent", "drivers", "list", "--json"], check=False,
                                            capture_output=True, text=True, timeout=60),
                  "truth": run.truth("gmp343-1")}
    finally:
        run.close()
    return result


def test_minutes_are_stored_uncalibrated(hour):
    minutes = [r for r in hour["minute"] if r["device"] == "gmp343-1"]
    assert len(minutes) >= 50
    for r in minutes:
        assert "uncalibrated" in r["reasons"], r
        assert r["co2_cal_mean"] == "" and r["calibration_id"] == ""
    assert hour["status"]["state"] == "stopped"


def test_the_probe_received_the_stations_pressure_and_humidity(hour):
    probe = hour["probe"]
    pushed = {p["command"] for p in probe["pushes"]}
    assert pushed == {"p", "rh"}
    assert probe["switches"]["pressure"] and probe["switches"]["humidity"]
    assert abs(probe["compensation"]["pressure"] - 1000.0) < 2.0  # the met sensor's reading
    assert probe["compensation"]["humidity"] == 40.0
    # pushed when they moved past the deadband, not at every poll
    assert len(probe["pushes"]) < probe["commands"] / 4


def test_dried_co2_minutes_are_near_the_truth(hour):
    truth, checked, worst = hour["truth"], 0, 0.0
    for r in hour["minute"]:
        t = truth.get(r["time_utc"])
        if t is None or not r["co2_raw_mean"] or int(r["co2_n"]) != t["n"]:
            continue  # samples left out: the truth averages them all
        err = float(r["co2_raw_mean"]) - t["co2"]
        worst = max(worst, abs(err))
        assert abs(err) < 1.0, (r["time_utc"], r["co2_raw_mean"], t["co2"])
        checked += 1
    print(f"rooftop minutes checked {checked}: worst |dry CO2 - true| {worst:.3f} ppm")
    assert checked >= 40


def test_probe_and_drivers_list_know_the_gmp343(hour):
    res = hour["probe_cli"]
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["ok"] and info["driver"] == "vaisala.gmp343" and info["version"].startswith("GMP343")
    assert 380 < info["latest"]["co2"] < 480
    names = {d["name"] for d in json.loads(hour["drivers"].stdout)}
    assert {"vaisala.gmp343", "licor.li850", "licor.li830"} <= names


def test_a_compensation_source_that_is_not_a_device_is_refused_by_name(tmp_path):
    text = (SITES / "gmp343-rooftop" / "station.toml").read_text().replace('"met-1:humidity"', '"met-9:humidity"')
    path = tmp_path / "station.toml"
    path.write_text(text.replace('path = "../../../data/gmp343-rooftop/station.sqlite"', 'path = "station.sqlite"'))
    with pytest.raises(ConfigError, match=r"analyzer gmp343-1: compensation source device\(s\) \['met-9'\]"):
        load_station_config(path)  # what `station-agent config check` runs
