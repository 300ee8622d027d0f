"""The analytic Bayesian posterior, solved in observation space (pure numpy/scipy, no I/O).

x = xa + B H' (H B H' + R)^-1 (y - H xa) with one Cholesky factorisation of the m x m matrix
M = H B H' + R. B is applied through its Kronecker structure (covariance.PriorCovariance) and H
through its sparse pseudo-rows (footprints.ObsOperator); neither B nor B H' is formed.

H B H' for sector k is P (K ∘ C_time[step_r, step_r']) P', where K = G C_space G' is the spatial
Gram matrix of the sigma-weighted footprint rows G (one row per observation and flux step it
touches) and P sums rows into observations. K is built blockwise (`spatial_gram`): rows with
overlapping footprints form blocks, C_space G' comes from each block's bounding box, and each tile
of K is one product over the cells one block touches, so the cost follows the footprints' size,
not the grid's. The products run as independent tasks on all cores with one BLAS thread each
(blas.py). M is factorised by LAPACK (dpotrf) in the order the blocks produce, on the Fortran view
of the C-ordered matrix, so H B H' is neither permuted nor copied; vectors and R's nonzero entries
are permuted instead.

Aggregates (G_a: region totals) get var = G_a B G_a' - (G_a B H') M^-1 (H B G_a') without the
posterior covariance; so does each cell's monthly mean flux per sector (`cell_variances`: the
diagonal only, with H B G_a' built blockwise from the footprint rows and L^-1 applied in chunks of
cells). Diagnostics: DOFS = trace(H B H' M^-1) = m - trace(R M^-1) (= trace of the averaging kernel; from
L^-1, R's entries and the Gram matrices of its small correlated groups, see trace_minv_r),
reduced chi-square = d' M^-1 d / m with d = y - H xa (the minimum of the cost function over m;
1 when B and R are consistent with the data), innovation and residual statistics, and a guaranteed
lower bound of M's reciprocal condition number (`reciprocal_condition`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
from scipy.linalg import lapack
from scipy.sparse.csgraph import connected_components

from .aggregates import Aggregation
from .blas import parallel_blas_when_idle, run_parallel, single_threaded_blas
from .covariance import PriorCovariance
from .footprints import ObsOperator

Progress = Callable[[str, float], None]
"""Called with (stage, fraction done in 0..1) during long steps."""

RCOND_LIMIT = 1e-13
"""Below this reciprocal condition number of H B H' + R the posterior is not trusted."""

BLOCK_ROWS = 64
"""Footprint rows per block when building the spatial Gram matrix (tuned on 100 x 100 grids)."""

RUN_ROWS = 8
"""Rows of a block per product in the spatial Gram matrix (`spatial_gram`): a run touches fewer
cells than the whole block, and 8 x cells x 64 stays under OpenBLAS's small-matrix limit (M N K <=
100^3 on AVX-512), whose kernels read their operands unpacked (tests/benchmarks/README.md)."""


RUN_SHARE = 0.55
"""A block's tile products go run by run only when its runs span less than this share of the block's
rows x cells: a run's product (8 rows) runs at about 57 % of the speed of one product over the whole
block (64 rows), measured on the provincial benchmark's footprints (tests/benchmarks/README.md)."""


class InversionProblemError(ValueError):
    """An inconsistent or ill-conditioned problem; the message says what is wrong."""


@dataclass(frozen=True)
class Problem:
    """Everything the solver needs, in solver units.

    prior: (sector, step, cell) umol m-2 s-1; y: (m,) enhancements in ppm; r: (m, m) or (m,)
    observation error (co)variance in ppm^2; aggregation optional (region totals).
    """

    prior: np.ndarray
    covariance: PriorCovariance
    h: ObsOperator
    y: np.ndarray
    r: np.ndarray
    aggregation: Aggregation | None = None
    station: np.ndarray | None = None  # (m,) station of each observation, for statistics
    month_weights: np.ndarray | None = None  # (month, step): per-cell monthly mean flux sigmas when given


@dataclass
class Posterior:
    mean: np.ndarray  # (sector, step, cell) umol m-2 s-1
    innovation: np.ndarray  # y - H xa, ppm
    residual: np.ndarray  # y - H x_post, ppm
    prior_totals: np.ndarray | None = None  # (q,) Mt
    prior_total_cov: np.ndarray | None = None  # (q, q) Mt^2
    posterior_totals: np.ndarray | None = None
    posterior_total_cov: np.ndarray | None = None
    prior_cell_sigma: np.ndarray | None = None  # (sector, month, cell) 1-sigma of monthly mean flux, umol m-2 s-1
    posterior_cell_sigma: np.ndarray | None = None
    diagnostics: dict = field(default_factory=dict)

    def total_sigmas(self) -> tuple[np.ndarray, np.ndarray]:
        """1-sigma (Mt) of the aggregates, prior and posterior."""
        assert self.prior_total_cov is not None and self.posterior_total_cov is not None
        return (np.sqrt(np.clip(np.diag(self.prior_total_cov), 0, None)),
                np.sqrt(np.clip(np.diag(self.posterior_total_cov), 0, None)))


