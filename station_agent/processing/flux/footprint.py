"""Flux footprint: the crosswind-integrated parameterisation of Kljun et al. (2015), Geosci. Model
Dev. 8, 3695-3713 (FFP), in its mean-wind form.

Scaled footprint F* = a (X* - d)^b exp(-c / (X* - d)), a = 1.4524, b = -1.9914, c = 1.4622,
d = 0.1359; real distance x = X* zm / (1 - zm/h) (u(zm) / u*) kappa. Peak: X*max = -c/b + d; the
distance within which a fraction R of the flux comes from: X*_R = -c / ln(R) + d (the integral of
F* with b taken as -2). Constants and scaling checked against the FFP code of Kljun et al. (as
published with the paper and copied in many repositories). Valid for u* > 0.1 m/s, zm/L >= -15.5,
zm < h (h: boundary-layer height, a site setting); outside: NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

A, B, C, D = 1.4524, -1.9914, 1.4622, 0.1359
KAPPA = 0.4


@dataclass(frozen=True, slots=True)
class Footprint:
    """Upwind distances (m) of the footprint's peak and of its 70 % and 90 % contributions."""

    peak_m: float
    x70_m: float
    x90_m: float


NO_FOOTPRINT = Footprint(float("nan"), float("nan"), float("nan"))


def kljun_footprint(zm: float, u_mean: float, ustar: float, obukhov_m: float, blh_m: float) -> Footprint:
    """The crosswind-integrated FFP distances for measurement height zm (above displacement, m),
    mean wind u_mean (m/s), u* (m/s), Obukhov length (m) and boundary-layer height (m)."""
    if not (np.isfinite(ustar) and ustar > 0.1 and np.isfinite(u_mean) and u_mean > 0 and zm < blh_m):
        return NO_FOOTPRINT
    if np.isfinite(obukhov_m) and obukhov_m != 0 and zm / obukhov_m < -15.5:
        return NO_FOOTPRINT
    scale = zm / (1 - zm / blh_m) * (u_mean / ustar * KAPPA)
    return Footprint(peak_m=(-C / B + D) * scale, x70_m=(-C / np.log(0.7) + D) * scale,
                     x90_m=(-C / np.log(0.9) + D) * scale)
