"""Per-cell monthly posterior 1-sigma per sector against the diagonal of the dense posterior covariance."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from test_solver import random_problem  # this folder is on sys.path under pytest

from central.inversion import reference as ref
from central.inversion import solver
from central.inversion.aggregates import monthly_mean_weights
from central.inversion.solver import solve


def dense_cell_sigmas(grid, problem, model, weights):
    """sqrt(diag(G B G')) and sqrt(diag(G P G')) with P = B - B H' M^-1 H B formed in full."""
    b = ref.dense_prior_covariance(grid, problem.covariance.sigma, 8.0, 2.0, model)
    h = ref.dense_h(problem.h, problem.prior.shape[0])
    r = np.diag(problem.r) if problem.r.ndim == 1 else problem.r
    bht = b @ h.T
    p = b - bht @ np.linalg.solve(h @ bht + r, bht.T)
    k, t, s = problem.prior.shape
    n_months = weights.shape[0]
    g = np.zeros((k, n_months, s, k, t, s))
    for j in range(k):
        for mo in range(n_months):
            g[j, mo, np.arange(s), j, :, np.arange(s)] = weights[mo]
    g = g.reshape(k * n_months * s, k * t * s)
    shape = (k, n_months, s)
    return (np.sqrt(np.einsum("qi,ij,qj->q", g, b, g)).reshape(shape),
            np.sqrt(np.einsum("qi,ij,qj->q", g, p, g)).reshape(shape))


@pytest.mark.parametrize("seed,model,sectors", [(0, "separable", 1), (1, "isotropic", 2), (2, "separable", 2)])
def test_cell_sigmas_equal_the_dense_posterior_covariance_diagonal(seed, model, sectors):
    grid, problem = random_problem(seed, model, sectors, correlated_r=bool(seed % 2))
    months, weights = monthly_mean_weights(grid)
    assert len(months) == 2  # the problem straddles a month: both months' means are checked
    post = solve(dataclasses.replace(problem, month_weights=weights))
    prior_sd, post_sd = dense_cell_sigmas(grid, problem, model, weights)
    assert post.prior_cell_sigma.shape == post.posterior_cell_sigma.shape == (sectors, 2, grid.n_cells)
    assert np.max(np.abs(post.prior_cell_sigma - prior_sd) / prior_sd) < 1e-10
    assert np.max(np.abs(post.posterior_cell_sigma - post_sd) / post_sd) < 1e-10
    reduction = 1 - post_sd / prior_sd
    assert reduction.max() > 0.01 and reduction.min() >= -1e-12  # the data inform some cells, none get worse


def test_cell_sigmas_are_not_computed_unless_asked():
    _, problem = random_problem(3, "separable", 1)
    post = solve(problem)
    assert post.prior_cell_sigma is None and post.posterior_cell_sigma is None


@pytest.mark.parametrize("block_rows", [3, 7])
def test_cell_sigmas_from_many_small_groups_equal_the_dense_diagonal(monkeypatch, block_rows):
    # small groups of footprint rows: an observation's two rows (two flux steps) often fall in
    # different groups, and a group's observations in several runs of the factor's order, which
    # H B G' adds range by range; the result must not depend on the grouping
    monkeypatch.setattr(solver, "BLOCK_ROWS", block_rows)
    grid, problem = random_problem(4, "separable", 2, m=60, correlated_r=True)
    assert problem.h.n_rows > problem.h.n_obs  # some observations have rows on two steps
    months, weights = monthly_mean_weights(grid)
    post = solve(dataclasses.replace(problem, month_weights=weights))
    prior_sd, post_sd = dense_cell_sigmas(grid, problem, "separable", weights)
    assert np.max(np.abs(post.prior_cell_sigma - prior_sd) / prior_sd) < 1e-10
    assert np.max(np.abs(post.posterior_cell_sigma - post_sd) / post_sd) < 1e-10
    assert (1 - post_sd / prior_sd).max() > 0.01
