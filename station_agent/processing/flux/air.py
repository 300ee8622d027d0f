"""Air properties of an averaging period and the sensible-heat humidity correction.

Constants: R = 8.314462618 J mol-1 K-1, molar masses of dry air 28.9645 g/mol and water
18.01528 g/mol, cp of dry air 1004.67 J kg-1 K-1 (moist air: cp = cpd (1 + 0.84 q)), latent heat of
vaporisation lambda = 2.501e6 - 2370 T[degC] J/kg (the usual linear fit, e.g. Stull 1988).
"""

from __future__ import annotations

from dataclasses import dataclass

R = 8.314462618
M_DRY = 28.9645e-3
M_H2O = 18.01528e-3
CP_DRY = 1004.67
SONIC_Q_COEFF = 0.51
"""Ts = T (1 + 0.51 q): sonic (virtual-like) temperature from air temperature and specific
humidity q (Schotanus et al. 1983, Boundary-Layer Meteorol. 26, 81-93)."""


@dataclass(frozen=True, slots=True)
class Air:
    """Mean state of the air in a period: T (K), p (Pa), molar densities of dry air and vapour
    (mol m-3), mass density (kg m-3), specific humidity, cp (J kg-1 K-1), lambda (J kg-1)."""

    temperature_k: float
    pressure_pa: float
    dry_mol_m3: float
    vapour_mol_m3: float
    density_kg_m3: float
    specific_humidity: float
    cp: float
    latent_heat: float


def air_state(sonic_temperature_k: float, pressure_pa: float, vapour_mol_m3: float | None = None,
              vapour_mole_fraction: float | None = None) -> Air:
    """The period's air from the mean sonic temperature, pressure and either the vapour's molar
    density (open path) or its wet mole fraction (closed path); T = Ts / (1 + 0.51 q), solved by
    fixed-point iteration (q depends on T through the densities)."""
    t = sonic_temperature_k
    for _ in range(4):
        total = pressure_pa / (R * t)
        nv = vapour_mol_m3 if vapour_mol_m3 is not None else (vapour_mole_fraction or 0.0) * total
        nd = total - nv
        rho = nd * M_DRY + nv * M_H2O
        q = nv * M_H2O / rho
        t = sonic_temperature_k / (1.0 + SONIC_Q_COEFF * q)
    cp = CP_DRY * (1.0 + 0.84 * q)
    lam = 2.501e6 - 2370.0 * (t - 273.15)
    return Air(t, pressure_pa, nd, nv, rho, q, cp, lam)


def air_temperature_flux(w_ts: float, w_nv: float, air: Air) -> float:
    """Kinematic air-temperature flux w'T' (K m s-1) from the sonic's w'Ts' and the vapour flux
    w'nv' (mol m-2 s-1): Schotanus et al. (1983) w'T' = (w'Ts' - 0.51 T w'q') / (1 + 0.51 q), with
    w'q' = M_v w'nv' / rho (the sonic's cross-wind term is left to the sonic's firmware)."""
    w_q = M_H2O * w_nv / air.density_kg_m3
    return (w_ts - SONIC_Q_COEFF * air.temperature_k * w_q) / (1.0 + SONIC_Q_COEFF * air.specific_humidity)
