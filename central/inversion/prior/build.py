"""Assemble the prior from the inventory and write prior.nc; the `prior build` command.

prior.nc holds what `[prior]` of the inversion reads: `flux(sector, time, lat, lon)` in
umol m-2 s-1 (the mean over each flux step; time = the step starts, seconds since 1970 UTC) and
`region(lat, lon)` (fraction of each cell in the city), so `file` and `region_file` can both name it.
Also: `inventory_annual(sector)` and `inventory_monthly(sector, month)` (the inventory's own totals
over the city grid, in the config's emission units; full months, UTC) and the point sources
(`point_*`, with their stack heights, which a surface-flux inversion does not use).
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ghgnet.config import ConfigError

from ..grid import FluxGrid, daily_steps
from ..observations import parse_time
from ..units import UnitError, cell_areas_m2, molar_mass
from . import profiles, sources
from .config import EMISSION_UNITS_KG, PriorBuildConfig, load_prior_config
from .sources import PriorInputError


class ResolutionWarning(UserWarning):
    """An input coarser than the city grid: its values are spread evenly within each coarse cell."""


@dataclass
class Prior:
    grid: FluxGrid
    sectors: list[str]
    flux_umol: np.ndarray  # (sector, step, ny, nx), umol m-2 s-1
    region: np.ndarray  # (ny, nx)
    annual_kg: np.ndarray  # (sector,), kg per year over the city grid
    months: np.ndarray  # datetime64[M], the months the period touches
    monthly_kg: np.ndarray  # (sector, month), kg in each full month
    points: list[sources.PointSource] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def city_flux_grid(cfg: PriorBuildConfig) -> FluxGrid:
    lat, lon = cfg.grid.centres()
    start = parse_time(cfg.period.start)
    if start.astype(np.int64) % 3600:
        raise PriorInputError("period.start must be on a whole hour (profiles are hourly)")
    starts, seconds = daily_steps(start, cfg.period.days, cfg.period.step_hours)
    return FluxGrid(lat, lon, starts, seconds)


def annual_mass(cfg: PriorBuildConfig, grid: FluxGrid, notes: list[str]) -> tuple[np.ndarray, list]:
    """Annual kg per city cell for every sector, (sector, ny, nx), and the point sources."""
    g, mm = cfg.grid, molar_mass(cfg.species, cfg.molar_mass_g_per_mol)
    year = int(str(grid.step_start[0])[:4])
    year_seconds = float((np.datetime64(f"{year + 1}-01-01") - np.datetime64(f"{year}-01-01")).astype(int)) * 86400
    mass = np.zeros((len(cfg.sectors), g.ny, g.nx))
    points: list[sources.PointSource] = []
    for ps in cfg.point_sources:
        points += sources.read_point_sources(ps.file, g, cfg.sectors, cfg.emission_units)
    for k, sector in enumerate(cfg.sectors):
        mass[k] += sources.point_mass(points, sector, g.ny, g.nx)
    for a in cfg.area_sources:
        k = cfg.sectors.index(a.sector)
        if a.netcdf is not None:
            w, coarse = sources.netcdf_proxy_weights(a.netcdf, a.variable, grid.lat, grid.lon)
            if coarse:
                _resolution_lost(notes, f"{a.netcdf}: {a.variable}")
        else:
            w = sources.geojson_proxy_weights(a.geojson, a.weight_property, g)
        mass[k] += a.total * EMISSION_UNITS_KG[cfg.emission_units] * w
    for inv in cfg.gridded:
        for sector, variable in inv.variables.items():
            on_city, _, coarse = sources.gridded_mass(inv.file, variable, inv.units, grid.lat, grid.lon,
                                                      year_seconds, mm)
            if coarse:
                _resolution_lost(notes, f"{inv.file}: {variable}")
            mass[cfg.sectors.index(sector)] += on_city
    return mass, points


def _resolution_lost(notes: list[str], what: str) -> None:
    msg = f"{what} is coarser than the city grid: spread evenly within each of its cells"
    warnings.warn(msg, ResolutionWarning, stacklevel=3)
    notes.append(msg)


def build_prior(cfg: PriorBuildConfig) -> Prior:
    """The prior fluxes of every sector over the period, and the inventory's own totals."""
    grid = city_flux_grid(cfg)
    notes: list[str] = []
    mass, points = annual_mass(cfg, grid, notes)
    areas = cell_areas_m2(grid.lat, grid.lon)
    mm = molar_mass(cfg.species, cfg.molar_mass_g_per_mol)
    kg_to_umol = 1e3 / mm * 1e6
    flux = np.zeros((len(cfg.sectors), grid.n_steps, grid.ny, grid.nx))
    end = grid.step_end[-1]
    months = profiles.month_starts(grid.step_start[0], end - np.timedelta64(1, "s"))
    monthly = np.zeros((len(cfg.sectors), months.size - 1))
    for k, sector in enumerate(cfg.sectors):
        p = cfg.profiles.get(sector)
        prof = profiles.sector_profile(sector, *(() if p is None else (p.like, p.month, p.weekday, p.hour)))
        hours, frac = profiles.hourly_fractions(prof, grid.step_start[0], end, cfg.utc_offset_hours)
        per_step = profiles.step_fractions(hours, frac, grid.step_start, grid.step_seconds)
        # kg in cell during step / (area * seconds) -> kg m-2 s-1 -> umol m-2 s-1
        flux[k] = (per_step / grid.step_seconds)[:, None, None] * (mass[k] / areas)[None] * kg_to_umol
        month_of = np.searchsorted(months, hours, side="right") - 1
        monthly[k] = np.bincount(month_of, weights=frac, minlength=months.size - 1) * mass[k].sum()
    region = (np.ones((grid.ny, grid.nx)) if cfg.region is None
              else sources.region_fraction(cfg.region.geojson, cfg.grid))
    return Prior(grid, list(cfg.sectors), flux, region, mass.sum(axis=(1, 2)),
                 months[:-1].astype("datetime64[M]"), monthly, points, notes)


