"""The Picarro water-vapour correction coefficients, the one table the driver, the simulator and
the station's processing all read: dry = wet / (1 + a*H + b*H^2), H the reported H2O in %,
a in %^-1 and b in %^-2.

CO2 and CH4: G2401 factory values (Picarro host software, InstrCal_CFKADS.ini). They are defaults
only: each instrument should carry its own measured coefficients in its configuration.
"""

from __future__ import annotations

G2401_FACTORY_WATER: dict[str, tuple[float, float]] = {
    "co2": (-0.012000, -0.0002674),
    "ch4": (-0.0098200, -0.0002393),
}

G2401_WATER_CORRECTION: dict[str, tuple[float, float]] = {**G2401_FACTORY_WATER, "co": (-0.01, 0.0)}
"""The G2401 config default. CO has no factory value known to us: plain dilution (a = -0.01 per %,
b = 0) stands in until the instrument's own coefficient is configured."""

G2301_WATER_CORRECTION: dict[str, tuple[float, float]] = {
    k: v for k, v in G2401_WATER_CORRECTION.items() if k != "co"
}
"""The G2301 (no CO) config default."""
