"""Hourly emissions after substitution, and their sums by day, month and year.

An hour's CO2 mass (kg) = C_d (mg/m3) * Q_sn (m3/h) * 1e-6 * operating time (h), from each
monitor's hourly value, measured or substituted (`hourly.hour_mass_kg`). An hour is "measured"
when both monitors' values are ("01"), "substituted" when either was substituted; its codes say
how. Days, months and years are sums of their hours (UTC calendar periods).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray

from station_agent.processing.cems.drift import OutOfControlPeriod
from station_agent.processing.cems.hourly import HourlyValues, hour_mass_kg
from station_agent.processing.cems.substitution import (
    MEASURED,
    NOT_OPERATING,
    Part75Parameter,
    Substituted,
    hj75_substitute,
    part75_flow_substitute,
    part75_substitute,
)


class SubstitutionMethod(StrEnum):
    HJ75 = "hj75"
    PART75 = "part75"


@dataclass(frozen=True)
class HourlyEmissions:
    """Per clock hour: operating time (h), CO2 dry % and standard dry flow (m3/h) with their
    method-of-determination codes, and the mass (kg; NaN when a value could not be substituted)."""

    hour: NDArray[np.datetime64]
    operating_hours: NDArray[np.float64]
    co2_dry_pct: NDArray[np.float64]
    co2_modc: NDArray[np.str_]
    standard_flow_m3_h: NDArray[np.float64]
    flow_modc: NDArray[np.str_]
    mass_kg: NDArray[np.float64]

    @property
    def operating(self) -> NDArray[np.bool_]:
        return self.co2_modc != NOT_OPERATING

    @property
    def measured(self) -> NDArray[np.bool_]:
        return (self.co2_modc == MEASURED) & (self.flow_modc == MEASURED)

    @property
    def substituted(self) -> NDArray[np.bool_]:
        return self.operating & ~self.measured & np.isfinite(self.mass_kg)

    @property
    def unfilled(self) -> NDArray[np.bool_]:
        return self.operating & ~np.isfinite(self.mass_kg)

    def records(self) -> list[HourRecord]:
        """The operating hours as plain records (for the store, the wire and HJ 212 uplinks)."""
        return [HourRecord(hour=str(self.hour[i].astype("datetime64[s]")) + "Z",
                           operating_hours=float(self.operating_hours[i]),
                           co2_dry_pct=_or_none(self.co2_dry_pct[i]), co2_modc=str(self.co2_modc[i]),
                           standard_flow_m3_h=_or_none(self.standard_flow_m3_h[i]), flow_modc=str(self.flow_modc[i]),
                           mass_kg=_or_none(self.mass_kg[i]))
                for i in np.flatnonzero(self.operating)]


@dataclass(frozen=True, slots=True)
class HourRecord:
    """One operating hour: start (ISO, UTC), operating time (h), CO2 dry (% vol) and standard dry
    flow (m3/h) with their method-of-determination codes, CO2 mass (kg); None where nothing could
    be substituted."""

    hour: str
    operating_hours: float
    co2_dry_pct: float | None
    co2_modc: str
    standard_flow_m3_h: float | None
    flow_modc: str
    mass_kg: float | None


def _or_none(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def hourly_emissions(hourly: HourlyValues, method: SubstitutionMethod | str = SubstitutionMethod.HJ75,
                     periods: Sequence[OutOfControlPeriod] = (), *, part75_co2: Part75Parameter | None = None,
                     part75_flow: Part75Parameter | None = None,
                     load_range: NDArray[np.int64] | None = None) -> HourlyEmissions:
    """Substitute each monitor's missing hours by `method` and compute every hour's mass.

    `load_range`: each hour's Part 75 operating load range (`substitution.load_ranges`), used by the
    Part 75 flow substitution (None: all hours in one range)."""
    method = SubstitutionMethod(method)
    operating = hourly.operating
    co2: Substituted
    flow: Substituted
    if method is SubstitutionMethod.HJ75:
        co2 = hj75_substitute(hourly.hour, hourly.co2_dry_pct, hourly.co2_valid, operating,
                              hourly.out_of_control, periods)
        flow = hj75_substitute(hourly.hour, hourly.standard_flow_m3_h, hourly.flow_valid, operating)
    else:
        if part75_co2 is None or part75_flow is None:
            raise ValueError("the Part 75 method needs part75_co2 and part75_flow (their maximum potential values)")
        co2 = part75_substitute(hourly.co2_dry_pct, hourly.co2_valid, operating, part75_co2)
        flow = part75_flow_substitute(hourly.standard_flow_m3_h, hourly.flow_valid, operating, part75_flow,
                                      load_range)
    mass = np.where(operating, hour_mass_kg(co2.values, flow.values, hourly.operating_hours), 0.0)
    return HourlyEmissions(hour=hourly.hour, operating_hours=hourly.operating_hours, co2_dry_pct=co2.values,
                           co2_modc=co2.modc, standard_flow_m3_h=flow.values, flow_modc=flow.modc, mass_kg=mass)


PERIOD_UNITS = {"day": "D", "month": "M", "year": "Y"}


@dataclass(frozen=True, slots=True)
class PeriodTotal:
    """One day, month or year: `start` its first instant (ISO, UTC), CO2 mass in tonnes (hours
    with nothing to substitute from count 0 and are counted in `unfilled_hours`), operating hours
    (sum of operating time), and counts of operating, measured and substituted hours;
    `availability` = measured / operating hours (1.0 with no operating hour)."""

    start: str
    mass_t: float
    operating_time_h: float
    operating_hours: int
    measured_hours: int
    substituted_hours: int
    unfilled_hours: int

    @property
    def availability(self) -> float:
        return self.measured_hours / self.operating_hours if self.operating_hours else 1.0


def period_totals(hours: HourlyEmissions, by: str) -> list[PeriodTotal]:
    """Sum hours into UTC days, months or years (`by`: day, month, year), in time order."""
    if by not in PERIOD_UNITS:
        raise ValueError(f"unknown period {by!r}; known: {', '.join(PERIOD_UNITS)}")
    keys = hours.hour.astype(f"datetime64[{PERIOD_UNITS[by]}]")
    out = []
    for key in np.unique(keys):
        sel = keys == key
        out.append(PeriodTotal(
            start=str(key.astype("datetime64[s]")) + "Z",
            mass_t=float(np.nansum(hours.mass_kg[sel])) / 1000.0,
            operating_time_h=float(hours.operating_hours[sel].sum()),
            operating_hours=int(hours.operating[sel].sum()),
            measured_hours=int((hours.measured & hours.operating)[sel].sum()),
            substituted_hours=int(hours.substituted[sel].sum()),
            unfilled_hours=int(hours.unfilled[sel].sum()),
        ))
    return out
