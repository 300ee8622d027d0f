"""`invert(config, out)`: the example config from a fresh clone, and clear exit-2 errors."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import xarray as xr

from central.inversion.command import invert

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "configs" / "inversion.example.toml"

SMALL = """
species = "CO2"
[period]
start = "2024-07-01T00:00:00Z"
days = 3
[twin]
ny = 10
nx = 10
n_stations = 3
sectors = ["buildings", "transport"]
seed = 4
[covariance]
length_km = 3.0
tau_days = 2.0
[output]
full_covariance = true
"""


def test_example_config_writes_all_four_outputs(tmp_path, capsys):
    out = tmp_path / "out"
    assert invert(EXAMPLE, out) == 0
    for name in ("posterior_flux.nc", "totals.csv", "inversion.png", "summary.json"):
        assert (out / name).stat().st_size > 0, name
    with (out / "totals.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["month", "sector", "prior_Mt", "prior_sigma_Mt", "posterior_Mt",
                             "posterior_sigma_Mt", "uncertainty_reduction"]
    assert [r["sector"] for r in rows] == ["total", "buildings", "transport"]
    total = rows[0]
    assert 0 < float(total["uncertainty_reduction"]) < 1
    with xr.open_dataset(out / "posterior_flux.nc") as ds:
        assert ds.attrs["Conventions"] == "CF-1.8"
        assert ds["posterior_flux"].attrs["units"] == "umol m-2 s-1"
        assert ds["posterior_flux"].dims == ("sector", "time", "lat", "lon")
        assert ds["lat"].attrs["standard_name"] == "latitude"
        assert np.all(np.isfinite(ds["posterior_flux"].values))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["diagnostics"]["n_obs"] == 200
    assert 0 < summary["diagnostics"]["dofs"] < 200
    assert {"chi2_reduced", "innovation", "residual", "innovation_by_station"} <= set(summary["diagnostics"])
    assert (out / "inversion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "DOFS" in capsys.readouterr().err


def test_full_covariance_on_request_is_written(tmp_path):
    config = tmp_path / "small.toml"
    config.write_text(SMALL)
    assert invert(config, tmp_path / "out") == 0
    with xr.open_dataset(tmp_path / "out" / "posterior_covariance.nc") as ds:
        cov = ds["posterior_covariance"].values
    assert cov.shape == (2 * 3 * 100, 2 * 3 * 100)
    assert np.all(np.diag(cov) > 0)


def test_unknown_key_is_reported_with_file_and_field(tmp_path, capsys):
    config = tmp_path / "bad.toml"
    config.write_text(SMALL.replace("tau_days = 2.0", "tau_days = 2.0\ntau_hours = 3"))
    assert invert(config, tmp_path / "out") == 2
    assert f"{config}: covariance.tau_hours: unknown key" in capsys.readouterr().err


def test_missing_inputs_are_reported(tmp_path, capsys):
    config = tmp_path / "bad.toml"
    config.write_text('[period]\nstart = "2024-07-01T00:00:00Z"\ndays = 3\n')
    assert invert(config, tmp_path / "out") == 2
    assert "missing [prior], [observations], [footprints]" in capsys.readouterr().err


def test_real_inputs_with_relative_paths_and_a_footprint_grid_mismatch(tmp_path, capsys):
    """Run once on the twin's files given as real inputs, then break the footprint grid."""
    first = tmp_path / "first"
    config = tmp_path / "twin.toml"
    config.write_text(SMALL.replace("full_covariance = true", "full_covariance = false"))
    assert invert(config, first) == 0
    inputs = tmp_path / "data"
    shutil.copytree(first / "inputs", inputs)
    real = tmp_path / "real.toml"
    real.write_text("""
species = "CO2"
[period]
start = "2024-07-01T00:00:00Z"
days = 3
[prior]
file = "data/prior.nc"
region_file = "data/region.nc"
[observations]
file = "data/observations.csv"
utc_offset_hours = 8
background_stations = ["BKG"]
[footprints]
path = "data/footprints.nc"
[covariance]
length_km = 3.0
tau_days = 2.0
""")
    assert invert(real, tmp_path / "second") == 0
    a = json.loads((first / "summary.json").read_text())["totals"]
    b = json.loads((tmp_path / "second" / "summary.json").read_text())["totals"]
    assert a == b
    with xr.open_dataset(inputs / "footprints.nc") as ds:
        shifted = ds.assign_coords(lat=ds["lat"] + 1.0).load()
    shifted.to_netcdf(inputs / "footprints.nc")
    assert invert(real, tmp_path / "third") == 2
    assert "footprint cell centres differ from the flux grid's" in capsys.readouterr().err


def test_prior_in_kg_is_converted(tmp_path):
    first = tmp_path / "first"
    config = tmp_path / "twin.toml"
    config.write_text(SMALL.replace("full_covariance = true", "full_covariance = false"))
    assert invert(config, first) == 0
    with xr.open_dataset(first / "inputs" / "prior.nc") as ds:
        kg = ds.load()
    kg["flux"] = kg["flux"] * 1e-6 * 44.0095e-3
    kg["flux"].attrs["units"] = "kg m-2 s-1"
    kg.to_netcdf(first / "inputs" / "prior_kg.nc")
    (tmp_path / "kg.toml").write_text(f"""
[period]
start = "2024-07-01T00:00:00Z"
days = 3
[prior]
file = "{first / 'inputs' / 'prior_kg.nc'}"
region_file = "{first / 'inputs' / 'region.nc'}"
[observations]
file = "{first / 'inputs' / 'observations.csv'}"
utc_offset_hours = 8
background_stations = ["BKG"]
[footprints]
path = "{first / 'inputs' / 'footprints.nc'}"
[covariance]
length_km = 3.0
tau_days = 2.0
""")
    assert invert(tmp_path / "kg.toml", tmp_path / "kg") == 0
    a = json.loads((first / "summary.json").read_text())["totals"]
    b = json.loads((tmp_path / "kg" / "summary.json").read_text())["totals"]
    for ra, rb in zip(a, b):
        assert abs(ra["posterior_Mt"] - rb["posterior_Mt"]) <= 1e-9 * abs(ra["posterior_Mt"])
