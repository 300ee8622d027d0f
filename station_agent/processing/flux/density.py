"""Gas fluxes from an open-path analyzer (molar densities) with the Webb, Pearman and Leuning
(1980) correction, or from a closed-path analyzer through point-by-point dry mixing ratios.

WPL (Webb et al. 1980, Q. J. R. Meteorol. Soc. 106, 85-100, eqs. 24-25) in molar form, with nd and
nv the molar densities of dry air and vapour, c the gas's molar density, T the air temperature:
    E  = (1 + nv/nd) (w'nv' + nv/T w'T')
    Fc = w'c' + (c/nd) w'nv' + (1 + nv/nd) (c/T) w'T'
(the paper's mu rho_c / rho_a w'rho_v' is c/nd w'nv' once mass densities become molar ones).
Closed path: the wet mole fractions are turned into dry mixing ratios record by record
(chi = x / (1 - x_v)), which removes the dilution and temperature terms (Ibrom et al. 2007;
Burba et al. 2012), and the flux is nd w'chi'.
"""

from __future__ import annotations

from station_agent.processing.flux.air import Air


def wpl_open_path(w_c: float, w_nv: float, w_t: float, c_mean: float, air: Air) -> tuple[float, float]:
    """(Fc, E) in mol m-2 s-1 from the raw density covariances (mol m-2 s-1), the air-temperature
    flux w'T' (K m s-1) and the gas's mean molar density c (mol m-3)."""
    nd, nv, t = air.dry_mol_m3, air.vapour_mol_m3, air.temperature_k
    e = (1.0 + nv / nd) * (w_nv + nv / t * w_t)
    fc = w_c + c_mean / nd * w_nv + (1.0 + nv / nd) * c_mean / t * w_t
    return fc, e


def dry_mixing_ratio(mole_fraction, vapour_mole_fraction):
    """chi = x / (1 - x_v): a wet mole fraction to a dry mixing ratio (same units as x), record by
    record; the vapour's own: x_v / (1 - x_v)."""
    return mole_fraction / (1.0 - vapour_mole_fraction)
