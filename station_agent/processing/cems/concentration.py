"""CO2 concentration on a dry basis, in mg/m3 at standard state, and the emission rate it gives.

- Dry from wet: C_d = C_w / (1 - X_sw) (the dry/wet conversion HJ 75-2017 uses, its clause not verified: the
  text was not in the corpus; plain physics, and the same relation as
  US 40 CFR Part 75 appendix F, equations F-14a/F-14b's moisture correction (not verified), C_w = C_d (100 -
  %H2O)/100). An analyzer that measures dry gas (an extractive system with a cooler) reports dry
  already: it is used as it is, by configuration, never guessed.
- % vol to mass: CO2 at standard state (273.15 K, 101.325 kPa) weighs M/V_m = 44.01/22.414 =
  1.9635 kg/m3, so 1 % vol = 19,635 mg/m3 (DOMAIN.md's 19,636 rounds the same ratio from
  44.0095 g/mol; the 22.414 L/mol molar volume is the ideal-gas value at 273.15 K, 101.325 kPa).
- Emission rate G (kg/h) = C_d (mg/m3) * Q_sn (m3/h, standard dry) * 1e-6.
  Sanity (DOMAIN.md): 13 % and 2.0e6 m3/h give 510.5 t/h, a 600 MW coal unit at full load.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np
from numpy.typing import ArrayLike, NDArray

CO2_MOLAR_MASS_G_PER_MOL = 44.01
MOLAR_VOLUME_L_PER_MOL = 22.414
CO2_DENSITY_KG_M3 = CO2_MOLAR_MASS_G_PER_MOL / MOLAR_VOLUME_L_PER_MOL
"""CO2 density at standard state (kg/m3): 1.9635."""
MG_M3_PER_PERCENT = CO2_DENSITY_KG_M3 * 1e6 / 100.0
"""mg/m3 of CO2 at standard state per 1 % vol: 19,635."""


class MoistureBasis(StrEnum):
    """What the CO2 analyzer measures: gas as it is in the duct (wet: in-situ, hot-wet extractive)
    or gas with its water removed (dry: extractive with a cooler/dryer)."""

    WET = "wet"
    DRY = "dry"


def dry_from_wet_pct(wet: ArrayLike, moisture_pct: ArrayLike) -> NDArray[np.float64]:
    """C_d = C_w / (1 - X_sw); moisture of 100 % or more gives NaN (no dry gas to speak of)."""
    xsw = np.asarray(moisture_pct, float) / 100.0
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.asarray(wet, float) / (1.0 - xsw)
    return np.where(xsw < 1.0, out, np.nan)


def co2_dry_pct(reading_pct: ArrayLike, moisture_pct: ArrayLike, basis: MoistureBasis | str) -> NDArray[np.float64]:
    """The analyzer's reading on a dry basis, by the analyzer's configured basis."""
    basis = MoistureBasis(basis)
    if basis is MoistureBasis.DRY:
        return np.asarray(reading_pct, float).copy()
    return dry_from_wet_pct(reading_pct, moisture_pct)


def mg_m3_from_pct(co2_pct: ArrayLike) -> NDArray[np.float64]:
    """% vol CO2 -> mg/m3 at standard state (same moisture basis)."""
    return np.asarray(co2_pct, float) * MG_M3_PER_PERCENT


def emission_rate_kg_h(co2_dry_mg_m3: ArrayLike, standard_dry_flow_m3_h: ArrayLike) -> NDArray[np.float64]:
    """G = C_d * Q_sn * 1e-6 (kg/h), both on a dry basis at standard state."""
    return np.asarray(co2_dry_mg_m3, float) * np.asarray(standard_dry_flow_m3_h, float) * 1e-6
