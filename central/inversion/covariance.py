"""Prior and observation error covariances.

The prior error covariance of the fluxes of one sector is B = D (C_time (x) C_space) D with
D = diag(sigma), sigma = max(fraction * |prior|, floor) in umol m-2 s-1, C_time the exponential
correlation of the flux steps (tau in days) and C_space the exponential correlation of the cells
(length L in km). Sectors are independent. B is never formed: `PriorCovariance.apply` multiplies
through the Kronecker structure, and C_space itself is held either as two 1-D factors
(`SeparableExponential`, C_lat (x) C_lon) or, for moderate grids, as one dense S x S matrix
(`IsotropicExponential`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

import numpy as np

from .grid import FluxGrid


def exponential_correlation(coords: np.ndarray, length: float) -> np.ndarray:
    """exp(-|c_i - c_j| / length) for 1-D coordinates; `length` <= 0 gives the identity."""
    coords = np.asarray(coords, dtype=float)
    if length <= 0:
        return np.eye(coords.size)
    return np.exp(-np.abs(coords[:, None] - coords[None, :]) / length)


def prior_sigma(prior: np.ndarray, fraction: float, floor: float) -> np.ndarray:
    """Prior 1-sigma per state element: max(fraction * |prior|, floor), in the prior's units."""
    if fraction < 0 or floor < 0:
        raise ValueError("prior uncertainty fraction and floor must not be negative")
    return np.maximum(fraction * np.abs(np.asarray(prior, dtype=float)), floor)


class SpatialCorrelation(Protocol):
    """A symmetric S x S correlation of the cells, applied to rows: V -> V C (V shaped (k, S))."""

    n_cells: int
    shape: tuple[int, int]

    def apply(self, rows: np.ndarray) -> np.ndarray: ...

    def apply_columns(self, columns: np.ndarray) -> np.ndarray: ...

    def apply_columns_on(self, cells: np.ndarray, columns: np.ndarray, out: np.ndarray | None = None) -> np.ndarray: ...

    def dense(self) -> np.ndarray: ...


def _is_markov(c: np.ndarray) -> bool:
    """Whether the symmetric correlation c has c[i, j] = c[i, k] c[k, j] for all i <= k <= j.

    True of exp(-|x_i - x_j| / L) on monotone coordinates (and of the identity): c[:, lo:hi] @ v is
    then, at i < lo, c[i, lo] times its value at lo, and at i >= hi, c[i, hi - 1] times its value at
    hi - 1.
    """
    n = c.shape[0]
    if not (np.array_equal(c, c.T) and np.all(np.diag(c) == 1.0)):
        return False
    chained = c[:-1, :-1] * np.diag(c, 1)[None, :]  # c[i, j-1] c[j-1, j]: by induction the chain
    upper = np.triu(np.ones((n - 1, n - 1), dtype=bool))
    # atol: products of subnormal factors lose relative precision, not correctness
    return bool(np.allclose(c[:-1, 1:][upper], chained[upper], rtol=1e-12, atol=1e-300))


