"""Operators' commands on hourly data: export as ICOS-L2-like CSV and ObsPack-like netCDF, manual
flags with their audit trail, and the status table of station health."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from support.network import central_stations_toml, fill_network
from typer.testing import CliRunner

from central.cli import app
from central.store import open_store


@pytest.fixture
def network(tmp_path: Path) -> Path:
    cfg = tmp_path / "central.toml"
    cfg.write_text('[central]\nname = "demo network"\n[storage]\npath = "c.sqlite"\n' + central_stations_toml())
    store = open_store("sqlite", path=tmp_path / "c.sqlite")
    fill_network(store, days=2)
    store.close()
    r = CliRunner().invoke(app, ["aggregate", "--config", str(cfg)])
    assert r.exit_code == 0 and "hour(s) recomputed" in r.stdout, r.output
    return cfg


def run(*args: str):
    r = CliRunner().invoke(app, list(args))
    assert r.exit_code == 0, r.output
    return r


def test_export_hourly_icos_csv(network, tmp_path):
    out = tmp_path / "bg.csv"
    run("export", "--config", str(network), "--station", "bg-north", "--from", "2026-03-01", "--to", "2026-03-03",
        "--level", "hourly", "--format", "icos-csv", "--stream", "inlet:100m", "--out", str(out))
    text = out.read_text()
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    rows = list(csv.DictReader(io.StringIO(body), delimiter=";"))
    assert len(rows) == 48
    assert list(rows[0])[:14] == ["Site", "SamplingHeight", "Year", "Month", "Day", "Hour", "Minute", "DecimalDate",
                                  "co2", "Stdev", "NbPoints", "Flag", "InstrumentId", "QualityId"]
    first = rows[0]
    assert (first["Site"], first["SamplingHeight"], first["Hour"], first["Flag"], first["InstrumentId"]) == (
        "BG-NORTH", "100.0", "0", "U", "G2401-bg-north")
    assert float(first["DecimalDate"]) == pytest.approx(2026 + 59 / 365)
    assert 400 < float(first["co2"]) < 440 and int(first["NbPoints"]) >= 25
    assert first["InstrumentSerial"] == "-"  # no inventory in this network: the serial is not known


def test_flag_reaches_the_hourly_export_and_the_audit_trail(network, tmp_path):
    r = run("flag", "--config", str(network), "--station", "bg-north", "--from", "2026-03-01T05:00Z",
            "--to", "2026-03-01T07:00Z", "--flag", "K", "--reason", "inlet line leak", "--operator", "alice")
    assert "flag #1" in r.stdout and "alice" in r.stdout
    out = run("export", "--config", str(network), "--station", "bg-north", "--from", "2026-03-01T04:00Z",
              "--to", "2026-03-01T08:00Z", "--level", "hourly", "--format", "icos-csv", "--stream", "inlet:100m").stdout
    rows = list(csv.DictReader(io.StringIO("\n".join(x for x in out.splitlines() if not x.startswith("#"))),
                               delimiter=";"))
    assert [(r["Hour"], r["Flag"], r["QualityId"], r["co2"]) for r in rows] == [
        ("4", "U", "1", rows[0]["co2"]), ("5", "K", "2", "-999.99"), ("6", "K", "2", "-999.99"),
        ("7", "U", "1", rows[3]["co2"])]
    trail = json.loads(run("flags", "list", "--config", str(network), "--json").stdout)
    assert [(f["operator"], f["flag"], f["reason"], f["from"]) for f in trail] == [
        ("alice", "K", "inlet line leak", "2026-03-01T05:00:00.000Z")]
    bad = CliRunner().invoke(app, ["flag", "--config", str(network), "--station", "bg-north", "--from", "2026-03-01",
                                   "--to", "2026-03-02", "--flag", "X", "--reason", "r"])
    assert bad.exit_code == 2 and "K or O" in bad.stderr


def test_export_hourly_obspack_netcdf(network, tmp_path):
    import xarray as xr

    out = tmp_path / "obspack" / "co2_bg-south.nc"
    run("export", "--config", str(network), "--station", "bg-south", "--from", "2026-03-01", "--to", "2026-03-02",
        "--level", "hourly", "--format", "obspack-nc", "--out", str(out))
    with xr.open_dataset(out) as ds:
        for var in ("value", "value_std_dev", "nvalue", "time_components", "latitude", "longitude", "altitude",
                    "intake_height", "qcflag", "obspack_id"):
            assert var in ds, var
        assert ds.sizes["obs"] == 48 and ds["value"].attrs["units"] == "mol mol-1"
        assert np.all((ds["value"] > 400e-6) & (ds["value"] < 440e-6))
        assert sorted(set(ds["intake_height"].values.tolist())) == [10.0, 100.0]
        assert float(ds["altitude"].max()) == pytest.approx(220.0) and float(ds["latitude"][0]) == 30.0
        assert ds["time_components"].values[0].tolist() == [2026, 3, 1, 0, 0, 0]


def test_status_table_shows_every_station_with_its_health(network):
    r = run("status", "--config", str(network))
    for station in ("bg-north", "bg-south", "city-1"):
        assert station in r.stdout
    doc = json.loads(run("status", "--config", str(network), "--json").stdout)
    assert {s["station"]: s["backlog"] for s in doc["stations"]} == {"bg-north": 0, "bg-south": 3, "city-1": 6}
    qc = json.loads(run("qc", "--config", str(network), "--from", "2026-03-01", "--to", "2026-03-03").stdout)
    city = qc["stations"]["city-1"]
    assert {(t["cylinder"], t["term"]) for t in city["targets"]} == {("TGT-LT", "long"), ("TGT-ST", "short")}
    assert city["calibrations"][0]["drift_ok"] == [True, True]
    (co2,) = [c for c in qc["consistency"] if c["species"] == "co2"]
    assert co2["offsets"][0]["beyond_goal"]
