"""The water-vapour correction coefficients of every analyzer model: the one table the drivers,
the simulators and the station's processing read.

dry = wet / (1 + a*H + b*H^2), H the H2O mole fraction in %, a in %^-1 and b in %^-2 (Rella et al.
2013, AMT 6, 837). Plain dilution by water vapour is a = -0.01, b = 0 (dry = wet / (1 - H/100)),
the default for an analyzer that reports wet values only and has no measured coefficients; an
analyzer that reports dry values needs none. They are defaults only: each instrument should carry
its own measured coefficients in its configuration (`water_correction`).
"""

from __future__ import annotations

from typing import Any

from pydantic import AfterValidator, Field

from drivers.reading import SPECIES
from ghgnet.processing.water import G2401_FACTORY_WATER

Coefficients = tuple[float, float]

DILUTION: Coefficients = (-0.01, 0.0)


DEFAULTS: dict[str, dict[str, Coefficients]] = {
    # CO has no factory value known to us: plain dilution stands in
    "picarro.g2401": {**G2401_FACTORY_WATER, "co": DILUTION},
    "picarro.g2301": dict(G2401_FACTORY_WATER),
    # NDIR probes and cells that report the humid sample's CO2
    "licor.li850": {"co2": DILUTION},
    "vaisala.gmp343": {"co2": DILUTION},
}
"""Driver name -> species -> (a, b): the config default of each model that reports wet values."""

G2401_WATER_CORRECTION = DEFAULTS["picarro.g2401"]
G2301_WATER_CORRECTION = DEFAULTS["picarro.g2301"]


def _known_species(water: dict[str, Coefficients]) -> dict[str, Coefficients]:
    bad = [s for s in water if s not in SPECIES]
    if bad:
        raise ValueError(f"unknown species {bad}; known: {list(SPECIES)}")
    return water


def water_correction_field(model: str | None = None, when: str = "") -> Any:
    """The `water_correction` config field, defaulting to `model`'s row of DEFAULTS (none: {}); it
    refuses a species ghgnet does not calibrate (drivers.reading.SPECIES)."""
    field = Field(
        default_factory=lambda: dict(DEFAULTS.get(model, {})) if model else {},
        description="species -> (a, b): dry = wet / (1 + a*H + b*H^2), H = H2O in %" + (f"; {when}" if when else ""),
    )
    field.metadata.append(AfterValidator(_known_species))
    return field
