"""Water-vapour (dilution and broadening) correction: wet mole fractions to dry-air mole fractions.

A cavity ring-down analyzer measures the mole fraction in the humid sample; inversions and the WMO
scales want the dry-air mole fraction. Picarro's empirical correction (Picarro host software,
InstrCal_CFKADS.ini; Rella et al. 2013, AMT 6, 837) is

    dry = wet / (1 + a*H + b*H**2),    H = the reported H2O in %,

with coefficients a (per %) and b (per %^2) per species and per instrument. They must be recorded
with the data, so they travel in the configuration, never as constants in code; the G2401 factory
values below are a documented default only.

Validity: Reum et al. 2019 (AMT 12, 1013) show biases of this correction that are largest below
0.5 % H2O, caused by a sensitivity of the cavity pressure to water vapour (up to ~40 % of the WMO
compatibility goals in their experiments). The correction is still applied there (there is nothing
better to do in near real time); `in_low_h2o_bias_domain` lets callers report how much data lies in
that domain instead of refusing it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

LOW_H2O_BIAS_PERCENT = 0.5
"""H2O (%) below which Reum et al. 2019 report biases of the standard water correction."""


@dataclass(frozen=True, slots=True)
class WaterCoefficients:
    """Coefficients of dry = wet / (1 + a*H + b*H^2) for one species; a in %^-1, b in %^-2."""

    a: float
    b: float

    def __post_init__(self) -> None:
        if not (np.isfinite(self.a) and np.isfinite(self.b)):
            raise ValueError(f"water coefficients must be finite numbers, got a={self.a}, b={self.b}")


G2401_FACTORY_WATER: dict[str, tuple[float, float]] = {
    "co2": (-0.012000, -0.0002674),
    "ch4": (-0.0098200, -0.0002393),
}
"""Picarro G2401 factory values (a, b) for CO2 and CH4 (Picarro host software, InstrCal_CFKADS.ini):
the one table the drivers' defaults (drivers/water.py) and the processing read."""

G2401_FACTORY: dict[str, WaterCoefficients] = {
    species: WaterCoefficients(a=a, b=b) for species, (a, b) in G2401_FACTORY_WATER.items()
}
"""Picarro G2401 factory coefficients (Picarro host software, InstrCal_CFKADS.ini), from the one
table above. A default only: each instrument should carry its own."""


def as_water_coefficients(value: Any) -> WaterCoefficients:
    """Accept a WaterCoefficients, an (a, b) pair, a {"a": .., "b": ..} mapping or any object with
    attributes a and b (e.g. a pydantic config model)."""
    if isinstance(value, WaterCoefficients):
        return value
    if isinstance(value, Mapping):
        return WaterCoefficients(a=float(value["a"]), b=float(value["b"]))
    if hasattr(value, "a") and hasattr(value, "b"):
        return WaterCoefficients(a=float(value.a), b=float(value.b))
    a, b = value
    return WaterCoefficients(a=float(a), b=float(b))


def dry_from_wet(wet: ArrayLike, h2o_percent: ArrayLike, coefficients: WaterCoefficients) -> NDArray[np.float64]:
    """Dry-air mole fraction from the wet one, elementwise (same unit as `wet`).

    wet: measured (humid) mole fraction, any unit; h2o_percent: reported H2O in %, broadcastable
    against `wet`. NaN in either input gives NaN (a missing sample stays missing). The factor is
    computed even in the low-H2O bias domain (see module docstring); a non-positive denominator,
    which only absurd H2O values can produce, gives NaN rather than a sign-flipped value.
    """
    w = np.asarray(wet, dtype=np.float64)
    h = np.asarray(h2o_percent, dtype=np.float64)
    denominator = 1.0 + h * (coefficients.a + coefficients.b * h)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0.0, w / denominator, np.nan)


def in_low_h2o_bias_domain(h2o_percent: ArrayLike) -> NDArray[np.bool_]:
    """True where 0 <= H2O < 0.5 %, the domain where Reum et al. 2019 found biases of the standard
    correction. NaN gives False. Used to report (never to exclude) such data."""
    h = np.asarray(h2o_percent, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return (h >= 0.0) & (h < LOW_H2O_BIAS_PERCENT)
