"""The pieces of the fast observation-space path (Gram matrix, factor, DOFS trace) against plain dense formulas."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from central.inversion import blas
from central.inversion.covariance import (
    SeparableExponential,
    _is_markov,
    exponential_correlation,
    observation_error,
    spatial_correlation,
)
from central.inversion.grid import FluxGrid, daily_steps
from central.inversion.solver import (
    RCOND_LIMIT,
    RUN_ROWS,
    InversionProblemError,
    _block_runs,
    cholesky,
    factorize,
    inverse_parts,
    observation_error_entries,
    reciprocal_condition,
    spatial_gram,
    trace_minv_r,
)


def _grid(ny: int, nx: int) -> FluxGrid:
    starts, seconds = daily_steps(np.datetime64("2026-01-01T00:00:00"), 1)
    return FluxGrid(40.0 + 0.01 * np.arange(ny), -86.0 + 0.012 * np.arange(nx), starts, seconds)


def _gaussian(coords: np.ndarray, length: float) -> np.ndarray:
    return np.exp(-(((coords[:, None] - coords[None, :]) / length) ** 2))


def _spatial(grid: FluxGrid, model: str):
    if model == "separable, not exponential":  # the general product path, without edge extension
        y, x = grid.local_km()
        return SeparableExponential(_gaussian(y, 5.0), _gaussian(x, 5.0))
    return spatial_correlation(grid, 5.0, model)


@pytest.mark.parametrize("model", ["separable", "isotropic", "separable, not exponential"])
@pytest.mark.parametrize("box", [(3, 14), (14, 3), (9, 9)])
@pytest.mark.parametrize("corner", [(2, 4), (0, 0), "far"])
def test_correlation_of_columns_on_a_few_cells_equals_the_dense_product(model, box, corner):
    grid = _grid(17, 19)
    corr = _spatial(grid, model)
    if model.startswith("separable"):  # which path runs: the exact edge extension, or the general products
        assert corr._markov == ((True, True) if model == "separable" else (False, False))
    rng = np.random.default_rng(1)
    y0, x0 = (grid.ny - box[0], grid.nx - box[1]) if corner == "far" else corner
    iy, ix = np.mgrid[y0 : y0 + box[0], x0 : x0 + box[1]]
    cells = np.sort(rng.choice((iy * grid.nx + ix).ravel(), size=box[0] * box[1] // 2, replace=False))
    columns = rng.normal(size=(cells.size, 5))
    expected = corr.dense()[:, cells] @ columns
    np.testing.assert_allclose(corr.apply_columns_on(cells, columns), expected, rtol=1e-12, atol=1e-12)
    wide = np.full((grid.n_cells, 9), np.nan)  # written into a column slice of a wider array
    corr.apply_columns_on(cells, columns, out=wide[:, 2:7])
    np.testing.assert_allclose(wide[:, 2:7], expected, rtol=1e-12, atol=1e-12)
    assert np.isnan(wide[:, :2]).all() and np.isnan(wide[:, 7:]).all()


def test_exponential_factors_are_recognised_for_the_exact_edge_extension():
    coords = np.cumsum(np.random.default_rng(4).uniform(0.5, 2.0, 30))  # irregular, increasing
    assert _is_markov(exponential_correlation(coords, 3.0))
    assert _is_markov(exponential_correlation(coords[::-1], 3.0))  # decreasing (latitudes north to south)
    assert _is_markov(np.eye(30))
    assert not _is_markov(_gaussian(coords, 3.0))
    assert not _is_markov(0.5 * exponential_correlation(coords, 3.0))  # not a correlation


@pytest.mark.parametrize("block", [1, 7, 64])
def test_spatial_gram_equals_g_c_g_transpose(block):
    grid = _grid(23, 21)
    corr = spatial_correlation(grid, 4.0, "separable")
    rng = np.random.default_rng(2)
    g = sp.random(90, grid.n_cells, density=0.05, random_state=3, format="csr")
    g.data = rng.uniform(0.1, 1.0, g.nnz)
    g = sp.vstack([g, sp.csr_matrix((1, grid.n_cells))], format="csr")  # an empty row too
    k, order = spatial_gram(g, corr, block=block)
    dense = g.toarray()[order]
    expected = dense @ corr.dense() @ dense.T
    np.testing.assert_allclose(k, expected, rtol=1e-12, atol=1e-12 * np.abs(expected).max())
    assert np.array_equal(k, k.T)
    assert np.array_equal(np.sort(order), np.arange(g.shape[0]))


@pytest.mark.parametrize("n_rows", [1, 8, 13, 64])
def test_block_runs_hold_every_entry_of_their_rows(n_rows):
    # the tiles of the Gram matrix are products over each run's range of cells: every entry of a
    # run's rows must lie inside it, and an empty run must span no cells
    rng = np.random.default_rng(n_rows)
    rows = rng.permutation(n_rows)  # the block's rows, in the order given
    g = sp.random(n_rows, 400, density=0.1, random_state=n_rows, format="lil")
    g[rows[n_rows // 2], :] = 0.0  # an empty row
    if n_rows >= 16:
        g[rows[8:16], :] = 0.0  # an empty run
    g = g.tocsr()
    g.data = rng.uniform(0.1, 1.0, g.nnz)
    block = _block_runs(g, rows)
    assert np.array_equal(np.sort(block.cells), np.unique(g[rows].indices))
    dense = g[rows].toarray()[:, block.cells]
    np.testing.assert_array_equal(block.columns, dense.T)
    rebuilt = np.zeros_like(dense)
    for r0, r1, c0, c1, run in block.runs:
        assert run.shape == (r1 - r0, c1 - c0) and run.flags.c_contiguous
        rebuilt[r0:r1, c0:c1] = run
    np.testing.assert_array_equal(rebuilt, dense)
    assert [(r0, r1) for r0, r1, *_ in block.runs] == [(r, min(n_rows, r + RUN_ROWS)) for r in range(0, n_rows, RUN_ROWS)]
    if n_rows >= 16:
        assert block.runs[1][2:4] == (0, 0)


def _spd(m: int, seed: int) -> np.ndarray:
    a = np.random.default_rng(seed).normal(size=(m, m + 5))
    return a @ a.T / m + np.eye(m)


@pytest.mark.parametrize("m", [1, 100, 700])
def test_factorize_gives_lapacks_lower_factor_without_touching_its_input(m):
    hbh = _spd(m, m)
    before = hbh.copy()
    r = np.full(m, 0.5)
    chol, rcond = factorize(hbh, r)
    assert np.array_equal(hbh, before)
    np.testing.assert_allclose(chol, np.linalg.cholesky(hbh + np.diag(r)), rtol=1e-10, atol=1e-12)
    assert np.all(np.triu(chol, 1) == 0) and 0 < rcond <= 1


def test_factorize_names_the_failing_minor():
    mat = np.eye(200)
    mat[150, 150] = -2.0
    with pytest.raises(InversionProblemError, match="leading minor 151"):
        factorize(mat, np.ones(200))


def _r_variants(m: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    u = rng.uniform(0.1, 0.3, m)
    station = np.array([f"S{i % 3}" for i in range(m)])
    hours = np.arange(m) * 1.0
    # groups of 2, 3, 7 and 50 observations (and single ones) sharing a background, scattered
    mixed_group = np.arange(m)
    cut = np.cumsum([0, 2, 2, 3, 3, 7, 7, 7, 50, 50])
    for g, (lo, hi) in enumerate(zip(cut[:-1], cut[1:])):
        mixed_group[lo:hi] = m + g
    mixed_group = rng.permutation(mixed_group)
    return {
        "diagonal": u**2,
        # a background shared by groups of 10: small groups, solved through their Gram matrices
        "groups": observation_error(u, np.full(m, 0.8), station, hours, 0.0, np.full(m, 0.2), np.arange(m) // 10),
        "mixed groups": observation_error(u, np.full(m, 0.8), station, hours, 0.0, rng.uniform(0.1, 0.3, m), mixed_group),
        # 4 groups of 60 and 60 single observations: large groups, but their Gram matrices still
        # cost less than M^-1
        "large groups": observation_error(u, np.full(m, 0.8), station, hours, 0.0, np.full(m, 0.2),
                                          np.where(np.arange(m) < 240, np.arange(m) // 60, np.arange(m))),
        # correlated mismatch within stations: one large group, solved through M^-1 itself
        "correlated": observation_error(u, np.full(m, 0.8), station, hours, 5.0, np.full(m, 0.2), np.arange(m) // 10),
    }


@pytest.mark.parametrize("kind", ["diagonal", "groups", "mixed groups", "large groups", "correlated"])
def test_trace_of_r_over_m_equals_the_dense_trace(kind):
    m = 300
    r = _r_variants(m)[kind]
    entries = observation_error_entries(r)
    hbh = _spd(m, 9)
    perm = np.random.default_rng(2).permutation(m)  # the solver works in a permuted order
    pos = np.empty(m, dtype=np.int64)
    pos[perm] = np.arange(m)
    permuted = sp.coo_matrix((entries.data, (pos[entries.row], pos[entries.col])), shape=(m, m))
    r_full = np.diag(r) if r.ndim == 1 else r
    expected = np.trace(np.linalg.solve(hbh + r_full, r_full))
    chol, _ = factorize(hbh[np.ix_(perm, perm)], permuted)
    parts = inverse_parts(chol, permuted)
    assert (parts.inverse is not None) == (kind == "correlated")  # M^-1 formed only for the large group
    assert abs(parts.trace_r - expected) < 1e-10 * expected
    assert abs(trace_minv_r(chol, permuted, overwrite=True) - expected) < 1e-10 * expected


def test_single_threaded_blas_restores_the_thread_counts():
    before = [get() for _, get, _ in blas._libraries()]
    with blas.single_threaded_blas() as controlled:
        inside = [get() for _, get, _ in blas._libraries()]
    assert [get() for _, get, _ in blas._libraries()] == before
    if controlled:
        assert inside == [1] * len(before)


def test_parallel_blas_gives_back_the_first_seen_thread_counts_inside_single_threaded_blas():
    first_seen = [default for _, _, default in blas._libraries()]
    with blas.single_threaded_blas():
        with blas.parallel_blas():
            inside = [get() for _, get, _ in blas._libraries()]
        after = [get() for _, get, _ in blas._libraries()]
    assert inside == first_seen
    assert after == [1] * len(first_seen)


@pytest.mark.parametrize("load,cores,threaded", [(0.3, 2, True), (1.9, 2, True), (2.0, 2, False), (6.5, 2, False),
                                                (6.5, 8, True)])
def test_blas_threads_only_where_the_load_leaves_cores_free(load, cores, threaded):
    assert blas.spare_cores(load, cores) is threaded


@pytest.mark.parametrize("shape", [(1, 1), (7, 9), (64, 64), (300, 301)])
def test_observation_error_entries_are_exactly_the_nonzero_entries(shape):
    rng = np.random.default_rng(shape[0])
    r = np.where(rng.uniform(size=shape) < 0.05, rng.normal(size=shape), 0.0)
    r[-1, -1] = 2.0  # in the tail past the last whole 8-entry word when the size is not a multiple of 8
    r[0, 0] = np.nan  # NaN is an entry (and is then refused by the problem check)
    rows, cols = np.nonzero(r)
    entries = observation_error_entries(r)
    assert np.array_equal(entries.row, rows) and np.array_equal(entries.col, cols)
    np.testing.assert_array_equal(entries.data, r[rows, cols])


@pytest.mark.parametrize("r_kind", ["diagonal", "groups", "large groups"])
def test_reciprocal_condition_is_a_lower_bound_and_exact_near_the_limit(r_kind):
    m = 120
    hbh = _spd(m, 7)
    r = {"diagonal": np.full(m, 0.3),
         "groups": 0.3 * np.eye(m) + 0.1 * np.kron(np.eye(m // 10), np.ones((10, 10))),
         "large groups": 0.3 * np.eye(m) + 0.1 * np.kron(np.eye(2), np.ones((m // 2, m // 2)))}[r_kind]
    mat = hbh + (np.diag(r) if r.ndim == 1 else r)
    exact = 1.0 / (np.abs(mat).sum(axis=0).max() * np.abs(np.linalg.inv(mat)).sum(axis=0).max())
    chol, norm = cholesky(hbh, r)
    parts = inverse_parts(chol, observation_error_entries(r))
    np.testing.assert_allclose(parts.diagonal, np.diag(np.linalg.inv(mat)), rtol=1e-10)
    bound = reciprocal_condition(norm, parts)
    assert exact / m <= bound <= exact * (1 + 1e-12)
    # the exact 1-norm of M^-1, from A (dtrtri path) or from M^-1 itself (dpotri path, large groups)
    assert (parts.inverse is not None) == (r_kind == "large groups")
    np.testing.assert_allclose(parts.inverse_norm_1(), np.abs(np.linalg.inv(mat)).sum(axis=0).max(), rtol=1e-10)
    # an M whose bound alone would refuse it (condition number about 5e12, so the bound is below
    # RCOND_LIMIT) while its exact reciprocal condition number is above: the exact value is computed
    q, _ = np.linalg.qr(np.random.default_rng(3).normal(size=(m, m)))
    near = (q * np.geomspace(1.0, 1e-12, m)) @ q.T
    near = 0.5 * (near + near.T)
    exact = 1.0 / (np.abs(near).sum(axis=0).max() * np.abs(np.linalg.inv(near)).sum(axis=0).max())
    chol, norm = cholesky(near, np.zeros(m))
    parts = inverse_parts(chol, observation_error_entries(np.full(m, 1e-300)))
    d = parts.diagonal
    assert 1.0 / (norm * np.sqrt(d.max()) * np.sqrt(d).sum()) < RCOND_LIMIT < exact
    np.testing.assert_allclose(reciprocal_condition(norm, parts), exact, rtol=1e-3)


def test_exact_inverse_norm_over_several_row_blocks():
    m = 600  # the lower triangle is summed 256 rows at a time
    hbh = _spd(m, 11)
    r = np.full(m, 0.2)
    chol, _ = cholesky(hbh, r)
    parts = inverse_parts(chol, observation_error_entries(r))
    expected = np.abs(np.linalg.inv(hbh + np.diag(r))).sum(axis=0).max()
    np.testing.assert_allclose(parts.inverse_norm_1(), expected, rtol=1e-10)
