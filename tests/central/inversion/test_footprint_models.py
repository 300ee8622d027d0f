"""Footprints as STILT (R) and FLEXPART write them, built here with netCDF4 to each model's own
layout (dimension order, names, units, attributes): read, converted and regridded onto the flux grid."""

from __future__ import annotations

from pathlib import Path

import netCDF4
import numpy as np
import pytest

from central.inversion.footprint_models import (
    M_AIR_KG_PER_MOL,
    FootprintResolutionWarning,
    flexpart_to_ppm_per_umol,
    read_flexpart_grid,
    read_stilt_footprint,
)
from central.inversion.footprints import read_flexpart_dir, read_stilt_dir, stilt_file_name
from central.inversion.grid import FluxGrid

# flux grid: 8 x 10 cells of 0.01 degree, edges 40.00.. and 116.00..; daily steps from 2024-07-01
GRID = FluxGrid(40.005 + 0.01 * np.arange(8), 116.005 + 0.01 * np.arange(10),
                np.array(["2024-07-01", "2024-07-02"], dtype="datetime64[s]"), np.full(2, 86400.0))
RECEPTOR = np.datetime64("2024-07-02T06:00", "s")


def write_stilt_r(path: Path, lat: np.ndarray, lon: np.ndarray, times: np.ndarray, foot: np.ndarray,
                  legacy: bool = False) -> None:
    """As uataq/stilt r/src/write_footprint.r: ncdim_def lon, lat, time (R order) -> netCDF
    foot(time, lat, lon); missval -1; CF-1.4 attributes. `legacy`: calc_footprint.r's early
    `Footprint` on longitude/latitude."""
    with netCDF4.Dataset(path, "w") as nc:
        xn, yn, var = ("longitude", "latitude", "Footprint") if legacy else ("lon", "lat", "foot")
        nc.createDimension(xn, lon.size)
        nc.createDimension(yn, lat.size)
        nc.createDimension("time", times.size)
        x = nc.createVariable(xn, "f8", (xn,))
        x.units = "degrees E" if legacy else "degrees_east"
        x[:] = lon
        y = nc.createVariable(yn, "f8", (yn,))
        y.units = "degrees N" if legacy else "degrees_north"
        y[:] = lat
        t = nc.createVariable("time", "f8", ("time",))
        t.units = "seconds since 1970-01-01" if legacy else "seconds since 1970-01-01 00:00:00"
        t.calendar = "standard"
        t.timezone = "UTC"
        t[:] = times.astype("datetime64[s]").astype(np.int64).astype(float)
        f = nc.createVariable(var, "f4", ("time", yn, xn), fill_value=-1.0)
        f.units = "umol CO2 m-2 s-1" if legacy else "ppm (umol-1 m2 s)"
        if not legacy:
            f.standard_name = "footprint"
            f.long_name = "footprint"
        f[:] = foot
        nc.setncatts({"crs": "+proj=longlat +ellpsWGS84", "crs_format": "PROJ.4",
                      "conventions": "CF-1.4", "documentation": "github.com/uataq/stilt",
                      "title": "STILT Footprint Output"})


def test_stilt_r_file_on_a_finer_offset_grid_is_regridded_conservatively(tmp_path: Path) -> None:
    # STILT at 0.005 degree over 39.99..40.09 x 115.99..116.11 (extends past the flux grid)
    lat = 39.99 + 0.005 * (np.arange(20) + 0.5)
    lon = 115.99 + 0.005 * (np.arange(24) + 0.5)
    times = RECEPTOR - np.arange(1, 4) * np.timedelta64(3600, "s")  # start of each backward hour
    rng = np.random.default_rng(0)
    foot = rng.uniform(0, 1e-3, (3, lat.size, lon.size)).astype(np.float32)
    folder = tmp_path / "stilt"
    folder.mkdir()
    write_stilt_r(folder / stilt_file_name(RECEPTOR, 116.05, 40.04, 30.0), lat, lon, times, foot)
    with pytest.warns(UserWarning, match="outside the flux grid"):
        h, has, outside = read_stilt_dir(folder, GRID, np.array(["A", "A"]),
                                         np.array([RECEPTOR, RECEPTOR + np.timedelta64(3600, "s")]),
                                         {"A": (40.04, 116.05)})
    assert has.tolist() == [True, False] and outside == [0.0]
    # independent: each 0.01 cell of the flux grid holds exactly 2 x 2 STILT cells
    f = foot.astype(float).sum(axis=0)[2:18, 2:22]
    expected = f.reshape(8, 2, 10, 2).sum(axis=(1, 3))
    np.testing.assert_allclose(h.dense()[0, GRID.n_cells:].reshape(8, 10), expected, rtol=1e-6)
    assert h.dense()[0, :GRID.n_cells].sum() == 0  # all three hours lie on 2024-07-02


