"""What each alarm rule measures, and when an alarm is raised or cleared (hysteresis).

Every rule measures one value per station (and subject: a species for the QC rules); higher is
worse. Values and units:

- station_down: seconds since central received the station's last status; a station that said it
  is down (its last will, or a clean stop) counts as `raise_at` at least, so it is raised at once.
- data_gap: seconds since the start of the station's latest minute record stored here.
- backlog_age: the age in seconds of the oldest record the station holds unacknowledged (its status).
- clock_offset: |central's receive time - the station's status time|, seconds, of a status of a
  station that is up: the station's clock offset plus the transit time (seconds on a working link);
  and per analyzer (subject: the device) |instrument clock - station clock| as the agent reports it
  in its status (details.metrics.clock_offset_s); and (subject: system-clock) the station PC's own
  offset from its NTP reference as chrony or timesyncd report it (details.clock_sync.offset_s).
- target_bias: |bias of the latest target run| per species, in units of the species' compatibility
  goal ([qc] goals: the WMO/GAW network compatibility goals), so 1.0 is "at the goal".
- calibration_drift: |change of the calibrated value at the drift reference level between the two
  latest calibrations| per species, in units of the goal (as `central-receiver qc` reports drift).
- dead_letters: dead letters of the station not resolved (central/deadletters/).
- cylinder_empty: days until a cylinder's pressure trend reaches its low-pressure threshold
  (subject: the cylinder; central/fleet/cylinders.py), from the pressure readings of the last
  `window_days`; LOWER is worse here: raised at `raise_at` days or fewer, cleared beyond `clear_at`.
  A cylinder with no forecast (refilled, too few readings, not falling, removed) counts as
  NO_FORECAST_DAYS, so its alarm clears.

Hysteresis (`decide`): an alarm is raised when the value has stayed at `raise_at` or above for
`hold_s`, and cleared when it has stayed at `clear_at` or below for `clear_hold_s`; between the two
nothing changes. So a value hovering around one threshold cannot make an alarm flap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..config import CentralConfig
from ..fleet.cylinders import station_forecasts
from ..qc import evaluate_fit
from .config import AlarmRule

UNITS = {"station_down": "s", "data_gap": "s", "backlog_age": "s", "clock_offset": "s", "target_bias": "goal",
         "calibration_drift": "goal", "dead_letters": "letters", "cylinder_empty": "days"}
NO_FORECAST_DAYS = 3650.0
"""cylinder_empty's value for a cylinder with no empty date in sight."""


@dataclass(frozen=True, slots=True)
class Observation:
    """One rule's value for one station (and subject) at one evaluation."""

    station: str | None
    subject: str | None
    value: float
    message: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Decision:
    action: str | None
    """'raise', 'clear', 'update' (active, stays so), or None (nothing to do)."""
    pending_since: datetime | None
    """When the value first crossed towards the other state and is waiting out its hold time."""


