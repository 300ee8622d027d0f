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
from station_agent.processing.cems.hourly import HJ75_HOUR, HourlyValues, HourRule, hourly_values
from station_agent.processing.cems.minutes import MinuteEmissions, MinuteInputs, minute_emissions
from station_agent.processing.cems.settings import StackSettings
from station_agent.processing.cems.substitution import Part75Parameter


@dataclass(frozen=True, slots=True)
class CalculationOptions:
    """How to judge and fill: the valid-hour rule, the substitution method (HJ 75-2017 by default),
    the drift limits of the daily checks, and the Part 75 parameters when that method is chosen."""

    hour_rule: HourRule = HJ75_HOUR
    method: SubstitutionMethod = SubstitutionMethod.HJ75
    drift_limits: DriftLimits = HJ75_LIMITS
    part75_co2: Part75Parameter | None = None
    part75_flow: Part75Parameter | None = None


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
              load_bin: NDArray[np.int64] | None = None) -> CemsResult:
    """Run the chain: the checks' out-of-control periods void the CO2 minutes inside them."""
    periods = out_of_control_periods(checks, options.drift_limits)
    ooc = out_of_control_mask(inputs.time, periods)
    if inputs.out_of_control is not None:
        ooc |= np.asarray(inputs.out_of_control, bool)
    minutes = minute_emissions(dataclasses.replace(inputs, out_of_control=ooc), settings)
    hourly = hourly_values(minutes, options.hour_rule)
    hours = hourly_emissions(hourly, options.method, periods, part75_co2=options.part75_co2,
                             part75_flow=options.part75_flow, load_bin=load_bin)
    return CemsResult(minutes, hourly, hours, periods)