def test_stilt_coarser_grid_warns_and_keeps_the_total(tmp_path: Path) -> None:
    lat = 40.0 + 0.04 * (np.arange(2) + 0.5)
    lon = 116.0 + 0.05 * (np.arange(2) + 0.5)
    path = tmp_path / "coarse_foot.nc"
    write_stilt_r(path, lat, lon, np.array([RECEPTOR - np.timedelta64(3600, "s")]),
                  np.array([[[1.0, 2.0], [3.0, 4.0]]], dtype=np.float32))
    from central.inversion.footprint_models import on_flux_grid

    fp = read_stilt_footprint(path)
    with pytest.warns(FootprintResolutionWarning, match="resolution is lost"):
        layers, out = on_flux_grid(fp, GRID, str(path))
    assert out == pytest.approx(0.0, abs=1e-12)
    assert layers.sum() == pytest.approx(10.0, rel=1e-12)
    # 4 x 5 flux cells per coarse cell, each getting its share of the coarse cell's area
    areas = GRID.areas_m2()[:4, :5]
    assert layers[0, 0, 0] == pytest.approx(1.0 * areas[0, 0] / areas.sum(), rel=1e-9)


def test_stilt_time_integrated_and_legacy_files(tmp_path: Path) -> None:
    lat, lon = GRID.lat, GRID.lon
    one = np.ones((1, lat.size, lon.size), dtype=np.float32)
    write_stilt_r(tmp_path / "integrated.nc", lat, lon, np.array([RECEPTOR]), one)
    fp = read_stilt_footprint(tmp_path / "integrated.nc", receptor_time=RECEPTOR)
    assert fp.layer_start[0] == RECEPTOR - np.timedelta64(3600, "s")
    write_stilt_r(tmp_path / "legacy.nc", lat, lon, np.array([RECEPTOR - np.timedelta64(7200, "s")]), 2 * one,
                  legacy=True)
    fp = read_stilt_footprint(tmp_path / "legacy.nc")
    assert fp.layer_start[0] == RECEPTOR - np.timedelta64(7200, "s") and fp.foot.sum() == 2 * GRID.n_cells
    bad = tmp_path / "bad.nc"
    write_stilt_r(bad, lat, lon, np.array([RECEPTOR]), one)
    with netCDF4.Dataset(bad, "a") as nc:
        nc["foot"].units = "s m2 kg-1"
    with pytest.raises(ValueError, match="bad.nc: foot units 's m2 kg-1' are not a STILT footprint's"):
        read_stilt_footprint(bad)


def test_icos_stilt_slot_files_are_found_and_read(tmp_path: Path) -> None:
    """ICOS STILT keeps one time-integrated `foot` per receptor in <lat>Nx<lon>Ex<alt>/YYYY/MM/YYYYxMMxDDxHH/."""
    slot = tmp_path / "40.04Nx116.05Ex00030" / "2024" / "07" / "2024x07x02x06"
    slot.mkdir(parents=True)
    write_stilt_r(slot / "foot", GRID.lat, GRID.lon, np.array([RECEPTOR]),
                  np.full((1, 8, 10), 0.5, dtype=np.float32))
    with netCDF4.Dataset(slot / "foot", "a") as nc:
        nc["foot"].delncattr("units")
    h, has, outside = read_stilt_dir(tmp_path, GRID, np.array(["A"]), np.array([RECEPTOR]),
                                     {"A": (40.0412, 116.0461)})
    assert has.tolist() == [True]
    dense = h.dense()[0]
    # time-integrated: the whole footprint in the hour before the receptor, 2024-07-02 05:00
    assert dense[GRID.n_cells:].sum() == pytest.approx(0.5 * GRID.n_cells) and dense[:GRID.n_cells].sum() == 0


def write_flexpart(path: Path, lat: np.ndarray, lon: np.ndarray, times_s: np.ndarray, field: np.ndarray,
                   relcom: list[str], relstart: list[int], relend: list[int], ref: str = "20240702 060000",
                   heights=(100.0, 500.0), units: str = "s m3 kg-1") -> None:
    """As FLEXPART's netcdf_output_mod.f90 writeheader_netcdf (backward, iout = 1): Fortran dims
    (lon, lat, height, time, pointspec, nageclass) -> netCDF spec001_mr(nageclass, pointspec, time,
    height, latitude, longitude); time int seconds since iedate ietime; RELCOM char(numpoint, nchar)."""
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        nc.createDimension("time", None)
        nc.createDimension("longitude", lon.size)
        nc.createDimension("latitude", lat.size)
        nc.createDimension("height", len(heights))
        nc.createDimension("numspec", 1)
        nc.createDimension("pointspec", field.shape[1])
        nc.createDimension("nageclass", field.shape[0])
        nc.createDimension("nchar", 45)
        nc.createDimension("numpoint", len(relcom))
        d, t = ref.split()
        nc.setncatts({"Conventions": "CF-1.6", "title": "FLEXPART model output", "ldirect": np.int32(-1),
                      "ind_source": np.int32(1), "ind_receptor": np.int32(2), "loutstep": np.int32(-3600),
                      "iedate": d, "ietime": t})
        tv = nc.createVariable("time", "i4", ("time",))
        tv.units = f"seconds since {d[:4]}-{d[4:6]}-{d[6:8]} {t[:2]}:{t[2:4]}"
        tv.calendar = "proleptic_gregorian"
        tv[:] = times_s
        for name, values, u in (("longitude", lon, "degrees_east"), ("latitude", lat, "degrees_north")):
            v = nc.createVariable(name, "f4", (name,))
            v.units = u
            v.description = "grid cell centers"
            v[:] = values
        hv = nc.createVariable("height", "f4", ("height",))
        hv.units = "meters"
        hv[:] = heights
        rc = nc.createVariable("RELCOM", "S1", ("numpoint", "nchar"))
        rc[:] = netCDF4.stringtochar(np.array([s.ljust(45) for s in relcom], dtype="S45"))
        for name, values in (("RELSTART", relstart), ("RELEND", relend)):
            v = nc.createVariable(name, "i4", ("numpoint",))
            v.units = "seconds"
            v[:] = values
        s = nc.createVariable("spec001_mr", "f4", ("nageclass", "pointspec", "time", "height", "latitude", "longitude"))
        s.units = units
        s.long_name = "CO2"
        s[:] = field


