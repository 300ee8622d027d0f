"""The observation operator H, held sparsely, and the footprint files it is read from.

H maps fluxes (umol m-2 s-1) to enhancements (ppm). An observation sees only the flux steps its
back trajectories reach, so H is stored as "pseudo-rows": one sparse row over the cells
(ppm per umol m-2 s-1) per (observation, flux step) pair it touches. Hourly footprint layers are
summed into the flux step that holds them (the flux is constant over a step).

Two file layouts are read (times in seconds since 1970-01-01 UTC):

- STILT: one file per receptor, named `YYYYmmddHHMM_<lon>_<lat>_<zagl>_foot.nc` (receptor time and
  place), variable `foot(time, lat, lon)` in ppm per (umol m-2 s-1), cell centres, `time` the start
  of each hourly footprint layer, as the STILT R model writes it (footprint_models.py; any grid,
  regridded conservatively). A file is matched to an observation by time and station place.
- FLEXPART: backward `grid_time_*.nc` files (footprint_models.py: converted from s m3 kg-1, any grid),
  a release (RELCOM = station id) matched to the observation hour starting at its window's start.
- combined: one file for all observations, `foot(obs, lag, lat, lon)` (same units),
  `foot_time(obs, lag)` the start of each layer, `obs_time(obs)` and `station(obs)` identifying the
  observation; layers with NaN time are padding.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .footprint_models import on_flux_grid, read_flexpart_grid, read_stilt_footprint
from .grid import FluxGrid


@dataclass
class ObsOperator:
    """H as pseudo-rows: `rows[r]` (cells) acts on flux step `row_step[r]` for obs `row_obs[r]`."""

    rows: sp.csr_matrix
    row_obs: np.ndarray
    row_step: np.ndarray
    n_obs: int
    n_steps: int
    _by_step: list[tuple[np.ndarray, sp.csr_matrix]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.rows = sp.csr_matrix(self.rows, dtype=float)
        self.row_obs = np.asarray(self.row_obs, dtype=np.int64)
        self.row_step = np.asarray(self.row_step, dtype=np.int64)
        r = self.rows.shape[0]
        if self.row_obs.shape != (r,) or self.row_step.shape != (r,):
            raise ValueError("every footprint row needs one observation and one flux step")
        if r and (self.row_obs.min() < 0 or self.row_obs.max() >= self.n_obs):
            raise ValueError("footprint row refers to an observation out of range")
        if r and (self.row_step.min() < 0 or self.row_step.max() >= self.n_steps):
            raise ValueError("footprint row refers to a flux step out of range")
        if not np.all(np.isfinite(self.rows.data)):
            raise ValueError("footprints hold NaN or infinite values")
        self._by_step = []
        for t in range(self.n_steps):
            idx = np.flatnonzero(self.row_step == t)
            self._by_step.append((idx, self.rows[idx]))

    @property
    def n_cells(self) -> int:
        return self.rows.shape[1]

    @property
    def n_rows(self) -> int:
        return self.rows.shape[0]

    def apply(self, fields: np.ndarray) -> np.ndarray:
        """H applied to total fluxes shaped (q, step, cell) -> (n_obs, q), ppm."""
        q = fields.shape[0]
        out = np.zeros((self.n_obs, q))
        for t, (idx, rows) in enumerate(self._by_step):
            if idx.size:
                np.add.at(out, self.row_obs[idx], rows @ fields[:, t, :].T)
        return out

    def adjoint(self, weights: np.ndarray) -> np.ndarray:
        """H' applied to per-observation weights (n_obs, q) -> fields (q, step, cell)."""
        q = weights.shape[1]
        out = np.zeros((q, self.n_steps, self.n_cells))
        for t, (idx, rows) in enumerate(self._by_step):
            if idx.size:
                out[:, t, :] = (rows.T @ weights[self.row_obs[idx]]).T
        return out

    def dense(self) -> np.ndarray:
        """H in full, (n_obs, n_steps * n_cells): for the dense reference and small problems."""
        out = np.zeros((self.n_obs, self.n_steps * self.n_cells))
        coo = self.rows.tocoo()
        cols = self.row_step[coo.row] * self.n_cells + coo.col
        np.add.at(out, (self.row_obs[coo.row], cols), coo.data)
        return out


