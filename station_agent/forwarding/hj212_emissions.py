"""What an HJ 212 uplink says about a stack: the station's emission records as the standard's factors.

Pure functions: stored emission rows (StationStore.emission_rows) in, data points out; no I/O.
Used by an uplink with `source = "emissions"` (a stack CEMS station, station_agent/emission/).

Factors (HJ 212-2017 Appendix B, as srdgame/lua-HJ212 hj212.csv transcribes the table):
- `a05001` CO2: `-Avg` in mg/m3 at standard state, dry (% vol x 10^4 x 44.01 / 22.414), `-Cou` the
  emission in kg over the period;
- `a00000` flue gas (废气): `-Avg` the standard dry flow in m3/s, `-Cou` the volume in m3 over the
  period (flow x operating time).
Both with `-Flag`. CN 2051 from the emission minutes, 2061 from the emission hours (measured or
substituted by the station's rules, HJ 75-2017 by default), 2031 the day's hours summed (`-Cou`)
and averaged over the operating hours (`-Avg`). CN 2011 is not sent from a stack: its minutes are
its finest validated values.

Flags: F when the unit did not run in the period; N when its values were measured; otherwise the
flag of what made the minutes invalid (most frequent over the period): CO2 over range T, the
analyzer out of control or an input missing or invalid D (`EMISSION_REASON_TO_HJ`). A substituted
hour keeps the flag of the gap's cause, while its `-Avg` and `-Cou` are the substituted values that
enter the period sums (HJ 75-2017 counts substituted hours in the totals; it has no flag of its own
for them, and neither has HJ 212-2017).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime

from ghgnet.timeutil import parse_utc
from station_agent.forwarding.hj212_values import DataPoint, fmt, period_start
from station_agent.processing.cems.concentration import CO2_MOLAR_MASS_G_PER_MOL

MOLAR_VOLUME_L = 22.414
"""L/mol of an ideal gas at 273.15 K and 101.325 kPa: HJ 212's mg/m3 of CO2 (ghgnet.hj212.codes)."""
CO2_MG_M3_PER_PCT = 1e4 * CO2_MOLAR_MASS_G_PER_MOL / MOLAR_VOLUME_L
"""mg/m3 of 1 % vol CO2 at standard state (19,635)."""
CO2_CODE, FLOW_CODE = "a05001", "a00000"

EMISSION_REASON_TO_HJ = {"co2_over_range": "T", "out_of_control": "D"}
"""Minute reasons -> HJ 212 flag; any other reason (an input missing or invalid) is D."""
_PRECEDENCE = "TD"


def _minute_flag(row: dict) -> str:
    if not row.get("operating_h"):
        return "F"
    if row.get("co2_valid") and row.get("flow_valid"):
        return "N"
    letters = {EMISSION_REASON_TO_HJ.get(r, "D") for r in row.get("reasons", [])} or {"D"}
    return next(f for f in _PRECEDENCE if f in letters)


def _period_flag(minutes: list[dict], operating_h: float, measured: bool) -> str:
    """F not running, N measured, else the most frequent flag of its invalid running minutes (D)."""
    if operating_h <= 0:
        return "F"
    if measured:
        return "N"
    votes = Counter(f for f in map(_minute_flag, minutes) if f not in ("N", "F"))
    return votes.most_common(1)[0][0] if votes else "D"


def _factors(co2_pct: float | None, flow_m3_h: float | None, mass_kg: float | None, hours: float,
             co2_flag: str, flow_flag: str) -> tuple[tuple[tuple[str, str], ...], ...]:
    out = []
    if co2_pct is not None:
        items = [(f"{CO2_CODE}-Avg", fmt(co2_pct * CO2_MG_M3_PER_PCT, 3))]
        if mass_kg is not None:
            items.insert(0, (f"{CO2_CODE}-Cou", fmt(mass_kg, 3)))
        out.append((*items, (f"{CO2_CODE}-Flag", co2_flag)))
    if flow_m3_h is not None:
        out.append(((f"{FLOW_CODE}-Cou", fmt(flow_m3_h * hours, 1)), (f"{FLOW_CODE}-Avg", fmt(flow_m3_h / 3600.0, 3)),
                    (f"{FLOW_CODE}-Flag", flow_flag)))
    return tuple(out)


