"""Footprints as the transport models write them, put on the flux grid.

STILT (uataq/stilt, r/src/write_footprint.r): one netCDF per receptor, `foot` with netCDF dims
(time, lat, lon) (ncdf4 lists them lon, lat, time in R's order), units "ppm (umol-1 m2 s)", i.e.
ppm per (umol m-2 s-1); lat/lon the cell centres (`glati + yres/2`); time "seconds since
1970-01-01 00:00:00" UTC, the beginning of each backward hour (r/src/calc_footprint.r:
`time_out = r_run_time + floor(time / 60) * 3600`), or one layer at the receptor time when
STILT ran with `time_integrate = TRUE`. Early STILT-R versions named the variable `Footprint` on
`longitude`/`latitude` (label "umol CO2 m-2 s-1" for the same quantity); both are read.
A time-integrated footprint (one layer at the receptor time) is put in the hour before the receptor.
The ICOS STILT service keeps one time-integrated footprint per receptor as
`<lat>Nx<lon>Ex<alt m, 5 digits>/YYYY/MM/YYYYxMMxDDxHH/foot` (a netCDF named `foot`; folder
layout as in ICOS-Carbon-Portal's icoscp_stilt `get_fp` and stiltweb's slot archive, S/W for
southern/western places); read the same way (its internal attributes were not checked here).

FLEXPART (netcdf_output_mod.f90, FLEXPART 10/11, backward run, `grid_time_<date>.nc`):
`spec001_mr(nageclass, pointspec, time, height, latitude, longitude)` in "s m3 kg-1" when
ind_source = 1 (mass) and ind_receptor = 2 (mass mixing ratio); `latitude`/`longitude` the cell
centres; `height` the top of each output layer (m); `time` in seconds (negative, backward) since
the simulation's end (the `units` attribute), each field the residence over the |loutstep|
seconds after its time stamp (flexpart/flexpart src/timemanager.f90: the averaging window runs
loutnext -+ loutaver/2 with loutnext starting at loutstep/2, and the field is written at its end,
which in a backward run is the earlier time), so the stamp is the layer's start. One pointspec per release (receptor); its name is RELCOM, its window
RELSTART..RELEND seconds relative to the same reference. Conversion: the surface-layer sensitivity
S/h (s m2 kg-1) maps a mass flux (kg m-2 s-1) to a mass mixing ratio; for a molar flux F
(umol m-2 s-1) the mole-fraction change in ppm is S/h * F * 1e-6 * M_s * 1e6 * (M_air / M_s) =
S / h * M_air * F with M_air in kg mol-1, independent of the species:
ppm per (umol m-2 s-1) = spec001_mr / h_1 * 0.0289647 (the same factor 0.0002897 for h_1 = 100 m
as used by the runflex/LUMIA FLEXPART footprint reader).

Regridding (regrid.py): a footprint cell's value is the response to a unit flux over that whole
cell, so it is shared among the flux cells by the fraction of its area in each (exact for a flux
uniform over the footprint cell; totals over the flux grid are kept). Footprint cells outside the
flux grid are dropped (the enhancement from there is background) and the fraction reported; a
footprint coarser than the flux grid warns (FootprintResolutionWarning): its fine structure is
gone and the flux inside each coarse cell is seen as uniform.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import regrid
from .grid import FluxGrid

M_AIR_KG_PER_MOL = 0.0289647
"""Molar mass of dry air (kg mol-1), the FLEXPART mass-mixing-ratio to mole-fraction factor."""

STILT_UNITS = {"ppm (umol-1 m2 s)", "ppm (umol m-2 s-1)-1", "ppm/(umol m-2 s-1)", "ppm per (umol m-2 s-1)",
               "ppm m2 s umol-1", "ppm per (micromol m-2 s-1)", "umol co2 m-2 s-1"}
"""Unit labels of a STILT footprint, all meaning ppm per (umol m-2 s-1): STILT R's, ours, pystilt's
("ppm m2 s umol-1"), ICOS's documented "ppm per (micromol m-2 s-1)", and early STILT-R's label."""


class FootprintResolutionWarning(UserWarning):
    """A footprint coarser than the flux grid."""


@dataclass
class Footprint:
    """One receptor's footprint on its own grid: layers (t, lat, lon) in ppm per (umol m-2 s-1)."""

    layer_start: np.ndarray  # datetime64[s]
    foot: np.ndarray
    lat: np.ndarray  # ascending cell centres
    lon: np.ndarray


