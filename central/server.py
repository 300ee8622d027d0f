"""`central-receiver serve`: the HTTP JSON API and the operators' dashboard (stdlib http.server).

Read-only; every answer is built by central/views.py from the store, the same code that drives
`central-receiver status` and `qc`. The dashboard is static HTML + JS served from
central/dashboard/ (no CDN, no third-party script: the plots are SVG drawn by our own code).

Endpoints (GET; times ISO 8601; `days` defaults to 7, ranges end at the station's latest minute):
  /                              the dashboard
  /api/network                   name, server time, compatibility goals, afternoon window
  /api/stations                  health of every station (as `status --json`)
  /api/series?station=S          (stream, species) pairs with hourly data
  /api/hourly?station=S[&stream=][&species=][&from=&to=|&days=]
  /api/afternoon?station=S&stream=&species=[...]   daily afternoon means (local window)
  /api/monthly?station=S&stream=&species=[...]
  /api/targets?station=S[...]    target bias per cylinder, short/long term, with the goal
  /api/calibrations?station=S[...]  drift at the reference level and fit residuals
  /api/completeness?station=S[&days=]
  /api/consistency?species=co2[...]  background stations' offsets
  /api/flags[?station=S]         the manual-flag audit trail

Every answer is JSON. A query the API cannot answer is HTTP 400 with {"error": "<parameter>: what
was wrong", "parameter": ...}: the parameters and their limits are checked in central/query.py (pure
functions, one per parameter). An unknown path is 404, any method but GET and HEAD 405; a failure
while answering is 500 with no exception text (that goes to the log).
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import structlog

from ghgnet.timeutil import iso_utc, parse_utc

from . import query, views
from .config import CentralConfig
from .store import open_configured_store

log = structlog.get_logger(component="server")

STATIC = {"/": ("index.html", "text/html; charset=utf-8"),
          "/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
          "/dashboard.css": ("dashboard.css", "text/css; charset=utf-8")}


class Api:
    """The API's answers, one method per endpoint; one store, used under a lock."""

    def __init__(self, config: CentralConfig, store: Any, now=lambda: datetime.now(UTC)) -> None:
        self.config = config
        self.store = store
        self.now = now
        self.lock = threading.Lock()

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

    def answer(self, path: str, raw_query: str) -> Any:
        """The JSON answer of an endpoint; KeyError for an unknown path, query.BadParameter for
        a query it cannot answer."""
        q = query.query_values(raw_query, query.ENDPOINTS[path])
        cfg, st = self.config, self.store
        for name in ("stream", "species"):
            if name in q:
                query.label(name, q[name])
        station = query.station(q["station"]) if "station" in q else None
        with self.lock:
            if path == "/api/network":
                a = cfg.aggregate
                return {"name": cfg.central.name, "time": iso_utc(self.now()), "goals": cfg.qc.goals,
                        "afternoon_window_local_h": [a.afternoon_start_h, a.afternoon_end_h]}
            if path == "/api/stations":
                return views.station_health(st, cfg, self.now())
            if path == "/api/flags":
                return views.flags(st, station)
            if path == "/api/consistency":
                start, end = self._range(q, None)
                return views.consistency(st, cfg, q.get("species", "co2"), start, end)
            assert station is not None  # every other endpoint requires it (query.ENDPOINTS)
            if path == "/api/series":
                return [{"stream": a, "species": b} for a, b in st.hourly_series(station)]
            start, end = self._range(q, station)
            if path == "/api/hourly":
                return {"station": station, "from": iso_utc(start), "to": iso_utc(end),
                        "series": views.hourly_series(st, station, start, end, q.get("stream"), q.get("species"))}
            if path == "/api/afternoon":
                return views.afternoon(st, cfg, station, q["stream"], q["species"], start, end)
            if path == "/api/monthly":
                return views.monthly(st, station, q["stream"], q["species"], start, end)
            if path == "/api/targets":
                return views.targets(st, cfg, station, start, end)
            if path == "/api/calibrations":
                return views.calibrations(st, cfg, station, start, end)
            if path == "/api/completeness":
                day0 = start.replace(hour=0, minute=0, second=0, microsecond=0)
                return {"station": station, **views.completeness(st, station, day0, end)}
        raise KeyError(path)


def error_body(message: str, **extra: Any) -> bytes:
    return json.dumps({"error": message, **extra}).encode()


def _handler(api: Api) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "ghgnet-central"
        error_content_type = "application/json"

        def log_message(self, fmt: str, *args: Any) -> None:
            log.debug("http", request=fmt % args)

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            """http.server's own refusals (bad request line, URI too long, ...) as JSON, like ours."""
            try:
                short = HTTPStatus(code).phrase
            except ValueError:
                short = str(code)
            self.close_connection = True
            self._send(code, error_body(message or short), "application/json")

        def _send(self, status: int, body: bytes, ctype: str, extra: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, status: int, doc: Any) -> None:
            self._send(status, json.dumps(doc, allow_nan=False).encode(), "application/json")

        def parse_request(self) -> bool:
            """Any method but GET and HEAD is refused here, before dispatch: 405 naming the allowed."""
            if not super().parse_request():
                return False
            if self.command not in ("GET", "HEAD"):
                self.close_connection = True
                self._send(405, error_body(f"method {self.command[:20]} not allowed; use GET"),
                           "application/json", {"Allow": "GET, HEAD"})
                return False
            return True

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            url = urlsplit(self.path)
            if url.path in STATIC:
                name, ctype = STATIC[url.path]
                body = resources.files("central.dashboard").joinpath(name).read_bytes()
                self._send(200, body, ctype)
                return
            if url.path not in query.ENDPOINTS:
                self._send(404, error_body(f"no such endpoint: {url.path[:80]}"), "application/json")
                return
            try:
                self._json(200, api.answer(url.path, url.query))
            except query.BadParameter as exc:
                self._send(400, error_body(str(exc), parameter=exc.parameter), "application/json")
            except Exception:  # an answer failed: log why, tell the client no more than that
                log.exception("api_failed", path=url.path)
                self._send(500, error_body("internal error answering this request (see the server log)"),
                           "application/json")

        do_HEAD = do_GET  # noqa: N815 (http.server's name): the same headers, no body (_send)

    return Handler


class DashboardServer:
    """The HTTP server in a thread. `port=0` picks a free port; `url` says which."""

    def __init__(self, config: CentralConfig, host: str = "127.0.0.1", port: int = 8087, store: Any = None,
                 now=lambda: datetime.now(UTC)) -> None:
        self._own_store = store is None
        self.api = Api(config, store if store is not None else open_configured_store(config), now)
        self.httpd = ThreadingHTTPServer((host, port), _handler(self.api))
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> DashboardServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="central-http", daemon=True)
        self._thread.start()
        log.info("dashboard_serving", url=self.url)
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)
        if self._own_store:
            self.api.store.close()
