"""Conservative regridding between regular lat/lon grids (cell centres, degrees).

The overlap of a source cell s and a target cell d on the sphere is exactly separable:
area(s & d) = R^2 * |lon overlap| (rad) * |sin overlap| of the latitude bands, so the fraction of s
that lies in d is `w_lat[d_y, s_y] * w_lon[d_x, s_x]` with 1-D overlap fractions. Extensive
quantities (mass per cell, population, a footprint's response to a whole cell's flux) move with
these fractions; their sum is kept exactly over the part of the source inside the target grid.
"""

from __future__ import annotations

import numpy as np

from .units import _edges


def axis_edges(centres: np.ndarray) -> np.ndarray:
    """Cell edges of a regular axis given by its centres."""
    return _edges(np.asarray(centres, dtype=float))


def overlap_fractions(src_edges: np.ndarray, dst_edges: np.ndarray) -> np.ndarray:
    """w[d, s] = |dst cell d & src cell s| / |src cell s| for two increasing 1-D edge arrays."""
    lo = np.maximum(dst_edges[:-1, None], src_edges[None, :-1])
    hi = np.minimum(dst_edges[1:, None], src_edges[None, 1:])
    return np.clip(hi - lo, 0.0, None) / np.diff(src_edges)[None, :]


def lat_fractions(src_lat: np.ndarray, dst_lat: np.ndarray) -> np.ndarray:
    """Latitude overlap fractions by area (sin of the band edges), shape (dst, src)."""
    s = np.sin(np.deg2rad(np.clip(axis_edges(src_lat), -90, 90)))
    d = np.sin(np.deg2rad(np.clip(axis_edges(dst_lat), -90, 90)))
    return overlap_fractions(s, d)


def lon_fractions(src_lon: np.ndarray, dst_lon: np.ndarray) -> np.ndarray:
    """Longitude overlap fractions, shape (dst, src)."""
    return overlap_fractions(axis_edges(src_lon), axis_edges(dst_lon))


def _ascending(lat: np.ndarray, values: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    lat = np.asarray(lat, dtype=float)
    if lat.size > 1 and lat[1] < lat[0]:
        return lat[::-1], np.flip(values, axis=axis)
    return lat, values


def regrid_extensive(values: np.ndarray, src_lat: np.ndarray, src_lon: np.ndarray,
                     dst_lat: np.ndarray, dst_lon: np.ndarray) -> np.ndarray:
    """Move per-cell amounts (..., src_lat, src_lon) onto the target cells (..., dst_lat, dst_lon).

    Each source cell's amount is shared by area; what lies outside the target grid is dropped.
    A descending source latitude axis is accepted.
    """
    values = np.asarray(values, dtype=float)
    src_lat, values = _ascending(src_lat, values, values.ndim - 2)
    src_lon, values = _ascending(src_lon, values, values.ndim - 1)
    wy = lat_fractions(src_lat, dst_lat)
    wx = lon_fractions(src_lon, dst_lon)
    return np.einsum("ys,...sx,dx->...yd", wy, values, wx, optimize=True)


def coverage(src_lat: np.ndarray, src_lon: np.ndarray, dst_lat: np.ndarray, dst_lon: np.ndarray) -> np.ndarray:
    """Fraction of each target cell covered by the source grid, shape (dst_lat, dst_lon)."""
    src_lat = np.sort(np.asarray(src_lat, dtype=float))
    src_lon = np.sort(np.asarray(src_lon, dtype=float))
    cy = lat_fractions(dst_lat, src_lat).sum(axis=0)
    cx = lon_fractions(dst_lon, src_lon).sum(axis=0)
    return np.outer(cy, cx)


def coarser_than(src_lat: np.ndarray, src_lon: np.ndarray, dst_lat: np.ndarray, dst_lon: np.ndarray) -> bool:
    """True when the source cells are larger than the target's on either axis (resolution lost)."""
    def step(a: np.ndarray) -> float:
        return abs(float(a[1] - a[0]))
    tol = 1.0 + 1e-6
    return step(src_lat) > tol * step(dst_lat) or step(src_lon) > tol * step(dst_lon)
