"""Per-minute CO2 emission rate from a stack's minute inputs, with each input's validity carried.

A minute's flow is valid when its velocity input (pitot differential pressure or ultrasonic
velocity), temperature, static and barometric pressure and moisture are all present, reported OK
by their device and inside their plausibility range; its CO2 is valid when the CO2 reading (and,
for a wet analyzer, the moisture) is, the reading is below the analyzer's full scale, and the
analyzer is not out of control (a failed daily check until the next passing one, see `drift`).
The reasons are kept as bits (`REASONS`), so an invalid minute always says why.

Flow and CO2 validity are kept apart because the substitution rules treat each monitor on its own
(US 40 CFR Part 75 substitutes flow and CO2 concentration separately, section 75.30(a)).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from station_agent.processing.cems.concentration import (
    MoistureBasis,
    co2_dry_pct,
    emission_rate_kg_h,
    mg_m3_from_pct,
)
from station_agent.processing.cems.flow import (
    actual_flow_m3_h,
    flue_gas_density_kg_m3,
    flue_gas_molar_mass,
    pitot_velocity_m_s,
    section_velocity_m_s,
    standard_dry_flow_m3_h,
)
from station_agent.processing.cems.settings import StackSettings, VelocityMethod

INPUTS = ("differential_pressure_pa", "velocity_m_s", "temperature_c", "static_pa", "barometric_pa",
          "moisture_pct", "o2_pct", "co2_pct")
"""The minute inputs by name (the velocity input used is the one the settings name)."""

REASONS = INPUTS + ("co2_over_range", "out_of_control")
"""Reason bits: bit i set means REASONS[i] made the minute's flow or CO2 invalid."""
REASON_BIT = {name: np.uint32(1 << i) for i, name in enumerate(REASONS)}

_FLOW_INPUTS = ("temperature_c", "static_pa", "barometric_pa", "moisture_pct")


def reason_names(bits: int) -> list[str]:
    """The reason names a bit set holds, in REASONS order."""
    return [name for i, name in enumerate(REASONS) if int(bits) >> i & 1]


@dataclass(frozen=True)
class MinuteInputs:
    """One stack's minutes: `time` minute starts (datetime64, UTC), `running` the unit operating,
    `values` the readings by INPUTS name (NaN where missing; the velocity input not used may be
    absent), `ok` the device's own verdict by name (absent: True), `out_of_control` the CO2
    analyzer out of control (absent: never), `load` the unit's gross load (e.g. MW; only the Part 75
    flow substitution's load ranges use it). CO2 % vol as the analyzer reads it (its basis is in
    the settings); O2 dry % vol; moisture % vol; pressures Pa; temperature degC."""

    time: NDArray[np.datetime64]
    running: NDArray[np.bool_]
    values: Mapping[str, NDArray[np.float64]]
    ok: Mapping[str, NDArray[np.bool_]] | None = None
    out_of_control: NDArray[np.bool_] | None = None
    load: NDArray[np.float64] | None = None

    def __post_init__(self) -> None:
        n = len(self.time)
        unknown = set(self.values) - set(INPUTS) | set(self.ok or {}) - set(INPUTS)
        if unknown:
            raise ValueError(f"unknown minute inputs {sorted(unknown)}; known: {', '.join(INPUTS)}")
        arrays = {**self.values, **(self.ok or {}), "running": self.running}
        if self.out_of_control is not None:
            arrays["out_of_control"] = self.out_of_control
        if self.load is not None:
            arrays["load"] = self.load
        for name, arr in arrays.items():
            if len(arr) != n:
                raise ValueError(f"minute input {name!r} has {len(arr)} values for {n} minutes")


@dataclass(frozen=True)
class MinuteEmissions:
    """The per-minute results: section velocity (m/s), actual flow (m3/h, wet, duct conditions),
    standard dry flow (m3/h), CO2 dry (% vol and mg/m3), emission rate (kg/h, NaN unless both
    valid), `flow_valid`, `co2_valid` (running minutes only), `reasons` bits (REASONS)."""

    time: NDArray[np.datetime64]
    running: NDArray[np.bool_]
    velocity_m_s: NDArray[np.float64]
    actual_flow_m3_h: NDArray[np.float64]
    standard_flow_m3_h: NDArray[np.float64]
    co2_dry_pct: NDArray[np.float64]
    co2_dry_mg_m3: NDArray[np.float64]
    rate_kg_h: NDArray[np.float64]
    flow_valid: NDArray[np.bool_]
    co2_valid: NDArray[np.bool_]
    reasons: NDArray[np.uint32]

    @property
    def valid(self) -> NDArray[np.bool_]:
        return self.flow_valid & self.co2_valid


