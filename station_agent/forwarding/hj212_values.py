"""What an HJ 212 uplink says about a period: the station's minute records as the standard's factors.

Pure functions: stored minute rows (StationStore.minute_rows) in, data points (a DataTime and, per
factor, its `-Key=value` items) out; no I/O.

- Only ambient data is sent: minutes of the configured inlet streams (default every `inlet:*`).
  Calibration, target, zero and span minutes measure a cylinder, not the air: they are never sent
  as values; in an hour or a day they count as calibrating (C) when the period has too few valid
  minutes and its flag is chosen by vote.
- CN 2011 (real-time): one point per stored minute, `-Rtd` = the minute's mean (the station's
  finest validated value: raw readings are uncalibrated) and `-Flag`.
- CN 2051 (minute): `-Avg` and `-Flag`. The station keeps each minute's mean, std and n, not its
  extremes, so `-Min`/`-Max` are not sent for minutes rather than invented.
- CN 2061 (hour) and 2031 (day): `-Min`, `-Avg`, `-Max` of the valid minutes' means and `-Flag` N
  when at least `hour_min_valid_minutes` / `day_min_valid_minutes` are valid; otherwise the values
  of every ambient minute with the most frequent non-N flag of the period. `-Cou` (a cumulative
  emission) does not apply to ambient concentrations. Key order as the standard's examples:
  Cou, Min, Avg, Max, Flag.
- Values are the dry mole fraction (calibrated when a calibration is in force), converted to the
  factor's unit; mass concentrations at 273.15 K and 101.325 kPa (ppm x M / 22.414).
- Flags: a valid minute (ICOS U) is N; an invalid one takes the flag its reasons map to
  (ghgnet.hj212.codes.hj212_flag, the uplink's `flags` overriding entries).
- DataTime is the start of the period (HJ 212-2017 for 2051/2061/2031), in the uplink's zone.
"""

from __future__ import annotations

import zoneinfo
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ghgnet.hj212 import codes
from ghgnet.timeutil import parse_utc
from station_agent.forwarding.hj212_config import FactorConfig, UplinkConfig

WIRE_TIME = "%Y%m%d%H%M%S"

Item = tuple[str, str]


@dataclass(frozen=True, slots=True)
class DataPoint:
    """One period's data: its start (UTC) and, per factor, the `code-Key` items in order."""

    time: datetime
    factors: tuple[tuple[Item, ...], ...]


# -- periods ----------------------------------------------------------------------------------------
def period_start(t: datetime, cn: int, tz: str) -> datetime:
    """Start (UTC) of the CN's period holding `t`: the minute, or the hour or day of zone `tz`."""
    if cn in (2011, 2051):
        return t.astimezone(UTC).replace(second=0, microsecond=0)
    local = t.astimezone(zoneinfo.ZoneInfo(tz))
    local = local.replace(minute=0, second=0, microsecond=0)
    if cn == 2031:
        local = local.replace(hour=0)
    return local.astimezone(UTC)


def period_end(start: datetime, cn: int, tz: str) -> datetime:
    if cn in (2011, 2051):
        return start + timedelta(minutes=1)
    zone = zoneinfo.ZoneInfo(tz)
    local = start.astimezone(zone)
    nxt = local + (timedelta(hours=1) if cn == 2061 else timedelta(days=1))
    # wall-clock arithmetic, then normalised: a day is a calendar day of the zone
    return period_start(datetime(nxt.year, nxt.month, nxt.day, nxt.hour, tzinfo=zone), cn, tz)


def wire_time(t: datetime, tz: str) -> str:
    """A time as the standard writes it (YYYYMMDDhhmmss) in zone `tz`."""
    return t.astimezone(zoneinfo.ZoneInfo(tz)).strftime(WIRE_TIME)


def parse_wire_time(text: str, tz: str) -> datetime:
    """YYYYMMDDhhmmss in zone `tz` -> UTC; ValueError naming the text."""
    try:
        local = datetime.strptime(text, WIRE_TIME)
    except ValueError:
        raise ValueError(f"time {text!r} is not YYYYMMDDhhmmss") from None
    return local.replace(tzinfo=zoneinfo.ZoneInfo(tz)).astimezone(UTC)


# -- selection, flags, units -----------------------------------------------------------------------
def is_reported(row: dict, cfg: UplinkConfig) -> bool:
    """An ambient minute of a stream and analyzer this uplink reports."""
    stream = row["stream"]
    ambient = stream in cfg.streams if cfg.streams is not None else stream.startswith("inlet:")
    return ambient and (cfg.devices is None or row["device"] in cfg.devices)


