"""The medium-precision data level in the store (both backends) and `central-receiver
medium-precision` on a store filled with constructed minutes: the fit, the corrected hours, the
report and the export, and the errors that name what is wrong."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from typer.testing import CliRunner

from central.cli import app
from central.config import CentralConfig
from central.medium_precision.service import calibrate, read_hours
from central.store import open_store
from central.store.medium_precision import MpHourRow, MpModelRow
from central.store.species import StoredSpecies
from ghgnet.wire import MinuteWire, ParsedBatch, SpeciesStats

T0 = datetime(2026, 3, 1, tzinfo=UTC)
NOW = datetime(2026, 3, 10, tzinfo=UTC)


def test_models_and_corrected_hours_round_trip_and_replace(store):
    model = MpModelRow("s/k/co2@1", "s", "k", "co2", "ref", "co-located", T0, T0 + timedelta(days=1),
                       {"names": ["offset"], "s": 0.2}, {"corrected": {"n": 3}}, NOW)
    store.put_mp_model(model)
    assert store.mp_models("s") == [model] and store.mp_models("other") == []
    rows = [MpHourRow("s", "k", "co2", T0 + timedelta(hours=h), 431.0 + h, 430.0 + h, 0.2, 55, 430.1 + h,
                      20.0, 60.0, None, "s/k/co2@1", NOW) for h in range(3)]
    store.replace_mp_hours("s", "k", "co2", T0, T0 + timedelta(hours=3), rows)
    assert store.mp_hours("s", T0, T0 + timedelta(days=1)) == rows
    store.replace_mp_hours("s", "k", "co2", T0 + timedelta(hours=1), T0 + timedelta(hours=2), [])
    assert [r.hour for r in store.mp_hours("s", T0, T0 + timedelta(days=1))] == [rows[0].hour, rows[2].hour]


def filled(db, days: int = 4):
    """A real SQLite store holding the constructed minutes, stored as a station's batches would be."""
    real = open_store("sqlite", path=db)
    wire = [MinuteWire(seq=i + 1, time=r.time, device=r.device, stream="inlet:ambient",
                       species={k: SpeciesStats(mean=v.mean, std=None, n=v.n, raw_mean=v.raw_mean, cal_mean=None)
                                for k, v in r.species.items()}, h2o=None, flag=r.flag,
                       reasons=[] if r.flag == "U" else ["no_data"], n_total=5, calibration_id=None,
                       diagnostics=r.diagnostics)
            for i, r in enumerate(ConstructedMinutes(days).rows)]
    for k in range(0, len(wire), 1000):
        real.store_batch(ParsedBatch("site", "minute", NOW, wire[k:k + 1000]), NOW)
    return real


class Minute:
    """What `store.minutes` yields, as far as the calibration reads it."""

    def __init__(self, time, device, co2=None, flag="U", diagnostics=None):
        self.time, self.device, self.flag = time, device, flag
        self.species = {} if co2 is None else {"co2": StoredSpecies(co2, None, 5, co2, None)}
        self.diagnostics = diagnostics or {}


class ConstructedMinutes:
    """Constructed minutes of a K30 with a known model, its Picarro and its PTU300."""

    def __init__(self, days: int = 4):
        rng = np.random.default_rng(3)
        self.rows: list[Minute] = []
        for i in range(days * 1440):
            t = T0 + timedelta(minutes=i)
            d = i / 1440
            x = 430 + 15 * np.cos(2 * np.pi * d) + 2 * np.sin(2 * np.pi * d * 3.3)
            temp = 18 + 5 * np.cos(2 * np.pi * (d - 0.3)) + 3 * np.sin(2 * np.pi * d / 2.7)
            hum = 60 - 10 * np.cos(2 * np.pi * (d - 0.3)) + 8 * np.sin(2 * np.pi * d / 1.9 + 1)
            y = -5 + 1.02 * x + 1.5 * (temp - 20) - 0.4 * (hum - 50) + 0.8 * d + rng.normal(0, 0.5)
            self.rows += [Minute(t, "k30-1", y), Minute(t, "picarro-1", x),
                          Minute(t, "met-1", None, "N", {"temperature": temp, "humidity": hum})]
        self.rows.insert(5, Minute(T0 + timedelta(minutes=1), "k30-1", 9999.0, flag="N"))  # invalid: left out


SITE = {"site": "site", "device": "k30-1", "reference": "site", "reference_device": "picarro-1",
        "environment": {"temperature": "met-1:temperature", "humidity": "met-1:humidity"},
        "terms": ["temperature", "humidity", "drift"]}