def decide(value: float, active: bool, raise_at: float, clear_at: float, hold_s: float, clear_hold_s: float,
           pending_since: datetime | None, now: datetime) -> Decision:
    """The hysteresis of one alarm: pure, given whether it is active and since when the value has
    been on the other side of its threshold (None: it was not, at the last evaluation)."""
    if not active:
        if value < raise_at:
            return Decision(None, None)
        since = pending_since or now
        return Decision("raise", None) if (now - since).total_seconds() >= hold_s else Decision(None, since)
    if value > clear_at:
        return Decision("update", None)
    since = pending_since or now
    return Decision("clear", None) if (now - since).total_seconds() >= clear_hold_s else Decision("update", since)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What one evaluation reads once for every rule."""

    stations: dict[str, Any]
    """station -> StationSummary (central/store/base.py)."""
    unresolved_dead_letters: dict[str | None, int]


def snapshot(store) -> Snapshot:
    return Snapshot({s.station: s for s in store.stations()}, store.unresolved_dead_letter_counts())


def _age(now: datetime, t: datetime) -> float:
    return max(0.0, (now - t).total_seconds())


def measure(rule: AlarmRule, store, config: CentralConfig, snap: Snapshot, now: datetime) -> list[Observation]:
    """The rule's observations now, for the stations it covers that central knows of."""
    names = sorted(set(snap.stations) | set(config.stations))
    if rule.stations:
        names = [n for n in names if n in rule.stations]
    up, _ = rule.thresholds
    out: list[Observation] = []
    since = now - timedelta(hours=rule.lookback_h)
    for name in names:
        summary = snap.stations.get(name)
        status = summary.status if summary is not None else None
        if rule.kind == "station_down" and status is not None:
            age = _age(now, status.received_at)
            if status.state == "down":
                out.append(Observation(name, None, max(age, up), f"{name} reported down {age:.0f} s ago",
                                       {"state": "down", "status_age_s": round(age, 1)}))
            else:
                out.append(Observation(name, None, age, f"{name}: no status for {age:.0f} s",
                                       {"state": status.state, "status_age_s": round(age, 1)}))
        elif rule.kind == "data_gap" and summary is not None:
            latest = store.latest_minute_time(name)
            if latest is not None:
                gap = _age(now, latest)
                out.append(Observation(name, None, gap, f"{name}: no minute data for {gap:.0f} s",
                                       {"latest_minute": latest.isoformat()}))
        elif rule.kind == "backlog_age" and status is not None:
            age = status.oldest_unacked_age_s or 0.0
            out.append(Observation(name, None, age, f"{name}: oldest unacknowledged record is {age:.0f} s old "
                                   f"({status.backlog} waiting)", {"backlog": status.backlog}))
        elif rule.kind == "clock_offset" and status is not None and status.state == "up":
            offset = abs((status.received_at - status.time).total_seconds())
            out.append(Observation(name, None, offset, f"{name}: status clock {offset:.0f} s off central's",
                                   {"status_time": status.time.isoformat()}))
            sync = status.details.get("clock_sync") or {}  # the station PC's NTP state (chrony/timesyncd)
            ntp_off = sync.get("offset_s") if isinstance(sync, dict) else None
            if isinstance(ntp_off, int | float) and ntp_off == ntp_off:
                out.append(Observation(name, "system-clock", abs(float(ntp_off)),
                                       f"{name}: system clock {ntp_off:+.3f} s off its NTP reference "
                                       f"({sync.get('source')}, synchronised: {sync.get('synchronised')})",
                                       {"offset_s": float(ntp_off), "synchronised": sync.get("synchronised")}))
            devices = (status.details.get("metrics") or {}).get("clock_offset_s") or {}
            for device, off in sorted(devices.items() if isinstance(devices, dict) else []):
                if isinstance(off, int | float) and off == off:
                    out.append(Observation(name, device, abs(float(off)),
                                           f"{name} {device}: instrument clock {off:+.0f} s off the station's",
                                           {"offset_s": float(off)}))
        elif rule.kind == "target_bias" and summary is not None:
            latest: dict[str, tuple[datetime, float]] = {}
            for tgt in store.targets(name, since, now + timedelta(seconds=1)):
                for sp, v in tgt.values.items():
                    if v.bias is not None:
                        latest[sp] = (tgt.time, v.bias)
            for sp, (t, bias) in sorted(latest.items()):
                goal = config.qc.goals.get(sp)
                if goal:
                    out.append(Observation(name, sp, abs(bias) / goal,
                                           f"{name} {sp}: target bias {bias:+.4g} against a goal of {goal:g}",
                                           {"bias": bias, "goal": goal, "target_time": t.isoformat()}))
        elif rule.kind == "calibration_drift" and summary is not None:
            fits: dict[str, list[float]] = {}
            for cal in store.calibrations(name, since, now + timedelta(seconds=1)):
                for sp, fit in cal.fits.items():
                    ref = config.qc.drift_reference.get(sp)
                    if ref is not None and fit.coefficients:
                        fits.setdefault(sp, []).append(evaluate_fit(fit.coefficients, ref))
            for sp, values in sorted(fits.items()):
                goal = config.qc.goals.get(sp)
                if goal and len(values) >= 2:
                    drift = values[-1] - values[-2]
                    out.append(Observation(name, sp, abs(drift) / goal,
                                           f"{name} {sp}: calibration drift {drift:+.4g} against a goal of {goal:g}",
                                           {"drift": drift, "goal": goal}))
        elif rule.kind == "cylinder_empty" and summary is not None:
            inv = ((status.details if status is not None else {}) or {}).get("inventory") or {}
            low = {c: float(v["low_pressure_bar"]) for c, v in (inv.get("cylinders") or {}).items()
                   if isinstance(v, dict) and isinstance(v.get("low_pressure_bar"), int | float)}
            events = store.events(name, now - timedelta(days=rule.window_days), now + timedelta(seconds=1))
            for f in station_forecasts(events, now, low, rule.window_days):
                days = f.days_left(now)
                if days is None:
                    out.append(Observation(name, f.cylinder, NO_FORECAST_DAYS,
                                           f"{name} {f.cylinder}: no empty date forecast ({f.status})", f.as_dict()))
                else:
                    days = max(0.0, days)
                    out.append(Observation(name, f.cylinder, days,
                                           f"{name} {f.cylinder}: reaches {f.low_bar:g} bar in {days:.1f} days "
                                           f"({f.empty_at:%Y-%m-%d}; {f.latest_bar:g} bar, "
                                           f"{f.rate_bar_per_day:+.2f} bar/day)", f.as_dict()))
        elif rule.kind == "dead_letters" and summary is not None:
            n = snap.unresolved_dead_letters.get(name, 0)
            out.append(Observation(name, None, float(n), f"{name}: {n} dead letter(s) not resolved", {"count": n}))
    return out
