"""The serial numbers of the instruments behind each hourly value, for the hourly exports.

An hour of an inlet and species is made of the minute records of whatever analyzer(s) measured it
(`minute_devices_by_hour`, central/store/devices.py); each device's serial number at a time comes
from the registry's history (`serials_over_time`, walked back from the latest inventory, as the
minute export does). An analyzer swapped within the hour gives both serials. Several serials are
joined by " | "; an hour whose instrument is not known gives "".
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from ..export import _serials
from ..store.hourly import HourlyRow
from .registry import serial_at

SEPARATOR = " | "
LAST_MINUTE = timedelta(minutes=59, seconds=59)


def hour_serials(timeline: dict[str, list[tuple]], devices: list[str], hour: datetime) -> str:
    """The serials of `devices` in force at some time in the hour starting at `hour`, in order."""
    found: list[str] = []
    for device in devices:
        for t in (hour, hour + LAST_MINUTE):
            serial = serial_at(timeline, device, t)
            if serial and serial not in found:
                found.append(serial)
    return SEPARATOR.join(found)


def hourly_serials(store: Any, station: str, species: str, rows: list[HourlyRow]) -> list[str]:
    """One text per hourly row (in order): the serial numbers of the instruments whose minutes made it."""
    if not rows:
        return []
    start = min(r.hour for r in rows)
    end = max(r.hour for r in rows) + timedelta(hours=1)
    devices = store.minute_devices_by_hour(station, start, end, species)
    timeline = _serials(store, station, start)
    return [hour_serials(timeline, devices.get((r.stream, r.hour), []), r.hour) for r in rows]
