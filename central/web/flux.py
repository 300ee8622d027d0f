"""The operations center's eddy-covariance views: per flux station the half-hourly CO2 flux, H and
LE with their quality flags (Mauder and Foken 2004: 0 best, 1 for budgets, 2 discarded) and u*,
and the daily sums of the valid half hours with u* filtering (central/aggregation/flux_daily.py).

JSON endpoints (viewer role, in /openapi.json like the rest of the read API):
- /api/flux/stations: the stations that sent flux records, their first and last half hour;
- /api/flux/halfhours?station=..[&days=|&from=&to=]: the half hours, as columns;
- /api/flux/daily?station=..[&days=|&from=&to=][&ustar=..][&min_coverage=..]: the daily sums.
A window given by `days` ends after the station's latest half hour (whole UTC days for the daily
sums). `ustar` is one threshold (m/s) for every season or SEASON=M/S pairs separated by commas
(DJF, MAM, JJA, SON; a season not named is not filtered); with the station's position in the
central config only night-time half hours are filtered (the sun below the horizon), else all.
The page is /flux (static/flux.html, static/flux.js).
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import Response

from ghgnet.timeutil import iso_utc

from .. import query
from ..aggregation.flux_daily import SEASONS, daily_sums, night_by_sun
from ..config import CentralConfig
from .auth import Caller, need

Viewer = Annotated[Caller, Depends(need("viewer"))]
Station = Annotated[str, Query(description="station id")]
Days = Annotated[str | None, Query(description="window length in days (default 7), ending after the latest half hour")]
From = Annotated[str | None, Query(alias="from", description="ISO 8601 start (with to)")]
To = Annotated[str | None, Query(alias="to", description="ISO 8601 end (with from)")]
Ustar = Annotated[str | None, Query(description="u* threshold in m/s for every season (e.g. 0.1), or SEASON=M/S "
                                                "pairs separated by commas (e.g. DJF=0.1,JJA=0.2); none: no filter")]
Coverage = Annotated[str | None, Query(description="share of a day that must be valid for its daily estimate "
                                                   "(default 0.8)")]

ENDPOINTS: dict[str, query.Endpoint] = {
    "/api/flux/stations": query.Endpoint(),
    "/api/flux/halfhours": query.Endpoint(("station",), query.RANGE),
    "/api/flux/daily": query.Endpoint(("station",), (*query.RANGE, "ustar", "min_coverage")),
}
COLUMNS = ("time", "duration_s", "flag_co2", "flag_h", "flag_le", "co2_flux_umol_m2_s", "h_w_m2", "le_w_m2",
           "ustar_ms")
"""The flux table's columns the views read (central/store/flux.py keeps them beside the record)."""
MAX_USTAR = 5.0


def ustar_thresholds(text: str) -> dict[str, float]:
    """The `ustar` parameter as {season: m/s}."""
    seasons = sorted(set(SEASONS.values()))
    if "=" not in text:
        return dict.fromkeys(seasons, _ustar_value(text))
    out: dict[str, float] = {}
    for item in text.split(","):
        season, _, value = item.strip().partition("=")
        if season not in seasons:
            raise query.BadParameter("ustar", f"{season[:8]!r} is not a season (one of {', '.join(seasons)})")
        if season in out:
            raise query.BadParameter("ustar", f"{season} given twice")
        out[season] = _ustar_value(value)
    return out


