"""Units of the inversion: fluxes in umol m-2 s-1, footprints in ppm per (umol m-2 s-1), totals in Mt.

Footprints (STILT) are in ppm per (umol m-2 s-1), so the state vector holds fluxes in
umol m-2 s-1; priors arrive in kg m-2 s-1 (EDGAR), mol m-2 s-1 or umol m-2 s-1 and are converted
here. Totals are reported in Mt of the species (Mt CO2 for CO2) per period.
"""

from __future__ import annotations

import numpy as np

EARTH_RADIUS_M = 6_371_008.8
"""Mean Earth radius (IUGG), m: cell areas and distances on a spherical Earth."""

MOLAR_MASS_G_PER_MOL: dict[str, float] = {
    "CO2": 44.0095,
    "CH4": 16.0425,
    "CO": 28.0101,
    "N2O": 44.0128,
}
"""Molar masses (g mol-1) of the species the network measures (IUPAC standard atomic weights)."""

_FLUX_UNITS: dict[str, str] = {
    "kg m-2 s-1": "kg",
    "kg/m2/s": "kg",
    "kg m**-2 s**-1": "kg",
    "mol m-2 s-1": "mol",
    "mol/m2/s": "mol",
    "mol m**-2 s**-1": "mol",
    "umol m-2 s-1": "umol",
    "umol/m2/s": "umol",
    "µmol m-2 s-1": "umol",
    "micromol m-2 s-1": "umol",
    "umol m**-2 s**-1": "umol",
}


class UnitError(ValueError):
    """A unit the inversion cannot convert."""


def molar_mass(species: str, override: float | None = None) -> float:
    """Molar mass of `species` in g mol-1; `override` wins (for a species not in the table)."""
    if override is not None:
        if not override > 0:
            raise UnitError(f"molar mass must be positive, got {override}")
        return float(override)
    try:
        return MOLAR_MASS_G_PER_MOL[species.upper()]
    except KeyError:
        known = ", ".join(sorted(MOLAR_MASS_G_PER_MOL))
        raise UnitError(
            f"unknown species {species!r}: give its molar mass (known: {known})"
        ) from None


def flux_to_umol(values: np.ndarray, units: str, molar_mass_g_per_mol: float) -> np.ndarray:
    """Convert a flux from `units` (kg m-2 s-1, mol m-2 s-1 or umol m-2 s-1) to umol m-2 s-1."""
    kind = _FLUX_UNITS.get(" ".join(units.strip().split()))
    if kind is None:
        known = "kg m-2 s-1, mol m-2 s-1, umol m-2 s-1"
        raise UnitError(f"unknown flux units {units!r} (known: {known})")
    values = np.asarray(values, dtype=float)
    if kind == "kg":
        return values * (1e3 / molar_mass_g_per_mol) * 1e6
    if kind == "mol":
        return values * 1e6
    return values.copy()


def cell_areas_m2(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Areas (m2) of the cells of a regular lat/lon grid given by its cell centres (degrees).

    Exact on a sphere: R^2 * dlon * (sin(lat_north) - sin(lat_south)); shape (len(lat), len(lon)).
    """
    lat = np.asarray(lat, dtype=float)
    lon = np.asarray(lon, dtype=float)
    lat_edges = _edges(lat)
    lon_edges = _edges(lon)
    band = np.abs(np.diff(np.sin(np.deg2rad(np.clip(lat_edges, -90.0, 90.0)))))
    width = np.abs(np.deg2rad(np.diff(lon_edges)))
    return EARTH_RADIUS_M**2 * band[:, None] * width[None, :]


def _edges(centres: np.ndarray) -> np.ndarray:
    if centres.size == 1:
        raise UnitError("a grid axis needs at least two cells to know its spacing")
    mid = 0.5 * (centres[1:] + centres[:-1])
    first = centres[0] - (mid[0] - centres[0])
    last = centres[-1] + (centres[-1] - mid[-1])
    return np.concatenate([[first], mid, [last]])


def umol_per_s_to_mt(molar_mass_g_per_mol: float) -> float:
    """Mt of species per (umol s-1 sustained for one second): 1e-6 mol * M g/mol * 1e-12 Mt/g."""
    return 1e-6 * molar_mass_g_per_mol * 1e-12
