"""Inventory sources -> annual mass per city cell (kg of the species per year, shape (ny, nx)).

- point sources (CSV) go to the cell holding them;
- area and line sources: a sector total spread by a proxy, a netCDF grid (regridded by area
  overlap, central/inversion/regrid.py) or GeoJSON features (polygons by overlap area, lines by
  length per cell, with shapely; in the lat/lon plane, which over a city cell differs from the
  sphere's area by far less than any proxy's uncertainty);
- gridded inventories: regridded conservatively (area-weighted overlap; every source cell's mass
  inside the city grid is kept exactly).
Every error names the file and the row, feature or variable at fault.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import regrid
from ..units import UnitError, cell_areas_m2, flux_to_umol
from .config import EMISSION_UNITS_KG

POINT_COLUMNS = ("id", "name", "lat", "lon", "sector", "annual_emission", "stack_height_m")
SECONDS_PER_DAY = 86400.0


class PriorInputError(ValueError):
    """An inventory file that cannot be used; the message names the file, row and field."""


@dataclass(frozen=True)
class PointSource:
    id: str
    name: str
    lat: float
    lon: float
    sector: str
    annual_kg: float
    stack_height_m: float
    iy: int
    ix: int


def cell_index(lat: float, lon: float, south: float, west: float, dlat: float, dlon: float,
               ny: int, nx: int) -> tuple[int, int] | None:
    """(row, column) of the cell holding the point, None outside the grid (edges: south/west inclusive)."""
    iy = math.floor((lat - south) / dlat)
    ix = math.floor((lon - west) / dlon)
    if 0 <= iy < ny and 0 <= ix < nx:
        return iy, ix
    return None


def _number(path: Path, row: int, field: str, text: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise PriorInputError(f"{path}: row {row}: {field} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise PriorInputError(f"{path}: row {row}: {field} {text!r} is not finite")
    return value


def read_point_sources(path: Path, grid, sectors: list[str], units: str) -> list[PointSource]:
    """Read the point-source CSV (header `POINT_COLUMNS`; rows counted from 1 after the header)."""
    out: list[PointSource] = []
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in POINT_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise PriorInputError(f"{path}: missing column(s) {', '.join(missing)} (need {', '.join(POINT_COLUMNS)})")
        for row, rec in enumerate(reader, start=1):
            lat = _number(path, row, "lat", rec["lat"])
            lon = _number(path, row, "lon", rec["lon"])
            emission = _number(path, row, "annual_emission", rec["annual_emission"])
            stack = _number(path, row, "stack_height_m", rec["stack_height_m"] or "0")
            sector = (rec["sector"] or "").strip()
            if sector not in sectors:
                raise PriorInputError(f"{path}: row {row} (id {rec['id']}): sector {sector!r} is not one of "
                                      f"{', '.join(sectors)}")
            if emission < 0:
                raise PriorInputError(f"{path}: row {row} (id {rec['id']}): annual_emission {emission} is negative")
            if stack < 0:
                raise PriorInputError(f"{path}: row {row} (id {rec['id']}): stack_height_m {stack} is negative")
            cell = cell_index(lat, lon, grid.south, grid.west, grid.dlat, grid.dlon, grid.ny, grid.nx)
            if cell is None:
                raise PriorInputError(
                    f"{path}: row {row} (id {rec['id']}): lat/lon {lat}, {lon} is outside the city grid "
                    f"(lat {grid.south}..{grid.south + grid.ny * grid.dlat}, lon {grid.west}..{grid.west + grid.nx * grid.dlon})")
            out.append(PointSource(rec["id"], rec["name"], lat, lon, sector,
                                   emission * EMISSION_UNITS_KG[units], stack, cell[0], cell[1]))
    return out


def point_mass(points: list[PointSource], sector: str, ny: int, nx: int) -> np.ndarray:
    out = np.zeros((ny, nx))
    for p in points:
        if p.sector == sector:
            out[p.iy, p.ix] += p.annual_kg
    return out


def _read_grid_variable(path: Path, variable: str):
    """(values (lat, lon) with lat ascending, lat, lon, units attribute) of a 2-D netCDF variable."""
    import xarray as xr

    with xr.open_dataset(path, decode_times=False) as ds:
        if variable not in ds:
            raise PriorInputError(f"{path}: no variable {variable!r} (has {', '.join(map(str, ds.data_vars))})")
        da = ds[variable].squeeze(drop=True)
        lat_name = next((d for d in da.dims if str(d) in ("lat", "latitude", "y")), None)
        lon_name = next((d for d in da.dims if str(d) in ("lon", "longitude", "x")), None)
        if da.ndim != 2 or lat_name is None or lon_name is None:
            raise PriorInputError(f"{path}: {variable} has dims {da.dims}, expected (lat, lon)")
        da = da.transpose(lat_name, lon_name)
        lat, lon = da[lat_name].values.astype(float), da[lon_name].values.astype(float)
        values = da.values.astype(float)
        units = da.attrs.get("units")
    if lat.size > 1 and lat[1] < lat[0]:
        lat, values = lat[::-1], values[::-1]
    for name, axis in (("lat", lat), ("lon", lon)):
        step = np.diff(axis)
        if axis.size < 2 or not (np.all(step > 0) and np.allclose(step, step[0], rtol=1e-6)):
            raise PriorInputError(f"{path}: {variable}: {name} is not a regular axis of at least two cells")
    bad = ~np.isfinite(values)
    if bad.any():
        iy, ix = np.argwhere(bad)[0]
        raise PriorInputError(f"{path}: {variable}: NaN or infinite value at lat {lat[iy]}, lon {lon[ix]}")
    if np.any(values < 0):
        iy, ix = np.argwhere(values < 0)[0]
        raise PriorInputError(f"{path}: {variable}: negative value {values[iy, ix]} at lat {lat[iy]}, lon {lon[ix]}")
    return values, lat, lon, units


def _check_covers(path: Path, variable: str, lat, lon, city_lat, city_lon) -> None:
    cover = regrid.coverage(lat, lon, city_lat, city_lon)
    if np.min(cover) < 1.0 - 1e-9:
        le, oe = regrid.axis_edges(lat), regrid.axis_edges(lon)
        ce, ke = regrid.axis_edges(city_lat), regrid.axis_edges(city_lon)
        raise PriorInputError(
            f"{path}: {variable}: grid (lat {le[0]:.5g}..{le[-1]:.5g}, lon {oe[0]:.5g}..{oe[-1]:.5g}) does not cover "
            f"the city grid (lat {ce[0]:.5g}..{ce[-1]:.5g}, lon {ke[0]:.5g}..{ke[-1]:.5g})")


def netcdf_proxy_weights(path: Path, variable: str, city_lat, city_lon) -> tuple[np.ndarray, bool]:
    """Share of the sector total in each city cell from a netCDF proxy (per-cell amounts), and
    whether resolution is lost (the proxy's cells are coarser)."""
    values, lat, lon, _ = _read_grid_variable(path, variable)
    _check_covers(path, variable, lat, lon, city_lat, city_lon)
    on_city = regrid.regrid_extensive(values, lat, lon, city_lat, city_lon)
    total = on_city.sum()
    if total <= 0:
        raise PriorInputError(f"{path}: {variable}: the proxy is zero everywhere over the city grid")
    return on_city / total, regrid.coarser_than(lat, lon, city_lat, city_lon)


def geojson_proxy_weights(path: Path, weight_property: str | None, grid) -> np.ndarray:
    """Share of the sector total in each city cell from GeoJSON features: feature f gets
    w_f / sum(w) (w_f its property, or 1), spread over cells by overlap area (polygons) or length
    (lines). A feature reaching outside the city grid is an error (its share would be lost)."""
    from shapely import box
    from shapely.geometry import shape

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise PriorInputError(f"{path}: not readable GeoJSON: {exc}") from None
    features = data.get("features") if isinstance(data, dict) else None
    if not features:
        raise PriorInputError(f"{path}: no features (a GeoJSON FeatureCollection is expected)")
    domain = box(grid.west, grid.south, grid.west + grid.nx * grid.dlon, grid.south + grid.ny * grid.dlat)
    out = np.zeros((grid.ny, grid.nx))
    weights = []
    spreads = []
    for k, feat in enumerate(features):
        where = f"{path}: feature {k}" + (f" (id {feat['id']})" if isinstance(feat, dict) and "id" in feat else "")
        try:
            geom = shape(feat["geometry"])
        except Exception as exc:  # shapely raises several types for bad geometry
            raise PriorInputError(f"{where}: geometry: {exc}") from None
        if weight_property is None:
            w = 1.0
        else:
            props = feat.get("properties") or {}
            if weight_property not in props:
                raise PriorInputError(f"{where}: no property {weight_property!r}")
            try:
                w = float(props[weight_property])
            except (TypeError, ValueError):
                raise PriorInputError(f"{where}: {weight_property} {props[weight_property]!r} is not a number") from None
            if not math.isfinite(w) or w < 0:
                raise PriorInputError(f"{where}: {weight_property} {w} must be a finite number >= 0")
        measure = (lambda g: g.area) if geom.area > 0 else (lambda g: g.length)
        size = measure(geom)
        if size <= 0:
            raise PriorInputError(f"{where}: geometry has no area or length")
        inside = measure(geom.intersection(domain))
        if inside < size * (1 - 1e-9):
            raise PriorInputError(f"{where}: {100 * (1 - inside / size):.3g} % of it lies outside the city grid")
        spread = np.zeros((grid.ny, grid.nx))
        x0, y0, x1, y1 = geom.bounds
        iy0 = max(0, int(math.floor((y0 - grid.south) / grid.dlat)))
        iy1 = min(grid.ny - 1, int(math.floor((y1 - grid.south) / grid.dlat)))
        ix0 = max(0, int(math.floor((x0 - grid.west) / grid.dlon)))
        ix1 = min(grid.nx - 1, int(math.floor((x1 - grid.west) / grid.dlon)))
        for iy in range(iy0, iy1 + 1):
            for ix in range(ix0, ix1 + 1):
                cell = box(grid.west + ix * grid.dlon, grid.south + iy * grid.dlat,
                           grid.west + (ix + 1) * grid.dlon, grid.south + (iy + 1) * grid.dlat)
                spread[iy, ix] = measure(geom.intersection(cell))
        if spread.sum() <= 0:
            raise PriorInputError(f"{where}: geometry has no area or length inside the city grid")
        weights.append(w)
        spreads.append(spread / spread.sum())
    total = float(sum(weights))
    if total <= 0:
        raise PriorInputError(f"{path}: {weight_property} is zero for every feature")
    for w, spread in zip(weights, spreads):
        out += (w / total) * spread
    return out / out.sum()


def region_fraction(path: Path, grid) -> np.ndarray:
    """Fraction of each city cell inside the GeoJSON polygons (union) of the city boundary."""
    from shapely import box, unary_union
    from shapely.geometry import shape

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        geoms = [shape(f["geometry"]) for f in data["features"]]
    except Exception as exc:
        raise PriorInputError(f"{path}: not a readable GeoJSON FeatureCollection of polygons: {exc}") from None
    city = unary_union(geoms)
    if city.area <= 0:
        raise PriorInputError(f"{path}: the region has no area")
    out = np.zeros((grid.ny, grid.nx))
    for iy in range(grid.ny):
        for ix in range(grid.nx):
            cell = box(grid.west + ix * grid.dlon, grid.south + iy * grid.dlat,
                       grid.west + (ix + 1) * grid.dlon, grid.south + (iy + 1) * grid.dlat)
            out[iy, ix] = city.intersection(cell).area / cell.area
    return out


def gridded_mass(path: Path, variable: str, units: str | None, city_lat, city_lon, year_seconds: float,
                 molar_mass: float) -> tuple[np.ndarray, float, bool]:
    """(annual kg per city cell, annual kg of the inventory's cells over the city before regridding
    weighted by their overlap, whether resolution is lost) for one sector of a gridded inventory."""
    values, lat, lon, file_units = _read_grid_variable(path, variable)
    units = units or file_units
    if units is None:
        raise PriorInputError(f"{path}: {variable} has no units attribute (set units in the config)")
    _check_covers(path, variable, lat, lon, city_lat, city_lon)
    u = " ".join(str(units).split())
    if u in EMISSION_UNITS_KG:
        mass = values * EMISSION_UNITS_KG[u]
    else:
        try:
            umol = flux_to_umol(values, u, molar_mass)
        except UnitError as exc:
            raise PriorInputError(f"{path}: {variable}: {exc}; or an annual amount per cell "
                                  f"({', '.join(EMISSION_UNITS_KG)})") from None
        mass = umol * 1e-6 * molar_mass * 1e-3 * cell_areas_m2(lat, lon) * year_seconds
    on_city = regrid.regrid_extensive(mass, lat, lon, city_lat, city_lon)
    return on_city, float(on_city.sum()), regrid.coarser_than(lat, lon, city_lat, city_lon)
