"""The example inventory (configs/inventory) from a fresh clone: prior build, then the existing
inversion on that prior with the example twin's observations and footprints."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import xarray as xr

from central.inversion.command import invert
from central.inversion.prior.build import prior_build
from central.inversion.twin import TwinSpec, make_twin, write_twin_inputs

EXAMPLE = Path(__file__).resolve().parents[3] / "configs" / "inventory"


def test_example_inventory_builds_a_prior_the_inversion_runs_on(tmp_path: Path, capsys) -> None:
    prior = tmp_path / "prior.nc"
    assert prior_build(EXAMPLE / "prior.example.toml", prior) == 0
    printed = capsys.readouterr()
    assert "coarse_inventory.nc: industry is coarser than the city grid" in printed.err
    with xr.open_dataset(prior) as ds:
        assert ds["flux"].dims == ("sector", "time", "lat", "lon") and ds["flux"].units == "umol m-2 s-1"
        assert list(ds["sector"].values) == ["energy", "industry", "buildings", "transport"]
        # the four point sources and the two proxies' totals are all inside the grid
        annual = dict(zip(ds["sector"].values, ds["inventory_annual"].values))
        region = ds["region"].values
    assert annual["energy"] == 3200000 + 850000 and annual["buildings"] == 2400000
    assert 0 < region.mean() < 1 and region.max() == 1.0
    # observations and footprints of the example twin (configs/inversion.example.toml's grid and period)
    twin = make_twin(TwinSpec(start="2024-07-01", days=10, n_stations=4, utc_offset_hours=8, seed=1),
                     keep_layers=True)
    paths = write_twin_inputs(twin, tmp_path / "twin")
    config = (EXAMPLE / "inversion.example.toml").read_text()
    for old, new in (("/tmp/city/prior.nc", prior), ("/tmp/city/twin/inputs/observations.csv", paths["observations"]),
                     ("/tmp/city/twin/inputs/footprints.nc", paths["footprints"])):
        assert old in config
        config = config.replace(old, str(new))
    (tmp_path / "inversion.toml").write_text(config)
    assert invert(tmp_path / "inversion.toml", tmp_path / "out") == 0
    with open(tmp_path / "out" / "totals.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["sector"] for r in rows if r["sector"] != "total"] == ["energy", "industry", "buildings", "transport"]
    for r in rows:
        assert float(r["posterior_sigma_Mt"]) <= float(r["prior_sigma_Mt"]) + 1e-12
    with xr.open_dataset(prior) as ds:
        region_flux = (ds["flux"].values * region).sum()
    assert np.isfinite(region_flux) and region_flux > 0


def test_prior_build_command_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    exe = Path(sys.executable).parent / "central-receiver"
    bad = tmp_path / "prior.toml"
    bad.write_text((EXAMPLE / "prior.example.toml").read_text().replace('file = "points.csv"',
                                                                        f'file = "{EXAMPLE / "points.csv"}"')
                   .replace('sectors = ["energy", "industry", "buildings", "transport"]',
                            'sectors = ["energy", "buildings", "transport"]'))
    res = subprocess.run([exe, "prior", "build", "--config", bad, "--out", tmp_path / "p.nc"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert "unknown sector(s) industry" in res.stderr and str(bad) in res.stderr
    res = subprocess.run([exe, "prior", "build", "--config", EXAMPLE / "prior.example.toml", "--out", tmp_path / "p.nc"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "transport: 3.1e+06 t/yr; 2024-07 262568 t" in res.stdout