def _input_bad(inputs: MinuteInputs, settings: StackSettings, name: str, n: int) -> NDArray[np.bool_]:
    """Missing, not OK by its device, or outside its plausibility range."""
    values = inputs.values.get(name)
    if values is None:
        return np.ones(n, bool)
    values = np.asarray(values, float)
    low, high = settings.ranges[name]
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(values) | (values < low) | (values > high)
    if inputs.ok is not None and name in inputs.ok:
        bad |= ~np.asarray(inputs.ok[name], bool)
    return bad


def _value(inputs: MinuteInputs, name: str, n: int) -> NDArray[np.float64]:
    values = inputs.values.get(name)
    return np.full(n, np.nan) if values is None else np.asarray(values, float)


def minute_emissions(inputs: MinuteInputs, settings: StackSettings) -> MinuteEmissions:
    """Velocity -> flows -> CO2 dry -> kg/h for every minute, with validity and reasons."""
    n = len(inputs.time)
    running = np.asarray(inputs.running, bool)
    bad = {name: _input_bad(inputs, settings, name, n) for name in INPUTS}
    reasons = np.zeros(n, np.uint32)

    velocity_input = ("differential_pressure_pa" if settings.velocity_method is VelocityMethod.PITOT
                      else "velocity_m_s")
    moisture = _value(inputs, "moisture_pct", n)
    co2_reading = _value(inputs, "co2_pct", n)
    co2_dry = co2_dry_pct(co2_reading, moisture, settings.co2_basis)
    with np.errstate(invalid="ignore"):
        over_range = np.isfinite(co2_reading) & (co2_reading >= settings.co2_full_scale_pct)
    ooc = (np.zeros(n, bool) if inputs.out_of_control is None else np.asarray(inputs.out_of_control, bool))

    flow_bad = bad[velocity_input].copy()
    for name in _FLOW_INPUTS:
        flow_bad |= bad[name]
    co2_bad = bad["co2_pct"] | over_range | ooc
    if settings.co2_basis is MoistureBasis.WET:
        co2_bad |= bad["moisture_pct"]

    for name in (velocity_input, *_FLOW_INPUTS, "co2_pct"):
        reasons |= np.where(bad[name], REASON_BIT[name], np.uint32(0))
    reasons |= np.where(over_range, REASON_BIT["co2_over_range"], np.uint32(0))
    reasons |= np.where(ooc, REASON_BIT["out_of_control"], np.uint32(0))

    temperature = _value(inputs, "temperature_c", n)
    absolute_pa = _value(inputs, "barometric_pa", n) + _value(inputs, "static_pa", n)
    if settings.velocity_method is VelocityMethod.PITOT:
        # gas density from the measured composition where the analyzers are valid, else the fallback
        o2 = _value(inputs, "o2_pct", n)
        co2_for_density = np.where(co2_bad, settings.fallback_co2_pct, co2_dry)
        o2_for_density = np.where(bad["o2_pct"], settings.fallback_o2_pct, o2)
        molar_mass = flue_gas_molar_mass(co2_for_density, o2_for_density, moisture)
        density = flue_gas_density_kg_m3(molar_mass, temperature, absolute_pa)
        cems_velocity = pitot_velocity_m_s(_value(inputs, "differential_pressure_pa", n), density, settings.kp)
    else:
        cems_velocity = _value(inputs, "velocity_m_s", n)
    velocity = section_velocity_m_s(cems_velocity, settings.kv)
    actual = actual_flow_m3_h(velocity, settings.duct)
    standard = standard_dry_flow_m3_h(actual, temperature, _value(inputs, "barometric_pa", n),
                                      _value(inputs, "static_pa", n), moisture)
    flow_valid = running & ~flow_bad & np.isfinite(standard)
    co2_valid = running & ~co2_bad & np.isfinite(co2_dry)
    co2_mg = mg_m3_from_pct(co2_dry)
    rate = np.where(flow_valid & co2_valid, emission_rate_kg_h(co2_mg, standard), np.nan)
    return MinuteEmissions(time=np.asarray(inputs.time), running=running, velocity_m_s=velocity,
                           actual_flow_m3_h=actual, standard_flow_m3_h=standard, co2_dry_pct=co2_dry,
                           co2_dry_mg_m3=co2_mg, rate_kg_h=rate, flow_valid=flow_valid,
                           co2_valid=co2_valid, reasons=reasons)