def test_calibrate_recovers_the_constructed_model_and_corrects_every_hour(tmp_path):
    cfg = CentralConfig.model_validate({"medium_precision": [SITE]})
    store = filled(tmp_path / "central.sqlite")
    cal = calibrate(cfg, store, cfg.medium_precision[0], T0, T0 + timedelta(days=4), NOW)
    models, hours = store.mp_models("site"), store.mp_hours("site", T0, T0 + timedelta(days=4))
    store.close()
    c = cal.model.coefficients
    assert c["gain"] == pytest.approx(1.02, abs=0.003) and c["temperature"] == pytest.approx(1.5, abs=0.02)
    assert c["humidity"] == pytest.approx(-0.4, abs=0.01) and c["drift"] == pytest.approx(0.8, abs=0.05)
    assert len(hours) == 96 and models[0].id == cal.model_id == "site/k30-1/co2@2026-03-10T00:00:00.000Z"
    err = np.array([h.corrected - h.reference for h in hours])
    assert np.abs(err).max() < 0.3 and cal.residuals["corrected"]["n"] == 96
    assert cal.residuals["uncorrected"]["rmse"] > 5 and len(cal.residuals["by_period"]) == 4


def test_background_mode_pairs_only_the_well_mixed_local_afternoon(tmp_path):
    cfg = CentralConfig.model_validate({
        "stations": {"site": {"timezone": "Asia/Shanghai"}},
        "medium_precision": [{**SITE, "mode": "background", "fit_gain": False, "well_mixed_hours": [12, 17]}]})
    m = cfg.medium_precision[0]
    store = filled(tmp_path / "central.sqlite")
    hours = read_hours(store, m, T0, T0 + timedelta(days=4))
    cal = calibrate(cfg, store, m, T0, T0 + timedelta(days=4), NOW)
    stored = store.mp_hours("site", T0, T0 + timedelta(days=4))
    store.close()
    assert cal.residuals["corrected"]["n"] == 4 * 5  # 12-17 h in Shanghai is 04-09 UTC
    assert cal.model.coefficients["gain"] == 1.0 and hours.hours.size == 96 and len(stored) == 96


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match=r"term\(s\) \['pressure'\] need an environment source"):
        CentralConfig.model_validate({"medium_precision": [{**SITE, "terms": ["pressure"]}]})
    with pytest.raises(ValueError, match="not \"device:quantity\""):
        CentralConfig.model_validate({"medium_precision": [{**SITE, "environment": {"temperature": "met-1"}}]})
    with pytest.raises(ValueError, match="given twice"):
        CentralConfig.model_validate({"medium_precision": [SITE, SITE]})
    with pytest.raises(ValueError, match="the reference is the sensor itself"):
        CentralConfig.model_validate({"medium_precision": [{**SITE, "reference_device": None}]})


def test_cli_calibrate_report_export_on_a_real_store(tmp_path):
    db = tmp_path / "central.sqlite"
    config = tmp_path / "central.toml"
    config.write_text(f'[storage]\npath = "{db}"\n\n[[medium_precision]]\nsite = "site"\ndevice = "k30-1"\n'
                      'reference = "site"\nreference_device = "picarro-1"\nterms = ["temperature", "humidity", "drift"]\n'
                      'environment = { temperature = "met-1:temperature", humidity = "met-1:humidity" }\n')
    filled(db, days=3).close()
    runner = CliRunner()
    window = ["--from", "2026-03-01T00:00:00Z", "--to", "2026-03-04T00:00:00Z", "--config", str(config)]
    res = runner.invoke(app, ["medium-precision", "calibrate", *window])
    assert res.exit_code == 0, res.output
    assert "site/k30-1/co2 against site (co-located): 72 hours corrected, 72 paired" in res.output
    res = runner.invoke(app, ["medium-precision", "report", "--config", str(config)])
    assert res.exit_code == 0 and "2026-03-03" in res.output and "temperature" in res.output, res.output
    report = json.loads(runner.invoke(app, ["medium-precision", "report", "--json", "--config", str(config)]).output)
    assert report[0]["residuals"]["corrected"]["n"] == 72
    res = runner.invoke(app, ["medium-precision", "export", *window])
    rows = list(csv.DictReader(io.StringIO(res.output)))
    assert len(rows) == 72 and rows[0]["level"] == "medium_precision" and float(rows[0]["uncertainty"]) > 0
    res = runner.invoke(app, ["medium-precision", "calibrate", "--site", "nowhere", *window])
    assert res.exit_code == 2 and "no [[medium_precision]] for 'nowhere'; configured: site/k30-1/co2" in res.output
    res = runner.invoke(app, ["medium-precision", "calibrate", "--from", "2020-01-01T00:00:00Z", "--to",
                              "2020-01-02T00:00:00Z", "--config", str(config)])
    assert res.exit_code == 1 and "no hour from 2020-01-01T00:00:00.000Z" in res.output


