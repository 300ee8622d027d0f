"""Cholesky factor and triangular inverse of the m x m observation-space matrix on all cores.

LAPACK's own threaded dpotrf/dtrtri synchronise their threads many times per call; on a machine
that also runs other work they then take several times as long as on one thread. These blocked
versions split each step into independent matrix products run by `blas.parallel` (one BLAS
thread each), with one synchronisation per block column. Same flop counts as LAPACK
(m^3/3 each); results equal LAPACK's to rounding.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import lapack, solve_triangular

from .blas import cores, parallel

BLOCK = 256
"""Columns per block (a multiple of the BLAS kernels' tile sizes; small enough to balance)."""


def _chunks(n: int, parts: int, triangular: bool = False) -> list[tuple[int, int]]:
    """Split range(n) into `parts` pieces of equal work (rows, or rows of a lower triangle)."""
    if triangular:
        edges = np.sqrt(np.linspace(0.0, 1.0, parts + 1)) * n
    else:
        edges = np.linspace(0.0, n, parts + 1)
    edges = np.unique(np.round(edges).astype(int))
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def cholesky_lower(a: np.ndarray, block: int = BLOCK) -> int:
    """Overwrite the C-ordered symmetric `a` (lower triangle read) with its lower Cholesky factor
    L (upper triangle zeroed). Returns 0, or the 1-based order of the first leading minor that is
    not positive definite (as LAPACK's info)."""
    m = a.shape[0]
    with parallel() as run:
        pieces = 2 * cores()
        for k0 in range(0, m, block):
            k1 = min(k0 + block, m)
            l11, info = lapack.dpotrf(a[k0:k1, k0:k1], lower=1, clean=1)
            if info != 0:
                return k0 + info
            a[k0:k1, k0:k1] = l11
            a[k0:k1, k1:] = 0.0
            if k1 == m:
                break
            rest = m - k1

            def panel(lo: int, hi: int) -> None:  # L21 = A21 L11^-T
                rows = slice(k1 + lo, k1 + hi)
                a[rows, k0:k1] = solve_triangular(l11, a[rows, k0:k1].T, lower=True, check_finite=False).T

            run([lambda lo=lo, hi=hi: panel(lo, hi) for lo, hi in _chunks(rest, pieces)])
            p = a[k1:, k0:k1]

            def update(lo: int, hi: int) -> None:  # rows lo:hi of the trailing lower triangle
                a[k1 + lo : k1 + hi, k1 : k1 + hi] -= p[lo:hi] @ p[:hi].T

            run([lambda lo=lo, hi=hi: update(lo, hi) for lo, hi in _chunks(rest, pieces, triangular=True)[::-1]])
    return 0


def triangular_inverse_t(chol: np.ndarray, block: int = BLOCK) -> np.ndarray:
    """(L^-1)' (C-ordered, upper) of the C-ordered lower triangular `chol`, block column by block
    column in parallel: X[i, k] = -L_ii^-1 (L[i, k:i] X[k:i, k]), X[k, k] = L_kk^-1. Returned
    transposed so that the columns of L^-1 are contiguous rows."""
    m = chol.shape[0]
    starts = list(range(0, m, block))
    ends = starts[1:] + [m]
    diag_inv: list[np.ndarray] = [np.empty(0)] * len(starts)
    xt = np.zeros((m, m))

    def invert_diagonal(k: int) -> None:
        a, b = starts[k], ends[k]
        diag_inv[k] = lapack.dtrtri(chol[a:b, a:b], lower=1)[0]

    def column(k: int) -> None:
        c0, c1 = starts[k], ends[k]
        x = np.empty((m - c0, c1 - c0))  # X[c0:, c0:c1], filled one block row at a time
        x[: c1 - c0] = diag_inv[k]
        for i in range(k + 1, len(starts)):
            r0, r1 = starts[i], ends[i]
            x[r0 - c0 : r1 - c0] = -diag_inv[i] @ (chol[r0:r1, c0:r0] @ x[: r0 - c0])
        xt[c0:c1, c0:] = x.T

    with parallel() as run:
        run([lambda k=k: invert_diagonal(k) for k in range(len(starts))])
        run([lambda k=k: column(k) for k in range(len(starts))])  # the first columns cost most
    return xt