def test_flexpart_grid_time_file_is_converted_and_matched(tmp_path: Path) -> None:
    lat = 40.0 + 0.02 * (np.arange(4) + 0.5)  # 0.02 degree: coarser than the flux grid
    lon = 116.0 + 0.02 * (np.arange(5) + 0.5)
    times = np.array([-3600, -7200, -10800], dtype=np.int32)  # backward from the end, 2024-07-02 06:00
    field = np.zeros((1, 2, 3, 2, 4, 5), dtype=np.float32)
    field[0, 0, :, 0] = 100.0  # release A: 100 s m3 kg-1 in the lowest layer everywhere
    field[0, 0, :, 1] = 1e6  # the upper layer is not the surface footprint
    field[0, 1, 0, 0, 1, 2] = 50.0  # release B: one cell, one hour
    folder = tmp_path / "flexpart"
    folder.mkdir()
    # releases end at the reference time (hour 05:00-06:00 UTC, RELSTART/RELEND relative to it)
    write_flexpart(folder / "grid_time_20240702060000.nc", lat, lon, times, field,
                   ["A", "B"], [-3600, -3600], [0, 0])
    rel = read_flexpart_grid(folder / "grid_time_20240702060000.nc")
    assert [r.name for r in rel] == ["A", "B"]
    assert rel[0].start == np.datetime64("2024-07-02T05:00", "s")
    assert rel[0].footprint.layer_start[0] == np.datetime64("2024-07-02T05:00", "s")
    # 100 s m3 kg-1 over a 100 m layer = 1 s m2 kg-1 -> x M_air = 0.0289647 ppm per umol m-2 s-1;
    # the runflex/LUMIA reader's factor for 100 m layers is 0.0002897 per (s m3 kg-1)
    assert rel[0].footprint.foot[0, 0, 0] == pytest.approx(100.0 * 0.0002897, rel=2e-4)
    assert M_AIR_KG_PER_MOL == pytest.approx(0.02896, rel=1e-3)
    obs_time = np.array(["2024-07-02T05:00", "2024-07-02T05:00", "2024-07-02T06:00"], dtype="datetime64[s]")
    with pytest.warns(FootprintResolutionWarning):
        h, has, outside = read_flexpart_dir(folder, GRID, np.array(["A", "B", "A"]), obs_time)
    assert has.tolist() == [True, True, False]
    dense = h.dense()
    # A: 3 hours x 20 coarse cells x 0.0289647, spread over the 8 x 10 flux cells the coarse grid covers
    assert dense[0].sum() == pytest.approx(3 * 20 * 100 / 100 * M_AIR_KG_PER_MOL, rel=1e-6)
    # B: its one coarse cell (lat 40.02..40.04, lon 116.04..116.06) covers 2 x 2 flux cells, shared by area
    b = dense[1, GRID.n_cells:].reshape(8, 10)
    areas = GRID.areas_m2()[2:4, 4:6]
    assert b[2:4, 4:6] == pytest.approx(50 / 100 * M_AIR_KG_PER_MOL * areas / areas.sum(), rel=1e-6)
    assert b.sum() == pytest.approx(b[2:4, 4:6].sum(), rel=1e-12)


def test_flexpart_units_other_than_mixing_ratio_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="only backward runs with ind_source = 1 and ind_receptor = 2"):
        flexpart_to_ppm_per_umol(np.ones(3), "s", 100.0)
    lat, lon = GRID.lat, GRID.lon
    write_flexpart(tmp_path / "grid_time_x.nc", lat, lon, np.array([-3600], np.int32),
                   np.ones((1, 1, 1, 2, lat.size, lon.size), np.float32), ["A"], [-3600], [0], units="s")
    with pytest.raises(ValueError, match="FLEXPART units 's'"):
        read_flexpart_grid(tmp_path / "grid_time_x.nc")
