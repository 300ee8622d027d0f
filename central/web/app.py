"""The operations center as an ASGI app (FastAPI): the JSON API, its OpenAPI description
(/openapi.json, generated from these routes), logins, and the single-page UI in central/web/static.

Every /api route but /api/login needs a login: viewer to read, operator (or admin) plus the CSRF
token to write, admin for users (central/web/auth.py). A query the API cannot answer is 400 with
{"error": "<parameter>: what was wrong", "parameter": ...}; every error is JSON {"error": ...}.
Writes go through the same functions as the CLI: manual flags (central.flags.manual; the receiver's
aggregation recomputes the hours they mark), alarm acknowledgement (the store) and dead-letter replay
(central.deadletters.replay).
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from importlib import resources
from typing import Annotated, Any, Literal

import structlog
from fastapi import Body, Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from ghgnet.timeutil import iso_utc
from ghgnet.wire import STATION_ID_PATTERN

from .. import query
from ..config import CentralConfig
from ..flags.reasons import REASON_CODES
from ..users import ROLES, AccountError, Accounts
from . import fleet as fleet_answers
from .answers import ENDPOINTS, Answers
from .auth import COOKIE, CSRF_HEADER, Caller, Sessions, need
from .config_push import add_config_push_views
from .flux import add_flux_views

log = structlog.get_logger(component="web")

STATIC = resources.files("central.web") / "static"
Viewer = Annotated[Caller, Depends(need("viewer"))]
Operator = Annotated[Caller, Depends(need("operator", write=True))]
Admin = Annotated[Caller, Depends(need("admin"))]
AdminWrite = Annotated[Caller, Depends(need("admin", write=True))]

# Query parameters as the OpenAPI description shows them; central/query.py checks their values.
# Each parameter's own rule is in the description's schema (pattern, length); the rules between
# parameters (from and to together, not with days; from before to) are in their descriptions.
LABEL_PATTERN = r"^[^\x00-\x1f\x7f]{1,64}$"
Station = Annotated[str, Query(description="station id", pattern=STATION_ID_PATTERN)]
OptStation = Annotated[str | None, Query(description="station id", pattern=STATION_ID_PATTERN)]
Stream = Annotated[str | None, Query(description="e.g. inlet:100m", pattern=LABEL_PATTERN)]
Species = Annotated[str | None, Query(description="e.g. co2", pattern=LABEL_PATTERN)]
Label = Annotated[str, Query(description="a stream (e.g. inlet:100m) or species (e.g. co2)", pattern=LABEL_PATTERN)]
Days = Annotated[str | None, Query(description="window length in days, 0 < days <= 3660 (default 7), ending after "
                                               "the latest minute; not with from and to",
                                   pattern=r"^([0-9]{1,12}(\.[0-9]{0,12})?|\.[0-9]{1,12})$")]
From = Annotated[str | None, Query(alias="from", description="ISO 8601 start (with to, before it, at most 3660 days "
                                                             "apart, in 1900..2200)", max_length=256)]
To = Annotated[str | None, Query(alias="to", description="ISO 8601 end (with from)", max_length=256)]
RecordId = Annotated[int, Path(ge=1, le=2**63 - 1, description="its id (a 64-bit database key)")]
Limit = Annotated[str | None, Query(description="at most this many, 1..1000 (default 100)",
                                    pattern=r"^0*([1-9][0-9]{0,2}|1000)$")]


class Login(BaseModel):
    name: str = Field(max_length=64)
    password: str = Field(max_length=1024)


class NewUser(BaseModel):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$", description="a new user's name (central.users)")
    role: Literal[tuple(ROLES)]  # type: ignore[valid-type]
    password: str = Field(min_length=8, max_length=1024)


class NewFlag(BaseModel):
    station: str = Field(pattern=STATION_ID_PATTERN)
    time_from: str = Field(alias="from", description="ISO 8601, inclusive, in 1900..2200", max_length=256)
    time_to: str = Field(alias="to", description="ISO 8601, exclusive, after from", max_length=256)
    flag: Literal["K", "O"] = Field(description="K: invalid after manual QC; O: valid after manual QC")
    reason: str = Field(min_length=1, max_length=2000, pattern=r"\S", description="why (not blank)")
    reason_code: Literal[tuple(REASON_CODES)] = Field(  # type: ignore[valid-type]
        "other", description="central.flags.reasons")
    stream: str | None = Field(None, pattern=LABEL_PATTERN)
    species: str | None = Field(None, pattern=LABEL_PATTERN)


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status, headers={"Cache-Control": "no-store"})


def create_app(config: CentralConfig, store: Any, now=lambda: datetime.now(UTC), secure_cookie: bool = False) -> FastAPI:
    """The app on an open store (central.store), which it shares under one lock with its accounts."""
    lock = threading.Lock()
    answers = Answers(config, store, now, lock)
    accounts = Accounts(store, lock)
    app = FastAPI(title=f"{config.central.name} operations center", version="1",
                  description=__doc__, docs_url=None, redoc_url=None, redirect_slashes=False)
    app.state.sessions = Sessions(accounts, config.serve.session_hours * 3600)
    app.state.accounts = accounts
    app.state.answers = answers

    @app.exception_handler(query.BadParameter)
    async def _bad_parameter(request: Request, exc: query.BadParameter) -> JSONResponse:
        return _error(400, str(exc), parameter=exc.parameter)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such endpoint: {request.url.path[:80]}"
        resp = _error(exc.status_code, message)
        for k, v in (exc.headers or {}).items():
            resp.headers[k] = v
        if exc.status_code == 405:  # every method of the path, not only the first route's
            allowed = {m for r in app.routes if isinstance(r, APIRoute) and r.matches(request.scope)[0] != Match.NONE
                       for m in r.methods}
            if "GET" in allowed:
                allowed.add("HEAD")  # HeadAsGet answers HEAD wherever GET is
            resp.headers["Allow"] = ", ".join(sorted(allowed))
        return resp

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        route = request.scope.get("route")
        if route is not None and route.path in ENDPOINTS:  # the read API refuses as it always did
            try:
                Answers.check(route.path, request.url.query)
            except query.BadParameter as bad:
                return _error(400, str(bad), parameter=bad.parameter)
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x not in ("body", "query", "path"))
        return _error(400, f"{where or 'request'}: {first.get('msg', 'invalid')}", parameter=where or None)

    @app.exception_handler(AccountError)
    async def _account(request: Request, exc: AccountError) -> JSONResponse:
        return _error(400, str(exc))

    @app.exception_handler(Exception)
    async def _failed(request: Request, exc: Exception) -> JSONResponse:
        log.error("api_failed", path=request.url.path, error=type(exc).__name__, exc_info=exc)
        return _error(500, "internal error answering this request (see the server log)")

    def read(request: Request) -> Response:
        # JSON encoded here, not by FastAPI's jsonable_encoder (which walks every value: 3x slower
        # on a year of hourly data); the answers are JSON-ready already (central/views.py)
        doc = answers.answer(request.scope["route"].path, request.url.query)
        return Response(json.dumps(doc, allow_nan=False, separators=(",", ":")), media_type="application/json",
                        headers={"Cache-Control": "no-store"})

    # -- the read API carried over from the stdlib server (same paths, parameters and answers) --

    @app.get("/api/network", tags=["read"])
    def network(request: Request, caller: Viewer) -> Any:
        """Name, server time, compatibility goals, afternoon window."""
        return read(request)

    @app.get("/api/stations", tags=["read"])
    def stations(request: Request, caller: Viewer) -> Any:
        """Health of every station (as `status --json`)."""
        return read(request)

    @app.get("/api/fleet", tags=["read"])
    def fleet(request: Request, caller: Viewer) -> Any:
        """The station table: /api/stations plus last calibration, latest target bias against the goal,
        instrument clock offset where known."""
        return read(request)

    @app.get("/api/series", tags=["read"])
    def series(request: Request, caller: Viewer, station: Station) -> Any:
        """(stream, species) pairs with hourly data."""
        return read(request)

    @app.get("/api/hourly", tags=["read"])
    def hourly(request: Request, caller: Viewer, station: Station, stream: Stream = None, species: Species = None,
               days: Days = None, from_: From = None, to: To = None) -> Any:
        """Hourly means by (stream, species) with n, std and the hour's flag; `resolution` says "hour".

        A window longer than 60 days is answered with daily means instead (`resolution` "day"), one
        per UTC day computed from the hourly table: `time` (the day's start), `mean` (mean of the
        day's valid hours, flag U or O), `std` (their standard deviation), `n` (valid hours),
        `mean_all`/`n_all` (over every hour) and `flag` (U with a valid hour, else N and `mean` is
        `mean_all`). The hourly export (`central-receiver export --level hourly`) gives every hour."""
        return read(request)

    @app.get("/api/afternoon", tags=["read"])
    def afternoon(request: Request, caller: Viewer, station: Station, stream: Label, species: Label,
                  days: Days = None, from_: From = None, to: To = None) -> Any:
        """Daily afternoon means (local window)."""
        return read(request)

    @app.get("/api/monthly", tags=["read"])
    def monthly(request: Request, caller: Viewer, station: Station, stream: Label, species: Label,
                days: Days = None, from_: From = None, to: To = None) -> Any:
        """Monthly means of valid hours."""
        return read(request)

    @app.get("/api/targets", tags=["read"])
    def targets(request: Request, caller: Viewer, station: Station, days: Days = None, from_: From = None,
                to: To = None) -> Any:
        """Target bias per cylinder, short/long term, with the goal; `resolution` says "run".

        A window longer than 60 days is answered by day (`resolution` "day"): per series, `time`
        (the UTC day's start), `bias` (mean of the day's runs) and `n` (runs); the `summary` is
        always of every run."""
        return read(request)

    @app.get("/api/calibrations", tags=["read"])
    def calibrations(request: Request, caller: Viewer, station: Station, days: Days = None, from_: From = None,
                     to: To = None) -> Any:
        """Drift at the reference level and fit residuals per species."""
        return read(request)

    @app.get("/api/completeness", tags=["read"])
    def completeness(request: Request, caller: Viewer, station: Station, days: Days = None, from_: From = None,
                     to: To = None) -> Any:
        """Per UTC day: fraction of minutes received and valid."""
        return read(request)

    @app.get("/api/consistency", tags=["read"])
    def consistency(request: Request, caller: Viewer, species: Species = None, days: Days = None,
                    from_: From = None, to: To = None) -> Any:
        """Background stations' offsets against each other."""
        return read(request)

    @app.get("/api/events", tags=["read"])
    def events(request: Request, caller: Viewer, station: Station, days: Days = None, from_: From = None,
               to: To = None) -> Any:
        """A station's events (valve, calibration, maintenance, faults)."""
        return read(request)

    @app.get("/api/flags", tags=["flags"])
    def flags(request: Request, caller: Viewer, station: OptStation = None) -> Any:
        """The manual-flag audit trail."""
        return read(request)

    @app.get("/api/alarms", tags=["alarms"])
    def alarms(request: Request, caller: Viewer, station: OptStation = None, limit: Limit = None) -> Any:
        """The newest alarms."""
        return read(request)

    @app.get("/api/dead-letters", tags=["dead letters"])
    def dead_letters(request: Request, caller: Viewer, station: OptStation = None, limit: Limit = None) -> Any:
        """Refused payloads, newest first, with their reason and an excerpt of the payload (not all of it)."""
        return read(request)

    # -- the registry (issue 22): what is installed where ----------------------------------------

    @app.get("/api/registry", tags=["registry"])
    def registry(caller: Viewer) -> Any:
        """Every station central has heard from: state, agent and config versions, instrument serial
        numbers by device, cylinder pressures (bar), clock synchronisation."""
        with answers.lock:
            return fleet_answers.registry(store)

    @app.get("/api/registry/{station}", tags=["registry"])
    def registry_station(station: Annotated[str, Path(description="station id", pattern=STATION_ID_PATTERN)],
                         caller: Viewer) -> Any:
        """One station's registry: its latest inventory (devices with driver and serial number;
        cylinders with serial, assigned values and pressure), each cylinder's forecast empty date
        (`cylinder_forecasts`: a robust line through its pressure readings, central/fleet/cylinders.py),
        `serial_history` per device (the serial in force from each date on: instrument swaps) and the
        dated `history` of inventory and config changes. 404 for a station central never heard from."""
        with answers.lock:
            doc = fleet_answers.registry_station(store, station, now())
        if doc is None:
            raise HTTPException(404, f"central has never heard from station {station[:64]!r}")
        return doc

    # -- writes ------------------------------------------------------------------------------

    @app.post("/api/flags", tags=["flags"], status_code=201)
    def add_flag(caller: Operator, flag: Annotated[NewFlag, Body()]) -> Any:
        """Flag a station's data by hand (K invalid, O valid); its hours are recomputed by the receiver's
        aggregation. The operator is the logged-in user."""
        query.station(flag.station)
        start, end = query.time("from", flag.time_from), query.time("to", flag.time_to)
        if end <= start:
            raise query.BadParameter("to", "must be later than from")
        if flag.flag not in ("K", "O"):
            raise query.BadParameter("flag", "K (invalid) or O (valid)")
        if not flag.reason.strip():
            raise query.BadParameter("reason", "must say why")
        for name in ("stream", "species"):
            if getattr(flag, name) is not None:
                query.label(name, getattr(flag, name))
        from ..flags.manual import add_flag as add_manual_flag
        from ..flags.manual import flag_doc

        try:
            with lock:
                added = add_manual_flag(store, config, flag.station, start, end, flag.flag, flag.reason,
                                        caller.user.name, now(), flag.stream, flag.species, flag.reason_code,
                                        recompute=False)
        except ValueError as e:
            raise query.BadParameter("flag", str(e)) from None
        log.info("manual_flag", id=added.id, station=flag.station, by=caller.user.name)
        return flag_doc(added)

    @app.post("/api/alarms/{alarm_id}/acknowledge", tags=["alarms"])
    def acknowledge_alarm(alarm_id: RecordId, caller: Operator) -> Any:
        """Acknowledge an alarm: it stays active until its rule clears it, marked with who and when."""
        from ..store.operations import AlarmCleared, AlarmNotFound

        try:
            with lock:
                alarm = store.acknowledge_alarm(alarm_id, caller.user.name, now())
        except AlarmNotFound as e:
            raise HTTPException(404, str(e)) from None
        except AlarmCleared as e:
            raise HTTPException(409, str(e)) from None
        log.info("alarm_acknowledged", id=alarm_id, by=caller.user.name)
        return alarm_doc(alarm)

    @app.post("/api/dead-letters/{letter_id}/replay", tags=["dead letters"])
    def replay_dead_letter(letter_id: RecordId, caller: Operator) -> Any:
        """Replay a dead letter through ingest (central.deadletters); idempotent: a letter already
        resolved is not stored again."""
        from ..deadletters.replay import replay_dead_letter as replay

        try:
            with lock:
                result = replay(store, config, letter_id, now())
        except LookupError as e:
            raise HTTPException(404, str(e)) from None
        log.info("dead_letter_replayed", id=letter_id, by=caller.user.name, result=result.result)
        return {"id": result.id, "result": result.result, "resolved": result.resolved, "detail": result.detail}

    # -- logins and users ----------------------------------------------------------------------

    @app.post("/api/login", tags=["users"])
    def login(body: Annotated[Login, Body()], request: Request) -> Any:
        """Log in with name and password (JSON); sets the session cookie, returns the CSRF token."""
        user = accounts.verify(body.name, body.password)
        if user is None:
            log.info("login_refused", name=body.name[:64], client=request.client.host if request.client else None)
            raise HTTPException(401, "wrong name or password")
        value, csrf = app.state.sessions.issue(user)
        resp = JSONResponse({"name": user.name, "role": user.role, "csrf": csrf})
        resp.set_cookie(COOKIE, value, max_age=int(config.serve.session_hours * 3600), httponly=True,
                        samesite="strict", secure=secure_cookie, path="/")
        log.info("login", name=user.name)
        return resp

    @app.post("/api/logout", tags=["users"])
    def logout(caller: Annotated[Caller, Depends(need("viewer", write=True))]) -> Any:
        """End the browser session (the cookie is cleared)."""
        resp = JSONResponse({"ok": True})
        resp.delete_cookie(COOKIE, path="/")
        return resp

    @app.get("/api/me", tags=["users"])
    def me(caller: Viewer) -> Any:
        """Who is logged in, their role, and the CSRF token writes must send (X-CSRF-Token)."""
        return {"name": caller.user.name, "role": caller.user.role, "via": caller.via, "csrf": caller.csrf,
                "csrf_header": CSRF_HEADER}

    @app.get("/api/users", tags=["users"])
    def users(caller: Admin) -> Any:
        """Every user and their role."""
        return [{"name": u.name, "role": u.role, "created_at": u.created_at} for u in accounts.users()]

    @app.post("/api/users", tags=["users"], status_code=201)
    def add_user(caller: AdminWrite, body: Annotated[NewUser, Body()]) -> Any:
        """Add a user (409 when the name is taken)."""
        if accounts.get(body.name) is not None:
            raise HTTPException(409, f"user {body.name!r} exists (passwd changes the password)")
        u = accounts.add(body.name, body.role, body.password)
        log.info("user_added", name=u.name, role=u.role, by=caller.user.name)
        return {"name": u.name, "role": u.role}

    @app.delete("/api/users/{name}", tags=["users"])
    def remove_user(name: str, caller: AdminWrite) -> Any:
        """Remove a user (their sessions and tokens end)."""
        if accounts.get(name) is None:
            raise HTTPException(404, f"no user {name[:64]!r}")
        accounts.remove(name)
        log.info("user_removed", name=name, by=caller.user.name)
        return {"removed": name}

    @app.post("/api/tokens", tags=["users"], status_code=201)
    def new_token(caller: Operator, label: Annotated[str, Body(embed=True, max_length=200)] = "") -> Any:
        """A new API token for the caller (shown once; scripts send it as Authorization: Bearer)."""
        return {"token": accounts.new_token(caller.user.name, label)}

    # -- the UI (not part of the API description) ----------------------------------------------

    @app.get("/", include_in_schema=False)
    def index() -> Response:
        return _static("index.html")

    @app.get("/static/{name:path}", include_in_schema=False)
    def static(name: str) -> Response:
        return _static(name)

    add_flux_views(app, config, store, lock, _static)  # central/web/flux.py: the flux page and its API
    add_config_push_views(app, config, store, lock, now)  # central/web/config_push.py: configs from the registry
    _describe_roles(app)
    _describe_errors(app)
    app.add_middleware(HeadAsGet)
    return app


MAX_TARGET_BYTES = 8192


class HeadAsGet:
    """ASGI middleware: HEAD answered as GET without the body (FastAPI routes take GET only), a
    request target longer than MAX_TARGET_BYTES refused with 414 before routing, and a fragment sent
    in the target (`?a=b#frag`) left out of the query, as the parameters' checks always read it."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if b"#" in scope.get("query_string", b""):  # a fragment a client sent along is not the query
            scope = {**scope, "query_string": scope["query_string"].split(b"#", 1)[0]}
        if len(scope.get("raw_path", b"")) + len(scope.get("query_string", b"")) > MAX_TARGET_BYTES:
            resp = _error(414, f"request target longer than {MAX_TARGET_BYTES} bytes")
            return await resp(scope, receive, send)
        if scope["method"] != "HEAD":
            return await self.app(scope, receive, send)

        async def headers_only(message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)


def _describe_roles(app: FastAPI) -> None:
    """Each route's role (and whether it needs the CSRF token) in its OpenAPI operation, as
    x-required-role and x-csrf, read from its `need` dependency."""
    for route in app.routes:
        if isinstance(route, APIRoute):
            for dep in route.dependant.dependencies:
                if hasattr(dep.call, "role"):
                    route.openapi_extra = {"x-required-role": dep.call.role, "x-csrf": dep.call.write}


ERROR_SCHEMA = {"type": "object", "required": ["error"], "properties": {
    "error": {"type": "string", "description": "what was wrong, naming the parameter or field"},
    "parameter": {"type": ["string", "null"], "description": "the query parameter or body field at fault"}}}


def _describe_errors(app: FastAPI) -> None:
    """The error answers in the OpenAPI description as the app gives them: every error is JSON
    {"error", "parameter"?}; a request the API cannot take is 400 (FastAPI's own 422 never leaves:
    `_invalid` answers it as 400); 401 without a login and 403 for too low a role (or a session's
    write without its CSRF token) on every route that needs one; 404 where the path names a thing;
    409 where an operation can conflict; 414 for a request target too long (HeadAsGet)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        doc = generate()
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        schemas["Error"] = ERROR_SCHEMA
        for path, ops in doc["paths"].items():
            for op in ops.values():
                answers = op.setdefault("responses", {})
                answers.pop("422", None)
                codes = {"400": "a parameter or body the API cannot take (the error names it)",
                         "414": "a request target longer than 8 KiB"}
                if "x-required-role" in op:
                    codes |= {"401": "no valid login (session cookie or Authorization: Bearer)",
                              "403": "a role too low, or a session's write without its X-CSRF-Token"}
                elif path == "/api/login":
                    codes["401"] = "wrong name or password"
                if "{" in path:
                    codes["404"] = "no such thing"
                if path.endswith("/acknowledge"):
                    codes["409"] = "the alarm cleared already"
                if path == "/api/users" and "requestBody" in op:
                    codes["409"] = "a user of that name exists"
                for code, text in codes.items():
                    answers.setdefault(code, {"description": text, "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]


def _static(name: str) -> Response:
    if ".." in name.split("/") or name.startswith("/"):
        raise HTTPException(404, "no such file")
    path = STATIC.joinpath(name)
    if not path.is_file():
        if name.startswith("vendor/"):
            log.error("web_assets_missing", file=name, fix="./dev venv (runs npm ci) or npm ci && copy echarts")
        raise HTTPException(404, "no such file")
    return FileResponse(str(path), headers={"Cache-Control": "no-cache"})


def alarm_doc(a: Any) -> dict[str, Any]:
    """An alarm as JSON (the /api/alarms rows and the acknowledge answer)."""
    t = lambda v: iso_utc(v) if v is not None else None  # noqa: E731
    return {"id": a.id, "time": iso_utc(a.time), "station": a.station, "store": a.store, "kind": a.kind,
            "rule": a.rule, "subject": a.subject, "severity": a.severity, "state": a.state, "value": a.value,
            "message": a.message, "data": a.data, "updated_at": t(a.updated_at),
            "acknowledged_by": a.acknowledged_by, "acknowledged_at": t(a.acknowledged_at),
            "cleared_at": t(a.cleared_at)}
