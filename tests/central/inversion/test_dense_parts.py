"""The pieces of the fast observation-space path against plain dense formulas."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from central.inversion import blas
from central.inversion.covariance import spatial_correlation
from central.inversion.dense import cholesky_lower, triangular_inverse_t
from central.inversion.grid import FluxGrid, daily_steps
from central.inversion.solver import spatial_gram


def _grid(ny: int, nx: int) -> FluxGrid:
    starts, seconds = daily_steps(np.datetime64("2026-01-01T00:00:00"), 1)
    return FluxGrid(40.0 + 0.01 * np.arange(ny), -86.0 + 0.012 * np.arange(nx), starts, seconds)


@pytest.mark.parametrize("model", ["separable", "isotropic"])
@pytest.mark.parametrize("box", [(3, 14), (14, 3), (9, 9)])
def test_correlation_of_columns_on_a_few_cells_equals_the_dense_product(model, box):
    grid = _grid(17, 19)
    corr = spatial_correlation(grid, 5.0, model)
    rng = np.random.default_rng(1)
    iy, ix = np.mgrid[2 : 2 + box[0], 4 : 4 + box[1]]
    cells = np.sort(rng.choice((iy * grid.nx + ix).ravel(), size=box[0] * box[1] // 2, replace=False))
    columns = rng.normal(size=(cells.size, 5))
    expected = corr.dense()[:, cells] @ columns
    np.testing.assert_allclose(corr.apply_columns_on(cells, columns), expected, rtol=1e-12, atol=1e-12)


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


@pytest.mark.parametrize("m", [1, 100, 700])
def test_blocked_cholesky_and_inverse_equal_lapack(m):
    rng = np.random.default_rng(m)
    a = rng.normal(size=(m, m + 5))
    mat = a @ a.T + m * np.eye(m)
    chol = mat.copy()
    assert cholesky_lower(chol, block=64) == 0
    np.testing.assert_allclose(chol, np.linalg.cholesky(mat), rtol=1e-10, atol=1e-12)
    xt = triangular_inverse_t(chol, block=64)
    np.testing.assert_allclose(xt.T @ chol, np.eye(m), atol=1e-10)
    assert np.all(np.triu(chol, 1) == 0) and np.all(np.tril(xt, -1) == 0)


def test_blocked_cholesky_names_the_failing_minor():
    mat = np.eye(200)
    mat[150, 150] = -1.0
    assert cholesky_lower(mat, block=64) == 151


def test_single_threaded_blas_restores_the_thread_counts():
    before = [get() for _, get in blas._openblas()]
    with blas.single_threaded_blas() as controlled:
        inside = [get() for _, get in blas._openblas()]
    assert [get() for _, get in blas._openblas()] == before
    if controlled:
        assert inside == [1] * len(before)
