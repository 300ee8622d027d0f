"""What the CEMS calculation needs to know about a stack: geometry, how velocity is measured, the
analyzer's moisture basis and range, plausibility limits. Plain frozen dataclasses; the station's
TOML model (a later piece) builds one of these."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from station_agent.processing.cems.concentration import MoistureBasis
from station_agent.processing.cems.flow import RectangularDuct, RoundDuct


class VelocityMethod(StrEnum):
    PITOT = "pitot"            # differential pressure (Pa) -> velocity with Kp and the gas density
    ULTRASONIC = "ultrasonic"  # the meter gives a path velocity (m/s)


DEFAULT_RANGES: dict[str, tuple[float, float]] = {
    "differential_pressure_pa": (1.0, 5000.0),   # a blocked pitot reads ~0 Pa while the unit runs
    "velocity_m_s": (0.5, 40.0),
    "temperature_c": (-20.0, 400.0),
    "static_pa": (-10000.0, 10000.0),
    "barometric_pa": (60000.0, 110000.0),
    "moisture_pct": (0.0, 40.0),
    "o2_pct": (0.0, 21.0),
    "co2_pct": (0.0, 100.0),
}
"""Plausibility limits per input (inclusive): outside, the minute's input is invalid. Site configs
narrow them; they catch a blocked pitot or a stuck sensor, not small errors."""


@dataclass(frozen=True, slots=True)
class StackSettings:
    """One stack's CEMS: `kv` the velocity-field coefficient from the last comparison test, `kp` the
    pitot coefficient (pitot only), `co2_full_scale_pct` the analyzer's range (a reading at or above
    it is over range), `fallback_co2_pct`/`fallback_o2_pct` the dry composition used for the gas
    density when the analyzers' minute is invalid (so a CO2 fault does not also void the flow)."""

    duct: RoundDuct | RectangularDuct
    kv: float
    velocity_method: VelocityMethod = VelocityMethod.PITOT
    kp: float = 0.84
    co2_basis: MoistureBasis = MoistureBasis.WET
    co2_full_scale_pct: float = 20.0
    fallback_co2_pct: float = 12.0
    fallback_o2_pct: float = 6.0
    ranges: dict[str, tuple[float, float]] = field(default_factory=lambda: dict(DEFAULT_RANGES))

    def __post_init__(self) -> None:
        object.__setattr__(self, "velocity_method", VelocityMethod(self.velocity_method))
        object.__setattr__(self, "co2_basis", MoistureBasis(self.co2_basis))
        if not self.kv > 0:
            raise ValueError(f"kv (velocity-field coefficient) must be > 0, got {self.kv}")
        if self.velocity_method is VelocityMethod.PITOT and not self.kp > 0:
            raise ValueError(f"kp (pitot coefficient) must be > 0, got {self.kp}")
        if not self.co2_full_scale_pct > 0:
            raise ValueError(f"co2_full_scale_pct must be > 0, got {self.co2_full_scale_pct}")
        unknown = set(self.ranges) - set(DEFAULT_RANGES)
        if unknown:
            raise ValueError(f"unknown range names {sorted(unknown)}; known: {sorted(DEFAULT_RANGES)}")
        merged = dict(DEFAULT_RANGES)
        merged.update(self.ranges)
        object.__setattr__(self, "ranges", merged)
