"""The observation-space solver against straightforward dense formulas, and its clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from central.inversion import reference as ref
from central.inversion.aggregates import region_totals
from central.inversion.covariance import (
    PriorCovariance,
    exponential_correlation,
    observation_error,
    prior_sigma,
    spatial_correlation,
)
from central.inversion.footprints import ObsOperator
from central.inversion.grid import FluxGrid, daily_steps
from central.inversion.solver import InversionProblemError, Problem, posterior_covariance, solve

RTOL = 1e-8


def random_problem(seed: int, model: str, sectors: int, ny=7, nx=9, steps=4, m=40, correlated_r=False):
    rng = np.random.default_rng(seed)
    starts, seconds = daily_steps(np.datetime64("2024-01-29T00:00:00"), steps, 24)  # straddles a month
    grid = FluxGrid(39.0 + 0.05 * np.arange(ny), 116.0 + 0.05 * np.arange(nx), starts, seconds)
    prior = rng.gamma(2.0, 5.0, size=(sectors, steps, grid.n_cells)) * (rng.random((sectors, steps, grid.n_cells)) > 0.2)
    sigma = prior_sigma(prior, 0.4, 0.3)
    cov = PriorCovariance(sigma, exponential_correlation(grid.step_mid_days(), 2.0),
                          spatial_correlation(grid, 8.0, model))
    rows, obs, step = [], [], []
    for i in range(m):  # each observation sees one or two consecutive steps, a patch of cells
        first = rng.integers(0, steps)
        for t in range(first, min(first + rng.integers(1, 3), steps)):
            row = rng.random(grid.n_cells) * (rng.random(grid.n_cells) < 0.15) * 0.01
            rows.append(row)
            obs.append(i)
            step.append(t)
    h = ObsOperator(sp.csr_matrix(np.array(rows)), np.array(obs), np.array(step), m, steps)
    station = np.array([f"S{i % 3}" for i in range(m)])
    if correlated_r:
        r = observation_error(rng.uniform(0.1, 0.3, m), np.full(m, 0.8), station, np.arange(m) * 1.0, 5.0,
                              np.full(m, 0.2), np.arange(m) // 4)
    else:
        r = rng.uniform(0.2, 1.5, m) ** 2
    y = h.apply(prior.sum(axis=0)[None])[:, 0] + rng.normal(0, 2.0, m)
    region = (rng.random((ny, nx)) > 0.5).astype(float)
    agg = region_totals(grid, region, 44.0095, [f"k{j}" for j in range(sectors)] if sectors > 1 else ["total"])
    return grid, Problem(prior, cov, h, y, r, agg, station)


def dense_answers(grid, problem, model):
    b = ref.dense_prior_covariance(grid, problem.covariance.sigma, 8.0, 2.0, model)
    h = ref.dense_h(problem.h, problem.prior.shape[0])
    g = problem.aggregation.weights.reshape(problem.aggregation.size, -1)
    xa = problem.prior.ravel()
    return (b, h, ref.solve_observation_space(b, h, problem.r, problem.y, xa, g),
            ref.solve_state_space(b, h, problem.r, problem.y, xa, g))


def rel(a, b):
    return np.max(np.abs(a - b)) / np.max(np.abs(b))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("model", ["separable", "isotropic"])
@pytest.mark.parametrize("sectors", [1, 2])
def test_posterior_equals_dense_reference_on_random_problems(seed, model, sectors):
    grid, problem = random_problem(seed, model, sectors, correlated_r=bool(seed % 2))
    post = solve(problem)
    _, _, obs_space, state_space = dense_answers(grid, problem, model)
    xa = problem.prior.ravel()
    for dense in (obs_space, state_space):
        assert rel(post.mean.ravel() - xa, dense.mean - xa) < RTOL
        assert rel(post.posterior_total_cov, dense.aggregate_cov) < RTOL
        assert rel(post.prior_total_cov, dense.prior_aggregate_cov) < RTOL
        assert abs(post.diagnostics["dofs"] - dense.dofs) < RTOL * dense.dofs
        assert abs(post.diagnostics["chi2_reduced"] - dense.chi2_reduced) < RTOL * dense.chi2_reduced
    prior_sd, post_sd = post.total_sigmas()
    assert np.all(post_sd <= prior_sd)
    assert len(post.prior_totals) == problem.aggregation.size == 2 * (1 + (sectors > 1) * sectors)


def test_full_posterior_covariance_on_request_equals_dense():
    grid, problem = random_problem(11, "separable", 1)
    b, h, _, _ = dense_answers(grid, problem, "separable")
    r = np.diag(problem.r)
    p_dense = b - b @ h.T @ np.linalg.solve(h @ b @ h.T + r, h @ b)
    assert rel(posterior_covariance(problem), p_dense) < RTOL


def test_full_posterior_covariance_refused_for_a_large_state():
    _, problem = random_problem(1, "separable", 1)
    with pytest.raises(InversionProblemError, match="full posterior covariance"):
        posterior_covariance(problem, max_state=100)


def replace(problem, **changes):
    fields = dict(prior=problem.prior, covariance=problem.covariance, h=problem.h, y=problem.y, r=problem.r,
                  aggregation=problem.aggregation, station=problem.station)
    fields.update(changes)
    return Problem(**fields)


def test_nan_observation_is_named():
    _, problem = random_problem(2, "separable", 1)
    y = problem.y.copy()
    y[3] = np.nan
    with pytest.raises(InversionProblemError, match="observations: NaN"):
        solve(replace(problem, y=y))


def test_observation_count_mismatch_is_named():
    _, problem = random_problem(2, "separable", 1)
    with pytest.raises(InversionProblemError, match="footprints for 40 observations, 39 observations"):
        solve(replace(problem, y=problem.y[:-1], r=problem.r[:-1]))


def test_prior_shape_mismatch_is_named():
    _, problem = random_problem(2, "separable", 1)
    with pytest.raises(InversionProblemError, match="prior is"):
        solve(replace(problem, prior=problem.prior[:, :-1]))


def test_non_positive_definite_observation_error_is_refused():
    _, problem = random_problem(2, "separable", 1)
    r = np.diag(problem.r)
    r[0, 1] = r[1, 0] = 50.0  # a correlation far above 1
    with pytest.raises(InversionProblemError, match="not positive definite"):
        solve(replace(problem, r=r))


def test_zero_observation_error_is_refused():
    _, problem = random_problem(2, "separable", 1)
    r = problem.r.copy()
    r[5] = 0.0
    with pytest.raises(InversionProblemError, match="observation error variance must be positive"):
        solve(replace(problem, r=r))


def test_duplicated_observations_with_negligible_error_are_ill_conditioned():
    _, problem = random_problem(2, "separable", 1)
    h = problem.h
    rows = sp.vstack([h.rows, h.rows]).tocsr()
    dup = ObsOperator(rows, np.concatenate([h.row_obs, h.row_obs + h.n_obs]),
                      np.concatenate([h.row_step, h.row_step]), 2 * h.n_obs, h.n_steps)
    y = np.concatenate([problem.y, problem.y])
    scale = np.abs(solve(problem).innovation).max() ** 2  # ppm^2, the size of H B H'
    with pytest.raises(InversionProblemError, match="ill-conditioned"):
        solve(replace(problem, h=dup, y=y, r=np.full(2 * h.n_obs, 1e-15 * scale), station=None))
    with pytest.raises(InversionProblemError, match="numerically singular"):
        solve(replace(problem, h=dup, y=y, r=np.full(2 * h.n_obs, 1e-40), station=None))


def test_diagnostics_are_reported():
    _, problem = random_problem(3, "separable", 1)
    d = solve(problem).diagnostics
    assert 0 < d["dofs"] < problem.y.size
    assert d["n_obs"] == 40 and d["n_state"] == problem.prior.size
    assert set(d["innovation_by_station"]) == {"S0", "S1", "S2"}
    assert d["residual"]["rms_ppm"] < d["innovation"]["rms_ppm"]


def test_solve_leaves_blas_thread_counts_as_they_were():
    # solve runs single-threaded BLAS but in its large LAPACK calls; an error must restore it too
    from central.inversion import blas

    _, problem = random_problem(1, "separable", 1)
    before = [get() for _, get, _ in blas._libraries()]
    solve(problem)
    assert [get() for _, get, _ in blas._libraries()] == before
    with pytest.raises(InversionProblemError):
        solve(replace(problem, y=np.full(problem.y.size, np.nan)))
    assert [get() for _, get, _ in blas._libraries()] == before