def _row_blocks(g, ny: int, nx: int, block: int) -> list[np.ndarray]:
    """Footprint rows grouped into blocks of `block` rows whose supports overlap, the blocks that
    touch the fewest cells first.

    The Gram matrix is built block by block over the union of each block's cells, so the work
    grows with how much the supports in a block differ. Each row is sketched by its nonzero count
    on a coarse grid (about 16 x 16); blocks are grown greedily, a seed (taken in the Morton order
    of the row centroids, so that neighbouring blocks lie close) plus its most similar (cosine)
    unassigned rows. Within a block the rows are put in a line (`_seriation`), so that runs of
    consecutive rows (RUN_ROWS) touch fewer cells than the block.
    """
    r = g.shape[0]
    coarse = max(1, -(-max(ny, nx) // 16))
    ncy, ncx = -(-ny // coarse), -(-nx // coarse)
    cell_y, cell_x = np.divmod(np.arange(ny * nx, dtype=np.int32), nx)
    coarse_of_cell = (cell_y // coarse) * ncx + cell_x // coarse
    # counts per coarse cell: the CSR matrix's duplicate entries are summed by toarray (cheaper
    # than a bincount); float32 holds them exactly and halves the similarity products' traffic
    sketch = sp.csr_matrix((np.ones(g.nnz, dtype=np.float32), coarse_of_cell[g.indices], g.indptr),
                           shape=(r, ncy * ncx)).toarray()
    n = np.maximum(sketch.sum(axis=1), 1.0)
    cy = sketch @ np.repeat(np.arange(ncy) * coarse + 0.5 * coarse, ncx).astype(np.float32) / n  # centroids (cells)
    cx = sketch @ np.tile(np.arange(ncx) * coarse + 0.5 * coarse, ncy).astype(np.float32) / n
    norm = np.linalg.norm(sketch, axis=1)
    sketch /= np.where(norm > 0, norm, 1.0)[:, None]
    seeds = np.argsort(_morton((cy * 4).astype(np.int64), (cx * 4).astype(np.int64)), kind="stable")
    left = np.ones(r, dtype=bool)
    n_left = r
    blocks = []
    alive, alive_sketch = np.arange(r), sketch  # a superset of the rows left, compacted as they go
    for seed in seeds:
        if not left[seed]:
            continue
        if n_left > block:
            if alive.size > 2 * n_left:
                alive = np.flatnonzero(left)
                alive_sketch = sketch[alive]
            sim = alive_sketch @ sketch[seed]
            sim[~left[alive]] = -np.inf
            sim[np.searchsorted(alive, seed)] = np.inf  # the seed itself, then the most similar
            members = alive[np.argpartition(-sim, block - 1)[:block]]
        else:
            members = np.flatnonzero(left)
        blocks.append(np.sort(members))
        left[members] = False
        n_left -= members.size
    # the cells a block touches, estimated from the coarse cells its rows touch
    touched = [np.count_nonzero(sketch[rows].any(axis=0)) for rows in blocks]
    return [_seriation(blocks[i], sketch) for i in np.argsort(touched, kind="stable")]


def _seriation(rows: np.ndarray, sketch: np.ndarray) -> np.ndarray:
    """`rows` ordered along the Fiedler vector of their sketches' cosine similarity (spectral
    seriation): similar supports end up next to each other, e.g. the plumes of one station by wind
    direction, so runs of RUN_ROWS rows span fewer cells. The coarse sketches order as well as the
    fine supports, for less.
    """
    if rows.size <= 2:
        return rows
    u = sketch[rows]
    similarity = u @ u.T
    laplacian = np.diag(similarity.sum(axis=1)) - similarity
    # the second eigenvector alone (LAPACK ?syevx), cheaper than all of them
    _, vector = sla.eigh(laplacian, subset_by_index=(1, 1), driver="evx", check_finite=False)
    return rows[np.argsort(vector[:, 0], kind="stable")]


def _morton(iy: np.ndarray, ix: np.ndarray) -> np.ndarray:
    code = np.zeros(iy.shape, dtype=np.int64)
    for bit in range(16):
        code |= ((iy >> bit) & 1) << (2 * bit + 1)
        code |= ((ix >> bit) & 1) << (2 * bit)
    return code


@dataclass
class _Block:
    """A block of footprint rows held densely over the cells it touches, in an order where each run
    of RUN_ROWS consecutive rows touches one contiguous range of them. Each run's rows over its
    range are a contiguous array of their own, which the tile products read faster than views into
    one array of the block."""

    cells: np.ndarray  # (c,) grid cells
    columns: np.ndarray  # (c, rows): the block's rows over its cells, transposed (C_space's input)
    runs: list[tuple[int, int, int, int, np.ndarray]]  # (first row, end row, first cell, end cell, rows there)


def _block_columns(g, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The cells `rows` of g touch (sorted) and those rows over them, transposed: (cells, rows),
    filled from g's entries by flat indices (no column slicing of the sparse matrix)."""
    sub = g[rows]
    sub.sum_duplicates()  # a no-op on canonical rows; toarray would have summed them
    n = rows.size
    row_of_entry = np.repeat(np.arange(n), np.diff(sub.indptr))
    cells, place = np.unique(sub.indices, return_inverse=True)
    columns = np.zeros((cells.size, n))
    columns.reshape(-1)[place * n + row_of_entry] = sub.data
    return cells, columns


def _block_runs(g, rows: np.ndarray) -> _Block:
    """`rows` of g over their cells, the cells sorted by the first plus the last row touching them.

    The rows are in seriation order (`_row_blocks`), so a cell's rows form about one stretch, and
    sorting by the stretch's middle puts the cells of every run of rows close together: the range
    a run spans holds little more than the cells it touches. Cells in a run's range that it does
    not touch are zeros of the product, so the result is exact whatever the order. The arrays are
    filled from g's entries by flat indices (the runs from their rows' entries, which are
    contiguous in CSR), with no dense copy of the block.
    """
    sub = g[rows]
    n, s = rows.size, g.shape[1]
    indptr, indices, data = sub.indptr, sub.indices, sub.data
    row_of_entry = np.repeat(np.arange(n), np.diff(indptr))
    # a cell's first and last row: of repeated indices the last assignment is kept (as numpy does
    # in practice; another choice would only change the order, not the result)
    first, last = np.full(s, -1), np.full(s, -1)
    last[indices] = row_of_entry
    first[indices[::-1]] = row_of_entry[::-1]
    cells = np.flatnonzero(last >= 0)
    cells = cells[np.argsort(first[cells] + last[cells], kind="stable")]
    slot = np.empty(s, dtype=np.int64)
    slot[cells] = np.arange(cells.size)
    place = slot[indices]
    columns = np.zeros((cells.size, n))
    columns.reshape(-1)[place * n + row_of_entry] = data
    runs = []
    for r0 in range(0, n, RUN_ROWS):
        r1 = min(n, r0 + RUN_ROWS)
        e0, e1 = indptr[r0], indptr[r1]
        spanned = place[e0:e1]
        # empty rows: a product over no cells writes their zeros
        c0, c1 = (int(spanned.min()), int(spanned.max()) + 1) if e1 > e0 else (0, 0)
        run = np.zeros((r1 - r0, c1 - c0))
        run.reshape(-1)[(row_of_entry[e0:e1] - r0) * (c1 - c0) + spanned - c0] = data[e0:e1]
        runs.append((r0, r1, c0, c1, run))
    return _Block(cells, columns, runs)


def _whole_when_runs_save_little(part: _Block) -> _Block:
    """`part` with its runs replaced by one run of all its rows over all its cells when the runs span
    RUN_SHARE or more of that: then one product over the block runs faster than the runs' many."""
    if sum((r1 - r0) * (c1 - c0) for r0, r1, c0, c1, _ in part.runs) < RUN_SHARE * part.columns.size:
        return part
    c, n = part.columns.shape
    return _Block(part.cells, part.columns, [(0, n, 0, c, np.ascontiguousarray(part.columns.T))])


def spatial_gram(g, spatial, progress: Progress | None = None, block: int = BLOCK_ROWS,
                 blocks: list[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """K = G C_space G' for sparse rows G (r x S), symmetric, in the row order returned with it
    (K[i, j] belongs to rows order[i], order[j]).

    Rows are grouped into blocks with overlapping supports (`_row_blocks`), each held densely over
    the cells its rows touch (cells_I). One task per block column J: W_J = C_space G_J' from the
    block's bounding box (`apply_columns_on`), then the upper triangle's tiles K[I, J] =
    G_I[:, cells_I] W_J[cells_I] for every block I up to J while W_J (S x |J|) is still in the
    cache; no S x r matrix is formed. W_J[cells_I] is gathered once per tile, and each run of
    RUN_ROWS rows of I is one product over the range of cells_I it spans (`_block_runs`). A tile
    costs about |I| |cells_I| |J|, so the blocks with the fewest cells come first and serve as I
    most often. The lower triangle is the transpose.
    `blocks` (from `_row_blocks`) may be given, e.g. to share one grouping between matrices with the
    same sparsity pattern; the order returned follows them.
    """
    r, s = g.shape
    ny, nx = spatial.shape
    g = g.tocsr()
    if blocks is None:
        blocks = _row_blocks(g, ny, nx, block)  # fewest cells first (estimated)
    order = np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.int64)
    bounds = np.cumsum([0] + [rows.size for rows in blocks])
    n = len(blocks)
    if progress:
        progress("spatial correlation", 0.0)
    parts: list[_Block] = [None] * n  # type: ignore[list-item]

    def densify(i: int) -> None:
        parts[i] = _whole_when_runs_save_little(_block_runs(g, blocks[i]))

    run_parallel([lambda i=i: densify(i) for i in range(n)])
    k = np.empty((r, r))
    widest = max((rows.size for rows in blocks), default=0)
    scratch = threading.local()  # one W_J buffer per worker thread, reused from task to task

    def block_column(j: int) -> None:
        part = parts[j]
        if getattr(scratch, "w", None) is None:
            scratch.w = np.empty((s, widest))
        w = spatial.apply_columns_on(part.cells, part.columns, out=scratch.w[:, : part.columns.shape[1]])
        lo, hi = bounds[j], bounds[j + 1]
        for i in range(j + 1):
            row = parts[i]
            x = w[row.cells]
            tile = k[bounds[i] : bounds[i + 1], lo:hi]
            for r0, r1, c0, c1, rows in row.runs:
                np.matmul(rows, x[c0:c1], out=tile[r0:r1])

    # block column j costs about the cells of blocks 0..j: the largest go first
    cost = np.cumsum([part.columns.size for part in parts]) * np.diff(bounds)
    columns = np.argsort(-cost, kind="stable")
    share = np.cumsum(cost[columns]) / max(cost.sum(), 1)
    report = None if progress is None else (lambda i: progress("spatial correlation", share[i]))
    run_parallel([lambda j=j: block_column(j) for j in columns], report)
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        k[hi:, lo:hi] = k[lo:hi, hi:].T
        diag = k[lo:hi, lo:hi]
        diag += diag.T.copy()
        diag *= 0.5
    return k, order


def ordered_obs_space_covariance(h: ObsOperator, cov: PriorCovariance, progress: Progress | None = None,
                                 blocks: list[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """H B H' (ppm^2, m x m) in the order the blockwise build produces, and that order:
    (E, perm) with E[i, j] = (H B H')[perm[i], perm[j]].

    Permuting an m x m matrix costs as much as a tenth of building it, and nothing downstream needs
    the observations' own order: the solver factorises E and permutes only vectors. `blocks`: the
    footprint rows' grouping (`footprint_blocks`), when already made.
    """
    m = h.n_obs
    natural = np.arange(m)
    if h.n_rows == 0:
        return np.zeros((m, m)), natural
    one_row_per_obs = h.n_rows == m and np.array_equal(np.sort(h.row_obs), natural)
    n_sectors = cov.sigma.shape[0]
    step_of_entry = 0 if h.n_steps == 1 else h.row_step[np.repeat(np.arange(h.n_rows), np.diff(h.rows.indptr))]
    # one grouping for every sector (the same pattern), so every sector's K comes in the same order
    if blocks is None:
        blocks = footprint_blocks(h, cov)
    out, perm = None, natural
    for sector in range(n_sectors):
        # the sigma-weighted footprint rows G, entry by entry (same pattern as the footprints)
        sig = cov.sigma[sector][step_of_entry, h.rows.indices]
        g = sp.csr_matrix((h.rows.data * sig, h.rows.indices, h.rows.indptr), shape=h.rows.shape)
        stage = None if progress is None else (lambda name, f, s=sector: progress(name, (s + f) / n_sectors))
        e, order = spatial_gram(g, cov.spatial, stage, blocks=blocks)
        if h.n_steps > 1:
            e *= cov.c_time[np.ix_(h.row_step[order], h.row_step[order])]
        if one_row_per_obs:
            if out is None:
                out, perm = e, h.row_obs[order]
            else:
                out += e
        else:
            if out is None:
                perm = _first_seen(h.row_obs[order], m)
                slot = np.empty(m, dtype=np.int64)
                slot[perm] = np.arange(m)
            p = sp.csr_matrix((np.ones(h.n_rows), (slot[h.row_obs[order]], np.arange(h.n_rows))), shape=(m, h.n_rows))
            summed = (p @ (p @ e).T).T
            out = summed if out is None else out + summed
    assert out is not None
    if not one_row_per_obs:  # P E P' is symmetric only up to rounding
        out = 0.5 * (out + out.T)
    return out, perm


def _first_seen(obs: np.ndarray, m: int) -> np.ndarray:
    """The m observations in the order they first appear in `obs` (the footprint rows' block order),
    those with no row last: a block's observations then lie together, so the per-cell uncertainties
    add each block's columns into a few contiguous ranges (`_hbg_cells`)."""
    seen, first = np.unique(obs, return_index=True)
    unseen = np.setdiff1d(np.arange(m), seen, assume_unique=True)
    return np.concatenate([seen[np.argsort(first, kind="stable")], unseen])


def footprint_blocks(h: ObsOperator, cov: PriorCovariance) -> list[np.ndarray]:
    """The footprint rows grouped into blocks (`_row_blocks`): one grouping serves every sector's
    spatial Gram matrix and the per-cell uncertainties (the same sparsity pattern)."""
    return _row_blocks(h.rows.tocsr(), *cov.spatial.shape, BLOCK_ROWS)


def obs_space_covariance(h: ObsOperator, cov: PriorCovariance, progress: Progress | None = None) -> np.ndarray:
    """H B H' (ppm^2, m x m) in the observations' order, through the Kronecker structure and the
    sparse footprint rows."""
    e, perm = ordered_obs_space_covariance(h, cov, progress)
    if np.array_equal(perm, np.arange(perm.size)):
        return e
    pos = np.empty(perm.size, dtype=np.int64)
    pos[perm] = np.arange(perm.size)
    return e.take(pos, axis=0).take(pos, axis=1)


def _check(problem: Problem) -> sp.coo_matrix:
    """Validate `problem`; returns R's nonzero entries (see observation_error_entries)."""
    k, t, s = problem.covariance.shape
    m = problem.y.shape[0]
    if problem.prior.shape != (k, t, s):
        raise InversionProblemError(f"prior is {problem.prior.shape}, prior uncertainty {(k, t, s)}")
    if problem.h.n_steps != t or problem.h.n_cells != s:
        raise InversionProblemError(
            f"footprints cover {problem.h.n_steps} steps x {problem.h.n_cells} cells, state {t} x {s}")
    if problem.h.n_obs != m:
        raise InversionProblemError(f"footprints for {problem.h.n_obs} observations, {m} observations")
    if m == 0:
        raise InversionProblemError("no observations left to invert")
    if problem.r.shape not in ((m,), (m, m)):
        raise InversionProblemError(f"observation error is {problem.r.shape}, expected ({m}, {m})")
    r = observation_error_entries(problem.r)  # NaN and inf are nonzero: checked among the entries
    for name, arr in (("prior", problem.prior), ("observations", problem.y),
                      ("observation error", r.data), ("prior uncertainty", problem.covariance.sigma)):
        if not np.all(np.isfinite(arr)):
            raise InversionProblemError(f"{name}: NaN or infinite values")
    if np.any(problem.covariance.sigma <= 0):
        raise InversionProblemError("prior uncertainty must be positive everywhere (set a floor > 0)")
    if np.any(r.diagonal() <= 0):
        raise InversionProblemError("observation error variance must be positive for every observation")
    if r.nnz > m and abs(r - r.T).max() > 1e-12 * abs(r).max():
        raise InversionProblemError("observation error covariance is not symmetric")
    if problem.h.n_rows == 0:
        raise InversionProblemError("no observation sees the flux period (all footprints empty)")
    return r


def cholesky(hbh: np.ndarray, r, overwrite: bool = False) -> tuple[np.ndarray, float]:
    """Lower Cholesky factor L of M = H B H' + R, Fortran-ordered (LAPACK's own layout; the upper
    triangle is zero), and M's 1-norm. R: variances (m,), an m x m array, or a scipy sparse matrix
    of its entries.

    LAPACK works on the Fortran view of the C-ordered symmetric matrix (its transpose, the same
    matrix), so nothing is copied; with `overwrite`, `hbh`'s memory holds the factor afterwards.
    """
    mat = hbh if overwrite else hbh.copy()
    if sp.issparse(r):
        r = r.tocoo()
        mat[r.row, r.col] += r.data
    elif r.ndim == 1:
        mat[np.diag_indices_from(mat)] += r
    else:
        mat += r
    norm = lapack.dlange("1", mat.T)
    with parallel_blas_when_idle():
        chol, info = lapack.dpotrf(mat.T, lower=1, clean=1, overwrite_a=1)
    if info != 0:
        raise InversionProblemError(
            "H B H' + R is not positive definite or numerically singular (leading minor %d): check"
            " that the observation errors are positive, their correlations valid and observations"
            " not duplicated" % info)
    return chol, float(norm)


def factorize(hbh: np.ndarray, r, overwrite: bool = False) -> tuple[np.ndarray, float]:
    """`cholesky`'s factor and LAPACK's estimate (dpocon) of M's reciprocal condition number;
    an ill-conditioned M is refused."""
    chol, norm = cholesky(hbh, r, overwrite)
    rcond, info = lapack.dpocon(chol, norm, uplo="L")
    _refuse_ill_conditioned(rcond if info == 0 else 0.0)
    return chol, float(rcond)


def _refuse_ill_conditioned(rcond: float) -> None:
    if not rcond > RCOND_LIMIT:
        raise InversionProblemError(
            f"H B H' + R is ill-conditioned (reciprocal condition number {rcond:.2e} < {RCOND_LIMIT:.0e}):"
            " observation errors are too small next to the prior, or observations are duplicated")


def cho_solve(chol: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """M^-1 rhs from the factor returned by `cholesky` or `factorize`."""
    return lapack.dpotrs(chol, rhs, lower=1)[0]


def observation_error_entries(r: np.ndarray) -> sp.coo_matrix:
    """R (a vector of variances or an m x m matrix) as its nonzero entries: observation errors are
    diagonal or correlated within small groups (a station's hours, a shared background), so the
    solver adds, permutes and contracts R entry by entry instead of as an m x m array."""
    if r.ndim == 1:
        idx = np.arange(r.size)
        return sp.coo_matrix((r, (idx, idx)), shape=(r.size, r.size))
    rows, cols = _nonzero(r)
    return sp.coo_matrix((r[rows, cols], (rows, cols)), shape=r.shape)


def _nonzero(r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.nonzero(r) (NaN counts as nonzero) for a mostly zero matrix: the mask is scanned 8
    entries at a time, as 64-bit words, and only the words that hold a nonzero are expanded."""
    flat = (r != 0).reshape(-1)
    whole = flat.size - flat.size % 8
    hit = np.flatnonzero(flat[:whole].view(np.uint64))
    pos = (hit[:, None] * 8 + np.arange(8)).ravel()
    pos = np.concatenate([pos[flat[pos]], whole + np.flatnonzero(flat[whole:])])
    return np.divmod(pos, r.shape[1])


@dataclass
class InverseParts:
    """What the DOFS pass learns about M^-1 from the factor L (see `inverse_parts`)."""

    trace_r: float  # trace(M^-1 R)
    diagonal: np.ndarray  # diag(M^-1), in the factor's order
    a: np.ndarray | None = None  # A = L^-1 (lower, Fortran-ordered), when computed
    inverse: np.ndarray | None = None  # M^-1 in the lower triangle, when formed instead

    def inverse_norm_1(self) -> float:
        """||M^-1||_1, exactly. Forms M^-1 in place of A (LAPACK dlauum: A'A, lower triangle) when
        only A is held, then sums its lower triangle's absolute values in row blocks, so no other
        m x m array is made."""
        if self.inverse is None:
            assert self.a is not None
            with parallel_blas_when_idle():
                self.inverse, info = lapack.dlauum(self.a, lower=1, overwrite_c=1)
            self.a = None
            if info != 0:
                _singular(info)
        lower = self.inverse
        m = lower.shape[0]
        columns = np.zeros(m)  # sum over i >= j of |M^-1_ij|
        rows = np.zeros(m)  # sum over i > j ... seen from row i: the column sums above the diagonal
        for r0 in range(0, m, 256):
            r1 = min(m, r0 + 256)
            blk = np.abs(lower[r0:r1, :r1])
            blk[:, r0:r1] = np.tril(blk[:, r0:r1])
            columns[:r1] += blk.sum(axis=0)
            rows[r0:r1] += blk.sum(axis=1) - np.diag(blk[:, r0:r1])
        return float(np.max(columns + rows))


def inverse_parts(chol: np.ndarray, r: sp.coo_matrix, overwrite: bool = False) -> InverseParts:
    """trace(M^-1 R) = sum of R_ij (M^-1)_ij over R's entries, and diag(M^-1), from the factor L of
    `cholesky`.

    With A = L^-1 (M^-1 = A'A, (M^-1)_ij = A[:, i] . A[:, j], A Fortran-ordered so its columns are
    contiguous): the diagonal of R needs every column's norm; R's off-diagonal entries link
    observations in groups (connected components: a shared background, a station's correlated
    hours), each needing the Gram matrix of its columns. When the groups are large that costs more
    than forming M^-1 itself (LAPACK dpotri), which is then done instead. `overwrite` reuses the
    factor's memory.
    """
    m = chol.shape[0]
    off = r.row != r.col
    labels = None
    if off.any():
        _, labels = connected_components(sp.coo_matrix((np.ones(off.sum()), (r.row[off], r.col[off])), shape=r.shape),
                                         directed=False)
        sizes = np.bincount(labels)
        if np.sum(sizes.astype(float) ** 2) > m * m / 6:  # Gram matrices cost more than half of dpotri
            with parallel_blas_when_idle():
                inv, info = lapack.dpotri(chol, lower=1, overwrite_c=int(overwrite))
            if info != 0:
                _singular(info)
            # the lower triangle holds M^-1: (i, j) with i >= j
            trace = float(r.data @ inv[np.maximum(r.row, r.col), np.minimum(r.row, r.col)])
            return InverseParts(trace, np.diag(inv).copy(), inverse=inv)
    with parallel_blas_when_idle():
        a, info = lapack.dtrtri(chol, lower=1, overwrite_c=int(overwrite))
    if info != 0:
        _singular(info)
    diagonal = np.einsum("ki,ki->i", a, a)
    diag = ~off
    weights = np.zeros(m)
    np.add.at(weights, r.row[diag], r.data[diag])
    total = float(diagonal @ weights)
    if labels is None:
        return InverseParts(total, diagonal, a=a)
    rows, cols, vals = r.row[off], r.col[off], r.data[off]
    by_group = np.argsort(labels[rows], kind="stable")
    rows, cols, vals = rows[by_group], cols[by_group], vals[by_group]
    edges = np.searchsorted(labels[rows], np.arange(labels.max() + 2))
    local = np.empty(m, dtype=np.int64)
    for lo, hi in zip(edges[:-1], edges[1:]):
        if hi == lo:
            continue
        members = np.unique(np.concatenate([rows[lo:hi], cols[lo:hi]]))
        local[members] = np.arange(members.size)
        cols_a = a[members[0]:, members]  # A is lower triangular: zero above its first member's row
        gram = cols_a.T @ cols_a
        total += float(vals[lo:hi] @ gram[local[rows[lo:hi]], local[cols[lo:hi]]])
    return InverseParts(total, diagonal, a=a)


def trace_minv_r(chol: np.ndarray, r: sp.coo_matrix, overwrite: bool = False) -> float:
    """trace(M^-1 R) from the factor L of `cholesky` (see `inverse_parts`)."""
    return inverse_parts(chol, r, overwrite).trace_r


def reciprocal_condition(norm: float, parts: InverseParts) -> float:
    """A guaranteed lower bound of M's reciprocal condition number 1 / (||M||_1 ||M^-1||_1),
    exact when the bound alone would refuse M.

    M^-1 is symmetric positive definite, so |(M^-1)_ij| <= sqrt(d_i d_j) with d its diagonal, and
    ||M^-1||_1 <= sqrt(max d) sum(sqrt d): free once the DOFS pass has d (LAPACK's estimate, dpocon,
    would cost about a fifth of the factorisation). The bound is within a factor m of the truth;
    when it is at or below RCOND_LIMIT, M^-1 is formed (in the factor's memory) and its 1-norm
    taken exactly. The check comes after the DOFS pass, which it needs: an M refused here has cost
    a whole solve, as an M refused by dpocon right after the factorisation would not have.
    """
    d = parts.diagonal
    with np.errstate(all="ignore"):  # a near-singular M may overflow here: then it is refused
        bound = 1.0 / (norm * np.sqrt(d.max()) * np.sqrt(d).sum())
        if bound > RCOND_LIMIT:
            return float(bound)
        return float(1.0 / (norm * parts.inverse_norm_1()))


def _singular(info: int) -> None:
    raise InversionProblemError(f"the Cholesky factor of H B H' + R is singular at row {info}")


def _stats(values: np.ndarray, scale: np.ndarray) -> dict:
    z = values / scale
    return {"mean_ppm": float(values.mean()), "std_ppm": float(values.std()),
            "rms_ppm": float(np.sqrt(np.mean(values**2))),
            "normalised_mean": float(z.mean()), "normalised_rms": float(np.sqrt(np.mean(z**2)))}


def solve(problem: Problem, progress: Progress | None = None) -> Posterior:
    """The posterior mean, aggregate uncertainties and diagnostics of `problem`.

    BLAS runs single-threaded but in the factorisation, the triangular inverse and the per-cell
    triangular solves, threaded while the machine has cores to spare (`parallel_blas_when_idle`;
    why in blas.py)."""
    with single_threaded_blas():
        return _solve(problem, progress)


def _solve(problem: Problem, progress: Progress | None) -> Posterior:
    r_nat = _check(problem)
    cov, h = problem.covariance, problem.h
    m = problem.y.size
    # everything m x m lives in the build's observation order `perm`; only vectors and R's
    # entries are permuted
    if progress:
        progress("row grouping", 0.0)
    blocks = footprint_blocks(h, cov) if h.n_rows else None
    if progress:
        progress("row grouping", 1.0)
    hbh, perm = ordered_obs_space_covariance(h, cov, progress, blocks)
    if progress:
        progress("factorisation", 0.0)
    pos = np.empty(m, dtype=np.int64)
    pos[perm] = np.arange(m)
    r = sp.coo_matrix((r_nat.data, (pos[r_nat.row], pos[r_nat.col])), shape=r_nat.shape)
    r_diag = r_nat.diagonal()
    m_diag = np.diag(hbh)[pos] + r_diag
    chol, norm = cholesky(hbh, r, overwrite=True)
    del hbh
    total_prior = problem.prior.sum(axis=0)[None]
    d = problem.y - h.apply(total_prior)[:, 0]
    alpha = cho_solve(chol, d[perm])[pos]
    # x = xa + B H' alpha; H' alpha is the same field for every sector (H sees their sum)
    adj = h.adjoint(alpha[:, None])[0]
    k = cov.shape[0]
    increment = cov.apply(np.broadcast_to(adj, (1, k, *adj.shape)).copy())[0]
    mean = problem.prior + increment
    residual = problem.y - h.apply(mean.sum(axis=0)[None])[:, 0]
    post = Posterior(mean=mean, innovation=d, residual=residual)
    if progress:
        progress("factorisation", 1.0)
    if problem.aggregation is not None:
        if progress:
            progress("aggregates", 0.0)
        _aggregates(problem, chol, perm, post)
        if progress:
            progress("aggregates", 1.0)
    if problem.month_weights is not None:
        if progress:
            progress("cell uncertainties", 0.0)
        prior_var, post_var = cell_variances(problem, chol, perm, progress, blocks)
        post.prior_cell_sigma = np.sqrt(prior_var)
        post.posterior_cell_sigma = np.sqrt(np.clip(post_var, 0, None))
    if progress:
        progress("diagnostics", 0.0)
    # DOFS = trace(H B H' M^-1) = m - trace(R M^-1); the factor is not needed afterwards
    inverse = inverse_parts(chol, r, overwrite=True)
    del chol
    rcond = reciprocal_condition(norm, inverse)
    _refuse_ill_conditioned(rcond)
    dofs = float(m - inverse.trace_r)
    del inverse
    if progress:
        progress("diagnostics", 1.0)
    post.diagnostics = {
        "n_obs": int(m),
        "n_state": int(np.prod(cov.shape)),
        "dofs": dofs,
        "chi2_reduced": float(d @ alpha / m),
        "rcond": rcond,
        "innovation": _stats(d, np.sqrt(m_diag)),
        "residual": _stats(residual, np.sqrt(r_diag)),
    }
    if problem.station is not None:
        per = {}
        for name in np.unique(problem.station):
            sel = problem.station == name
            per[str(name)] = {"n": int(sel.sum()), **_stats(d[sel], np.sqrt(m_diag[sel]))}
        post.diagnostics["innovation_by_station"] = per
    return post


def _aggregates(problem: Problem, chol: np.ndarray, perm: np.ndarray, post: Posterior) -> None:
    agg = problem.aggregation
    assert agg is not None
    if agg.weights.shape[1:] != problem.prior.shape:
        raise InversionProblemError(f"aggregation weights {agg.weights.shape[1:]}, state {problem.prior.shape}")
    w = agg.weights.reshape(agg.size, -1)
    bg = problem.covariance.apply(agg.weights)  # (q, sector, step, cell): B G'
    gbg = w @ bg.reshape(agg.size, -1).T
    hbg = problem.h.apply(bg.sum(axis=1))  # (m, q)
    z = sla.solve_triangular(chol, hbg[perm], lower=True, check_finite=False)
    post.prior_totals = w @ problem.prior.ravel()
    post.posterior_totals = w @ post.mean.ravel()
    post.prior_total_cov = 0.5 * (gbg + gbg.T)
    post_cov = gbg - z.T @ z
    post.posterior_total_cov = 0.5 * (post_cov + post_cov.T)


CELL_CHUNK = 2048
"""Cells per triangular solve in `cell_variances` (m x 2,048 doubles: 80 MB at m = 5,000)."""


def cell_variances(problem: Problem, chol: np.ndarray, perm: np.ndarray, progress: Progress | None = None,
                   blocks: list[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Prior and posterior variance of every cell's monthly mean flux per sector, (sector, month,
    cell) in (umol m-2 s-1)^2, without the posterior covariance: the diagonal of G P G' =
    G B G' - (L^-1 H B G')' (L^-1 H B G') for the rows g of G (weights `problem.month_weights` over
    the steps of one cell and sector).

    With a = w * sigma[:, c] over the steps, g B g' = a' C_time a (C_space's diagonal is 1) and
    (H B g')_i = sum over the footprint rows r of observation i of (G_r C_space)[c] tau[step_r, c],
    tau = C_time (w * sigma), G the sigma-weighted rows. So H B G' (m x cells) is built per group of
    rows with overlapping supports (C_space G_J' from the group's bounding box, as in
    `spatial_gram`), and L^-1 is applied to it in chunks of CELL_CHUNK cells (dtrsm, m^2 per cell:
    the dominant cost). Its rows are in the factor's order `perm`. `blocks`: the footprint rows'
    grouping (`footprint_blocks`), shared with the spatial Gram matrix when given.
    """
    cov, h = problem.covariance, problem.h
    weights = np.asarray(problem.month_weights, dtype=float)
    k, t, s = cov.shape
    m = problem.y.size
    n_months = weights.shape[0]
    if weights.shape != (n_months, t):
        raise InversionProblemError(f"monthly weights {weights.shape}, expected (months, {t})")
    pos = np.empty(m, dtype=np.int64)
    pos[perm] = np.arange(m)
    rows = h.rows.tocsr()
    step_of_entry = h.row_step[np.repeat(np.arange(h.n_rows), np.diff(rows.indptr))]
    groups = footprint_blocks(h, cov) if blocks is None else blocks
    prior_var = np.empty((k, n_months, s))
    post_var = np.empty((k, n_months, s))
    n_parts = k * n_months
    for sector in range(k):
        sig = cov.sigma[sector]
        g = sp.csr_matrix((rows.data * sig[step_of_entry, rows.indices], rows.indices, rows.indptr),
                          shape=rows.shape)
        for month in range(n_months):
            a = weights[month][:, None] * sig  # (step, cell)
            tau = cov.c_time @ a
            prior_var[sector, month] = np.einsum("tc,tc->c", a, tau)
            part = sector * n_months + month
            report = None if progress is None else (
                lambda i, p=part: progress("cell uncertainties", (p + 0.5 * (i + 1) / len(groups)) / n_parts))
            u_t = _hbg_cells(h, g, tau, cov.spatial, pos, groups, report)  # (cells, m): (H B G')'
            reduction = np.empty(s)
            for c0 in range(0, s, CELL_CHUNK):
                c1 = min(s, c0 + CELL_CHUNK)
                # u_t's rows c0:c1 are H B G' over those cells in Fortran order: solved in place
                with parallel_blas_when_idle():
                    z = sla.blas.dtrsm(1.0, chol, u_t[c0:c1].T, lower=1, overwrite_b=1)
                reduction[c0:c1] = np.einsum("ic,ic->c", z, z)
                if progress:
                    progress("cell uncertainties", (part + 0.5 + 0.5 * c1 / s) / n_parts)
            post_var[sector, month] = prior_var[sector, month] - reduction
    return prior_var, post_var


def _hbg_cells(h: ObsOperator, g, tau: np.ndarray, spatial, pos: np.ndarray, groups: list[np.ndarray],
               report: Callable[[int], None] | None) -> np.ndarray:
    """(H B G')' (cells x m, C-ordered: H B G' in Fortran order, as dtrsm takes it) for the rows G of
    one sector's and month's cell means, observations in the factor's order (`pos`): per group of
    footprint rows J, C_space G_J' from the group's bounding box times tau at each row's step, summed
    into the columns of their observations (see `cell_variances`). Every array a group touches is
    laid out cells first, so the products and sums stream through memory; tau (steps, cells) scales
    the group's rows step by step in place."""
    s = g.shape[1]
    u_t = np.zeros((s, pos.size))
    lock = threading.Lock()
    widest = max((rows.size for rows in groups), default=0)
    # two cells x rows buffers per worker thread, reused from group to group: a fresh 50 MB array
    # per product is a fresh mapping whose pages fault in one by one
    scratch = threading.local()

    def group(members: np.ndarray) -> None:
        if getattr(scratch, "w", None) is None:
            scratch.w, scratch.summed = np.empty((s, widest)), np.empty((s, widest))
        steps = h.row_step[members]
        by_step = np.argsort(steps, kind="stable")
        members, steps = members[by_step], steps[by_step]
        cells, columns = _block_columns(g, members)
        w = spatial.apply_columns_on(cells, columns, out=scratch.w[:, : members.size])  # (S, rows): C_space G_J'
        cuts = np.flatnonzero(np.diff(steps)) + 1
        for a, b in zip(np.r_[0, cuts], np.r_[cuts, steps.size]):  # the rows of one step: one tau row
            w[:, a:b] *= tau[steps[a]][:, None]
        obs, which = np.unique(pos[h.row_obs[members]], return_inverse=True)
        if obs.size < members.size:  # an observation's rows on several steps: summed
            onehot = np.zeros((members.size, obs.size))
            onehot[np.arange(members.size), which] = 1.0
            w = np.matmul(w, onehot, out=scratch.summed[:, : obs.size])
        else:
            w = np.take(w, np.argsort(which), axis=1, out=scratch.summed[:, : obs.size])
        # the observations (sorted) in runs of consecutive positions, each added as one slice
        # (the factor's order puts a group's observations together: `_first_seen`)
        cuts = np.flatnonzero(np.diff(obs) != 1) + 1
        with lock:
            for a, b in zip(np.r_[0, cuts], np.r_[cuts, obs.size]):
                u_t[:, obs[a] : obs[a] + b - a] += w[:, a:b]

    run_parallel([lambda rows=rows: group(rows) for rows in groups], report)
    return u_t


def posterior_covariance(problem: Problem, max_state: int = 6000) -> np.ndarray:
    """The full posterior covariance P = B - B H' M^-1 H B, (n, n), only for small problems."""
    _check(problem)
    cov, h = problem.covariance, problem.h
    shape = cov.shape
    n = int(np.prod(shape))
    if n > max_state:
        raise InversionProblemError(
            f"full posterior covariance asked for {n} state elements (limit {max_state}):"
            " use the aggregate uncertainties instead")
    eye = np.eye(n).reshape(n, *shape)
    b = cov.apply(eye).reshape(n, n)
    hb = h.apply(b.reshape(n, *shape).sum(axis=1)).T  # (n, m) = B H'
    chol, _ = factorize(obs_space_covariance(h, cov), problem.r)
    z = sla.solve_triangular(chol, hb.T, lower=True, check_finite=False)
    p = b - z.T @ z
    return 0.5 * (p + p.T)
