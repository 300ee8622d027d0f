"""`central-receiver reprocess` and `export --version` as an operator runs them, and the revised
cylinder values file: TOML or CSV, each error naming the file, the row and the field."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from pathlib import Path

import pytest
import structlog
from test_reprocess import T0, fill  # tests/central/reprocess/test_reprocess.py
from typer.testing import CliRunner

from central.cli import app
from central.reprocess import CylinderFileError, RevisedValue, load_revised_values
from central.store import open_store


@pytest.fixture(autouse=True)
def structlog_restored():
    """The command points structlog at the stderr CliRunner gave it, which CliRunner closes
    afterwards: structlog's configuration back as it was, so no later test logs into a closed file."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def _config(tmp_path: Path) -> Path:
    cfg = tmp_path / "central.toml"
    cfg.write_text('[mqtt]\nhost = "127.0.0.1"\nport = 1883\n[storage]\npath = "central.sqlite"\n'
                   '[aggregate]\nmin_minutes_per_hour = 3\n')
    store = open_store("sqlite", path=tmp_path / "central.sqlite")
    fill(store)
    store.close()
    return cfg


def test_reprocess_from_a_csv_of_revised_values_then_export_both_versions(tmp_path):
    cfg = _config(tmp_path)
    cyl = tmp_path / "revised.csv"
    cyl.write_text("cylinder,species,value,scale,uncertainty\nCAL-SPAN,co2,460.5,WMO-CO2-X2019,0.03\n")
    r = CliRunner().invoke(app, ["reprocess", "--config", str(cfg), "--station", "st-a", "--from", "2026-03-01",
                                 "--to", "2026-03-01T06:00:00Z", "--cylinders", str(cyl), "--reason",
                                 "CAL-SPAN recertified", "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert (summary["minutes"], summary["hours"]) == (120, 2)
    assert summary["hourly_shift"]["co2"] == pytest.approx(0.25)
    for version, value in (("latest", 420.25), ("nrt", 420.0)):
        out = tmp_path / f"{version}.csv"
        r = CliRunner().invoke(app, ["export", "--config", str(cfg), "--station", "st-a", "--from", "2026-03-01",
                                     "--to", "2026-03-01T06:00:00Z", "--level", "hourly", "--version", version,
                                     "--out", str(out)])
        assert r.exit_code == 0, r.output
        assert f"(version: {version})" in r.stderr
        text = out.read_text()
        assert f"# version: {version} " in text
        body = [x for x in text.splitlines() if not x.startswith("#")]
        rows = list(csv.DictReader(io.StringIO("\n".join(body)), delimiter=";"))
        assert [float(x["co2"]) for x in rows] == [value, value]
    r = CliRunner().invoke(app, ["export", "--config", str(cfg), "--station", "st-a", "--from", "2026-03-01",
                                 "--to", "2026-03-02", "--level", "hourly", "--version", "all"])
    assert r.exit_code == 2 and "--version 'all' is not available for --level hourly" in r.stderr
    store = open_store("sqlite", path=tmp_path / "central.sqlite")
    try:
        assert store.reprocess_runs("st-a")[0].reason == "CAL-SPAN recertified"
        assert store.hourly("st-a", T0, T0 + timedelta(hours=6))[0].mean == pytest.approx(420.25)
    finally:
        store.close()


def test_a_bad_cylinder_file_is_refused_naming_file_row_and_field(tmp_path):
    cfg = _config(tmp_path)
    cyl = tmp_path / "revised.csv"
    cyl.write_text("cylinder,species,value\nCAL-SPAN,co2,460.5\nCAL-LOW,co2,abc\n")
    r = CliRunner().invoke(app, ["reprocess", "--config", str(cfg), "--station", "st-a", "--from", "2026-03-01",
                                 "--to", "2026-03-01T06:00:00Z", "--cylinders", str(cyl)])
    assert r.exit_code == 2
    assert f"{cyl}: row 3: value: 'abc' is not a number" in r.stderr
    store = open_store("sqlite", path=tmp_path / "central.sqlite")
    try:
        assert store.reprocess_runs() == []  # nothing written
    finally:
        store.close()


def test_revised_values_from_toml_and_csv_read_alike(tmp_path):
    toml = tmp_path / "revised.toml"
    toml.write_text('[[cylinders]]\nid = "CAL-SPAN"\nspecies = "CO2"\nvalue = 460.5\nscale = "WMO-CO2-X2019"\n'
                    'uncertainty = 0.03\n\n[[cylinders]]\nid = "CAL-SPAN"\nspecies = "ch4"\nvalue = 2100.2\n')
    csvf = tmp_path / "revised.csv"
    csvf.write_text("cylinder,species,value,scale,uncertainty\nCAL-SPAN,co2,460.5,WMO-CO2-X2019,0.03\n"
                    "CAL-SPAN,ch4,2100.2,,\n")
    want = [RevisedValue("CAL-SPAN", "co2", 460.5, "WMO-CO2-X2019", 0.03), RevisedValue("CAL-SPAN", "ch4", 2100.2)]
    assert load_revised_values(toml) == want
    assert load_revised_values(csvf) == want


@pytest.mark.parametrize("name, text, message", [
    ("a.toml", '[[cylinders]]\nid = "X"\nspecies = "co2"\n', "cylinders[0]: value: missing"),
    ("b.toml", '[[cylinders]]\nid = "X"\nspecies = "so2"\nvalue = 1\n', "cylinders[0]: species: 'so2' is not one of"),
    ("c.toml", '[[cylinders]]\nid = "X"\nspecies = "co2"\nvalue = 1\ncolour = "red"\n',
     "cylinders[0]: colour: unknown field"),
    ("d.csv", "cylinder,species,value,uncertainty\nX,co2,1,-0.1\n", "row 2: uncertainty: -0.1 is negative"),
    ("e.csv", "cylinder,species,amount\nX,co2,1\n", "row 1: amount: unknown column"),
    ("f.csv", "cylinder,species,value\nX,co2,1\nX,co2,2\n", "X co2: given twice"),
    ("g.csv", "cylinder,species,value\n,co2,1\n", "row 2: cylinder: missing"),
])
def test_cylinder_file_errors(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(CylinderFileError) as exc:
        load_revised_values(path)
    assert str(exc.value).startswith(f"{path}: ") and message in str(exc.value)


def test_the_inversion_reads_the_latest_version_by_default_and_says_which(tmp_path):
    from central.config import load_central_config
    from central.inversion.config import StoreSource
    from central.inversion.store_source import read_store_observations, write_store_csv
    from central.reprocess import reprocess_period

    cfg = _config(tmp_path)
    store = open_store("sqlite", path=tmp_path / "central.sqlite")
    try:
        reprocess_period(store, load_central_config(cfg), "st-a", T0, T0 + timedelta(hours=6),
                         [RevisedValue("CAL-SPAN", "co2", 460.5)], "span revised", "tester", T0 + timedelta(days=1))
    finally:
        store.close()
    read = {}
    for version in ("latest", "nrt"):
        src = StoreSource(central_config=cfg, species="co2", version=version, from_targets=False)
        read[version] = read_store_observations(src, "co2", T0, T0 + timedelta(hours=6), 0, 23, ["st-a"], False)
    assert list(read["latest"].table.value) == pytest.approx([420.25, 420.25])
    assert list(read["nrt"].table.value) == pytest.approx([420.0, 420.0])
    latest = read["latest"].summary()
    assert latest["version"] == "latest" and latest["stations"]["st-a"]["processing"][0].startswith("central-reprocess/")
    assert read["nrt"].summary()["stations"]["st-a"]["processing"] == ["station"]
    write_store_csv(tmp_path / "obs.csv", read["latest"])
    rows = list(csv.DictReader((tmp_path / "obs.csv").open()))
    assert [r["version"] for r in rows] == ["2", "2"]
