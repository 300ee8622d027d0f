"""Emission minutes and hours of a stack CEMS, computed in the store writer's thread.

Each tick: the minutes closed since the last one (their end `close_after_s` past) are computed from
the raw readings of the `[cems]` devices (minute_inputs -> processing.cems.minute_emissions) and
stored as emission records (period "minute"); every clock hour whose minutes are all computed is
judged (processing.cems.hourly_values) and, with the hours before it (up to `history_hours`),
substituted by the configured method (processing.cems.hourly_emissions) and stored (period
"hour"). A substituted value is final when stored: a gap still open takes the value before it
alone (substitution.py's rule for a gap not yet closed). After a restart both resume from what the
store holds.

The daily zero/span check (`[cems.daily_check]`): its minutes are not valid; once it is over, the
analyzer's last zero and span readings (the configured points) are judged against the drift
limits (processing.cems.drift); a failed check makes the CO2 minutes out of control until a check
passes, and their hours are substituted as HJ 75-2017 says for out-of-control periods.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import numpy as np

from ghgnet.timeutil import parse_utc
from station_agent.emission.config import CemsConfig
from station_agent.emission.minute_inputs import minute_inputs
from station_agent.processing.cems.drift import DailyCheck, out_of_control_mask, out_of_control_periods
from station_agent.processing.cems.emissions import hourly_emissions
from station_agent.processing.cems.hourly import HourlyValues, hourly_mean, hourly_values
from station_agent.processing.cems.minutes import REASON_BIT, MinuteEmissions, minute_emissions, reason_names
from station_agent.processing.cems.substitution import load_ranges
from station_agent.storage.store import StationStore

MAX_CHUNK_MINUTES = 1440
"""Minutes computed in one go (a day: one transaction, one numpy pass)."""


def stamp(t: datetime) -> str:
    """A minute or hour start as emission records keep it: `2026-03-01T05:00:00Z`."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _or_none(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def minute_records(unit: str, me: MinuteEmissions) -> list[dict]:
    """Emission minutes in wire form (without seq): mass = rate / 60 where both monitors are valid."""
    out = []
    for i in range(len(me.time)):
        running = bool(me.running[i])
        out.append({
            "period": "minute", "unit": unit, "time": str(me.time[i].astype("datetime64[s]")) + "Z",
            "operating_h": 1.0 / 60.0 if running else 0.0,
            "co2_dry_pct": _or_none(me.co2_dry_pct[i]), "standard_flow_m3_h": _or_none(me.standard_flow_m3_h[i]),
            "mass_kg": _or_none(me.rate_kg_h[i] / 60.0) if running else None,
            "co2_valid": bool(me.co2_valid[i]), "flow_valid": bool(me.flow_valid[i]),
            "reasons": reason_names(int(me.reasons[i])) if running else [],
        })
    return out


def minutes_from_records(records: list[dict]) -> MinuteEmissions:
    """Stored emission minutes back as the arrays hourly_values takes (only what it reads)."""
    n = len(records)

    def f(key: str) -> np.ndarray:
        return np.array([np.nan if r[key] is None else r[key] for r in records], float)

    reasons = np.array([sum(int(REASON_BIT[x]) for x in r["reasons"] if x in REASON_BIT) for r in records], np.uint32)
    time = np.array([np.datetime64(r["time"][:-1], "m") for r in records], "datetime64[m]") if n else \
        np.zeros(0, "datetime64[m]")
    running = np.array([r["operating_h"] > 0 for r in records], bool)
    return MinuteEmissions(time=time, running=running, velocity_m_s=np.full(n, np.nan),
                           actual_flow_m3_h=np.full(n, np.nan), standard_flow_m3_h=f("standard_flow_m3_h"),
                           co2_dry_pct=f("co2_dry_pct"), co2_dry_mg_m3=np.full(n, np.nan), rate_kg_h=np.full(n, np.nan),
                           flow_valid=np.array([bool(r["flow_valid"]) for r in records], bool),
                           co2_valid=np.array([bool(r["co2_valid"]) for r in records], bool), reasons=reasons)


