"""The JSON answers of the operations center's read API, one method per endpoint, built by
central/views.py from the store (the same code as `central-receiver status` and `qc`).

Carried over from the stdlib server it replaces: the same paths, parameters (checked by
central/query.py) and answers. One store connection, used under one lock."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from ghgnet.timeutil import iso_utc

from .. import query, views
from ..config import CentralConfig
from . import daily, fleet, hourly

LIMIT_MAX = 1000
ENDPOINTS: dict[str, query.Endpoint] = {
    **query.ENDPOINTS,
    "/api/fleet": query.Endpoint(),
    "/api/events": query.Endpoint(("station",), query.RANGE),
    "/api/alarms": query.Endpoint(optional=("station", "limit")),
    "/api/dead-letters": query.Endpoint(optional=("station", "limit")),
}


def limit(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= LIMIT_MAX:
        raise query.BadParameter("limit", f"{text[:40]!r} is not a whole number in 1..{LIMIT_MAX}")
    return int(text)


class Answers:
    def __init__(self, config: CentralConfig, store: Any, now=lambda: datetime.now(UTC),
                 lock: threading.Lock | None = None) -> None:
        self.config = config
        self.store = store
        self.now = now
        self.lock = lock or threading.Lock()

    def _range(self, q: dict[str, str], station: str | None) -> tuple[datetime, datetime]:
        """`from`..`to` when given; else `days` (default 7) ending after the latest minute."""
        given = query.time_range(q)
        if given is not None:
            return given
        days = query.days(q["days"]) if "days" in q else query.DEFAULT_DAYS
        end = None
        if station is not None:
            end = self.store.latest_minute_time(station)
        if end is None:
            latest = [self.store.latest_minute_time(s.station) for s in self.store.stations()]
            end = max([t for t in latest if t is not None], default=self.now())
        end = end.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        return end - timedelta(days=days), end

    @staticmethod
    def check(path: str, raw_query: str) -> dict[str, str]:
        """The query's values when the endpoint can answer them; query.BadParameter naming the first
        that it cannot (every parameter's own rule, then from/to/days together)."""
        q = query.query_values(raw_query, ENDPOINTS[path])
        for name in ("stream", "species"):
            if name in q:
                query.label(name, q[name])
        if "station" in q:
            query.station(q["station"])
        if "limit" in q:
            limit(q["limit"])
        if "days" in q:
            query.days(q["days"])
        query.time_range(q)
        return q

    def answer(self, path: str, raw_query: str) -> Any:
        """The JSON answer of an endpoint; query.BadParameter for a query it cannot answer."""
        q = self.check(path, raw_query)
        cfg, st = self.config, self.store
        station = q.get("station")
        n = limit(q["limit"]) if "limit" in q else 100
        with self.lock:
            if path == "/api/network":
                a = cfg.aggregate
                return {"name": cfg.central.name, "time": iso_utc(self.now()), "goals": cfg.qc.goals,
                        "afternoon_window_local_h": [a.afternoon_start_h, a.afternoon_end_h]}
            if path == "/api/stations":
                return views.station_health(st, cfg, self.now())
            if path == "/api/fleet":
                return fleet.fleet(st, cfg, self.now())
            if path == "/api/flags":
                return views.flags(st, station)
            if path == "/api/alarms":
                from .app import alarm_doc

                return [alarm_doc(a) for a in st.alarm_list(None, station, n)]
            if path == "/api/dead-letters":
                from ..deadletters.replay import dead_letter_doc

                return [dead_letter_doc(d) for d in st.dead_letters(limit=n, station=station)]
            if path == "/api/consistency":
                start, end = self._range(q, None)
                return views.consistency(st, cfg, q.get("species", "co2"), start, end)
            assert station is not None  # every other endpoint requires it (ENDPOINTS)
            if path == "/api/series":
                return [{"stream": a, "species": b} for a, b in st.hourly_series(station)]
            start, end = self._range(q, station)
            if path == "/api/hourly":
                # a long window is answered with daily means (central/web/daily.py): a year of hours
                # is 52,000 points per station, too many to send and draw
                by_day = end - start > timedelta(days=daily.DAILY_AFTER_DAYS)
                reader = daily.daily_series if by_day else hourly.hourly_series
                return {"station": station, "from": iso_utc(start), "to": iso_utc(end),
                        "resolution": "day" if by_day else "hour",
                        "series": reader(st, station, start, end, q.get("stream"), q.get("species"))}
            if path == "/api/afternoon":
                return views.afternoon(st, cfg, station, q["stream"], q["species"], start, end)
            if path == "/api/monthly":
                return views.monthly(st, station, q["stream"], q["species"], start, end)
            if path == "/api/targets":
                # a long window: each series' daily mean bias (a year is 1,460 runs a cylinder pair)
                by_day = end - start > timedelta(days=daily.DAILY_AFTER_DAYS)
                return {**views.targets(st, cfg, station, start, end, by_day=by_day),
                        "resolution": "day" if by_day else "run"}
            if path == "/api/calibrations":
                return views.calibrations(st, cfg, station, start, end)
            if path == "/api/completeness":
                day0 = start.replace(hour=0, minute=0, second=0, microsecond=0)
                return {"station": station, **views.completeness(st, station, day0, end)}
            if path == "/api/events":
                return {"station": station, "from": iso_utc(start), "to": iso_utc(end),
                        "events": [{"time": iso_utc(e.time), "kind": e.kind, "severity": e.severity,
                                    "message": e.message, "device": e.device, "data": e.data}
                                   for e in st.events(station, start, end)]}
        raise KeyError(path)