def _pick(ds, names: tuple[str, ...], path: Path, what: str) -> str:
    for n in names:
        if n in ds.variables or n in ds.dims:
            return n
    raise ValueError(f"{path}: no {what} (looked for {', '.join(names)})")


def _axis(values: np.ndarray) -> np.ndarray:
    """Cell centres in float64; single-precision ones (FLEXPART writes float32) become the shortest
    decimals that read back as the same float32 (40.01, not 40.00999832), spaced regularly, or their
    edges would leak a little past a grid they were meant to match."""
    a = np.asarray(values)
    if a.dtype == np.float32 and a.size > 1:
        first, last = float(str(a[0])), float(str(a[-1]))
        return first + (last - first) / (a.size - 1) * np.arange(a.size)
    return a.astype(float)


def _ascending(lat: np.ndarray, foot: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    if lat.size > 1 and lat[1] < lat[0]:
        return lat[::-1], np.flip(foot, axis=axis)
    return lat, foot


def read_stilt_footprint(path: Path, receptor_time: np.datetime64 | None = None,
                         units_required: bool = True) -> Footprint:
    """One STILT footprint file (module docstring); `receptor_time` places a time-integrated one.
    `units_required = False` (ICOS slot files, whose attributes are not documented) takes a
    footprint without a units attribute as ppm per (umol m-2 s-1); a units attribute is still checked."""
    import xarray as xr

    path = Path(path)
    with xr.open_dataset(path, decode_times=False) as ds:
        var = _pick(ds, ("foot", "Footprint"), path, "footprint variable")
        lat_n = _pick(ds, ("lat", "latitude"), path, "latitude")
        lon_n = _pick(ds, ("lon", "longitude"), path, "longitude")
        da = ds[var]
        units = " ".join(str(da.attrs.get("units", "")).split()).lower()
        if units not in STILT_UNITS and (units_required or units):
            raise ValueError(f"{path}: {var} units {da.attrs.get('units')!r} are not a STILT footprint's "
                             f"(ppm per umol m-2 s-1: {', '.join(sorted(STILT_UNITS))})")
        if "time" in da.dims:
            da = da.transpose("time", lat_n, lon_n)
            tunits = str(ds["time"].attrs.get("units", ""))
            if not tunits.startswith("seconds since 1970-01-01"):
                raise ValueError(f"{path}: time units {tunits!r}, expected seconds since 1970-01-01 (UTC)")
            seconds = np.asarray(ds["time"].values, dtype=float)
            foot = da.values.astype(float)
        else:
            da = da.transpose(lat_n, lon_n)
            foot = da.values.astype(float)[None]
            seconds = np.array([np.nan])
        lat, lon = _axis(ds[lat_n].values), _axis(ds[lon_n].values)
    starts = np.full(seconds.shape, np.datetime64("NaT"), dtype="datetime64[s]")
    ok = np.isfinite(seconds)
    starts[ok] = np.round(seconds[ok]).astype(np.int64).astype("datetime64[s]")
    if receptor_time is not None and starts.size == 1:
        rt = np.datetime64(receptor_time, "s")
        if np.isnat(starts[0]) or starts[0] == rt:  # time-integrated: the hour before the receptor
            starts[0] = rt - np.timedelta64(3600, "s")
    lat, foot = _ascending(lat, np.nan_to_num(foot), 1)
    return Footprint(starts, foot, lat, lon)


def flexpart_to_ppm_per_umol(values: np.ndarray, units: str, layer_top_m: float) -> np.ndarray:
    """spec001_mr (s m3 kg-1, the lowest layer of top `layer_top_m`) -> ppm per (umol m-2 s-1)."""
    u = " ".join(str(units).split()).lower()
    if u not in ("s m3 kg-1", "s m**3 kg**-1", "s m^3 kg^-1"):
        raise ValueError(f"FLEXPART units {units!r}: only backward runs with ind_source = 1 and ind_receptor = 2 "
                         "(s m3 kg-1) are converted")
    if not layer_top_m > 0:
        raise ValueError(f"FLEXPART lowest output layer top {layer_top_m} m must be positive")
    return np.asarray(values, dtype=float) / layer_top_m * M_AIR_KG_PER_MOL


_SINCE = re.compile(r"seconds since (\d{4}-\d{2}-\d{2})[ T](\d{1,2}):(\d{2})(?::(\d{2}))?")


def _reference(units: str, path: Path) -> np.datetime64:
    m = _SINCE.match(units.strip())
    if not m:
        raise ValueError(f"{path}: time units {units!r}, expected 'seconds since YYYY-MM-DD HH:MM'")
    return np.datetime64(f"{m.group(1)}T{int(m.group(2)):02d}:{m.group(3)}:{m.group(4) or '00'}", "s")


@dataclass
class FlexpartRelease:
    name: str  # RELCOM, stripped: the station id
    start: np.datetime64  # the release (observation) window, UTC
    end: np.datetime64
    footprint: Footprint


def read_flexpart_grid(path: Path, species: int = 1) -> list[FlexpartRelease]:
    """Every release (pointspec) of a FLEXPART backward grid_time_*.nc, in ppm per (umol m-2 s-1)."""
    import xarray as xr

    path = Path(path)
    name = f"spec{species:03d}_mr"
    with xr.open_dataset(path, decode_times=False) as ds:
        if name not in ds:
            raise ValueError(f"{path}: no variable {name} (a FLEXPART grid_time file with iout = 1 is expected)")
        if int(ds.attrs.get("ldirect", -1)) != -1:
            raise ValueError(f"{path}: ldirect = {ds.attrs.get('ldirect')}: footprints need a backward run (-1)")
        da = ds[name]
        dims = ("nageclass", "pointspec", "time", "height", "latitude", "longitude")
        if set(da.dims) != set(dims):
            raise ValueError(f"{path}: {name} has dims {da.dims}, expected {dims}")
        height = ds["height"].values.astype(float)
        ref = _reference(str(ds["time"].attrs.get("units", "")), path)
        t = ds["time"].values.astype(np.int64)
        lat = _axis(ds["latitude"].values)
        lon = _axis(ds["longitude"].values)
        # lowest layer, summed over age classes: (pointspec, time, lat, lon)
        field = da.transpose(*dims).isel(height=0).sum("nageclass").values.astype(float)
        foot = flexpart_to_ppm_per_umol(np.nan_to_num(field), da.attrs.get("units", ""), float(height[0]))
        n = foot.shape[0]
        if "RELCOM" in ds:
            raw = ds["RELCOM"].values
            names = [(b"".join(r).decode() if raw.dtype.kind == "S" and raw.ndim == 2 else
                      (r.decode() if isinstance(r, bytes) else str(r))).strip() for r in raw]
        else:
            names = [f"release{k + 1}" for k in range(n)]
        rs = ds["RELSTART"].values.astype(np.int64) if "RELSTART" in ds else np.zeros(n, np.int64)
        re_ = ds["RELEND"].values.astype(np.int64) if "RELEND" in ds else np.zeros(n, np.int64)
    starts = ref + t.astype("timedelta64[s]")
    lat, foot = _ascending(lat, foot, 2)
    out = []
    for k in range(n):
        a, b = sorted((ref + np.timedelta64(int(rs[k]), "s"), ref + np.timedelta64(int(re_[k]), "s")))
        out.append(FlexpartRelease(names[k], a, b, Footprint(starts, foot[k], lat, lon)))
    return out


def on_flux_grid(fp: Footprint, grid: FluxGrid, where: str = "") -> tuple[np.ndarray, float]:
    """The footprint's layers on the flux grid (t, ny, nx) and the fraction of it (by |value|)
    outside the grid. Same cell centres: returned as is; otherwise regridded (module docstring)."""
    same = fp.lat.shape == grid.lat.shape and fp.lon.shape == grid.lon.shape
    if same:
        tol = 1e-4 * max(abs(grid.lat[1] - grid.lat[0]), abs(grid.lon[1] - grid.lon[0])) + 1e-9
        same = np.max(np.abs(fp.lat - grid.lat)) <= tol and np.max(np.abs(fp.lon - grid.lon)) <= tol
    if same:
        return fp.foot, 0.0
    if regrid.coarser_than(fp.lat, fp.lon, grid.lat, grid.lon):
        warnings.warn(f"{where}: footprint cells ({abs(fp.lat[1] - fp.lat[0]):g} x {abs(fp.lon[1] - fp.lon[0]):g} deg) "
                      f"are coarser than the flux grid's: resolution is lost", FootprintResolutionWarning, stacklevel=2)
    layers = regrid.regrid_extensive(fp.foot, fp.lat, fp.lon, grid.lat, grid.lon)
    total = float(np.abs(fp.foot).sum())
    kept = float(np.abs(layers).sum())
    return layers, (0.0 if total == 0 else max(0.0, 1.0 - kept / total))