@dataclass(frozen=True)
class SeparableExponential:
    """C_space = C_lat (x) C_lon, exp(-|dy|/L) * exp(-|dx|/L) on the grid's local plane (km).

    Exponential along each axis (an L1-distance exponential): a valid correlation whose Kronecker
    form costs O(S (ny + nx)) per vector and no S x S storage, which is what makes a 100 x 100
    city grid over a month tractable.
    """

    c_lat: np.ndarray
    c_lon: np.ndarray

    @classmethod
    def on_grid(cls, grid: FluxGrid, length_km: float) -> "SeparableExponential":
        y, x = grid.local_km()
        return cls(exponential_correlation(y, length_km), exponential_correlation(x, length_km))

    @property
    def n_cells(self) -> int:
        return self.c_lat.shape[0] * self.c_lon.shape[0]

    @property
    def shape(self) -> tuple[int, int]:
        return (self.c_lat.shape[0], self.c_lon.shape[0])

    def apply(self, rows: np.ndarray) -> np.ndarray:
        ny, nx = self.c_lat.shape[0], self.c_lon.shape[0]
        k = rows.shape[0]
        tmp = rows.reshape(k * ny, nx) @ self.c_lon  # (k*ny, nx)
        tmp = tmp.reshape(k, ny, nx).transpose(1, 0, 2).reshape(ny, k * nx)
        out = (self.c_lat @ tmp).reshape(ny, k, nx).transpose(1, 0, 2)
        return np.ascontiguousarray(out).reshape(k, ny * nx)

    def apply_columns(self, columns: np.ndarray) -> np.ndarray:
        """C_space applied to columns shaped (S, k), result in the same layout."""
        ny, nx = self.shape
        k = columns.shape[1]
        tmp = np.matmul(self.c_lon, columns.reshape(ny, nx, k))  # along lon, per lat row
        return (self.c_lat @ tmp.reshape(ny, nx * k)).reshape(ny * nx, k)

    @cached_property
    def _markov(self) -> tuple[bool, bool]:
        return _is_markov(self.c_lat), _is_markov(self.c_lon)

    def apply_columns_on(self, cells: np.ndarray, columns: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """C_space[:, cells] @ columns for columns (len(cells), k) that are zero off `cells`, (S, k),
        written into `out` (S, k) when given.

        Only the bounding box of `cells` enters the products. With exponential factors
        (`_is_markov`) the box is correlated within itself (about |box| (hy + hx) per column) and
        every value outside it is an edge value of the box times one factor per axis, exactly;
        otherwise the products run over whole rows of the grid, about |box rows| * nx * (|box cols|
        + ny) per column (or the same along lat first, whichever is less).
        """
        ny, nx = self.shape
        k = columns.shape[1]
        if out is None:
            out = np.empty((ny * nx, k))
        if cells.size == 0:
            out[...] = 0.0
            return out
        iy, ix = np.divmod(cells, nx)
        y0, x0 = iy.min(), ix.min()
        y1, x1 = iy.max() + 1, ix.max() + 1
        hy, hx = y1 - y0, x1 - x0
        if all(self._markov):
            box = np.zeros((hy, hx, k))
            box[iy - y0, ix - x0] = columns
            inner = (self.c_lat[y0:y1, y0:y1] @ box.reshape(hy, hx * k)).reshape(hy, hx, k)
            grid = np.reshape(out, (ny, nx, k), copy=False)  # a view, also of a column slice of a wider array
            rows = grid[y0:y1]
            np.matmul(self.c_lon[x0:x1, x0:x1], inner, out=rows[:, x0:x1])  # along lon, per box row
            # outside the box: edge values times one factor per axis, written in place
            np.multiply(self.c_lon[:x0, x0, None], rows[:, x0:x0 + 1], out=rows[:, :x0])
            np.multiply(self.c_lon[x1:, x1 - 1, None], rows[:, x1 - 1 : x1], out=rows[:, x1:])
            np.multiply(self.c_lat[:y0, y0, None, None], grid[y0:y0 + 1], out=grid[:y0])
            np.multiply(self.c_lat[y1:, y1 - 1, None, None], grid[y1 - 1 : y1], out=grid[y1:])
            return out
        if hy * (nx + hx) <= hx * (ny + hy):  # along lon first: box (hx, hy, k)
            box = np.zeros((hx, hy, k))
            box[ix - x0, iy - y0] = columns
            tmp = self.c_lon[:, x0:x1] @ box.reshape(hx, hy * k)  # (nx, hy * k)
            tmp = np.ascontiguousarray(tmp.reshape(nx, hy, k).transpose(1, 0, 2)).reshape(hy, nx * k)
            out[...] = (self.c_lat[:, y0:y1] @ tmp).reshape(ny * nx, k)
            return out
        box = np.zeros((hy, hx, k))  # along lat first
        box[iy - y0, ix - x0] = columns
        tmp = self.c_lat[:, y0:y1] @ box.reshape(hy, hx * k)  # (ny, hx * k)
        tmp = np.ascontiguousarray(tmp.reshape(ny, hx, k).transpose(1, 0, 2)).reshape(hx, ny * k)
        np.reshape(out, (ny, nx, k), copy=False)[...] = (self.c_lon[:, x0:x1] @ tmp).reshape(nx, ny, k).transpose(1, 0, 2)
        return out

    def dense(self) -> np.ndarray:
        return np.kron(self.c_lat, self.c_lon)


MAX_DENSE_CELLS = 20_000
"""Largest grid for which `IsotropicExponential` holds its S x S matrix (3.2 GB at the limit)."""


@dataclass(frozen=True)
class IsotropicExponential:
    """C_space = exp(-d/L), d the distance (km) between cell centres on the grid's local plane.

    Held as one dense S x S matrix (built from its block-Toeplitz table), so for moderate grids only.
    """

    matrix: np.ndarray
    shape: tuple[int, int]

    @classmethod
    def on_grid(cls, grid: FluxGrid, length_km: float) -> "IsotropicExponential":
        if grid.n_cells > MAX_DENSE_CELLS:
            raise ValueError(
                f"isotropic spatial correlation holds an S x S matrix: {grid.n_cells} cells is more"
                f" than {MAX_DENSE_CELLS}; use spatial_model = \"separable\""
            )
        y, x = grid.local_km()
        if length_km <= 0:
            return cls(np.eye(grid.n_cells), (grid.ny, grid.nx))
        dy = np.abs(y - y[0])  # regular grid: distance depends only on the index offsets
        dx = np.abs(x - x[0])
        table = np.exp(-np.hypot(dy[:, None], dx[None, :]) / length_km)  # (ny, nx)
        iy = np.repeat(np.arange(grid.ny), grid.nx)
        ix = np.tile(np.arange(grid.nx), grid.ny)
        matrix = np.empty((grid.n_cells, grid.n_cells))
        for a in range(grid.ny):  # one block row at a time keeps the temporaries small
            rows = slice(a * grid.nx, (a + 1) * grid.nx)
            matrix[rows] = table[np.abs(iy[None, :] - a), np.abs(ix[None, :] - ix[rows, None])]
        return cls(matrix, (grid.ny, grid.nx))

    @property
    def n_cells(self) -> int:
        return self.matrix.shape[0]

    def apply(self, rows: np.ndarray) -> np.ndarray:
        return rows @ self.matrix

    def apply_columns(self, columns: np.ndarray) -> np.ndarray:
        return self.matrix @ columns

    def apply_columns_on(self, cells: np.ndarray, columns: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        return np.matmul(self.matrix[:, cells], columns, out=out)

    def dense(self) -> np.ndarray:
        return self.matrix


def spatial_correlation(grid: FluxGrid, length_km: float, model: str) -> SpatialCorrelation:
    """The spatial correlation `model` ("separable" or "isotropic") on `grid`."""
    if model == "separable":
        return SeparableExponential.on_grid(grid, length_km)
    if model == "isotropic":
        return IsotropicExponential.on_grid(grid, length_km)
    raise ValueError(f"unknown spatial model {model!r} (known: separable, isotropic)")


@dataclass(frozen=True)
class PriorCovariance:
    """B for a state shaped (sector, step, cell): per sector D_k (C_time (x) C_space) D_k.

    `sigma` is (n_sectors, n_steps, n_cells) in umol m-2 s-1; `c_time` is (n_steps, n_steps).
    """

    sigma: np.ndarray
    c_time: np.ndarray
    spatial: SpatialCorrelation

    def __post_init__(self) -> None:
        if self.sigma.ndim != 3:
            raise ValueError("sigma must be shaped (sector, step, cell)")
        _, t, s = self.sigma.shape
        if self.c_time.shape != (t, t):
            raise ValueError(f"temporal correlation is {self.c_time.shape}, expected ({t}, {t})")
        if self.spatial.n_cells != s:
            raise ValueError(f"spatial correlation has {self.spatial.n_cells} cells, sigma {s}")

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.sigma.shape  # type: ignore[return-value]

    def correlate(self, fields: np.ndarray) -> np.ndarray:
        """(C_time (x) C_space) applied to fields shaped (q, step, cell)."""
        q, t, s = fields.shape
        spaced = self.spatial.apply(fields.reshape(q * t, s)).reshape(q, t, s)
        return np.einsum("ij,qjs->qis", self.c_time, spaced, optimize=True)

    def apply(self, fields: np.ndarray) -> np.ndarray:
        """B applied to fields shaped (q, sector, step, cell); units (umol m-2 s-1)^2 x input."""
        q = fields.shape[0]
        k, t, s = self.shape
        scaled = (fields * self.sigma[None]).reshape(q * k, t, s)
        return self.correlate(scaled).reshape(q, k, t, s) * self.sigma[None]


def observation_error(
    measurement_sigma: np.ndarray,
    mismatch_sigma: np.ndarray,
    station: np.ndarray,
    hours: np.ndarray,
    mismatch_tau_hours: float = 0.0,
    background_sigma: np.ndarray | None = None,
    background_group: np.ndarray | None = None,
) -> np.ndarray:
    """R (ppm^2, m x m): measurement + model-data mismatch + shared background error.

    - measurement_sigma (ppm): instrument uncertainty per observation (e.g. from target-gas
      statistics), independent between observations;
    - mismatch_sigma (ppm): model-data mismatch, correlated in time within a station as
      exp(-|dt| / tau) when `mismatch_tau_hours` > 0, otherwise independent;
    - background_sigma (ppm) with background_group: the error of the background subtracted from
      each observation; observations that share one background value (same group) share its error.
    """
    u = np.asarray(measurement_sigma, dtype=float)
    mdm = np.asarray(mismatch_sigma, dtype=float)
    m = u.size
    r = np.diag(u**2)
    if mismatch_tau_hours > 0:
        same = np.asarray(station)[:, None] == np.asarray(station)[None, :]
        lag = np.abs(np.asarray(hours, float)[:, None] - np.asarray(hours, float)[None, :])
        r += np.where(same, np.exp(-lag / mismatch_tau_hours), 0.0) * np.outer(mdm, mdm)
    else:
        r[np.diag_indices(m)] += mdm**2
    if background_sigma is not None:
        bg = np.asarray(background_sigma, dtype=float)
        if background_group is None:
            r[np.diag_indices(m)] += bg**2
        else:
            grp = np.asarray(background_group)
            r += np.where(grp[:, None] == grp[None, :], np.outer(bg, bg), 0.0)
    return r