class FootprintAccumulator:
    """Collects hourly footprints per observation into the pseudo-rows of an `ObsOperator`."""

    def __init__(self, grid: FluxGrid) -> None:
        self.grid = grid
        self._rows: list[sp.csr_matrix] = []
        self._obs: list[np.ndarray] = []
        self._step: list[np.ndarray] = []
        self.outside_fraction: list[float] = []

    def add(self, obs_index: int, layer_start: np.ndarray, layers: np.ndarray) -> None:
        """Add the layers (hours, ny, nx) of observation `obs_index`, starting at `layer_start`."""
        layers = np.asarray(layers, dtype=float)
        hours, ny, nx = layers.shape
        if (ny, nx) != (self.grid.ny, self.grid.nx):
            raise ValueError(f"footprint grid is {ny} x {nx}, flux grid {self.grid.ny} x {self.grid.nx}")
        step = self.grid.step_of(layer_start)
        valid = ~np.isnat(np.asarray(layer_start, dtype="datetime64[s]"))
        total = float(np.abs(layers[valid]).sum())
        inside = valid & (step >= 0)
        kept = 0.0
        for t in np.unique(step[inside]):
            summed = layers[inside & (step == t)].sum(axis=0).ravel()
            kept += float(np.abs(summed).sum())
            row = sp.csr_matrix(summed[None, :])
            if row.nnz:
                self._rows.append(row)
                self._obs.append(np.array([obs_index]))
                self._step.append(np.array([t]))
        self.outside_fraction.append(0.0 if total == 0 else max(0.0, 1.0 - kept / total))

    def operator(self, n_obs: int) -> ObsOperator:
        rows = sp.vstack(self._rows, format="csr") if self._rows else sp.csr_matrix((0, self.grid.n_cells))
        obs = np.concatenate(self._obs) if self._obs else np.zeros(0, np.int64)
        step = np.concatenate(self._step) if self._step else np.zeros(0, np.int64)
        return ObsOperator(rows, obs, step, n_obs, self.grid.n_steps)


def _seconds_to_datetime(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values)
    if np.issubdtype(values.dtype, np.datetime64):
        return values.astype("datetime64[s]")
    out = np.full(values.shape, np.datetime64("NaT"), dtype="datetime64[s]")
    ok = np.isfinite(values)
    out[ok] = np.round(values[ok]).astype(np.int64).astype("datetime64[s]")
    return out


def _check_axes(path: Path, lat: np.ndarray, lon: np.ndarray, grid: FluxGrid) -> None:
    if lat.shape != grid.lat.shape or lon.shape != grid.lon.shape:
        raise ValueError(f"{path}: footprint grid {lat.size} x {lon.size} differs from the flux grid")
    tol = 1e-4 * max(abs(grid.lat[1] - grid.lat[0]), abs(grid.lon[1] - grid.lon[0])) + 1e-9
    if np.max(np.abs(lat - grid.lat)) > tol or np.max(np.abs(lon - grid.lon)) > tol:
        raise ValueError(f"{path}: footprint cell centres differ from the flux grid's")


def read_combined(
    path: Path, grid: FluxGrid, obs_station: np.ndarray, obs_time: np.ndarray, chunk: int = 64
) -> tuple[ObsOperator, np.ndarray, list[float]]:
    """Read a combined footprint file for the observations (station, time) given.

    Returns H, a boolean mask of the observations that have a footprint (H is built over those
    only, in their order), and the fraction of each footprint outside the flux period.
    """
    import xarray as xr

    with xr.open_dataset(path, decode_times=False) as ds:
        for name in ("foot", "foot_time", "obs_time", "station"):
            if name not in ds:
                raise ValueError(f"{path}: missing variable {name!r}")
        _check_axes(path, ds["lat"].values, ds["lon"].values, grid)
        foot = ds["foot"].transpose("obs", "lag", "lat", "lon")
        file_key = {
            (str(s), int(t)): i
            for i, (s, t) in enumerate(
                zip(ds["station"].values.astype(str), _seconds_to_datetime(ds["obs_time"].values).astype(np.int64))
            )
        }
        wanted = [
            file_key.get((str(s), int(t)))
            for s, t in zip(obs_station, np.asarray(obs_time, "datetime64[s]").astype(np.int64))
        ]
        has = np.array([w is not None for w in wanted], dtype=bool)
        file_index = np.array([w for w in wanted if w is not None], dtype=np.int64)
        times = _seconds_to_datetime(ds["foot_time"].values)
        acc = FootprintAccumulator(grid)
        for lo in range(0, file_index.size, chunk):
            part = file_index[lo : lo + chunk]
            order = np.argsort(part)
            block = foot.isel(obs=np.sort(part)).values
            for j, k in enumerate(order):
                acc.add(lo + k, times[part[k]], np.nan_to_num(block[j]))
    return acc.operator(int(has.sum())), has, acc.outside_fraction


