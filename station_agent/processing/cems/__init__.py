"""Stack CO2 CEMS calculation (issue 18): pure numpy, arrays in, records out; no I/O, no clock.

- `flow`: velocity (pitot or ultrasonic, Kv), actual flow, standard dry flow.
- `concentration`: CO2 dry from wet, % vol to mg/m3, emission rate kg/h.
- `minutes`: the per-minute chain with each input's validity and reasons.
- `hourly`: valid hours (HJ 75-2017's 45 minutes, or Part 75's quadrants), hourly means.
- `drift`: daily zero/span checks, drift limits, out-of-control periods.
- `substitution`: HJ 75-2017 (default) and US Part 75 rules, method-of-determination codes.
- `emissions`: hourly mass after substitution; day, month, year sums.
- `pipeline.calculate`: all of it in one call.
"""

from station_agent.processing.cems.concentration import MG_M3_PER_PERCENT, MoistureBasis
from station_agent.processing.cems.drift import (
    HJ75_LIMITS,
    PART75_CO2_LIMITS,
    DailyCheck,
    DriftLimits,
    OutOfControlPeriod,
)
from station_agent.processing.cems.emissions import HourlyEmissions, PeriodTotal, SubstitutionMethod
from station_agent.processing.cems.flow import RectangularDuct, RoundDuct
from station_agent.processing.cems.hourly import HJ75_HOUR, PART75_HOUR, HourRule
from station_agent.processing.cems.minutes import MinuteInputs, reason_names
from station_agent.processing.cems.pipeline import CalculationOptions, CemsResult, calculate
from station_agent.processing.cems.settings import StackSettings, VelocityMethod
from station_agent.processing.cems.substitution import MODC, load_ranges, part75_co2, part75_flow

__all__ = [
    "HJ75_HOUR",
    "HJ75_LIMITS",
    "MG_M3_PER_PERCENT",
    "MODC",
    "PART75_CO2_LIMITS",
    "PART75_HOUR",
    "CalculationOptions",
    "CemsResult",
    "DailyCheck",
    "DriftLimits",
    "HourRule",
    "HourlyEmissions",
    "MinuteInputs",
    "MoistureBasis",
    "OutOfControlPeriod",
    "PeriodTotal",
    "RectangularDuct",
    "RoundDuct",
    "StackSettings",
    "SubstitutionMethod",
    "VelocityMethod",
    "calculate",
    "load_ranges",
    "part75_co2",
    "part75_flow",
    "reason_names",
]
