"""Straightforward dense formulas: the yardstick for the solver in tests and the benchmark.

B is formed in full from pairwise distances (independently of covariance.py's Kronecker code),
H in full, and the posterior is computed with the textbook observation-space formula and, for
small problems, the state-space one. Only for problems that fit in memory as n x n.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .footprints import ObsOperator
from .grid import FluxGrid


def dense_prior_covariance(
    grid: FluxGrid, sigma: np.ndarray, length_km: float, tau_days: float, spatial_model: str
) -> np.ndarray:
    """B in full, (n, n) with n = sectors * steps * cells; sectors independent."""
    y, x = grid.local_km()
    yy = np.repeat(y, grid.nx)
    xx = np.tile(x, grid.ny)
    dy = np.abs(yy[:, None] - yy[None, :])
    dx = np.abs(xx[:, None] - xx[None, :])
    if length_km <= 0:
        c_space = np.eye(grid.n_cells)
    elif spatial_model == "separable":
        c_space = np.exp(-(dy + dx) / length_km)
    else:
        c_space = np.exp(-np.sqrt(dy**2 + dx**2) / length_km)
    del dy, dx
    t = grid.step_mid_days()
    c_time = np.exp(-np.abs(t[:, None] - t[None, :]) / tau_days) if tau_days > 0 else np.eye(t.size)
    c = np.kron(c_time, c_space)
    del c_space
    k = sigma.shape[0]
    n1 = c.shape[0]
    b = np.zeros((k * n1, k * n1))
    for j in range(k):
        s = sigma[j].ravel()
        b[j * n1 : (j + 1) * n1, j * n1 : (j + 1) * n1] = s[:, None] * c * s[None, :]
    return b


@dataclass
class DenseSolution:
    mean: np.ndarray  # (n,)
    aggregate_cov: np.ndarray | None  # (q, q) posterior, Mt^2
    prior_aggregate_cov: np.ndarray | None
    dofs: float
    chi2_reduced: float


def dense_h(h: ObsOperator, n_sectors: int) -> np.ndarray:
    """H over the full state (all sectors see the same footprints)."""
    return np.tile(h.dense(), (1, n_sectors))


def solve_observation_space(
    b: np.ndarray, h: np.ndarray, r: np.ndarray, y: np.ndarray, xa: np.ndarray, g: np.ndarray | None
) -> DenseSolution:
    """x = xa + B H' (H B H' + R)^-1 (y - H xa); P = B - B H' (H B H' + R)^-1 H B."""
    r = np.diag(r) if r.ndim == 1 else r
    bht = b @ h.T
    hbh = h @ bht
    m = hbh + r
    d = y - h @ xa
    x = xa + bht @ np.linalg.solve(m, d)
    dofs = float(np.sum(hbh * np.linalg.inv(m)))  # trace(H B H' M^-1), both symmetric
    chi2 = float(d @ np.linalg.solve(m, d) / y.size)
    if g is None:
        return DenseSolution(x, None, None, dofs, chi2)
    prior = g @ b @ g.T
    gbht = g @ bht
    post = prior - gbht @ np.linalg.solve(m, gbht.T)
    return DenseSolution(x, post, prior, dofs, chi2)


def solve_state_space(
    b: np.ndarray, h: np.ndarray, r: np.ndarray, y: np.ndarray, xa: np.ndarray, g: np.ndarray | None
) -> DenseSolution:
    """x = xa + (B^-1 + H' R^-1 H)^-1 H' R^-1 (y - H xa); P = (B^-1 + H' R^-1 H)^-1."""
    r = np.diag(r) if r.ndim == 1 else r
    rinv = np.linalg.inv(r)
    p = np.linalg.inv(np.linalg.inv(b) + h.T @ rinv @ h)
    d = y - h @ xa
    x = xa + p @ (h.T @ (rinv @ d))
    dofs = float(np.trace(p @ h.T @ rinv @ h))
    xb = x - xa
    resid = y - h @ x
    chi2 = float((xb @ np.linalg.solve(b, xb) + resid @ rinv @ resid) / y.size)
    if g is None:
        return DenseSolution(x, None, None, dofs, chi2)
    return DenseSolution(x, g @ p @ g.T, g @ b @ g.T, dofs, chi2)