_STILT_NAME = re.compile(r"^(\d{12})_(-?[\d.]+)_(-?[\d.]+)_([\d.]+)_foot\.nc$")


def stilt_file_name(time: np.datetime64, lon: float, lat: float, zagl: float) -> str:
    """STILT's name for a receptor's footprint file."""
    stamp = np.datetime_as_string(np.datetime64(time, "m"), unit="m").replace("-", "").replace("T", "").replace(":", "")
    return f"{stamp}_{lon:.4f}_{lat:.4f}_{zagl:g}_foot.nc"


def read_stilt_dir(
    folder: Path,
    grid: FluxGrid,
    obs_station: np.ndarray,
    obs_time: np.ndarray,
    station_place: dict[str, tuple[float, float]],
    place_tolerance_deg: float = 1e-3,
) -> tuple[ObsOperator, np.ndarray, list[float]]:
    """Read STILT footprint files (one per receptor) for the observations (station, time) given.

    `station_place` maps station id to (lat, lon) in degrees; a file belongs to the station whose
    place lies within `place_tolerance_deg` of the receptor's. Files on another grid are regridded
    conservatively (footprint_models.on_flux_grid). Returns as `read_combined`.
    """
    index: dict[tuple[int, str], Path] = {}
    icos: set[Path] = set()
    for path, t, lat, lon in _stilt_receptors(Path(folder)):
        tol = place_tolerance_deg
        if path.name == "foot":
            icos.add(path)
            tol = max(tol, 0.005 + 1e-9)  # ICOS names places to 0.01 degree
        for station, (slat, slon) in station_place.items():
            if abs(slat - lat) <= tol and abs(slon - lon) <= tol:
                index[(int(t.astype(np.int64)), station)] = path
    acc = FootprintAccumulator(grid)
    has = np.zeros(len(obs_station), dtype=bool)
    outside_grid: list[float] = []
    n = 0
    for i, (s, t) in enumerate(zip(obs_station, np.asarray(obs_time, "datetime64[s]").astype(np.int64))):
        path = index.get((int(t), str(s)))
        if path is None:
            continue
        fp = read_stilt_footprint(path, receptor_time=np.datetime64(int(t), "s"), units_required=path not in icos)
        layers, out_grid = on_flux_grid(fp, grid, str(path))
        acc.add(n, fp.layer_start, layers)
        outside_grid.append(out_grid)
        has[i] = True
        n += 1
    _warn_outside_grid(folder, outside_grid)
    return acc.operator(n), has, acc.outside_fraction


_ICOS_SLOT = re.compile(r"^(\d{4})x(\d{2})x(\d{2})x(\d{2})$")
_ICOS_PLACE = re.compile(r"^([\d.]+)([NS])x([\d.]+)([EW])x(\d+)$")


def _stilt_receptors(folder: Path):
    """(file, receptor time, lat, lon) of the STILT R files (`*_foot.nc`) in `folder` and of the
    ICOS STILT slot files (`<lat>Nx<lon>Ex<alt>/YYYY/MM/YYYYxMMxDDxHH/foot`) below it."""
    for path in sorted(folder.glob("*_foot.nc")):
        match = _STILT_NAME.match(path.name)
        if match:
            stamp = match.group(1)
            t = np.datetime64(f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[8:10]}:{stamp[10:12]}", "s")
            yield path, t, float(match.group(3)), float(match.group(2))
    for path in sorted(folder.glob("**/foot")):
        slot = _ICOS_SLOT.match(path.parent.name)
        place = _ICOS_PLACE.match(path.parents[3].name) if len(path.parents) > 3 else None
        if slot and place:
            y, mo, d, h = slot.groups()
            lat = float(place.group(1)) * (1 if place.group(2) == "N" else -1)
            lon = float(place.group(3)) * (1 if place.group(4) == "E" else -1)
            yield path, np.datetime64(f"{y}-{mo}-{d}T{h}:00", "s"), lat, lon