def write_prior(path: Path, prior: Prior, cfg: PriorBuildConfig) -> None:
    """prior.nc in the layout `central.inversion.command.read_prior` reads (module docstring)."""
    import xarray as xr

    g = prior.grid
    unit_kg = EMISSION_UNITS_KG[cfg.emission_units]
    coords = {
        "sector": ("sector", np.array(prior.sectors, dtype=str)),
        "time": ("time", g.step_start.astype(np.int64).astype(float),
                 {"units": "seconds since 1970-01-01 00:00:00", "calendar": "standard",
                  "long_name": "start of the flux step (UTC)"}),
        "lat": ("lat", g.lat, {"units": "degrees_north", "standard_name": "latitude", "long_name": "cell centre"}),
        "lon": ("lon", g.lon, {"units": "degrees_east", "standard_name": "longitude", "long_name": "cell centre"}),
        "month": ("month", np.array([str(m) for m in prior.months], dtype=str), {"long_name": "UTC month"}),
    }
    data = {
        "flux": (("sector", "time", "lat", "lon"), prior.flux_umol,
                 {"units": "umol m-2 s-1", "long_name": f"prior {cfg.species} flux, mean over the flux step"}),
        "region": (("lat", "lon"), prior.region, {"long_name": "fraction of cell in the city"}),
        "inventory_annual": (("sector",), prior.annual_kg / unit_kg,
                             {"units": cfg.emission_units, "long_name": "inventory total over the city grid"}),
        "inventory_monthly": (("sector", "month"), prior.monthly_kg / unit_kg,
                              {"units": cfg.emission_units.split("/")[0],
                               "long_name": "inventory total in each full UTC month over the city grid"}),
    }
    if prior.points:
        data.update({
            "point_id": (("point",), np.array([p.id for p in prior.points], dtype=str)),
            "point_name": (("point",), np.array([p.name for p in prior.points], dtype=str)),
            "point_sector": (("point",), np.array([p.sector for p in prior.points], dtype=str)),
            "point_lat": (("point",), np.array([p.lat for p in prior.points]), {"units": "degrees_north"}),
            "point_lon": (("point",), np.array([p.lon for p in prior.points]), {"units": "degrees_east"}),
            "point_annual_emission": (("point",), np.array([p.annual_kg / unit_kg for p in prior.points]),
                                      {"units": cfg.emission_units}),
            "point_stack_height": (("point",), np.array([p.stack_height_m for p in prior.points]), {"units": "m"}),
        })
    attrs = {"Conventions": "CF-1.8", "title": f"prior {cfg.species} fluxes from the city inventory",
             "species": cfg.species, "source": "central-receiver prior build",
             "utc_offset_hours": cfg.utc_offset_hours, "notes": "; ".join(prior.notes)}
    path.parent.mkdir(parents=True, exist_ok=True)
    xr.Dataset(data, coords=coords, attrs=attrs).to_netcdf(path, encoding={"flux": {"zlib": True, "complevel": 4}})


def prior_build(config: Path, out: Path) -> int:
    """`central-receiver prior build --config FILE --out prior.nc`; returns the exit code (0, or 2
    with a message naming the file, row and field at fault)."""
    try:
        cfg = load_prior_config(Path(config))
    except ConfigError as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        return 2
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResolutionWarning)  # printed below from prior.notes
            prior = build_prior(cfg)
        write_prior(Path(out), prior, cfg)
    except (PriorInputError, UnitError, ValueError, OSError) as exc:
        print(f"{config}: prior build failed: {exc}", file=sys.stderr)
        return 2
    for note in prior.notes:
        print(f"warning: {note}", file=sys.stderr)
    unit = cfg.emission_units.split("/")[0]
    unit_kg = EMISSION_UNITS_KG[cfg.emission_units]
    print(f"wrote {out}: {len(prior.sectors)} sectors x {prior.grid.n_steps} steps x {prior.grid.ny} x "
          f"{prior.grid.nx} cells")
    for k, sector in enumerate(prior.sectors):
        months = ", ".join(f"{m} {v / unit_kg:.6g} {unit}" for m, v in zip(prior.months, prior.monthly_kg[k]))
        print(f"{sector}: {prior.annual_kg[k] / unit_kg:.6g} {cfg.emission_units}; {months}")
    return 0
