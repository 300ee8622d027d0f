"""What a driver produces: one instrument record in physical units.

Quantities are named in lower case: a species alone is the wet (as measured) mole fraction,
`<species>_dry` its dry mole fraction; diagnostics keep their own names. Units are fixed per name
(UNITS), so a value never travels without a known unit. Species and their units come from the
species registry (ghgnet.species), so a species a third party registers is known here too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ghgnet import species

# the calibrated species (co2, ch4, co, n2o, then any registered by entry points), in that order
SPECIES = species.calibrated()

UNITS: dict[str, str] = {
    **species.units(),
    **{f"{sp}_dry": species.get(sp).unit for sp in SPECIES},
    "cavity_pressure": "Torr",
    "cavity_temp": "degC",
    "warm_box_temp": "degC",
    "das_temp": "degC",
    "outlet_valve": "DN",
    "flow": "sccm",
    "pressure": "hPa",
    "temperature": "degC",
    "humidity": "%",
    "cell_temp": "degC",
    "cell_pressure": "hPa",
    "input_voltage": "V",
    "probe_temp": "degC",
    "co2_uncompensated": "ppm",
    "ambient_temp": "degC",
    "ringdown_0": "us",
    "ringdown_1": "us",
    # LI-COR trace gas analyzers (drivers/licor/li78xx.py)
    "laser_phase_pressure": "kPa",
    "laser_temp": "degC",
    "ring_down_time": "us",
    "enclosure_temp": "degC",
    "laser_temp_shift": "degC",
    # sonic anemometers (drivers/gill/windmaster.py)
    "u": "m/s",
    "v": "m/s",
    "w": "m/s",
    "speed_of_sound": "m/s",
    "sonic_temp": "degC",
    # fast CO2/H2O analyzers (drivers/licor/li7x00.py)
    "co2_density": "mmol/m3",
    "h2o_density": "mmol/m3",
    "agc_pct": "%",
}


def unit_of(name: str) -> str:
    """Unit of a quantity name; unknown names are dimensionless by declaration ('1')."""
    return UNITS.get(name, "1")


@dataclass(frozen=True, slots=True)
class Reading:
    """One record from one device.

    time: UTC, timezone-aware (the instrument's time, converted from its configured zone).
    values: quantity name -> value in the unit of `UNITS`.
    status: the raw instrument status word, when the instrument has one.
    status_ok: whether the instrument called itself healthy for this record.
    status_flags: names of the status conditions that are not normal (empty when healthy).
    stream, flushing: set by the engine: what was being sampled (`inlet:<name>`, `cal:<cylinder>`,
    `target:<cylinder>`, `zero`, `span`) and whether the line was still being flushed after a
    switch; a driver sets `stream` only when its instrument says what it sampled (a GC's result
    file), and the engine then keeps it; conditions: engine conditions in force
    (valve_mismatch, maintenance, interlock) that make the sample invalid.
    """

    time: datetime
    device: str
    values: dict[str, float]
    status: int | None = None
    status_ok: bool = True
    status_flags: tuple[str, ...] = field(default_factory=tuple)
    stream: str = ""
    flushing: bool = False
    conditions: tuple[str, ...] = ()
