"""The species registry: every gas a station measures, with its unit, molar mass, WMO/GAW
compatibility goal and calibration scale.

The bundled species (co2, ch4, co, n2o, and h2o, which is measured but not calibrated) register
through the entry-point group `ghgnet.species` exactly as a third party's would; an entry point names
a `Species` or a sequence of them. A station config may add its own with `register(...)`.
Values: compatibility goals (CO2 0.1 ppm, CH4 2 ppb, CO 2 ppb, N2O 0.1 ppb) and scales (X2019,
X2004A, X2014A) from DOMAIN.md section 2 (Rella et al. 2013, AMT 6, 837; GAW report 255); molar
masses from the IUPAC standard atomic weights (CO2 44.01 g/mol as in HJ 212's mg/m3 conversion).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points

ENTRY_POINT_GROUP = "ghgnet.species"
MOLE_FRACTION_UNITS = {"ppm": 1e-6, "ppb": 1e-9, "ppt": 1e-12}


@dataclass(frozen=True, slots=True)
class Species:
    """One gas. `goal` (in `unit`) and `scale` are None for a quantity that is not calibrated;
    `reference` is a typical ambient value (in `unit`), where goals are judged."""

    name: str
    unit: str
    molar_mass: float
    goal: float | None = None
    scale: str | None = None
    reference: float | None = None

    @property
    def mole_fraction_scale(self) -> float:
        """`unit` in mol/mol (ppm 1e-6, ppb 1e-9, ppt 1e-12); KeyError for a unit that is not one."""
        return MOLE_FRACTION_UNITS[self.unit]

    def __post_init__(self) -> None:
        if not (self.name.isidentifier() and self.name.islower()):
            raise ValueError(f"species name {self.name!r}: lower-case letters, digits and _ only")
        if self.molar_mass <= 0:
            raise ValueError(f"species {self.name!r}: molar mass must be > 0 g/mol, got {self.molar_mass}")
        if self.goal is not None and self.goal <= 0:
            raise ValueError(f"species {self.name!r}: compatibility goal must be > 0, got {self.goal}")


BUNDLED: tuple[Species, ...] = (
    Species("co2", "ppm", 44.01, goal=0.1, scale="WMO-CO2-X2019", reference=420.0),
    Species("ch4", "ppb", 16.04, goal=2.0, scale="WMO-CH4-X2004A", reference=2000.0),
    Species("co", "ppb", 28.01, goal=2.0, scale="WMO-CO-X2014A", reference=150.0),
    Species("n2o", "ppb", 44.013, goal=0.1, scale="NOAA-2006A", reference=337.0),
    Species("h2o", "%", 18.015),
)

_registry: dict[str, Species] = {}


def register(species: Species) -> Species:
    """Add `species`; registering the same name again with other values is an error."""
    known = _registry.get(species.name)
    if known is not None and known != species:
        raise ValueError(f"species {species.name!r} is already registered as {known}")
    _registry[species.name] = species
    return species


def _load_entry_points() -> None:
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        value = ep.load()
        items: Iterable[object] = value if isinstance(value, (tuple, list)) else (value,)
        for item in items:
            if not isinstance(item, Species):
                raise TypeError(f"species entry point {ep.name!r} -> {ep.value} gives {item!r}, not a Species")
            register(item)


for _s in BUNDLED:
    register(_s)
_load_entry_points()


def get(name: str) -> Species:
    if name not in _registry:
        raise KeyError(f"unknown species {name!r}; known species: {', '.join(_registry)}")
    return _registry[name]


def all_species() -> list[Species]:
    """Every registered species, bundled first in their order, then the others as registered."""
    return list(_registry.values())


def calibrated() -> tuple[str, ...]:
    """Names of the species with a compatibility goal (those calibrated against cylinders)."""
    return tuple(s.name for s in _registry.values() if s.goal is not None)


def units() -> dict[str, str]:
    return {s.name: s.unit for s in _registry.values()}


def goals() -> dict[str, float]:
    return {s.name: s.goal for s in _registry.values() if s.goal is not None}


def scales() -> dict[str, str]:
    return {s.name: s.scale for s in _registry.values() if s.scale is not None}


def references() -> dict[str, float]:
    return {s.name: s.reference for s in _registry.values() if s.reference is not None}
