"""Stored emission hours summed by hour, day or month (pure: records in, rows out), for
`station-agent emissions`; the sums are processing.cems.emissions.period_totals'."""

from __future__ import annotations

import dataclasses

import numpy as np

from station_agent.processing.cems.emissions import HourlyEmissions, PeriodTotal, period_totals

PERIODS = ("hour", "day", "month")


def hourly_from_records(hours: list[dict]) -> HourlyEmissions:
    """Stored hour records (period "hour") as HourlyEmissions."""

    def f(key: str) -> np.ndarray:
        return np.array([np.nan if h[key] is None else h[key] for h in hours], float)

    return HourlyEmissions(
        hour=np.array([np.datetime64(h["time"].rstrip("Z"), "h") for h in hours], "datetime64[h]"),
        operating_hours=f("operating_h"), co2_dry_pct=f("co2_dry_pct"),
        co2_modc=np.array([h["co2_modc"] or "" for h in hours], str), standard_flow_m3_h=f("standard_flow_m3_h"),
        flow_modc=np.array([h["flow_modc"] or "" for h in hours], str), mass_kg=f("mass_kg"))


def emission_totals(hours: list[dict], by: str) -> list[PeriodTotal]:
    """Hours, days or months (UTC) of the stored hours, in time order."""
    if by not in PERIODS:
        raise ValueError(f"unknown period {by!r}; known: {', '.join(PERIODS)}")
    if not hours:
        return []
    he = hourly_from_records(hours)
    if by != "hour":
        return period_totals(he, by)
    out = []
    for i in range(len(hours)):
        one = HourlyEmissions(**{k: getattr(he, k)[i:i + 1] for k in HourlyEmissions.__dataclass_fields__})
        out.append(dataclasses.replace(period_totals(one, "day")[0],
                                       start=str(he.hour[i].astype("datetime64[s]")) + "Z"))
    return out
