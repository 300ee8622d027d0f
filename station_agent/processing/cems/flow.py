"""The flue-gas flow chain of a stack CEMS: velocity, actual flow, flow at standard state (dry).

Every function takes numpy arrays (or floats) and returns arrays; units are in the names.

References (the chain as HJ 75-2017 states it; the pitot relation and the gas density are those of
GB/T 16157-1996, the sampling method HJ 75-2017 refers to; the same physics as US 40 CFR Part 60
appendix A, Method 2):

- point velocity from a pitot tube (S-type or L-type) of coefficient Kp:
  v_p = Kp * sqrt(2 * dP / rho_s), dP in Pa, rho_s the flue gas density at duct conditions (kg/m3);
- an ultrasonic (transit-time) meter gives its path velocity directly;
- the velocity-field coefficient Kv (HJ 75-2017: the reference-method mean velocity over the
  section divided by the CEMS velocity, redetermined at each comparison test) turns the CEMS's
  point or path velocity into the section mean: v_s = Kv * v_p;
- actual flow Q_s = 3600 * F * v_s (m3/h), F the duct's inner cross-section (m2);
- standard dry flow Q_sn = Q_s * 273.15 / (273.15 + t_s) * (B_a + P_s) / 101325 * (1 - X_sw),
  t_s flue temperature (degC), B_a barometric and P_s static (gauge) pressure (Pa), X_sw the
  moisture volume fraction. The standard state is 273.15 K and 101.325 kPa, dry (HJ 75-2017 and
  GB/T 16157-1996), not the US 68 degF of Part 75.

Caveat: the texts of HJ 75-2017, HJ 76-2017 and GB/T 16157-1996 were not in the reference corpus;
the chain matches DOMAIN.md and independent DAHS implementations of HJ 75 (a Kv parameter next to the
pitot coefficient Kp and the duct area), and is plain gas physics, but no clause numbers are cited.
UNVERIFIED: the velocity-field coefficient's definition (reference-method section mean velocity /
CEMS velocity) and its redetermination at each comparison test (vendor pages speak of checking it at
least once a year); Kv is configuration, from the site's last comparison test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

STANDARD_TEMPERATURE_K = 273.15
STANDARD_PRESSURE_PA = 101325.0
R_J_PER_MOL_K = 8.314462618
"""Molar gas constant (CODATA 2018)."""

MOLAR_MASS_G_PER_MOL = {"co2": 44.01, "o2": 31.999, "n2": 28.014, "h2o": 18.015, "co": 28.010}
"""Molar masses used for the flue-gas density (g/mol)."""


@dataclass(frozen=True, slots=True)
class RoundDuct:
    """A round duct or stack, inner diameter in metres."""

    diameter_m: float

    @property
    def area_m2(self) -> float:
        return float(np.pi * self.diameter_m**2 / 4.0)


@dataclass(frozen=True, slots=True)
class RectangularDuct:
    """A rectangular duct, inner width and height in metres."""

    width_m: float
    height_m: float

    @property
    def area_m2(self) -> float:
        return float(self.width_m * self.height_m)


def _check_duct(duct: RoundDuct | RectangularDuct) -> float:
    area = duct.area_m2
    if not np.isfinite(area) or area <= 0:
        raise ValueError(f"duct area must be a positive number of m2, got {area} from {duct}")
    return area


def flue_gas_molar_mass(co2_dry_pct: ArrayLike, o2_dry_pct: ArrayLike, moisture_pct: ArrayLike,
                        co_dry_pct: ArrayLike = 0.0) -> NDArray[np.float64]:
    """Wet flue gas molar mass (g/mol): the dry gas (CO2, O2, CO, the rest N2) diluted by water.

    M_s = (M_CO2 X_CO2 + M_O2 X_O2 + M_CO X_CO + M_N2 X_N2) (1 - X_sw) + M_H2O X_sw, the X dry
    volume fractions (GB/T 16157-1996's flue gas density, written in fractions instead of %).
    """
    co2 = np.asarray(co2_dry_pct, float) / 100.0
    o2 = np.asarray(o2_dry_pct, float) / 100.0
    co = np.asarray(co_dry_pct, float) / 100.0
    xsw = np.asarray(moisture_pct, float) / 100.0
    m = MOLAR_MASS_G_PER_MOL
    dry = m["co2"] * co2 + m["o2"] * o2 + m["co"] * co + m["n2"] * (1.0 - co2 - o2 - co)
    return dry * (1.0 - xsw) + m["h2o"] * xsw


def flue_gas_density_kg_m3(molar_mass_g_mol: ArrayLike, temperature_c: ArrayLike,
                           absolute_pressure_pa: ArrayLike) -> NDArray[np.float64]:
    """Ideal-gas density at duct conditions: rho = M p / (R T) (kg/m3, M in g/mol, p in Pa)."""
    m = np.asarray(molar_mass_g_mol, float) / 1000.0
    t = np.asarray(temperature_c, float) + STANDARD_TEMPERATURE_K
    return m * np.asarray(absolute_pressure_pa, float) / (R_J_PER_MOL_K * t)


def pitot_velocity_m_s(differential_pressure_pa: ArrayLike, density_kg_m3: ArrayLike,
                       kp: float) -> NDArray[np.float64]:
    """Point velocity from a pitot's differential pressure: v_p = Kp sqrt(2 dP / rho) (m/s).

    A negative differential pressure has no velocity: it gives NaN (the minute is then invalid).
    """
    dp = np.asarray(differential_pressure_pa, float)
    with np.errstate(invalid="ignore"):
        return kp * np.sqrt(2.0 * dp / np.asarray(density_kg_m3, float))


def section_velocity_m_s(cems_velocity_m_s: ArrayLike, kv: float) -> NDArray[np.float64]:
    """Section mean velocity v_s = Kv * v_p (HJ 75-2017's velocity-field coefficient)."""
    if not (np.isfinite(kv) and kv > 0):
        raise ValueError(f"velocity-field coefficient Kv must be a positive number, got {kv}")
    return kv * np.asarray(cems_velocity_m_s, float)


def actual_flow_m3_h(section_velocity: ArrayLike, duct: RoundDuct | RectangularDuct) -> NDArray[np.float64]:
    """Q_s = 3600 F v_s: flue gas flow at duct conditions, wet (m3/h)."""
    return 3600.0 * _check_duct(duct) * np.asarray(section_velocity, float)


def standard_dry_flow_m3_h(actual_flow: ArrayLike, temperature_c: ArrayLike, barometric_pa: ArrayLike,
                           static_pa: ArrayLike, moisture_pct: ArrayLike) -> NDArray[np.float64]:
    """Q_sn = Q_s * 273.15/(273.15 + t_s) * (B_a + P_s)/101325 * (1 - X_sw) (m3/h at 273.15 K,
    101.325 kPa, dry)."""
    t = np.asarray(temperature_c, float)
    p = np.asarray(barometric_pa, float) + np.asarray(static_pa, float)
    xsw = np.asarray(moisture_pct, float) / 100.0
    return (np.asarray(actual_flow, float) * STANDARD_TEMPERATURE_K / (STANDARD_TEMPERATURE_K + t)
            * p / STANDARD_PRESSURE_PA * (1.0 - xsw))
