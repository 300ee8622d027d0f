"""`[cems]` of a station config: the stack, its monitors and where each input comes from.

Every input names a `[[devices]]` entry and one of its points as "device:point". Units as the
calculation's inputs (station_agent/processing/cems/minutes.py): CO2 and O2 % vol, moisture % vol,
pressures Pa, temperature degC, velocity m/s; `running` a bit (or a number, running when > 0);
`load` the unit's gross load (MW, or the unit of `part75_max_load`), used only by the Part 75 flow
substitution's load ranges.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, model_validator

from ghgnet.config import StrictModel
from station_agent.processing.cems import (
    HJ75_HOUR,
    HJ75_LIMITS,
    PART75_CO2_LIMITS,
    CalculationOptions,
    HourRule,
    RectangularDuct,
    RoundDuct,
    StackSettings,
    part75_co2,
    part75_flow,
)
from station_agent.processing.cems.settings import DEFAULT_RANGES

INPUT_NAMES = ("co2_pct", "differential_pressure_pa", "velocity_m_s", "temperature_c", "static_pa",
               "barometric_pa", "moisture_pct", "o2_pct", "running", "load")
SOURCE = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}:[A-Za-z0-9_.-]{1,64}$"


class DuctConfig(StrictModel):
    shape: Literal["round", "rectangular"] = "round"
    diameter_m: float | None = Field(default=None, gt=0, description="round: inner diameter, m")
    width_m: float | None = Field(default=None, gt=0, description="rectangular: inner width, m")
    height_m: float | None = Field(default=None, gt=0, description="rectangular: inner height, m")

    @model_validator(mode="after")
    def _complete(self) -> "DuctConfig":
        if self.shape == "round" and self.diameter_m is None:
            raise ValueError("a round duct needs diameter_m")
        if self.shape == "rectangular" and (self.width_m is None or self.height_m is None):
            raise ValueError("a rectangular duct needs width_m and height_m")
        return self

    def duct(self) -> RoundDuct | RectangularDuct:
        if self.shape == "round":
            return RoundDuct(float(self.diameter_m))  # type: ignore[arg-type]
        return RectangularDuct(float(self.width_m), float(self.height_m))  # type: ignore[arg-type]


class DailyCheckConfig(StrictModel):
    """The analyzer's daily zero/span check: when (UTC minute of the day), how long its minutes are
    not valid, its drift limits (hj75: 2.5 % of full scale; part75: 1.0 % CO2 absolute; see
    processing/cems/drift.py), and where its result is read: the analyzer's last zero and span gas
    readings (% CO2, "device:point"), read once the check is over. A failed check makes the analyzer
    out of control until a check passes (its hours substituted, HJ 75-2017 codes H4-H6)."""

    minute_of_day: int = Field(default=120, ge=0, lt=1440)
    duration_min: int = Field(default=10, ge=1, le=120, description="minutes the analyzer measures check gas")
    limits: Literal["hj75", "part75"] = "hj75"
    zero_source: str | None = Field(default=None, pattern=SOURCE, description="the check's zero reading")
    span_source: str | None = Field(default=None, pattern=SOURCE, description="the check's span reading")
    span_reference_pct: float = Field(default=15.0, gt=0, le=100, description="the span gas's certified CO2, %")

    @model_validator(mode="after")
    def _both(self) -> "DailyCheckConfig":
        if (self.zero_source is None) != (self.span_source is None):
            raise ValueError("zero_source and span_source go together")
        return self


class CemsConfig(StrictModel):
    unit: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="the unit (stack) id")
    duct: DuctConfig
    kv: float = Field(gt=0, description="velocity-field coefficient from the last comparison test")
    kp: float = Field(default=0.84, gt=0, description="pitot coefficient")
    velocity_method: Literal["pitot", "ultrasonic"] = "pitot"
    analyzer_basis: Literal["wet", "dry"] = Field(default="wet", description="what the CO2 analyzer measures")
    co2_full_scale_pct: float = Field(default=20.0, gt=0, le=100)
    fallback_co2_pct: float = Field(default=12.0, ge=0, le=100)
    fallback_o2_pct: float = Field(default=6.0, ge=0, le=21)
    ranges: dict[str, tuple[float, float]] = Field(default_factory=dict, description="plausibility limits per input")
    inputs: dict[str, str] = Field(description='input name -> "device:point" of a [[devices]] entry')
    hour_rule: Literal["hj75", "part75"] = Field(default="hj75",
                                                 description="hj75: 45 valid minutes; part75: quadrants")
    min_valid_minutes: int = Field(default=45, ge=1, le=60, description="hj75 rule's threshold")
    substitution: Literal["hj75", "part75"] = "hj75"
    part75_max_co2_pct: float | None = Field(default=None, gt=0, description="part75: maximum potential CO2")
    part75_max_flow_m3_h: float | None = Field(default=None, gt=0, description="part75: maximum potential flow")
    part75_max_load: float | None = Field(
        default=None, gt=0, description="part75: the unit's maximum hourly gross load (unit of inputs.load); "
        "with it the flow is substituted by load range")
    part75_load_ranges: int = Field(default=10, ge=1, le=20,
                                    description="part75: number of load ranges (10; up to 20 for a common stack)")
    daily_check: DailyCheckConfig = Field(default_factory=DailyCheckConfig)
    close_after_s: float = Field(default=120.0, gt=0, description="a minute is computed this long after its end")
    history_hours: int = Field(default=2160, ge=24, le=8760, description="hours looked back for substitution")

    @model_validator(mode="after")
    def _consistent(self) -> "CemsConfig":
        unknown = sorted(set(self.inputs) - set(INPUT_NAMES))
        if unknown:
            raise ValueError(f"inputs: unknown input(s) {unknown}; known: {', '.join(INPUT_NAMES)}")
        for name, source in self.inputs.items():
            if not re.match(SOURCE, source):
                raise ValueError(f'inputs.{name}: {source!r} is not "device:point"')
        velocity = "differential_pressure_pa" if self.velocity_method == "pitot" else "velocity_m_s"
        needed = ["co2_pct", velocity, "temperature_c", "static_pa", "barometric_pa", "moisture_pct"]
        missing = [n for n in needed if n not in self.inputs]
        if missing:
            raise ValueError(f"inputs: {self.velocity_method} velocity needs {', '.join(missing)}")
        bad_ranges = sorted(set(self.ranges) - set(DEFAULT_RANGES))
        if bad_ranges:
            raise ValueError(f"ranges: unknown input(s) {bad_ranges}; known: {', '.join(DEFAULT_RANGES)}")
        for name, (lo, hi) in self.ranges.items():
            if lo >= hi:
                raise ValueError(f"ranges.{name}: ({lo}, {hi}) must have low < high")
        if self.substitution == "part75" and (self.part75_max_co2_pct is None or self.part75_max_flow_m3_h is None):
            raise ValueError("substitution part75 needs part75_max_co2_pct and part75_max_flow_m3_h")
        if self.part75_max_load is not None and "load" not in self.inputs:
            raise ValueError("part75_max_load needs inputs.load (the unit's gross load)")
        return self

    def devices(self) -> set[str]:
        check = self.daily_check
        sources = [*self.inputs.values(), *(s for s in (check.zero_source, check.span_source) if s)]
        return {s.partition(":")[0] for s in sources}

    def settings(self) -> StackSettings:
        return StackSettings(duct=self.duct.duct(), kv=self.kv, velocity_method=self.velocity_method, kp=self.kp,
                             co2_basis=self.analyzer_basis, co2_full_scale_pct=self.co2_full_scale_pct,
                             fallback_co2_pct=self.fallback_co2_pct, fallback_o2_pct=self.fallback_o2_pct,
                             ranges=dict(self.ranges))

    def options(self) -> CalculationOptions:
        rule = HJ75_HOUR if self.hour_rule == "hj75" else HourRule("quadrants")
        if self.hour_rule == "hj75" and self.min_valid_minutes != 45:
            rule = HourRule(min_valid_minutes=self.min_valid_minutes)
        limits = HJ75_LIMITS if self.daily_check.limits == "hj75" else PART75_CO2_LIMITS
        p75_co2 = p75_flow = None
        if self.substitution == "part75":
            p75_co2 = part75_co2(float(self.part75_max_co2_pct))  # type: ignore[arg-type]
            p75_flow = part75_flow(float(self.part75_max_flow_m3_h))  # type: ignore[arg-type]
        return CalculationOptions(hour_rule=rule, method=self.substitution, drift_limits=limits,
                                  part75_co2=p75_co2, part75_flow=p75_flow, part75_max_load=self.part75_max_load,
                                  part75_load_ranges=self.part75_load_ranges)

    @property
    def load_based(self) -> bool:
        """Part 75 substitution with load ranges for the flow."""
        return self.substitution == "part75" and self.part75_max_load is not None