def carried(db, days: int = 4):
    """The constructed minutes as a station with `[processing] auxiliary` sends them: no met-1
    minutes, its means carried on the other devices' minutes as "met-1:temperature"."""
    real = open_store("sqlite", path=db)
    rows = ConstructedMinutes(days).rows
    met = {r.time: r.diagnostics for r in rows if r.device == "met-1"}
    wire = [MinuteWire(seq=i + 1, time=r.time, device=r.device, stream="inlet:ambient",
                       species={k: SpeciesStats(mean=v.mean, std=None, n=v.n, raw_mean=v.raw_mean, cal_mean=None)
                                for k, v in r.species.items()}, h2o=None, flag=r.flag,
                       reasons=[] if r.flag == "U" else ["no_data"], n_total=5, calibration_id=None,
                       diagnostics={f"met-1:{q}": v for q, v in met[r.time].items()})
            for i, r in enumerate(r for r in rows if r.device != "met-1")]
    for k in range(0, len(wire), 1000):
        real.store_batch(ParsedBatch("site", "minute", NOW, wire[k:k + 1000]), NOW)
    return real


def test_environment_carried_on_the_analyzers_minutes_gives_the_same_fit(tmp_path):
    cfg = CentralConfig.model_validate({"medium_precision": [SITE]})
    m = cfg.medium_precision[0]
    own, on_analyzers = filled(tmp_path / "own.sqlite"), carried(tmp_path / "carried.sqlite")
    a, b = read_hours(own, m, T0, T0 + timedelta(days=4)), read_hours(on_analyzers, m, T0, T0 + timedelta(days=4))
    cal = calibrate(cfg, on_analyzers, m, T0, T0 + timedelta(days=4), NOW)
    own.close()
    on_analyzers.close()
    for q in ("temperature", "humidity"):
        assert np.isfinite(b.env[q]).all() and np.allclose(a.env[q], b.env[q], rtol=0, atol=1e-9)
    c = cal.model.coefficients
    assert c["temperature"] == pytest.approx(1.5, abs=0.02) and c["humidity"] == pytest.approx(-0.4, abs=0.01)


def test_the_receiver_refits_on_schedule_and_logs_what_it_fitted(tmp_path):
    """A real receiver (real mosquitto, real SQLite store holding four days of minutes) with
    `refit_every_h` set fits the model once at start (no model stored yet), not again before due."""
    from structlog.testing import capture_logs
    from support.wait import wait_until

    from central.medium_precision.worker import Refitter
    from central.receiver import Receiver
    from simulators.broker import MosquittoBroker

    db = tmp_path / "central.sqlite"
    filled(db).close()
    broker = MosquittoBroker(tmp_path / "mosquitto").start()
    cfg = CentralConfig.model_validate({
        "mqtt": {"host": broker.host, "port": broker.port, "client_id": "central-refit"},
        "storage": {"backend": "sqlite", "path": str(db)},
        "medium_precision": [{**SITE, "refit_every_h": 24, "refit_window_days": 10}]})
    with capture_logs() as logs:
        receiver = Receiver(cfg, now=lambda: NOW).start()
        try:
            wait_until(lambda: receiver.refitter.fitted, 120, 0.05, "the scheduled refit")
        finally:
            receiver.stop()
            broker.kill()
    (cal,) = receiver.refitter.fitted
    fitted = [e for e in logs if e.get("event") == "mp_refitted"]
    assert len(fitted) == 1 and fitted[0]["site"] == "site/k30-1/co2" and fitted[0]["hours"] == 96
    assert fitted[0]["coefficients"]["temperature"] == pytest.approx(1.5, abs=0.02)
    store = open_store("sqlite", path=db)
    try:
        models = store.mp_models("site")
        assert [r.id for r in models] == [cal.model_id] and models[0].fit_start == datetime(2026, 2, 28, tzinfo=UTC)
        assert len(store.mp_hours("site", T0, T0 + timedelta(days=4))) == 96
        m, refitter = cfg.medium_precision[0], receiver.refitter
        assert not refitter.due(store, m, NOW + timedelta(hours=23)) and refitter.due(store, m, NOW + timedelta(hours=24))
        restarted = Refitter(cfg)  # a receiver restarted: the stored model says when the next is due
        assert not restarted.due(store, m, NOW + timedelta(hours=23)) and restarted.due(store, m, NOW + timedelta(days=1))
    finally:
        store.close()
