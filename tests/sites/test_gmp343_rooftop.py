"""The medium-precision rooftop: configs/sites/gmp343-rooftop (its bench.toml and station.toml, as
shipped) run as real processes for one simulated hour. No valve, no cylinders: the GMP343's
minutes are stored with the reason `uncalibrated`; the station pushes its met sensor's pressure
and humidity to the probe, whose reading is only right when compensated with the real pressure
(1000 hPa here: uncompensated it would read about 2 % low). The probe's minutes carry the met
sensor's minute means (`[processing] auxiliary`) over a real mosquitto to a real central receiver,
where the medium-precision calibration reads them as the site's T/RH/P."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta

import numpy as np
import pytest
from support.site import BIN, SITES, site
from support.wait import wait_until

from central.config import CentralConfig
from central.medium_precision.service import read_hours
from central.receiver import Receiver
from central.store import open_store
from ghgnet.config import ConfigError
from station_agent.config import load_station_config
from station_agent.storage.store import StationStore

SPEED = 480.0


@pytest.fixture(scope="module")
def hour(tmp_path_factory):
    from simulators.broker import MosquittoBroker

    tmp = tmp_path_factory.mktemp("gmp343-rooftop")
    broker = MosquittoBroker(tmp / "mosquitto").start()
    receiver = Receiver(CentralConfig.model_validate({
        "mqtt": {"host": broker.host, "port": broker.port, "client_id": "central-rooftop"},
        "storage": {"backend": "sqlite", "path": str(tmp / "central.sqlite")}})).start()
    assert receiver.subscribed.wait(10)
    run = site("gmp343-rooftop", tmp, SPEED,
               edit_station=lambda text: text.replace('[mqtt]\nhost = "127.0.0.1"\nport = 0',
                                                      f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}'))
    try:
        started = run.start_agent()
        run.run_for(timedelta(hours=1, minutes=5), timeout=120)
        probe = run.stats("gmp343-1")
        store = StationStore(tmp / "station.sqlite", read_only=True)
        try:
            wait_until(lambda: store.outbox_stats()["backlog"] == 0, 120, message="the outbox emptied (central acked)")
        finally:
            store.close()
        assert run.stop_agent() == 0
        probe_cli = run.agent_cli("probe", "gmp343-1", "--json")
        result = {"minute": run.export("minute"), "probe": probe, "status": run.status(), "probe_cli": probe_cli,
                  "drivers": subprocess.run([BIN / "station-agent", "drivers", "list", "--json"], check=False,
                                            capture_output=True, text=True, timeout=60),
                  "truth": run.truth("gmp343-1")}
    finally:
        run.close()
        receiver.stop()
        broker.kill()
    central = open_store("sqlite", path=tmp / "central.sqlite")
    try:
        end = started + timedelta(hours=2)
        result["central"] = list(central.minutes("gmp343-rooftop", started - timedelta(hours=1), end))
        result["hours"] = read_hours(central, MP, started - timedelta(hours=1), end)
    finally:
        central.close()
    return result


MP = CentralConfig.model_validate({"medium_precision": [{
    "site": "gmp343-rooftop", "device": "gmp343-1", "reference": "background-1", "min_minutes_per_hour": 1,
    "environment": {q: f"met-1:{q}" for q in ("temperature", "humidity", "pressure")}}]}).medium_precision[0]


def test_the_probes_minutes_at_central_carry_the_met_sensors_means(hour):
    minutes = [r for r in hour["central"] if r.device == "gmp343-1"]
    assert len(minutes) >= 50 and not [r for r in hour["central"] if r.device == "met-1"]
    full = [r for r in minutes if len(r.diagnostics.keys() & {"met-1:temperature", "met-1:humidity",
                                                               "met-1:pressure"}) == 3]
    assert len(full) >= len(minutes) - 2, [r.diagnostics for r in minutes if r not in full]
    for r in full:  # the bench's line: 30 degC, 40 %RH, 1000 hPa (the sensor's noise and resolution)
        d = r.diagnostics
        assert abs(d["met-1:temperature"] - 30.0) < 1.0 and abs(d["met-1:humidity"] - 40.0) < 2.0, d
        assert abs(d["met-1:pressure"] - 1000.0) < 3.0, d
    hours = hour["hours"]  # what central's medium-precision calibration reads as the site's air
    assert hours.hours.size >= 1 and all(np.isfinite(hours.env[q]).all() for q in hours.env)
    print("central's hourly T/RH/P at the rooftop:", {q: np.round(v, 2).tolist() for q, v in hours.env.items()})


def test_an_auxiliary_quantity_that_is_not_configured_is_refused_by_name(tmp_path):
    text = (SITES / "gmp343-rooftop" / "station.toml").read_text()
    text = text.replace('path = "../../../data/gmp343-rooftop/station.sqlite"', 'path = "station.sqlite"')
    path = tmp_path / "station.toml"
    path.write_text(text.replace('"met-1:pressure"]', '"met-1:dewpoint"]'))
    with pytest.raises(ConfigError, match=r"processing.auxiliary\[2\] 'met-1:dewpoint': device met-1 has no "
                                          r"quantity 'dewpoint'; its points: \['pressure', 'temperature', 'humidity'\]"):
        load_station_config(path)
    path.write_text(text.replace('["met-1:temperature"', '["met-2:temperature"'))
    with pytest.raises(ConfigError, match=r"processing.auxiliary\[0\] 'met-2:temperature': device 'met-2' is not "
                                          r"one of the \[\[devices\]\]: \['met-1'\]"):
        load_station_config(path)


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
