"""Prior builder: mass conservation per sector and month, temporal profiles, regridding, and the
errors a city's bad inventory file gets (file, row, field)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from central.inversion import regrid
from central.inversion.command import read_prior
from central.inversion.config import InversionConfig
from central.inversion.prior.build import ResolutionWarning, build_prior, prior_build
from central.inversion.prior.config import load_prior_config
from central.inversion.prior.profiles import DEFAULT_PROFILES
from central.inversion.units import cell_areas_m2

SOUTH, WEST, D, NY, NX = 40.02, 116.02, 0.01, 12, 15
MONTH = [1.9, 1.7, 1.3, 0.9, 0.6, 0.5, 0.5, 0.45, 0.6, 0.9, 1.4, 1.8]
M_CO2 = 44.0095


def _write_inputs(folder: Path) -> None:
    (folder / "points.csv").write_text(
        "id,name,lat,lon,sector,annual_emission,stack_height_m\n"
        "P1,plant,40.055,116.083,energy,1000000,150\n"
        "P2,works,40.101,116.151,industry,250000,40\n"
        "P3,other plant,40.025,116.021,energy,125000,\n")
    # population on a 0.025 degree grid with edges not aligned to the city's (covers the city)
    plat = np.arange(40.0, 40.2, 0.025) + 0.0125
    plon = np.arange(116.0, 116.2, 0.025) + 0.0125
    pop = np.add.outer(np.arange(plat.size), np.arange(plon.size)).astype(float) + 1.0
    xr.Dataset({"population": (("lat", "lon"), pop)}, coords={"lat": plat, "lon": plon}).to_netcdf(
        folder / "population.nc")
    roads = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": "r1", "properties": {"traffic": 3.0},
         "geometry": {"type": "LineString", "coordinates": [[116.03, 40.03], [116.16, 40.13]]}},
        {"type": "Feature", "id": "d1", "properties": {"traffic": 1.0},
         "geometry": {"type": "Polygon", "coordinates": [[[116.05, 40.05], [116.09, 40.05], [116.09, 40.08],
                                                           [116.05, 40.05]]]}}]}
    (folder / "roads.geojson").write_text(json.dumps(roads))
    # coarse inventory: 0.05 degree cells, edges on the city's (40.00, 40.05, ...), flux kg m-2 s-1
    clat = np.arange(39.95, 40.25, 0.05) + 0.025
    clon = np.arange(115.95, 116.30, 0.05) + 0.025
    flux = (1.0 + np.add.outer(np.arange(clat.size), 2 * np.arange(clon.size))) * 1e-8
    xr.Dataset({"res": (("lat", "lon"), flux, {"units": "kg m-2 s-1"})},
               coords={"lat": clat, "lon": clon}).to_netcdf(folder / "coarse.nc")


def _config(folder: Path, extra: str = "", period: str = 'start = "2024-07-01T00:00:00Z"\ndays = 62',
            offset: float = 8.0) -> Path:
    text = textwrap.dedent(f"""
        species = "CO2"
        emission_units = "t/yr"
        sectors = ["energy", "industry", "buildings", "transport"]
        utc_offset_hours = {offset}
        [grid]
        south = {SOUTH}
        west = {WEST}
        dlat = {D}
        dlon = {D}
        ny = {NY}
        nx = {NX}
        [period]
        {period}
        [[point_sources]]
        file = "points.csv"
        [[area_sources]]
        sector = "buildings"
        total = 400000
        netcdf = "population.nc"
        variable = "population"
        [[area_sources]]
        sector = "transport"
        total = 300000
        geojson = "roads.geojson"
        weight_property = "traffic"
        [[gridded]]
        file = "coarse.nc"
        variables = {{ buildings = "res" }}
        [profiles.buildings]
        month = {MONTH}
        """) + extra
    path = folder / "prior.toml"
    path.write_text(text)
    return path


def _coarse_expected_kg_per_year(folder: Path) -> float:
    """Independent: the coarse flux is uniform in each coarse cell, so the mass in a city cell is
    the flux of the coarse cell holding its centre x its area x the year."""
    with xr.open_dataset(folder / "coarse.nc") as ds:
        flux, clat, clon = ds["res"].values, ds["lat"].values, ds["lon"].values
    lat = SOUTH + (np.arange(NY) + 0.5) * D
    lon = WEST + (np.arange(NX) + 0.5) * D
    iy = np.floor((lat - (clat[0] - 0.025)) / 0.05).astype(int)
    ix = np.floor((lon - (clon[0] - 0.025)) / 0.05).astype(int)
    return float((flux[np.ix_(iy, ix)] * cell_areas_m2(lat, lon)).sum() * 366 * 86400)


def test_prior_mass_is_conserved_per_sector_and_month(tmp_path: Path) -> None:
    _write_inputs(tmp_path)
    cfg_path = _config(tmp_path)
    out = tmp_path / "prior.nc"
    assert prior_build(cfg_path, out) == 0
    annual_kg = {"energy": 1.125e9, "industry": 2.5e8,
                 "buildings": 4.0e8 + _coarse_expected_kg_per_year(tmp_path), "transport": 3.0e8}
    days = {7: 31, 8: 31}
    month_share = {
        "flat": {m: d / 366 for m, d in days.items()},
        "buildings": {m: MONTH[m - 1] * d / float(np.dot(MONTH, [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]))
                      for m, d in days.items()},
    }
    # read back through the inversion's own reader: same units and layout as the twin's prior
    icfg = InversionConfig.model_validate({"period": {"start": "2024-07-01T00:00:00Z", "days": 62},
                                           "twin": {}})
    grid, flux, sectors = read_prior(out, "flux", icfg)
    assert sectors == ["energy", "industry", "buildings", "transport"]
    kg = flux.reshape(len(sectors), grid.n_steps, grid.ny, grid.nx) * 1e-6 * M_CO2 * 1e-3
    kg = kg * grid.areas_m2()[None, None] * grid.step_seconds[None, :, None, None]
    month = np.array([int(str(t)[5:7]) for t in grid.step_start])
    with xr.open_dataset(out) as ds:
        inventory_monthly = ds["inventory_monthly"].values * 1e3
        np.testing.assert_allclose(ds["region"].values, 1.0)
    for k, sector in enumerate(sectors):
        shares = month_share["buildings" if sector == "buildings" else "flat"]
        for j, m in enumerate((7, 8)):
            expected = annual_kg[sector] * shares[m]
            got = kg[k, month == m].sum()
            assert got == pytest.approx(expected, rel=1e-9), (sector, m)
            assert inventory_monthly[k, j] == pytest.approx(expected, rel=1e-9)


@pytest.mark.filterwarnings("ignore::central.inversion.prior.build.ResolutionWarning")
def test_weekday_and_hour_profiles_shape_the_steps(tmp_path: Path) -> None:
    _write_inputs(tmp_path)
    daily = build_prior(load_prior_config(_config(tmp_path, offset=0.0)))
    k = daily.sectors.index("transport")
    per_day = daily.flux_umol[k].sum(axis=(1, 2))
    # 2024-07-03 is a Wednesday, 2024-07-06 a Saturday (local = UTC here)
    w = DEFAULT_PROFILES["road_transport"]["weekday"]
    assert per_day[5] / per_day[2] == pytest.approx(w[5] / w[2], rel=1e-12)
    hourly = build_prior(load_prior_config(_config(
        tmp_path, period='start = "2024-07-03T00:00:00Z"\ndays = 1\nstep_hours = 1', offset=8.0)))
    per_hour = hourly.flux_umol[k].sum(axis=(1, 2))
    h = DEFAULT_PROFILES["road_transport"]["hour"]
    # UTC 09:00 is 17:00 local on Wednesday, UTC 19:00 is 03:00 local on Thursday
    assert per_hour[9] / per_hour[19] == pytest.approx(h[17] * w[2] / (h[3] * w[3]), rel=1e-12)


def test_coarse_gridded_inventory_warns_and_spreads_evenly(tmp_path: Path) -> None:
    _write_inputs(tmp_path)
    with pytest.warns(ResolutionWarning) as caught:
        prior = build_prior(load_prior_config(_config(tmp_path)))
    assert any("coarse.nc: res is coarser" in str(w.message) for w in caught)
    assert any("coarse.nc" in n for n in prior.notes)


def test_regrid_keeps_every_source_cells_mass_inside_the_target() -> None:
    rng = np.random.default_rng(3)
    src_lat, src_lon = 39.9 + 0.03 * np.arange(8), 116.1 + 0.04 * np.arange(9)
    dst_lat, dst_lon = 39.95 + 0.011 * np.arange(10), 116.17 + 0.013 * np.arange(12)
    mass = rng.uniform(0, 5, (2, 8, 9))
    out = regrid.regrid_extensive(mass, src_lat, src_lon, dst_lat, dst_lon)
    # independent: each source cell's mass times the area fraction of it inside the target grid
    wy = regrid.lat_fractions(src_lat, dst_lat).sum(axis=0)
    wx = regrid.lon_fractions(src_lon, dst_lon).sum(axis=0)
    np.testing.assert_allclose(out.sum(axis=(1, 2)), (mass * np.outer(wy, wx)).sum(axis=(1, 2)), rtol=1e-12)
    # a grid onto itself is the identity; a descending latitude axis gives the same result
    np.testing.assert_allclose(regrid.regrid_extensive(mass, src_lat, src_lon, src_lat, src_lon), mass, atol=1e-12)
    np.testing.assert_allclose(regrid.regrid_extensive(mass[:, ::-1], src_lat[::-1], src_lon, dst_lat, dst_lon),
                               out, rtol=1e-12)


@pytest.mark.parametrize("edit, expected", [
    (("points.csv", "P2,works,40.101,116.151,industry", "P2,works,41.5,116.151,industry"),
     r"points.csv: row 2 \(id P2\): lat/lon 41.5, 116.151 is outside the city grid"),
    (("points.csv", "industry,250000", "industry,-250000"),
     r"points.csv: row 2 \(id P2\): annual_emission -250000.0 is negative"),
    (("points.csv", "P3,other plant,40.025,116.021,energy", "P3,other plant,40.025,116.021,shipping"),
     r"points.csv: row 3 \(id P3\): sector 'shipping' is not one of energy, industry, buildings, transport"),
    (("points.csv", "40.055,116.083", "40.055,east"),
     r"points.csv: row 1: lon 'east' is not a number"),
    (("roads.geojson", "[116.16, 40.13]", "[116.36, 40.13]"),
     r"roads.geojson: feature 0 \(id r1\): .* % of it lies outside the city grid"),
    (("roads.geojson", '"traffic": 1.0', '"traffic": -1.0'),
     r"roads.geojson: feature 1 \(id d1\): traffic -1.0 must be a finite number >= 0"),
])
def test_bad_inventory_names_file_row_and_field(tmp_path: Path, capsys, edit, expected) -> None:
    _write_inputs(tmp_path)
    name, old, new = edit
    text = (tmp_path / name).read_text()
    assert old in text
    (tmp_path / name).write_text(text.replace(old, new))
    out = tmp_path / "prior.nc"
    assert prior_build(_config(tmp_path), out) == 2
    err = capsys.readouterr().err
    assert __import__("re").search(expected, err), err
    assert not out.exists()


def test_proxy_grid_not_covering_the_city_is_refused(tmp_path: Path, capsys) -> None:
    _write_inputs(tmp_path)
    plat = np.arange(40.05, 40.2, 0.025) + 0.0125  # starts north of the city's southern edge
    plon = np.arange(116.0, 116.2, 0.025) + 0.0125
    xr.Dataset({"population": (("lat", "lon"), np.ones((plat.size, plon.size)))},
               coords={"lat": plat, "lon": plon}).to_netcdf(tmp_path / "population.nc")
    assert prior_build(_config(tmp_path), tmp_path / "prior.nc") == 2
    err = capsys.readouterr().err
    assert "population.nc: population: grid (lat 40.05..40.2" in err and "does not cover the city grid" in err


def test_unknown_sector_in_config_is_a_config_error(tmp_path: Path, capsys) -> None:
    _write_inputs(tmp_path)
    path = _config(tmp_path)
    path.write_text(path.read_text().replace('variables = { buildings = "res" }', 'variables = { heating = "res" }'))
    assert prior_build(path, tmp_path / "prior.nc") == 2
    assert "unknown sector(s) heating" in capsys.readouterr().err
