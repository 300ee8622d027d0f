"""Tilt correction of the sonic's wind, after Wilczak, Oncley and Stage (2001), Boundary-Layer
Meteorol. 99, 127-150.

- Double rotation: yaw about z so that mean v = 0, then pitch about the new y so that mean w = 0,
  per averaging period (no third, roll, rotation: Wilczak et al. advise against it).
- Planar fit: over many periods fit mean w = b0 + b1 mean u + b2 mean v by least squares, tilt the
  frame (roll about x, then pitch about the new y) so that its z axis is the plane's normal
  (-b1, -b2, 1)/sqrt(b1^2 + b2^2 + 1), subtract the offset b0 from w, then yaw each period into its
  mean wind. The angles are written from the normal here and checked by tests/station_agent/
  test_flux_rotation.py (the z axis of the rotated frame is the normal); equation numbers of the
  paper were not checked against its text.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True, slots=True)
class Rotated:
    """The wind in the corrected frame and the angles used (degrees)."""

    u: NDArray[np.float64]
    v: NDArray[np.float64]
    w: NDArray[np.float64]
    yaw_deg: float
    pitch_deg: float
    roll_deg: float = 0.0


def double_rotation(u: NDArray[np.float64], v: NDArray[np.float64], w: NDArray[np.float64]) -> Rotated:
    """Wilczak et al. (2001) double rotation: yaw then pitch, no third (roll) rotation."""
    um, vm, wm = np.nanmean(u), np.nanmean(v), np.nanmean(w)
    yaw = np.arctan2(vm, um)
    cy, sy = np.cos(yaw), np.sin(yaw)
    u1 = u * cy + v * sy
    v1 = -u * sy + v * cy
    pitch = np.arctan2(wm, um * cy + vm * sy)
    cp, sp = np.cos(pitch), np.sin(pitch)
    u2 = u1 * cp + w * sp
    w2 = -u1 * sp + w * cp
    return Rotated(u2, v1, w2, float(np.degrees(yaw)), float(np.degrees(pitch)))


@dataclass(frozen=True, slots=True)
class PlanarFit:
    """A site's planar fit: w offset b0 (m/s) and the plane's slopes b1, b2 (mean w = b0 + b1 u + b2 v)."""

    b0: float
    b1: float
    b2: float

    @property
    def pitch_deg(self) -> float:
        """Tilt about the y axis: sin(alpha) = -b1 / sqrt(b1^2 + b2^2 + 1)."""
        return float(np.degrees(np.arcsin(-self.b1 / np.sqrt(self.b1**2 + self.b2**2 + 1.0))))

    @property
    def roll_deg(self) -> float:
        """Tilt about the x axis: sin(beta) = b2 / sqrt(b2^2 + 1)."""
        return float(np.degrees(np.arcsin(self.b2 / np.sqrt(self.b2**2 + 1.0))))


def fit_planar(mean_u: NDArray[np.float64], mean_v: NDArray[np.float64], mean_w: NDArray[np.float64]) -> PlanarFit:
    """Least-squares plane through the periods' mean winds (Wilczak et al. 2001). Needs at least
    three periods of non-collinear mean wind; a clear error otherwise."""
    mu, mv, mw = (np.asarray(a, dtype=np.float64) for a in (mean_u, mean_v, mean_w))
    ok = np.isfinite(mu) & np.isfinite(mv) & np.isfinite(mw)
    if ok.sum() < 3:
        raise ValueError(f"planar fit needs mean winds of at least 3 periods, got {int(ok.sum())}")
    a = np.column_stack([np.ones(ok.sum()), mu[ok], mv[ok]])
    coef, _res, rank, _sv = np.linalg.lstsq(a, mw[ok], rcond=None)
    if rank < 3:
        raise ValueError("planar fit: the periods' mean winds do not span a plane (one wind direction only?)")
    return PlanarFit(float(coef[0]), float(coef[1]), float(coef[2]))


def planar_fit_rotation(u: NDArray[np.float64], v: NDArray[np.float64], w: NDArray[np.float64],
                        fit: PlanarFit) -> Rotated:
    """Remove b0 from w, rotate by the fixed roll and pitch of the plane, then yaw the period into its
    mean wind (mean w of one period is then near, not exactly, zero)."""
    a = np.radians(fit.pitch_deg)
    b = np.radians(fit.roll_deg)
    ca, sa, cb, sb = np.cos(a), np.sin(a), np.cos(b), np.sin(b)
    # rows of the rotation: the third is the plane's normal, the three orthonormal
    w0 = w - fit.b0
    u1 = ca * u + sa * sb * v - sa * cb * w0
    v1 = cb * v + sb * w0
    w1 = sa * u - ca * sb * v + ca * cb * w0
    yaw = np.arctan2(np.nanmean(v1), np.nanmean(u1))
    cy, sy = np.cos(yaw), np.sin(yaw)
    return Rotated(u1 * cy + v1 * sy, -u1 * sy + v1 * cy, w1, float(np.degrees(yaw)), fit.pitch_deg, fit.roll_deg)