def _concat(parts: list[HourlyValues]) -> HourlyValues:
    fields = HourlyValues.__dataclass_fields__
    return HourlyValues(**{k: np.concatenate([getattr(p, k) for p in parts]) for k in fields})


class EmissionWorker:
    def __init__(self, cems: CemsConfig, log) -> None:
        self.cems = cems
        self.settings = cems.settings()
        self.options = cems.options()
        self.log = log.bind(component="emission")
        self.next_minute: datetime | None = None
        self.next_hour: datetime | None = None
        self.history: HourlyValues | None = None
        self.history_ranges = np.zeros(0, np.int64)
        """Each history hour's Part 75 load range (0: unknown), when the flow is load-based."""
        self.running_before: bool | None = None
        self.checks: dict[int, DailyCheck] = {}
        self.stored = {"minute": 0, "hour": 0}

    def open(self, store: StationStore) -> None:
        """Resume after the last stored minute and hour; rebuild the hours' history."""
        unit = self.cems.unit
        last_m, last_h = store.last_emission_time(unit, "minute"), store.last_emission_time(unit, "hour")
        if last_m:
            self.next_minute = parse_utc(last_m) + timedelta(minutes=1)
        if last_h:
            self.next_hour = parse_utc(last_h) + timedelta(hours=1)
            start = self.next_hour - timedelta(hours=self.cems.history_hours)
            recs = store.emission_rows("minute", stamp(start), stamp(self.next_hour), unit)
            if recs:
                self.history = hourly_values(minutes_from_records(recs), self.options.hour_rule)
                self.history_ranges = self._load_ranges(store, self.history.hour)
        if last_m and self.cems.daily_check.zero_source:
            # the checks of the last days, from the raw readings still kept
            end = parse_utc(last_m) + timedelta(minutes=1)
            start = end - timedelta(days=self.CHECK_DAYS)
            self._checks([r for d in sorted(self.cems.devices()) for r in store.raw_rows(start, end, d)])
        if last_m:
            prev = store.emission_rows("minute", last_m, last_m + "~", unit)
            self.running_before = bool(prev and prev[0]["operating_h"] > 0)

    def tick(self, store: StationStore, now: datetime) -> None:
        due = (now - timedelta(seconds=self.cems.close_after_s)).replace(second=0, microsecond=0)
        if self.next_minute is None:
            first = store.first_raw_time(self.cems.devices(), now - timedelta(days=3650))
            if first is None:
                return
            self.next_minute = parse_utc(first).replace(second=0, microsecond=0)
        while self.next_minute < due:
            end = min(due, self.next_minute + timedelta(minutes=MAX_CHUNK_MINUTES))
            self._minutes(store, self.next_minute, end)
            self.next_minute = end
        self._hours(store)

    CHECK_DAYS = 8
    """Days of daily checks kept (and rebuilt from the raw readings at a restart)."""

    def _checks(self, rows: list[dict]) -> None:
        """Record each day's check from the first reading of its zero and span after it ended."""
        check = self.cems.daily_check
        if not check.zero_source or not check.span_source:
            return
        (zdev, _, zpt), (sdev, _, spt) = check.zero_source.partition(":"), check.span_source.partition(":")
        zero: dict[int, float] = {}
        span: dict[int, float] = {}
        for r in rows:
            t = int(parse_utc(r["time"]).timestamp() // 60)
            day, mod = divmod(t, 1440)
            if day in self.checks or mod < check.minute_of_day + check.duration_min:
                continue
            for dev, pt, got in ((zdev, zpt, zero), (sdev, spt, span)):
                v = r["values"].get(pt) if r["device"] == dev else None
                if v is not None and v == v:
                    got.setdefault(day, float(v))
            if day in zero and day in span:
                self.checks[day] = DailyCheck(np.datetime64((day * 1440 + check.minute_of_day) * 60, "s"),
                                              zero[day], span[day], check.span_reference_pct,
                                              self.cems.co2_full_scale_pct)
        for day in sorted(self.checks)[:-self.CHECK_DAYS]:
            del self.checks[day]

    def periods(self):
        """The analyzer's out-of-control periods from the checks known."""
        return out_of_control_periods(list(self.checks.values()), self.options.drift_limits)

    def _load_ranges(self, store: StationStore, hours: np.ndarray) -> np.ndarray:
        """The hours' Part 75 load ranges from the raw readings of the load (and running) source:
        the mean load over each hour's running minutes (0 where unknown, or when not load-based)."""
        if not self.cems.load_based or len(hours) == 0:
            return np.zeros(len(hours), np.int64)
        start = datetime.fromtimestamp(int(hours[0].astype("datetime64[s]").astype(np.int64)), UTC)
        n = len(hours) * 60
        sources = [self.cems.inputs[k] for k in ("load", "running") if k in self.cems.inputs]
        devices = sorted({s.partition(":")[0] for s in sources})
        rows = [r for d in devices for r in store.raw_rows(start, start + timedelta(minutes=n), d)]
        inputs = minute_inputs(rows, self.cems, start, n)
        max_load = self.cems.part75_max_load
        assert max_load is not None and inputs.load is not None     # load_based: the config requires both
        load = hourly_mean(inputs.time, inputs.running, inputs.load, hours)
        return load_ranges(load, max_load, self.cems.part75_load_ranges)

    def _minutes(self, store: StationStore, start: datetime, end: datetime) -> None:
        n = int((end - start).total_seconds() // 60)
        rows = [r for d in sorted(self.cems.devices()) for r in store.raw_rows(start, end, d)]
        self._checks(rows)
        inputs = minute_inputs(rows, self.cems, start, n, self.running_before)
        if self.checks:
            inputs = dataclasses.replace(inputs, out_of_control=out_of_control_mask(inputs.time, self.periods()))
        if n:
            self.running_before = bool(inputs.running[-1])
        me = minute_emissions(inputs, self.settings)
        self.stored["minute"] += len(store.insert_emissions(minute_records(self.cems.unit, me), end))

    def _hours(self, store: StationStore) -> None:
        assert self.next_minute is not None
        if self.next_hour is None:
            first = store.last_emission_time(self.cems.unit, "minute", first=True)
            if first is None:
                return
            self.next_hour = parse_utc(first).replace(minute=0)
        while self.next_hour + timedelta(hours=1) <= self.next_minute:
            h0, h1 = self.next_hour, self.next_hour + timedelta(hours=1)
            recs = store.emission_rows("minute", stamp(h0), stamp(h1), self.cems.unit)
            hv = hourly_values(minutes_from_records(recs), self.options.hour_rule) if recs else None
            if hv is not None and len(hv.hour) == 1:
                parts = [p for p in (self.history, hv) if p is not None]
                history = _concat(parts)
                keep = max(0, len(history.hour) - self.cems.history_hours)
                fields = HourlyValues.__dataclass_fields__
                self.history = HourlyValues(**{k: getattr(history, k)[keep:] for k in fields})
                ranges = np.concatenate([self.history_ranges, self._load_ranges(store, hv.hour)])
                self.history_ranges = ranges[max(0, len(ranges) - len(self.history.hour)):]
                hours = hourly_emissions(self.history, self.options.method, self.periods(),
                                         part75_co2=self.options.part75_co2,
                                         part75_flow=self.options.part75_flow,
                                         load_range=self.history_ranges if self.cems.load_based else None)
                records = [r for r in hours.records() if r.hour == stamp(h0)]
                rows = [{"period": "hour", "unit": self.cems.unit, "time": r.hour,
                         "operating_h": r.operating_hours, "co2_dry_pct": r.co2_dry_pct,
                         "standard_flow_m3_h": r.standard_flow_m3_h, "mass_kg": r.mass_kg,
                         "co2_modc": r.co2_modc, "flow_modc": r.flow_modc} for r in records]
                self.stored["hour"] += len(store.insert_emissions(rows, h1))
            self.next_hour = h1
