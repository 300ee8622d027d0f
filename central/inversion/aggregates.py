"""Aggregation operators: the region's total per month (and per sector), in Mt of the species.

An aggregate is a linear function of the state, total = sum(w * x), with w in
Mt per (umol m-2 s-1): w = overlap of the flux step with the month (s) * cell area (m2) *
region fraction of the cell * 1e-6 mol/umol * M g/mol * 1e-12 Mt/g.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .grid import FluxGrid
from .units import umol_per_s_to_mt


@dataclass(frozen=True)
class Aggregation:
    """Rows of G: `weights` (q, sector, step, cell) in Mt per (umol m-2 s-1), with their labels."""

    weights: np.ndarray
    month: list[str]
    sector: list[str]

    @property
    def size(self) -> int:
        return self.weights.shape[0]


def month_overlaps(grid: FluxGrid) -> tuple[list[str], np.ndarray]:
    """Calendar months (YYYY-MM) the flux steps touch, and seconds of each step in each month."""
    start = grid.step_start.astype("datetime64[M]")[0]
    stop = (grid.step_end - np.timedelta64(1, "s")).astype("datetime64[M]").max()
    months = np.arange(start, stop + np.timedelta64(1, "M"))
    s0 = grid.step_start.astype(np.int64)
    s1 = grid.step_end.astype(np.int64)
    overlap = np.zeros((months.size, grid.n_steps))
    for i, month in enumerate(months):
        m0 = month.astype("datetime64[s]").astype(np.int64)
        m1 = (month + np.timedelta64(1, "M")).astype("datetime64[s]").astype(np.int64)
        overlap[i] = np.clip(np.minimum(s1, m1) - np.maximum(s0, m0), 0, None)
    return [str(m) for m in months], overlap


def region_totals(
    grid: FluxGrid,
    region_fraction: np.ndarray,
    molar_mass_g_per_mol: float,
    sectors: list[str],
) -> Aggregation:
    """Monthly totals over the region: all sectors together, then each sector when there are >1.

    `region_fraction` (ny, nx) is the part of each cell inside the region, 0..1.
    """
    frac = np.asarray(region_fraction, dtype=float)
    if frac.shape != (grid.ny, grid.nx):
        raise ValueError(f"region mask is {frac.shape}, flux grid ({grid.ny}, {grid.nx})")
    if not np.all(np.isfinite(frac)) or frac.min() < 0 or frac.max() > 1:
        raise ValueError("region mask must hold fractions between 0 and 1")
    if frac.sum() == 0:
        raise ValueError("region mask selects no cell")
    months, overlap = month_overlaps(grid)
    per_cell = (grid.areas_m2() * frac).ravel() * umol_per_s_to_mt(molar_mass_g_per_mol)
    k = len(sectors)
    rows, month_labels, sector_labels = [], [], []
    for i, month in enumerate(months):
        base = overlap[i][:, None] * per_cell[None, :]  # (step, cell)
        rows.append(np.broadcast_to(base, (k, *base.shape)))
        month_labels.append(month)
        sector_labels.append("total")
        if k > 1:
            for j, name in enumerate(sectors):
                w = np.zeros((k, *base.shape))
                w[j] = base
                rows.append(w)
                month_labels.append(month)
                sector_labels.append(name)
    return Aggregation(np.stack(rows), month_labels, sector_labels)


def monthly_mean_weights(grid: FluxGrid) -> tuple[list[str], np.ndarray]:
    """Calendar months and weights (month, step) that average the flux steps into each month's mean
    flux over the part of the month inside the period (each row sums to 1)."""
    months, overlap = month_overlaps(grid)
    return months, overlap / overlap.sum(axis=1, keepdims=True)