def species_value(row: dict, factor: FactorConfig) -> float | None:
    """The minute's dry mean of the factor's species in the factor's unit (codes.to_wire_value:
    mg/m3 = ppm x M / 22.414), None when the minute has none."""
    got = (row.get("species") or {}).get(factor.species) or {}
    value = got.get("mean")
    return None if value is None else codes.to_wire_value(float(value), factor.species, factor.unit)


def flag_of(cfg: UplinkConfig) -> Callable[[dict], str]:
    """A minute row -> its HJ 212 data flag (codes.hj212_flag with the uplink's table)."""
    table = cfg.flag_table
    return lambda row: codes.hj212_flag(row["flag"], row.get("reasons") or (), table)


def fmt(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f}"


FlagOf = Callable[[dict], str]
"""A minute row -> its HJ 212 data flag (the ICOS flag and reasons mapped, with the uplink's overrides)."""


# -- points --------------------------------------------------------------------------------------------
def _by_minute(rows: Iterable[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for row in sorted(rows, key=lambda r: (r["time"], r["device"], r["stream"])):
        out.setdefault(row["time"], []).append(row)
    return out


def _pick(rows: list[dict], factor: FactorConfig, flag_of: FlagOf) -> tuple[float, str] | None:
    """The factor's value and flag in one minute: the first record (by device, stream) that has it."""
    for row in rows:
        value = species_value(row, factor)
        if value is not None:
            return value, flag_of(row)
    return None


def minute_points(rows: Iterable[dict], cfg: UplinkConfig, cn: int, flag_of: FlagOf) -> list[DataPoint]:
    """CN 2011 / 2051 points, one per minute that holds a reported value."""
    key = "Rtd" if cn == 2011 else "Avg"
    points = []
    for time, minute in _by_minute(r for r in rows if is_reported(r, cfg)).items():
        factors = []
        for f in cfg.factors:
            got = _pick(minute, f, flag_of)
            if got is not None:
                factors.append(((f"{f.code}-{key}", fmt(got[0], f.decimals)), (f"{f.code}-Flag", got[1])))
        if factors:
            points.append(DataPoint(parse_utc(time), tuple(factors)))
    return points


def period_point(rows: Iterable[dict], start: datetime, cfg: UplinkConfig, cn: int, flag_of: FlagOf) -> DataPoint | None:
    """The CN 2061 / 2031 point of the period starting at `start`, or None when no ambient minute
    of it holds a value."""
    rows = list(rows)
    min_valid = cfg.hour_min_valid_minutes if cn == 2061 else cfg.day_min_valid_minutes
    minutes = _by_minute(r for r in rows if is_reported(r, cfg))
    # minutes spent on cylinders: calibrating, as far as the ambient air is concerned
    cylinder_minutes = len({r["time"] for r in rows if not r["stream"].startswith("inlet:")
                            and (cfg.devices is None or r["device"] in cfg.devices)})
    factors = []
    for f in cfg.factors:
        got = [g for g in (_pick(m, f, flag_of) for m in minutes.values()) if g is not None]
        if not got:
            continue
        valid = [v for v, letter in got if letter == "N"]
        if len(valid) >= min_valid:
            values, letter = valid, "N"
        else:
            votes = Counter(letter for _, letter in got if letter != "N")
            if cylinder_minutes:
                votes["C"] += cylinder_minutes
            values = [v for v, _ in got]
            letter = votes.most_common(1)[0][0] if votes else "F"
        factors.append((
            (f"{f.code}-Min", fmt(min(values), f.decimals)),
            (f"{f.code}-Avg", fmt(sum(values) / len(values), f.decimals)),
            (f"{f.code}-Max", fmt(max(values), f.decimals)),
            (f"{f.code}-Flag", letter),
        ))
    return DataPoint(start, tuple(factors)) if factors else None


# -- CP groups -------------------------------------------------------------------------------------
def cp_groups(point: DataPoint, tz: str) -> tuple[dict[str, str], ...]:
    """The CP groups of a point: `DataTime` in zone `tz`, then one group per factor."""
    return ({"DataTime": wire_time(point.time, tz)}, *(dict(items) for items in point.factors))


def points_between(rows: Iterable[dict], start: datetime, end: datetime, cfg: UplinkConfig, cn: int) -> list[DataPoint]:
    """The CN's points of the periods in [start, end) (period bounds of the uplink's zone)."""
    rows = list(rows)
    flag = flag_of(cfg)
    if cn in (2011, 2051):
        return [p for p in minute_points(rows, cfg, cn, flag) if start <= p.time < end]
    by_period: dict[datetime, list[dict]] = {}
    for row in rows:
        by_period.setdefault(period_start(parse_utc(row["time"]), cn, cfg.timezone), []).append(row)
    points = []
    for s in sorted(by_period):
        if start <= s < end:
            point = period_point(by_period[s], s, cfg, cn, flag)
            if point is not None:
                points.append(point)
    return points
