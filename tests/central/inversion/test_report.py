"""`invert` writes report.html and report.pdf (pages rendered with poppler's pdftoppm), the
comparison with the inventory, and per-cell monthly 1-sigma in the netCDF."""

from __future__ import annotations

import csv
import json
import re
import subprocess

import numpy as np
import pytest
import xarray as xr
from PIL import Image

from central.inversion.command import invert

CONFIG = """
species = "CO2"
[period]
start = "2024-07-29T00:00:00Z"
days = 5
[twin]
ny = 12
nx = 14
n_stations = 3
sectors = ["buildings", "transport"]
seed = 5
[covariance]
length_km = 3.0
tau_days = 2.0
[output]
inventory_totals = "inventory.csv"
"""

INVENTORY = {("2024-07", "total"): 0.05, ("2024-07", "buildings"): 0.04, ("2024-08", "total"): 0.02,
             ("2024-08", "transport"): 0.005}


def write_inventory(path, rows) -> None:
    path.write_text("month,sector,inventory_Mt\n" + "".join(f"{m},{s},{v}\n" for (m, s), v in rows.items()))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    (folder / "inv.toml").write_text(CONFIG)
    write_inventory(folder / "inventory.csv", INVENTORY)
    assert invert(folder / "inv.toml", folder / "out") == 0
    return folder / "out"


def read_csv(path):
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_comparison_table_holds_the_inventory_and_the_relative_difference(run):
    totals = {(r["month"], r["sector"]): r for r in read_csv(run / "totals.csv")}
    rows = read_csv(run / "comparison.csv")
    assert [(r["month"], r["sector"]) for r in rows] == list(INVENTORY)  # rows without inventory are left out
    for row in rows:
        key = (row["month"], row["sector"])
        post = float(totals[key]["posterior_Mt"])
        assert float(row["inventory_Mt"]) == INVENTORY[key]
        assert float(row["posterior_Mt"]) == pytest.approx(post, rel=1e-5)
        assert float(row["relative_difference"]) == pytest.approx((post - INVENTORY[key]) / INVENTORY[key], rel=1e-4)
        assert float(row["difference_in_sigma"]) == pytest.approx(
            (post - INVENTORY[key]) / float(totals[key]["posterior_sigma_Mt"]), rel=1e-4)
    summary = json.loads((run / "summary.json").read_text())
    assert len(summary["comparison"]) == 4
    counts = summary["observations"]["counts"]
    assert counts["used"] == summary["diagnostics"]["n_obs"] == 3 * 5 * 5


def test_netcdf_holds_per_cell_monthly_sigma_per_sector(run):
    with xr.open_dataset(run / "posterior_flux.nc") as ds:
        prior = ds["prior_monthly_flux_uncertainty"]
        post = ds["posterior_monthly_flux_uncertainty"].values
        assert prior.dims == ("sector", "month", "lat", "lon")
        assert prior.shape == (2, 2, 12, 14)  # two sectors, July and August
        assert prior.attrs["units"] == "umol m-2 s-1"
        assert list(ds["month"].values) == [np.datetime64("2024-07-01", "ns"), np.datetime64("2024-08-01", "ns")]
        prior = prior.values
    assert np.all(post > 0) and np.all(post <= prior * (1 + 1e-12))
    assert (1 - post / prior).max() > 0.05  # the stations inform their neighbourhood


def test_html_report_is_self_contained_with_every_section(run):
    text = (run / "report.html").read_text()
    for heading in ("Inventory vs top-down", "Monthly totals", "Maps", "Diagnostics",
                    "Observations used and dropped", "Stations: observed vs modelled enhancements", "Configuration"):
        assert f"<h2>{heading}</h2>" in text, heading
    assert len(re.findall(r"<img [^>]*src='data:image/png;base64,", text)) == 3  # totals, maps, one station page
    assert "src='http" not in text and "href=" not in text  # nothing to fetch
    assert 'inventory_totals = "inventory.csv"' in text  # the configuration that produced it
    for word in ("DOFS", "reduced chi-square", "dropped: no footprint", "inventory totals from inventory.csv"):
        assert word in text, word


def test_pdf_pages_render_at_a4_and_are_not_blank(run, tmp_path):
    info = subprocess.run(["pdfinfo", str(run / "report.pdf")], capture_output=True, text=True, check=True).stdout
    pages = int(re.search(r"Pages:\s+(\d+)", info).group(1))
    assert pages == 5  # summary, maps, totals, stations, configuration
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(run / "report.pdf"), str(tmp_path / "page")], check=True)
    images = sorted(tmp_path.glob("page-*.png"))
    assert len(images) == pages
    for image in images:
        with Image.open(image) as im:
            gray = np.asarray(im.convert("L"), dtype=float)
        assert im.size[0] == round(8.27 * 40) and im.size[1] <= round(11.69 * 40) + 1  # A4 portrait width
        assert np.mean(gray < 128) > 0.002, image.name  # ink on the page


def test_inventory_file_with_a_bad_value_names_file_and_line(tmp_path, capsys):
    (tmp_path / "inv.toml").write_text(CONFIG)
    (tmp_path / "inventory.csv").write_text("month,sector,inventory_Mt\n2024-07,total,0.05\n2024-08,total,lots\n")
    assert invert(tmp_path / "inv.toml", tmp_path / "out") == 2
    assert "inventory.csv: line 3: inventory_Mt 'lots' is not a number" in capsys.readouterr().err
