"""The whole CEMS calculation in one call: minutes -> hours -> substitution -> day/month/year.

What the station agent (and the bench's checks) call; every step is also usable on its own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from station_agent.processing.cems.drift import (
    HJ75_LIMITS,
    DailyCheck,
    DriftLimits,
    OutOfControlPeriod,
    out_of_control_mask,
    out_of_control_periods,
)
from station_agent.processing.cems.emissions import (
    HourlyEmissions,
    PeriodTotal,
    SubstitutionMethod,
    hourly_emissions,
    period_totals,
)
from station_agent.processing.cems.hourly import HJ75_HOUR, HourlyValues, HourRule, hourly_mean, hourly_values
from station_agent.processing.cems.minutes import MinuteEmissions, MinuteInputs, minute_emissions
from station_agent.processing.cems.settings import StackSettings
from station_agent.processing.cems.substitution import Part75Parameter, load_ranges


@dataclass(frozen=True, slots=True)
class CalculationOptions:
    """How to judge and fill: the valid-hour rule, the substitution method (HJ 75-2017 by default),
    the drift limits of the daily checks, and the Part 75 parameters when that method is chosen:
    `part75_max_load` the unit's maximum hourly gross load (same unit as the load input, e.g. MW) and
    `part75_load_ranges` their number (10; up to 20 for a common stack), for the flow's load ranges."""

    hour_rule: HourRule = HJ75_HOUR
    method: SubstitutionMethod = SubstitutionMethod.HJ75
    drift_limits: DriftLimits = HJ75_LIMITS
    part75_co2: Part75Parameter | None = None
    part75_flow: Part75Parameter | None = None
    part75_max_load: float | None = None
    part75_load_ranges: int = 10


@dataclass(frozen=True)
class CemsResult:
    minutes: MinuteEmissions
    hourly: HourlyValues
    hours: HourlyEmissions
    out_of_control: list[OutOfControlPeriod]

    def totals(self, by: str) -> list[PeriodTotal]:
        return period_totals(self.hours, by)


def calculate(inputs: MinuteInputs, settings: StackSettings, checks: Sequence[DailyCheck] = (),
              options: CalculationOptions = CalculationOptions(),
              load_range: NDArray[np.int64] | None = None) -> CemsResult:
    """Run the chain: the checks' out-of-control periods void the CO2 minutes inside them.

    With the Part 75 method, each hour's load range is `load_range` when given, else formed from the
    inputs' load (its mean over the hour's running minutes) and `options.part75_max_load`."""
    periods = out_of_control_periods(checks, options.drift_limits)
    ooc = out_of_control_mask(inputs.time, periods)
    if inputs.out_of_control is not None:
        ooc |= np.asarray(inputs.out_of_control, bool)
    minutes = minute_emissions(dataclasses.replace(inputs, out_of_control=ooc), settings)
    hourly = hourly_values(minutes, options.hour_rule)
    if (load_range is None and options.method == SubstitutionMethod.PART75 and inputs.load is not None
            and options.part75_max_load is not None):
        load = hourly_mean(inputs.time, inputs.running, inputs.load, hourly.hour)
        load_range = load_ranges(load, options.part75_max_load, options.part75_load_ranges)
    hours = hourly_emissions(hourly, options.method, periods, part75_co2=options.part75_co2,
                             part75_flow=options.part75_flow, load_range=load_range)
    return CemsResult(minutes, hourly, hours, periods)
