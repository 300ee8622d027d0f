"""Central's registry of what is installed where, from what stations already send: the inventory
in each status (devices and their serial numbers, cylinders with values and pressures, agent and
config versions) and the dated history of `inventory.*` and `config.*` events, stored exactly once
like every event. Pure: store rows in, dicts out."""

from __future__ import annotations

from bisect import bisect_right
from datetime import UTC, datetime
from typing import Any

from ghgnet.timeutil import iso_utc

from ..store.base import StationSummary, StoredEvent
from .cylinders import station_forecasts

HISTORY_KINDS = ("inventory.", "config.")


def registry_row(s: StationSummary) -> dict[str, Any]:
    """One station's line: state, versions, devices with serial numbers, last seen."""
    details = s.status.details if s.status else {}
    inv = details.get("inventory") or {}
    sync = details.get("clock_sync") or {}
    return {
        "station": s.station,
        "state": s.status.state if s.status else None,
        "last_seen": iso_utc(s.last_seen),
        "agent_version": inv.get("agent_version") or (s.status.agent_version if s.status else None),
        "config_version": inv.get("config_version", details.get("config_version")),
        "devices": {d: v.get("serial_number") for d, v in (inv.get("devices") or {}).items()},
        "cylinders": {c: v.get("pressure_bar") for c, v in (inv.get("cylinders") or {}).items()},
        "clock_synchronised": sync.get("synchronised"),
        "clock_offset_s": sync.get("offset_s"),
    }


def registry_detail(s: StationSummary, events: list[StoredEvent], now: datetime | None = None) -> dict[str, Any]:
    """One station in full: its latest inventory, when each cylinder runs empty (forecast at `now`,
    default the wall clock) and the dated history of changes and pushes."""
    details = s.status.details if s.status else {}
    inv_cyl = (details.get("inventory") or {}).get("cylinders") or {}
    low = {c: float(v["low_pressure_bar"]) for c, v in inv_cyl.items()
           if isinstance(v, dict) and isinstance(v.get("low_pressure_bar"), int | float)}
    return registry_row(s) | {
        "inventory": details.get("inventory"),
        "cylinder_forecasts": [f.as_dict() for f in station_forecasts(events, now or datetime.now(UTC), low)],
        "clock_sync": details.get("clock_sync"),
        "history": [{"time": iso_utc(e.time), "kind": e.kind, "device": e.device, "message": e.message,
                     "data": e.data} for e in sorted(events, key=lambda e: (e.time, e.seq))
                    if e.kind.startswith(HISTORY_KINDS)],
    }


DEVICE_KINDS = ("inventory.device_added", "inventory.device_changed", "inventory.device_removed")
SINCE_EVER = datetime(1, 1, 1, tzinfo=UTC)


def serials_over_time(current: dict[str, str | None], events: list[StoredEvent]) -> dict[str, list[tuple]]:
    """Per device, (from time, serial number) in time order: the serial in force from each time on
    (None: unknown or not installed). Walked back from `current` (the latest status inventory's
    serials) through the device events since the earliest time of interest, so only those are read;
    the first entry starts at SINCE_EVER."""
    state = dict(current)
    changes: dict[str, list[tuple]] = {}
    for e in sorted((e for e in events if e.kind in DEVICE_KINDS and e.device), key=lambda e: (e.time, e.seq),
                    reverse=True):
        data = e.data or {}
        if e.kind == "inventory.device_changed":
            after, before = (data.get("to") or {}).get("serial_number"), (data.get("from") or {}).get("serial_number")
        elif e.kind == "inventory.device_added":
            after, before = data.get("serial_number"), None
        else:
            after, before = None, data.get("serial_number")
        changes.setdefault(e.device, []).append((e.time, after))
        state[e.device] = before
    return {dev: [(SINCE_EVER, state.get(dev)), *reversed(changes.get(dev, []))] for dev in set(state) | set(changes)}


def serial_at(timeline: dict[str, list[tuple]], device: str, t: datetime) -> str | None:
    """The serial number of `device` at time `t` (timeline: serials_over_time)."""
    entries = timeline.get(device)
    if not entries:
        return None
    return entries[bisect_right([when for when, _ in entries], t) - 1][1]
