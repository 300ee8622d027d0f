"""A medium-precision sensor calibrated by central against a co-located high-precision analyzer,
hardware in the loop: configs/sites/k30-colocated (a Senseair K30 whose CO2 depends on temperature,
humidity and pressure and drifts 1 ppm a day, a Picarro G2401 in the same air, a Vaisala PTU300 for
T/RH/P) as real processes for four simulated days at 2880x; the station agent forwards its minutes
over a real mosquitto to a real central receiver; `central-receiver medium-precision calibrate`
fits the K30's model against the Picarro and `export` gives the corrected hours, which must come
within 1 ppm of the simulator's truth (the K30's true dry CO2, hour by hour), where the
uncorrected hours do not."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from datetime import timedelta

import numpy as np
import pytest
from support.site import BIN, site
from support.wait import wait_until

from central.config import CentralConfig
from central.receiver import Receiver
from ghgnet.timeutil import iso_utc, parse_utc
from station_agent.storage.store import StationStore

pytestmark = pytest.mark.slow
SPEED = 2880.0
DAYS = 4
MIN_MINUTES = 30


def central_toml(tmp, db) -> str:
    text = f"""[storage]
backend = "sqlite"
path = "{db}"

[[medium_precision]]
site = "k30-colocated"
device = "k30-1"
reference = "k30-colocated"
reference_device = "picarro-1"
environment = {{ temperature = "met-1:temperature", humidity = "met-1:humidity", pressure = "met-1:pressure" }}
min_minutes_per_hour = {MIN_MINUTES}
"""
    path = tmp / "central.toml"
    path.write_text(text)
    return str(path)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from simulators.broker import MosquittoBroker

    tmp = tmp_path_factory.mktemp("k30-colocated")
    broker = MosquittoBroker(tmp / "mosquitto").start()
    db = tmp / "central.sqlite"
    receiver = Receiver(CentralConfig.model_validate({
        "mqtt": {"host": broker.host, "port": broker.port, "client_id": "central-mp"},
        "storage": {"backend": "sqlite", "path": str(db)}})).start()
    assert receiver.subscribed.wait(10)

    def to_broker(text: str) -> str:
        return text.replace('[mqtt]\nhost = "127.0.0.1"\nport = 0', f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}')

    s = site("k30-colocated", tmp, SPEED, edit_station=to_broker)
    try:
        started = s.start_agent()
        first_hour = (started + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
        end = first_hour + timedelta(days=DAYS)
        s.run_until(end + timedelta(minutes=5), timeout=DAYS * 86400 / SPEED + 300)
        truth = s.truth("k30-1")
        store = StationStore(tmp / "station.sqlite", read_only=True)
        try:
            wait_until(lambda: store.outbox_stats()["backlog"] == 0, 120, message="the outbox emptied (central acked)")
        finally:
            store.close()
        assert s.stop_agent() == 0
    finally:
        s.close()
        receiver.stop()
        broker.kill()
    config = central_toml(tmp, db)

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([BIN / "central-receiver", "medium-precision", *args, "--config", config],
                              capture_output=True, text=True, timeout=300)

    window = ("--from", iso_utc(first_hour), "--to", iso_utc(end))
    calibrated = cli("calibrate", *window, "--json")
    exported = cli("export", *window)
    report = cli("report")
    return {"truth": truth, "calibrated": calibrated, "exported": exported, "report": report,
            "first_hour": first_hour, "end": end}


def hourly_truth(truth: dict[str, dict]) -> dict[str, tuple[float, int]]:
    """The K30's true dry CO2 per hour: the mean over the minutes' true values, and how many minutes."""
    sums: dict[str, list[float]] = {}
    for minute, row in truth.items():
        sums.setdefault(minute[:13], []).append(row["co2"])
    return {h: (float(np.mean(v)), len(v)) for h, v in sums.items()}


def test_the_fit_finds_the_sensors_sensitivities(run):
    res = run["calibrated"]
    assert res.returncode == 0, res.stderr
    (out,) = [json.loads(line) for line in res.stdout.splitlines()]
    c = out["model"]["coefficients"]
    print("fitted:", {k: round(v, 4) for k, v in c.items()}, "residual std", round(out["model"]["s"], 3))
    # the bench's K30: gain 1.02, temperature 1.5 ppm/degC, humidity -0.4 ppm/%RH, drift 1 ppm/day,
    # pressure 0.16 %/hPa of the reading about 1013.25 hPa; the fit's gain is the one at the fit's
    # mean pressure P0 and its pressure term that gain's share per hPa
    scale = 1.0 + 0.0016 * (out["model"]["conditions"]["pressure"] - 1013.25)
    assert c["gain"] == pytest.approx(1.02 * scale, abs=0.005)
    assert c["temperature"] == pytest.approx(1.5, abs=0.1)
    assert c["humidity"] == pytest.approx(-0.4, abs=0.05)
    assert c["drift"] == pytest.approx(1.0 * scale, abs=0.1)
    assert c["pressure"] == pytest.approx(0.0016 * 1.02, abs=0.0003)
    assert out["model"]["dropped"] == {}
    assert out["residuals"]["corrected"]["n"] >= DAYS * 24 * 0.9


def test_corrected_hours_come_within_1_ppm_of_the_truth_and_uncorrected_do_not(run):
    res = run["exported"]
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    truth = hourly_truth(run["truth"])
    errors, raw_errors, uncertainties = [], [], []
    for r in rows:
        assert r["level"] == "medium_precision" and r["station"] == "k30-colocated"
        true, minutes = truth.get(r["hour_utc"][:13], (None, 0))
        if true is None or minutes < 50 or int(r["n_minutes"]) < MIN_MINUTES or not r["corrected"]:
            continue  # an hour the bench or the station saw only in part
        errors.append(float(r["corrected"]) - true)
        raw_errors.append(float(r["raw_mean"]) - true)
        uncertainties.append(float(r["uncertainty"]))
    errors, raw_errors = np.array(errors), np.array(raw_errors)
    print(f"k30-colocated: {errors.size} valid hours of {len(rows)}; corrected - truth: RMSE "
          f"{np.sqrt(np.mean(errors ** 2)):.3f} ppm, max |error| {np.abs(errors).max():.3f} ppm, bias "
          f"{errors.mean():+.3f} ppm; uncorrected: RMSE {np.sqrt(np.mean(raw_errors ** 2)):.2f} ppm, max "
          f"{np.abs(raw_errors).max():.2f} ppm; median uncertainty {np.median(uncertainties):.3f} ppm")
    assert errors.size >= DAYS * 24 * 0.9
    assert np.abs(errors).max() < 1.0
    assert np.abs(raw_errors).max() > 1.0 and np.sqrt(np.mean(raw_errors ** 2)) > 1.0
    assert np.median(uncertainties) < 1.0 and np.mean(np.abs(errors) < 3 * np.array(uncertainties)) > 0.9


def test_the_report_lists_the_residuals_per_day(run):
    res = run["report"]
    assert res.returncode == 0, res.stderr
    print(res.stdout)
    assert "k30-colocated/k30-1/co2 against k30-colocated (co-located)" in res.stdout
    days = [line for line in res.stdout.splitlines() if line.strip().startswith("2026-")]
    assert len(days) >= DAYS
    assert parse_utc(iso_utc(run["first_hour"])) < run["end"]
