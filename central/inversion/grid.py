"""The flux grid: cells of a regular lat/lon grid and the time steps of the state vector."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .units import EARTH_RADIUS_M, cell_areas_m2


@dataclass(frozen=True)
class FluxGrid:
    """Cells (lat x lon centres, degrees) and flux time steps (UTC starts, lengths in seconds).

    The state vector is ordered (sector, step, lat, lon), lon fastest; a flux is constant over a
    cell and a step.
    """

    lat: np.ndarray
    lon: np.ndarray
    step_start: np.ndarray  # datetime64[s], UTC
    step_seconds: np.ndarray  # float, s

    def __post_init__(self) -> None:
        for name in ("lat", "lon"):
            axis = np.asarray(getattr(self, name), dtype=float)
            if axis.ndim != 1 or axis.size < 2:
                raise ValueError(f"grid {name} needs at least two cell centres")
            step = np.diff(axis)
            if not (np.all(step > 0) and np.allclose(step, step[0], rtol=1e-6)):
                raise ValueError(f"grid {name} must be regular and increasing")
            object.__setattr__(self, name, axis)
        starts = np.asarray(self.step_start, dtype="datetime64[s]")
        seconds = np.asarray(self.step_seconds, dtype=float)
        if starts.ndim != 1 or starts.size == 0 or seconds.shape != starts.shape:
            raise ValueError("flux steps need one start and one length each")
        if np.any(seconds <= 0) or np.any(np.diff(starts.astype(np.int64)) <= 0):
            raise ValueError("flux steps must have positive lengths and increasing starts")
        object.__setattr__(self, "step_start", starts)
        object.__setattr__(self, "step_seconds", seconds)

    @property
    def ny(self) -> int:
        return int(self.lat.size)

    @property
    def nx(self) -> int:
        return int(self.lon.size)

    @property
    def n_cells(self) -> int:
        return self.ny * self.nx

    @property
    def n_steps(self) -> int:
        return int(self.step_start.size)

    @property
    def step_end(self) -> np.ndarray:
        return self.step_start + self.step_seconds.astype("timedelta64[s]")

    def step_mid_days(self) -> np.ndarray:
        """Mid-times of the steps in days since the first start (for the temporal correlation)."""
        start = (self.step_start - self.step_start[0]).astype(np.int64).astype(float)
        return (start + 0.5 * self.step_seconds) / 86400.0

    def areas_m2(self) -> np.ndarray:
        """Cell areas (m2), shape (ny, nx)."""
        return cell_areas_m2(self.lat, self.lon)

    def local_km(self) -> tuple[np.ndarray, np.ndarray]:
        """Cell-centre coordinates (km) on the local plane at the grid's central latitude.

        y = R * lat, x = R * cos(lat0) * lon (radians): the metric of the spatial correlation.
        Over a city or regional domain this differs from great-circle distance by well under the
        uncertainty of any correlation length.
        """
        lat0 = np.deg2rad(0.5 * (self.lat[0] + self.lat[-1]))
        y = EARTH_RADIUS_M / 1e3 * np.deg2rad(self.lat)
        x = EARTH_RADIUS_M / 1e3 * np.cos(lat0) * np.deg2rad(self.lon)
        return y, x

    def step_of(self, times: np.ndarray) -> np.ndarray:
        """Index of the step holding each time (datetime64), -1 outside the steps."""
        t = np.asarray(times, dtype="datetime64[s]").astype(np.int64)
        starts = self.step_start.astype(np.int64)
        ends = self.step_end.astype(np.int64)
        idx = np.searchsorted(starts, t, side="right") - 1
        ok = (idx >= 0) & (t < ends[np.clip(idx, 0, None)])
        return np.where(ok, idx, -1)


def daily_steps(start: np.datetime64, days: int, step_hours: float = 24.0) -> tuple[np.ndarray, np.ndarray]:
    """Starts and lengths (s) of regular steps covering `days` days from `start`."""
    n = int(round(days * 24.0 / step_hours))
    if n < 1:
        raise ValueError("the period must hold at least one flux step")
    seconds = step_hours * 3600.0
    starts = np.datetime64(start, "s") + (np.arange(n) * seconds).astype("timedelta64[s]")
    return starts, np.full(n, seconds)
