"""The synthetic twin: a city grid, stations, plume-like footprints, a true flux and observations.

Used by the tests, the benchmark and the example config. The truth is the prior plus a perturbation
drawn from the prior error covariance (prior * (1 + fraction * z) where the fraction rule sets
sigma, z a space-time correlated standard normal field), and observations are H x_true + background
+ noise drawn from the observation error model, so a correct inversion must find the truth within
its stated uncertainty and a reduced chi-square near 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.linalg as sla

from .aggregates import region_totals
from .covariance import (
    PriorCovariance,
    SeparableExponential,
    exponential_correlation,
    observation_error,
    prior_sigma,
    spatial_correlation,
)
from .footprints import FootprintAccumulator, ObsOperator, write_combined
from .grid import FluxGrid, daily_steps
from .observations import Enhancements, ObsTable, afternoon_mask, enhancements
from .solver import Problem
from .units import molar_mass


@dataclass(frozen=True)
class TwinSpec:
    """What to simulate. Grid spacing in degrees, times UTC, fluxes umol m-2 s-1, errors ppm."""

    ny: int = 30
    nx: int = 30
    lat0: float = 39.75
    lon0: float = 116.25
    dlat: float = 0.01
    dlon: float = 0.01
    start: str = "2024-07-01"
    days: float = 10
    step_hours: float = 24
    n_stations: int = 4
    utc_offset_hours: float = 8
    first_hour: int = 12
    last_hour: int = 16
    footprint_hours: int = 24
    max_footprint_fraction: float = 0.10
    wind_cells_per_hour: tuple[float, float] = (2.0, 5.0)
    sectors: tuple[str, ...] = ("total",)
    species: str = "CO2"
    prior_fraction: float = 0.5
    prior_floor: float = 0.5
    length_km: float = 5.0
    tau_days: float = 3.0
    spatial_model: str = "separable"
    measurement_sigma: float = 0.1
    mismatch_sigma: float = 1.0
    background_sigma: float = 0.2
    seed: int = 0


@dataclass
class Twin:
    spec: TwinSpec
    grid: FluxGrid
    prior: np.ndarray  # (sector, step, cell) umol m-2 s-1
    truth: np.ndarray
    region: np.ndarray  # (ny, nx) fraction in the city
    station_ids: list[str]
    station_lat: np.ndarray
    station_lon: np.ndarray
    background_station: str
    table: ObsTable  # all hourly means: urban stations and the background station
    h: ObsOperator  # over the urban observations, in `table` order of the non-background rows
    layers: np.ndarray | None = None  # (m, lag, ny, nx) hourly footprints when kept
    layer_start: np.ndarray | None = None  # (m, lag)
    truth_totals: np.ndarray = field(default_factory=lambda: np.zeros(0))


def _city_prior(spec: TwinSpec, rng: np.random.Generator) -> np.ndarray:
    """(sector, ny, nx): a dense core, a few roads and point sources over a rural floor."""
    yy, xx = np.mgrid[0 : spec.ny, 0 : spec.nx].astype(float)
    cy, cx = (spec.ny - 1) / 2, (spec.nx - 1) / 2
    radius = 0.18 * min(spec.ny, spec.nx)
    core = 40.0 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * radius**2))
    roads = np.zeros_like(core)
    for angle in rng.uniform(0, np.pi, size=3):
        dist = np.abs((yy - cy) * np.cos(angle) - (xx - cx) * np.sin(angle))
        roads += 15.0 * np.exp(-(dist**2) / 2.0) * np.exp(-np.hypot(yy - cy, xx - cx) / (0.6 * min(spec.ny, spec.nx)))
    points = np.zeros_like(core)
    for _ in range(3):
        iy, ix = rng.integers(0, spec.ny), rng.integers(0, spec.nx)
        points[iy, ix] += rng.uniform(50, 150)
    rural = 0.5
    if len(spec.sectors) == 1:
        return (core + roads + points + rural)[None]
    parts = [core + rural + points, roads]
    parts += [np.full_like(core, rural)] * (len(spec.sectors) - 2)
    return np.stack(parts[: len(spec.sectors)])


def _plume(spec: TwinSpec, iy0: float, ix0: float, upwind: float, speed: float) -> np.ndarray:
    """Hourly footprint layers (lag, ny, nx), ppm per (umol m-2 s-1): a widening upwind plume."""
    iy = np.arange(spec.ny, dtype=float)
    ix = np.arange(spec.nx, dtype=float)
    lag = np.arange(spec.footprint_hours) + 0.5
    cy = iy0 + speed * lag * np.sin(upwind)
    cx = ix0 + speed * lag * np.cos(upwind)
    width = 0.8 + 0.25 * speed * lag
    amp = 0.08 / (1.0 + lag / 3.0) / (2 * np.pi * width**2)
    gy = np.exp(-((iy[None, :] - cy[:, None]) ** 2) / (2 * width[:, None] ** 2))
    gx = np.exp(-((ix[None, :] - cx[:, None]) ** 2) / (2 * width[:, None] ** 2))
    layers = amp[:, None, None] * gy[:, :, None] * gx[:, None, :]
    layers[layers < 1e-4 * layers.max()] = 0.0
    total = layers.sum(axis=0)
    cap = int(spec.max_footprint_fraction * spec.ny * spec.nx)
    support = np.count_nonzero(total)
    if support > cap:
        keep = np.zeros(total.size, dtype=bool)
        keep[np.argsort(total.ravel())[-cap:]] = True
        layers *= keep.reshape(total.shape)[None]
    return layers


def sample_correlated(cov: PriorCovariance, rng: np.random.Generator) -> np.ndarray:
    """A draw z ~ N(0, C_time (x) C_space) per sector, shaped like sigma."""
    k, t, s = cov.shape
    lt = sla.cholesky(cov.c_time + 1e-12 * np.eye(t), lower=True)
    xi = rng.standard_normal((k, t, s))
    if isinstance(cov.spatial, SeparableExponential):
        ly = sla.cholesky(cov.spatial.c_lat, lower=True)
        lx = sla.cholesky(cov.spatial.c_lon, lower=True)
        ny, nx = cov.spatial.shape
        field_ = ly @ xi.reshape(k * t, ny, nx) @ lx.T
        spaced = field_.reshape(k, t, s)
    else:
        ls = sla.cholesky(cov.spatial.dense() + 1e-10 * np.eye(s), lower=True)
        spaced = xi @ ls.T
    return np.einsum("ij,kjs->kis", lt, spaced)


def make_twin(spec: TwinSpec, keep_layers: bool = False) -> Twin:
    """Simulate one twin world from `spec` (seeded)."""
    rng = np.random.default_rng(spec.seed)
    lat = spec.lat0 + spec.dlat * np.arange(spec.ny)
    lon = spec.lon0 + spec.dlon * np.arange(spec.nx)
    starts, seconds = daily_steps(np.datetime64(spec.start, "s"), spec.days, spec.step_hours)
    grid = FluxGrid(lat, lon, starts, seconds)
    prior2d = _city_prior(spec, rng)
    prior = np.broadcast_to(prior2d.reshape(len(spec.sectors), 1, -1),
                            (len(spec.sectors), grid.n_steps, grid.n_cells)).copy()
    cov = twin_covariance(spec, grid, prior)
    truth = prior + cov.sigma * sample_correlated(cov, rng)

    yy, xx = np.mgrid[0 : spec.ny, 0 : spec.nx].astype(float)
    cy, cx = (spec.ny - 1) / 2, (spec.nx - 1) / 2
    region = (np.hypot(yy - cy, xx - cx) <= 0.3 * min(spec.ny, spec.nx)).astype(float)

    ids = [f"T{i + 1:02d}" for i in range(spec.n_stations)]
    sy = rng.uniform(0.25, 0.75, spec.n_stations) * (spec.ny - 1)
    sx = rng.uniform(0.25, 0.75, spec.n_stations) * (spec.nx - 1)
    hours = np.arange(int(round(spec.days * 24)))
    times = grid.step_start[0] + (hours * 3600).astype("timedelta64[s]")
    times = times[afternoon_mask(times, spec.utc_offset_hours, spec.first_hour, spec.last_hour)]
    day_wind = rng.uniform(0, 2 * np.pi, size=int(np.ceil(spec.days)) + 1)
    acc = FootprintAccumulator(grid)
    obs_station, obs_time, layers_all, starts_all = [], [], [], []
    lag_offsets = (-(np.arange(spec.footprint_hours) + 1) * 3600).astype("timedelta64[s]")
    for t in times:
        day = int((t - grid.step_start[0]).astype(np.int64) // 86400)
        for j, sid in enumerate(ids):
            upwind = day_wind[day] + rng.normal(0, np.deg2rad(20))
            speed = rng.uniform(*spec.wind_cells_per_hour)
            layers = _plume(spec, sy[j], sx[j], upwind, speed)
            layer_start = t + lag_offsets
            acc.add(len(obs_station), layer_start, layers)
            obs_station.append(sid)
            obs_time.append(t)
            if keep_layers:
                layers_all.append(layers.astype(np.float32))
                starts_all.append(layer_start)
    m = len(obs_station)
    h = acc.operator(m)
    obs_time_arr = np.array(obs_time, dtype="datetime64[s]")
    # background: a smooth series seen by the background station (outside the grid)
    t_hours = (times - times[0]).astype(np.int64) / 3600.0
    background = 420.0 + 2.0 * np.sin(2 * np.pi * t_hours / (24 * 7)) + 0.01 * t_hours
    bg_obs = background + rng.normal(0, spec.background_sigma, times.size)
    bg_index = np.searchsorted(times, obs_time_arr)
    r_model = observation_error(np.full(m, spec.measurement_sigma), np.full(m, spec.mismatch_sigma),
                                np.array(obs_station), np.zeros(m))
    noise = rng.multivariate_normal(np.zeros(m), r_model, method="cholesky") if m else np.zeros(0)
    urban = h.apply(truth.sum(axis=0)[None])[:, 0] + background[bg_index] + noise
    table = ObsTable(
        np.concatenate([obs_time_arr, times]),
        np.array(obs_station + ["BKG"] * times.size, dtype=str),
        np.concatenate([urban, bg_obs]),
        np.concatenate([np.full(m, spec.measurement_sigma), np.full(times.size, spec.background_sigma)]),
    )
    twin = Twin(spec, grid, prior, truth, region, ids, lat[0] + spec.dlat * sy, lon[0] + spec.dlon * sx,
                "BKG", table, h)
    if keep_layers and m:
        twin.layers = np.stack(layers_all)
        twin.layer_start = np.stack(starts_all)
    agg = region_totals(grid, region, molar_mass(spec.species), list(spec.sectors))
    twin.truth_totals = agg.weights.reshape(agg.size, -1) @ truth.ravel()
    return twin


def twin_covariance(spec: TwinSpec, grid: FluxGrid, prior: np.ndarray) -> PriorCovariance:
    """The prior error covariance the twin is drawn from (and that a consistent inversion uses)."""
    c_time = exponential_correlation(grid.step_mid_days(), spec.tau_days)
    return PriorCovariance(prior_sigma(prior, spec.prior_fraction, spec.prior_floor), c_time,
                           spatial_correlation(grid, spec.length_km, spec.spatial_model))


def twin_problem(twin: Twin) -> tuple[Problem, Enhancements]:
    """The inversion problem of a twin, through the same background subtraction as real data."""
    spec = twin.spec
    enh, missing = enhancements(twin.table, None, [twin.background_station])
    assert missing == 0 and len(enh) == twin.h.n_obs
    r = observation_error(enh.measurement_sigma, np.full(len(enh), spec.mismatch_sigma), enh.station,
                          enh.hours(), 0.0, enh.background_sigma, enh.background_group)
    agg = region_totals(twin.grid, twin.region, molar_mass(spec.species), list(spec.sectors))
    problem = Problem(twin.prior, twin_covariance(spec, twin.grid, twin.prior), twin.h, enh.value, r, agg,
                      enh.station)
    return problem, enh


def write_twin_inputs(twin: Twin, folder: Path) -> dict[str, Path]:
    """Write the twin's inputs as real ones: prior and region netCDF, observation CSV, footprints."""
    import xarray as xr

    from .observations import write_csv

    folder.mkdir(parents=True, exist_ok=True)
    g = twin.grid
    coords = {"lat": ("lat", g.lat, {"units": "degrees_north", "standard_name": "latitude"}),
              "lon": ("lon", g.lon, {"units": "degrees_east", "standard_name": "longitude"})}
    prior = twin.prior.reshape(len(twin.spec.sectors), g.n_steps, g.ny, g.nx)
    seconds = "seconds since 1970-01-01 00:00:00"
    time = g.step_start.astype(np.int64).astype(float)
    paths = {"prior": folder / "prior.nc", "region": folder / "region.nc",
             "observations": folder / "observations.csv", "footprints": folder / "footprints.nc"}
    flux_attrs = {"units": "umol m-2 s-1", "long_name": f"prior {twin.spec.species} flux"}
    if len(twin.spec.sectors) == 1:
        data = {"flux": (("time", "lat", "lon"), prior[0], flux_attrs)}
    else:
        data = {"flux": (("sector", "time", "lat", "lon"), prior, flux_attrs)}
        coords["sector"] = ("sector", np.array(twin.spec.sectors, dtype=str))
    ds = xr.Dataset(data, coords={**coords, "time": ("time", time, {"units": seconds, "calendar": "standard"})})
    ds.to_netcdf(paths["prior"])
    xr.Dataset({"region": (("lat", "lon"), twin.region, {"long_name": "fraction of cell in the city"})},
               coords=coords).to_netcdf(paths["region"])
    write_csv(paths["observations"], twin.table)
    is_bg = twin.table.station == twin.background_station
    urban = twin.table.select(~is_bg)
    assert twin.layers is not None and twin.layer_start is not None, "make the twin with keep_layers=True"
    write_combined(paths["footprints"], g.lat, g.lon, urban.station, urban.time, twin.layer_start, twin.layers)
    return paths