def minute_points(minutes: Iterable[dict]) -> list[DataPoint]:
    """CN 2051: one point per emission minute (the unit's running time in it as the hours)."""
    points = []
    for row in minutes:
        flag = _minute_flag(row)
        co2_flag = flag if flag in ("F", "N") or not row.get("co2_valid") else "N"
        flow_flag = flag if flag in ("F", "N") or not row.get("flow_valid") else "N"
        factors = _factors(row.get("co2_dry_pct"), row.get("standard_flow_m3_h"), row.get("mass_kg"),
                           row.get("operating_h") or 0.0, co2_flag, flow_flag)
        if factors:
            points.append(DataPoint(parse_utc(row["time"]), factors))
    return points


def hour_point(hour: dict, minutes: list[dict]) -> DataPoint | None:
    """CN 2061: the hour as the station computed it (after substitution), flags from its minutes."""
    op = hour.get("operating_h") or 0.0
    co2_flag = _period_flag(minutes, op, hour.get("co2_modc") == "01")
    flow_flag = _period_flag(minutes, op, hour.get("flow_modc") == "01")
    factors = _factors(hour.get("co2_dry_pct"), hour.get("standard_flow_m3_h"), hour.get("mass_kg"), op,
                       co2_flag, flow_flag)
    return DataPoint(parse_utc(hour["time"]), factors) if factors else None


def day_point(start: datetime, hours: list[dict], minutes: list[dict]) -> DataPoint | None:
    """CN 2031: the day's hours; `-Cou` summed, `-Avg` the mean over its operating hours."""
    running = [h for h in hours if (h.get("operating_h") or 0.0) > 0]
    if not hours:
        return None
    op = sum(h.get("operating_h") or 0.0 for h in running)

    def mean(key: str) -> float | None:
        vals = [h[key] for h in running if h.get(key) is not None]
        return sum(vals) / len(vals) if vals else None

    masses = [h["mass_kg"] for h in running if h.get("mass_kg") is not None]
    co2_measured = all(h.get("co2_modc") == "01" for h in running)
    flow_measured = all(h.get("flow_modc") == "01" for h in running)
    flow = mean("standard_flow_m3_h")
    factors = _factors(mean("co2_dry_pct"), flow, sum(masses) if masses else None, 0.0,
                       _period_flag(minutes, op, co2_measured), _period_flag(minutes, op, flow_measured))
    if flow is not None:  # the day's volume: each hour's flow times its own operating time
        volume = sum((h.get("standard_flow_m3_h") or 0.0) * (h.get("operating_h") or 0.0) for h in running)
        factors = tuple(tuple((k, fmt(volume, 1)) if k == f"{FLOW_CODE}-Cou" else (k, v) for k, v in f)
                        for f in factors)
    return DataPoint(start, factors) if factors else None


def points_between(minutes: list[dict], hours: list[dict], start: datetime, end: datetime, cn: int,
                   tz: str) -> list[DataPoint]:
    """The CN's points of the periods in [start, end) from the stored emission minutes and hours."""
    if cn == 2051:
        return [p for p in minute_points(minutes) if start <= p.time < end]
    if cn == 2061:
        by_hour: dict[str, list[dict]] = {}
        for m in minutes:
            by_hour.setdefault(period_start(parse_utc(m["time"]), 2061, "UTC").isoformat(), []).append(m)
        points = []
        for h in hours:
            t = parse_utc(h["time"])
            if start <= t < end:
                p = hour_point(h, by_hour.get(t.isoformat(), []))
                if p is not None:
                    points.append(p)
        return points
    if cn == 2031:
        days: dict[datetime, tuple[list[dict], list[dict]]] = {}
        for h in hours:
            days.setdefault(period_start(parse_utc(h["time"]), 2031, tz), ([], []))[0].append(h)
        for m in minutes:
            day = period_start(parse_utc(m["time"]), 2031, tz)
            if day in days:
                days[day][1].append(m)
        return [p for d in sorted(days) if start <= d < end
                for p in [day_point(d, *days[d])] if p is not None]
    raise ValueError(f"CN {cn}: a stack's uplink sends 2051, 2061 and 2031")
