"""Regenerate the example inventory in this folder (synthetic, for a 30 x 30 km city around
39.9 N 116.4 E): python configs/inventory/make_example.py. The files are committed; a city's team
replaces them with its own (see central/inversion/README.md, "From a city's inventory to a prior")."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr

HERE = Path(__file__).resolve().parent


def main() -> None:
    rng = np.random.default_rng(7)
    # population per 0.005 degree cell (a finer proxy grid than the city's 0.01 degree cells)
    lat = 39.745 + 0.005 * (np.arange(62) - 0.5)
    lon = 116.245 + 0.005 * (np.arange(62) - 0.5)
    yy, xx = np.meshgrid(lat, lon, indexing="ij")
    pop = 4000 * np.exp(-(((yy - 39.9) / 0.08) ** 2 + ((xx - 116.4) / 0.09) ** 2)) + rng.uniform(0, 300, yy.shape)
    xr.Dataset({"population": (("lat", "lon"), np.round(pop).astype(np.float32),
                               {"units": "people per cell", "long_name": "residents"})},
               coords={"lat": ("lat", lat, {"units": "degrees_north"}),
                       "lon": ("lon", lon, {"units": "degrees_east"})}).to_netcdf(
        HERE / "population.nc", encoding={"population": {"zlib": True}})
    # a coarse (0.1 degree) gridded inventory, EDGAR-like units, for the industry sector's area part
    clat = np.array([39.7, 39.8, 39.9, 40.0, 40.1])
    clon = np.array([116.2, 116.3, 116.4, 116.5, 116.6])
    flux = np.array([[2, 3, 4, 3, 2], [3, 6, 8, 6, 3], [4, 8, 12, 8, 4], [3, 6, 8, 6, 3], [2, 3, 4, 3, 2]],
                    dtype=float) * 1e-8
    xr.Dataset({"industry": (("lat", "lon"), flux, {"units": "kg m-2 s-1", "long_name": "industrial combustion"})},
               coords={"lat": ("lat", clat, {"units": "degrees_north"}),
                       "lon": ("lon", clon, {"units": "degrees_east"})}).to_netcdf(HERE / "coarse_inventory.nc")


if __name__ == "__main__":
    main()
    print(json.dumps(sorted(p.name for p in HERE.iterdir())))