def read_flexpart_dir(
    folder: Path, grid: FluxGrid, obs_station: np.ndarray, obs_time: np.ndarray, match_seconds: float = 60.0
) -> tuple[ObsOperator, np.ndarray, list[float]]:
    """Read FLEXPART backward grid files (`grid_time_*.nc` in `folder`, any number of releases
    each) for the observations (station, time) given: a release belongs to the observation whose
    station id is the release name (RELCOM) and whose hour starts at the release window's start
    (within `match_seconds`). Converted and regridded as footprint_models says; returns as
    `read_combined`."""
    releases: dict[tuple[str, int], tuple[Path, object]] = {}
    for path in sorted(Path(folder).glob("grid_time_*.nc")):
        for rel in read_flexpart_grid(path):
            releases[(rel.name, int(np.datetime64(rel.start, "s").astype(np.int64)))] = (path, rel)
    if not releases:
        raise ValueError(f"{folder}: no FLEXPART grid_time_*.nc files")
    by_station: dict[str, np.ndarray] = {}
    for name, t in releases:
        by_station.setdefault(name, []).append(t)
    by_station = {k: np.sort(np.array(v)) for k, v in by_station.items()}
    acc = FootprintAccumulator(grid)
    has = np.zeros(len(obs_station), dtype=bool)
    outside_grid: list[float] = []
    n = 0
    for i, (s, t) in enumerate(zip(obs_station, np.asarray(obs_time, "datetime64[s]").astype(np.int64))):
        times = by_station.get(str(s))
        if times is None:
            continue
        j = int(np.argmin(np.abs(times - t)))
        if abs(int(times[j]) - int(t)) > match_seconds:
            continue
        path, rel = releases[(str(s), int(times[j]))]
        layers, out_grid = on_flux_grid(rel.footprint, grid, f"{path}: {rel.name}")
        acc.add(n, rel.footprint.layer_start, layers)
        outside_grid.append(out_grid)
        has[i] = True
        n += 1
    _warn_outside_grid(folder, outside_grid)
    return acc.operator(n), has, acc.outside_fraction


def _warn_outside_grid(folder: Path, fractions: list[float]) -> None:
    if fractions and max(fractions) > 0:
        warnings.warn(f"{folder}: on average {100 * float(np.mean(fractions)):.3g} % of the footprints lies outside "
                      "the flux grid (that part's enhancement is counted as background)", stacklevel=3)


def _time_seconds(times: np.ndarray) -> np.ndarray:
    t = np.asarray(times, dtype="datetime64[s]")
    out = t.astype(np.int64).astype(float)
    out[np.isnat(t)] = np.nan
    return out


def write_combined(
    path: Path,
    lat: np.ndarray,
    lon: np.ndarray,
    station: np.ndarray,
    obs_time: np.ndarray,
    foot_time: np.ndarray,
    foot: np.ndarray,
) -> None:
    """Write footprints (obs, lag, lat, lon) in the combined layout read by `read_combined`."""
    import xarray as xr

    seconds = "seconds since 1970-01-01 00:00:00 UTC"
    ds = xr.Dataset(
        {
            "foot": (("obs", "lag", "lat", "lon"), np.asarray(foot, dtype=np.float32),
                     {"units": "ppm (umol m-2 s-1)-1", "long_name": "footprint"}),
            "foot_time": (("obs", "lag"), _time_seconds(foot_time),
                          {"units": seconds, "long_name": "start of the footprint layer"}),
            "obs_time": (("obs",), _time_seconds(obs_time), {"units": seconds}),
            "station": (("obs",), np.asarray(station, dtype=str)),
        },
        coords={"lat": ("lat", lat, {"units": "degrees_north"}),
                "lon": ("lon", lon, {"units": "degrees_east"})},
    )
    encoding = {"foot": {"zlib": True, "complevel": 4}}
    ds.to_netcdf(path, encoding=encoding)


def write_stilt_file(path: Path, lat: np.ndarray, lon: np.ndarray, layer_start: np.ndarray, foot: np.ndarray) -> None:
    """Write one receptor's footprint (time, lat, lon) as the STILT R model does
    (uataq/stilt r/src/write_footprint.r: names, units and attributes)."""
    import xarray as xr

    ds = xr.Dataset(
        {"foot": (("time", "lat", "lon"), np.asarray(foot, dtype=np.float32),
                  {"units": "ppm (umol-1 m2 s)", "standard_name": "footprint", "long_name": "footprint"})},
        coords={
            "time": ("time", _time_seconds(layer_start),
                     {"units": "seconds since 1970-01-01 00:00:00", "standard_name": "time", "long_name": "time",
                      "calendar": "standard", "timezone": "UTC"}),
            "lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude",
                                 "long_name": "cell center latitude"}),
            "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude",
                                 "long_name": "cell center longitude"}),
        },
        attrs={"crs": "+proj=longlat +ellpsWGS84", "crs_format": "PROJ.4", "conventions": "CF-1.4",
               "documentation": "github.com/uataq/stilt", "title": "STILT Footprint Output"},
    )
    ds.to_netcdf(path, encoding={"foot": {"zlib": True, "_FillValue": -1.0}})