def _ustar_value(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise query.BadParameter("ustar", f"{text[:20]!r} is not a number of m/s") from None
    if not 0 <= value <= MAX_USTAR:
        raise query.BadParameter("ustar", f"{value:g} m/s is outside 0..{MAX_USTAR:g}")
    return value


def _coverage(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 1:
        raise query.BadParameter("min_coverage", f"{text[:20]!r} is not a share in (0, 1]")
    return value


def _num(v: Any) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


class FluxViews:
    """The answers of the flux endpoints from the store (one connection, used under `lock`)."""

    def __init__(self, config: CentralConfig, store: Any, lock: threading.Lock) -> None:
        self.config = config
        self.store = store
        self.lock = lock

    def stations(self) -> list[dict[str, Any]]:
        rows = self.store._query("SELECT station, min(time), max(time), count(*) FROM flux GROUP BY station "
                                 "ORDER BY station", ())
        out = []
        for station, first, last, n in rows:
            meta = self.config.stations.get(station)
            out.append({"station": station, "name": meta.name if meta and meta.name else station,
                        "first": iso_utc(self.store._from_t(first)), "last": iso_utc(self.store._from_t(last)),
                        "half_hours": n,
                        "latitude": meta.latitude if meta else None, "longitude": meta.longitude if meta else None})
        return out

    def _rows(self, station: str, start: datetime, end: datetime) -> list[tuple]:
        return self.store._query(f"SELECT {', '.join(COLUMNS)} FROM flux WHERE station = ? AND time >= ? AND time < ? "
                                 "ORDER BY time, seq", (station, self.store._t(start), self.store._t(end)))

    def _window(self, q: dict[str, str], station: str, whole_days: bool) -> tuple[datetime, datetime]:
        given = query.time_range(q)
        if given is not None:
            return given
        days = query.days(q["days"]) if "days" in q else query.DEFAULT_DAYS
        latest = self.store._query("SELECT max(time) FROM flux WHERE station = ?", (station,))[0][0]
        if latest is None:
            raise query.BadParameter("station", f"{station!r} has sent no flux records")
        end = self.store._from_t(latest) + timedelta(minutes=30)
        if whole_days:
            end = end.replace(hour=0, minute=0, second=0, microsecond=0) + (
                timedelta(days=1) if end.time() != datetime.min.time() else timedelta(0))
            return end - timedelta(days=math.ceil(days)), end
        return end - timedelta(days=days), end

    def halfhours(self, q: dict[str, str]) -> dict[str, Any]:
        station = query.station(q["station"])
        with self.lock:
            start, end = self._window(q, station, whole_days=False)
            rows = self._rows(station, start, end)
        cols: dict[str, list] = {c: [] for c in COLUMNS if c != "duration_s"}
        for row in rows:
            rec = dict(zip(COLUMNS, row))
            cols["time"].append(iso_utc(self.store._from_t(rec["time"])))
            for c in ("flag_co2", "flag_h", "flag_le"):
                cols[c].append(rec[c])
            for c in ("co2_flux_umol_m2_s", "h_w_m2", "le_w_m2", "ustar_ms"):
                cols[c].append(_num(rec[c]))
        return {"station": station, "from": iso_utc(start), "to": iso_utc(end), **cols}

    def daily(self, q: dict[str, str]) -> dict[str, Any]:
        station = query.station(q["station"])
        thresholds = ustar_thresholds(q["ustar"]) if q.get("ustar") else None
        coverage = _coverage(q["min_coverage"]) if "min_coverage" in q else 0.8
        meta = self.config.stations.get(station)
        is_night: Callable[[datetime], bool] | None = None
        if meta is not None and meta.latitude is not None and meta.longitude is not None:
            is_night = night_by_sun(meta.latitude, meta.longitude)
        with self.lock:
            start, end = self._window(q, station, whole_days=True)
            rows = self._rows(station, start, end)
        records = [{"start": self.store._from_t(r[0]), **dict(zip(COLUMNS[1:], r[1:]))} for r in rows]
        days = daily_sums(records, thresholds, is_night if thresholds else None, min_coverage=coverage)
        return {"station": station, "from": iso_utc(start), "to": iso_utc(end), "ustar_thresholds": thresholds,
                "ustar_filter": None if not thresholds else "night" if is_night else "all half hours",
                "min_coverage": coverage,
                "days": [{"day": d.day.isoformat(), "n_records": d.n_records, "n_valid": d.n_valid,
                          "n_low_ustar": d.n_low_ustar, "coverage": d.coverage,
                          "co2_valid_g_c_m2": _num(d.co2_valid_g_c_m2), "co2_daily_g_c_m2": _num(d.co2_daily_g_c_m2),
                          "h_valid_mj_m2": _num(d.h_valid_mj_m2), "le_valid_mj_m2": _num(d.le_valid_mj_m2)}
                         for d in days]}


def add_flux_views(app: FastAPI, config: CentralConfig, store: Any, lock: threading.Lock,
                   page: Callable[[str], Response]) -> None:
    """Add the flux endpoints and the /flux page to the operations center's app (central/web/app.py)."""
    views = FluxViews(config, store, lock)

    def answer(request: Request, build: Callable[[dict[str, str]], Any]) -> Response:
        q = query.query_values(request.url.query, ENDPOINTS[request.scope["route"].path])
        return Response(json.dumps(build(q), allow_nan=False, separators=(",", ":")), media_type="application/json",
                        headers={"Cache-Control": "no-store"})

    @app.get("/api/flux/stations", tags=["flux"])
    def flux_stations(request: Request, caller: Viewer) -> Any:
        """The stations that sent half-hourly flux records: id, name, first and last half hour, count."""
        return answer(request, lambda q: views.stations())

    @app.get("/api/flux/halfhours", tags=["flux"])
    def flux_halfhours(request: Request, caller: Viewer, station: Station, days: Days = None, from_: From = None,
                       to: To = None) -> Any:
        """A station's half hours as columns: `time` (period start), `co2_flux_umol_m2_s`, `h_w_m2`,
        `le_w_m2` with `flag_co2`, `flag_h`, `flag_le` (0 best, 1 for budgets, 2 discard) and `ustar_ms`."""
        return answer(request, views.halfhours)

    @app.get("/api/flux/daily", tags=["flux"])
    def flux_daily(request: Request, caller: Viewer, station: Station, days: Days = None, from_: From = None,
                   to: To = None, ustar: Ustar = None, min_coverage: Coverage = None) -> Any:
        """Per UTC day the sums of the valid half hours (flag 0 or 1, u* at or above its season's
        threshold): CO2 in g C m-2 (`co2_valid_g_c_m2`; `co2_daily_g_c_m2` scaled to the whole day
        when `min_coverage` of it is valid), H and LE in MJ m-2, with the counts. No gap filling."""
        return answer(request, views.daily)

    @app.get("/flux", include_in_schema=False)
    def flux_page() -> Response:
        return page("flux.html")
