"""The station table of the operations center: `views.station_health` plus the last calibration,
the latest target bias against the goal, and the instruments' clock offset where the agent reports it;
and the registry page's answers (what is installed where: central/fleet/registry.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ghgnet.timeutil import iso_utc

from .. import views
from ..config import CentralConfig
from ..fleet.registry import SINCE_EVER, registry_detail, registry_row, serials_over_time


def clock_offset_s(details: dict[str, Any] | None) -> float | None:
    """The largest instrument clock offset (s, signed) in a status's details, when the agent sent one."""
    offsets = [d.get("clock_offset_s") for d in ((details or {}).get("devices") or {}).values() if isinstance(d, dict)]
    offsets = [float(x) for x in offsets if isinstance(x, (int, float))]
    return max(offsets, key=abs) if offsets else None


def fleet(store, config: CentralConfig, now: datetime) -> list[dict[str, Any]]:
    rows = views.station_health(store, config, now)
    details = {s.station: (s.status.details if s.status else None) for s in store.stations()}
    for row in rows:
        name = row["station"]
        last_cal = store._query("SELECT max(time_start) FROM calibration WHERE station = ?", (name,))[0][0]
        row["last_calibration"] = iso_utc(store._from_t(last_cal)) if last_cal is not None else None
        latest = store._query(
            "SELECT t.time, t.cylinder, v.species, v.bias FROM target t JOIN target_value v "
            "ON v.station = t.station AND v.store = t.store AND v.seq = t.seq "
            "WHERE t.station = ? AND t.time = (SELECT max(time) FROM target WHERE station = ?) ORDER BY v.species",
            (name, name))
        row["target_bias"] = [
            {"time": iso_utc(store._from_t(t)), "cylinder": cyl, "species": sp, "bias": views._f(bias),
             "goal": views._f(config.qc.goals.get(sp)),
             "within_goal": None if bias is None or sp not in config.qc.goals
             else abs(bias) <= config.qc.goals[sp]}
            for t, cyl, sp, bias in latest]
        row["clock_offset_s"] = clock_offset_s(details.get(name))
    return rows


def registry(store) -> list[dict[str, Any]]:
    """The registry page's table: every station's line (central.fleet.registry.registry_row)."""
    return [registry_row(s) for s in store.stations()]


def registry_station(store, station: str, now: datetime) -> dict[str, Any] | None:
    """One station's registry (central.fleet.registry.registry_detail: inventory, cylinder forecasts,
    history) plus `serial_history`: per device, the serial number in force from each date on,
    oldest first (an instrument swap is a new entry; the first entry's `from` is null: since ever).
    None for a station central has never heard from."""
    found = [s for s in store.stations() if s.station == station]
    if not found:
        return None
    events = store.registry_events(station)
    detail = registry_detail(found[0], events, now)
    timeline = serials_over_time({d: sn for d, sn in detail["devices"].items()}, events)
    detail["serial_history"] = {
        device: [{"from": None if t == SINCE_EVER else iso_utc(t), "serial_number": sn} for t, sn in entries
                 if not (t == SINCE_EVER and sn is None and len(entries) > 1)]
        for device, entries in sorted(timeline.items())}
    return detail
