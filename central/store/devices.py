"""Which instrument is where and measured what: the devices whose minute records made each hour of
a stream, and the registry's history of a station.

The hourly table keeps no device (an hour of an inlet is one series, whatever analyzer measured
it); an export that names the instrument behind each hourly value (central/fleet/serials.py)
asks the minute table. The registry page (central/web/fleet.py) reads a station's inventory and
config events alone. Shared by both SQL backends through `MinuteDevicesMixin`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from .base import StoredEvent, store_name


class MinuteDevicesMixin:
    """Methods added to SqlStore (which supplies _query, _t, _from_t, TIMES_AS_TEXT)."""

    TIMES_AS_TEXT: bool

    def minute_devices_by_hour(self, station: str, start: datetime, end: datetime,
                               species: str | None = None) -> dict[tuple[str, datetime], list[str]]:
        """{(stream, hour start): devices in name order} of the station's ambient (inlet:*) minute
        records in [start, end), those carrying `species` when given."""
        hour = ("substr(time, 1, 13)" if self.TIMES_AS_TEXT
                else "date_trunc('hour', time AT TIME ZONE 'UTC')")
        sql = (f"SELECT DISTINCT stream, {hour}, device FROM minute WHERE station = ? AND time >= ? AND time < ? "
               "AND stream LIKE ?")
        params: list[Any] = [station, self._t(start), self._t(end), "inlet:%"]  # type: ignore[attr-defined]
        if species is not None:  # a key of the species object (central/store/species.py)
            sql += " AND species LIKE ?"
            params.append(f'%"{species}"%')
        out: dict[tuple[str, datetime], list[str]] = {}
        for stream, h, device in self._query(sql, params):  # type: ignore[attr-defined]
            when = (datetime.fromisoformat(h + ":00:00+00:00") if isinstance(h, str)
                    else h.replace(tzinfo=UTC))
            out.setdefault((stream, when), []).append(device)
        return {k: sorted(v) for k, v in out.items()}

    def registry_events(self, station: str) -> list[StoredEvent]:
        """The station's `inventory.*` and `config.*` events, any time, in time order: the registry's
        history (central/fleet/registry.py) without the valve and calibration events around them."""
        rows = self._query(  # type: ignore[attr-defined]
            "SELECT seq, time, kind, severity, message, device, data, received_at, store FROM event "
            "WHERE station = ? AND (kind LIKE ? OR kind LIKE ?) ORDER BY time, seq, store",
            (station, "inventory.%", "config.%"))
        f = self._from_t  # type: ignore[attr-defined]
        return [StoredEvent(station, r[0], f(r[1]), r[2], r[3], r[4], r[5] or None, json.loads(r[6]), f(r[7]),
                            store_name(r[8])) for r in rows]
