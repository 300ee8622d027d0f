"""Who may do what: the OpenAPI description lists every route with its role, and every route
refuses a caller without a login (401), with too low a role (403), and a browser session's write
without the CSRF token (403); API tokens work for scripts; a changed password or removed user ends
sessions. The read API carried over from the old server answers the same data."""

from __future__ import annotations

import re

from support.webapp import PASSWORDS, served  # noqa: F401 (a fixture)
from support.webapp import ROLES as ROLE_OF

from central import query
from central.users import ROLES

PATH_VALUES = {"alarm_id": "1", "letter_id": "1", "name": "nobody", "station": "bg-north"}
QUERY = "?station=bg-north&stream=inlet:100m&species=co2&days=1"


def _operations(served):
    status, doc = served.client().request("GET", "/openapi.json")
    assert status == 200
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            target = re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES[m.group(1)], path)
            needs = {p["name"] for p in op.get("parameters", []) if p["in"] == "query" and p.get("required")}
            if needs:
                target += "?" + "&".join(f"{n}={dict(station='bg-north', stream='inlet:100m', species='co2')[n]}"
                                         for n in sorted(needs))
            yield path, method.upper(), target, op


def test_openapi_lists_every_api_route_and_every_old_endpoint(served):
    paths = {p for p, *_ in _operations(served)}
    assert set(query.ENDPOINTS) <= paths
    from fastapi.routing import APIRoute

    routes = {r.path for r in served.app.routes if isinstance(r, APIRoute) and r.path.startswith("/api/")}
    assert routes == paths
    for path, method, _, op in _operations(served):
        if path != "/api/login":
            assert op["x-required-role"] in ROLES, (path, method)
            assert op["x-csrf"] == (method != "GET"), (path, method)


def test_every_route_refuses_the_wrong_caller(served):
    anonymous = served.client()
    sessions = {name: served.client(name) for name in PASSWORDS}
    checked = 0
    for path, method, target, op in _operations(served):
        if path == "/api/login":
            continue
        status, doc = anonymous.request(method, target)
        assert status == 401 and "log in" in doc["error"], (method, target, status, doc)
        needed = op["x-required-role"]
        for name, client in sessions.items():
            allowed = ROLES.index(ROLE_OF[name]) >= ROLES.index(needed)
            status, doc = client.request(method, target, csrf=False)
            if not allowed:
                assert status == 403 and "role" in doc["error"], (name, method, target, status, doc)
            elif method != "GET":  # a session's write without the CSRF token
                assert status == 403 and "X-CSRF-Token" in doc["error"], (name, method, target, status, doc)
            else:
                assert status not in (401, 403), (name, method, target, status, doc)
        checked += 1
    assert checked >= 20


def test_writes_with_csrf_tokens_and_scripts(served):
    otto = served.client("otto")
    status, doc = otto.request("POST", "/api/flags", {"station": "bg-north", "from": "2026-03-02T00:00:00Z",
                                                      "to": "2026-03-02T03:00:00Z", "flag": "K", "reason": "leak"})
    assert status == 201 and doc["operator"] == "otto", doc
    status, flags = otto.request("GET", "/api/flags?station=bg-north")
    assert [f["reason"] for f in flags] == ["leak"] and flags[0]["operator"] == "otto"
    status, doc = otto.request("POST", "/api/flags", {"station": "bg-north", "from": "2026-03-02T00:00:00Z",
                                                      "to": "2026-03-01T00:00:00Z", "flag": "K", "reason": "x"})
    assert status == 400 and doc["parameter"] == "to", doc
    status, doc = otto.request("POST", "/api/flags", {"station": "bg-north", "from": "2026-03-01T00:00:00Z",
                                                      "to": "2026-03-02T00:00:00Z", "flag": "X", "reason": "x"})
    assert status == 400 and doc["parameter"] == "flag" and "'K' or 'O'" in doc["error"], doc
    # a token for a script: no cookie, no CSRF token
    status, doc = otto.request("POST", "/api/tokens", {"label": "cron"})
    assert status == 201
    script = served.client()
    script.token = doc["token"]
    assert script.request("GET", "/api/stations")[0] == 200
    assert script.request("POST", "/api/flags", {"station": "bg-south", "from": "2026-03-02T00:00:00Z",
                                                 "to": "2026-03-02T01:00:00Z", "flag": "O", "reason": "ok"})[0] == 201
    script.token = doc["token"][:-2] + "xx"
    assert script.request("GET", "/api/stations")[0] == 401
    # an alarm acknowledged by the operator who is logged in; unknown alarms and letters are 404
    from datetime import UTC, datetime

    served.store.raise_alarm("station_down", "bg-north", None, datetime(2026, 3, 2, tzinfo=UTC), "no status")
    alarm = next(a for a in served.store.alarm_list("open") if a.station == "bg-north")
    status, doc = otto.request("POST", f"/api/alarms/{alarm.id}/acknowledge")
    assert status == 200 and (doc["state"], doc["acknowledged_by"]) == ("acknowledged", "otto"), doc
    status, alarms = otto.request("GET", "/api/alarms?station=bg-north")
    assert [(a["id"], a["state"]) for a in alarms] == [(alarm.id, "acknowledged")]
    assert otto.request("POST", "/api/alarms/99999/acknowledge")[0] == 404
    assert otto.request("POST", "/api/dead-letters/99999/replay")[0] == 404


def test_login_takes_json_only(served):
    """A cross-site page can post a form or text/plain without a preflight, never JSON: login refuses both."""
    import http.client
    from urllib.parse import urlsplit

    u = urlsplit(served.url)
    for ctype, body in (("application/x-www-form-urlencoded", f"name=vera&password={PASSWORDS['vera']}"),
                        ("text/plain", f'{{"name": "vera", "password": "{PASSWORDS["vera"]}"}}')):
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        conn.request("POST", "/api/login", body, {"Content-Type": ctype})
        res = conn.getresponse()
        assert res.status == 400 and res.getheader("Set-Cookie") is None, (ctype, res.status)
        conn.close()


def test_users_sessions_end_with_a_new_password_or_removal(served):
    ada, vera = served.client("ada"), served.client("vera")
    status, doc = ada.request("POST", "/api/users", {"name": "nina", "role": "viewer", "password": "nina-pass-1"})
    assert status == 201, doc
    assert ada.request("POST", "/api/users", {"name": "nina", "role": "boss", "password": "nina-pass-1"})[0] == 400
    assert {u["name"] for u in ada.request("GET", "/api/users")[1]} == {"ada", "otto", "vera", "nina"}
    assert vera.request("GET", "/api/me")[1]["role"] == "viewer"
    served.accounts.set_password("vera", "another-pass")
    assert vera.request("GET", "/api/me")[0] == 401
    assert served.client().request("POST", "/api/login", {"name": "vera", "password": PASSWORDS["vera"]})[0] == 401
    assert ada.request("DELETE", "/api/users/nina")[0] == 200
    assert served.client().request("POST", "/api/login", {"name": "nina", "password": "nina-pass-1"})[0] == 401
    # the stored hash is argon2id, never the password
    (row,) = served.store._query("SELECT password_hash FROM web_user WHERE name = 'ada'")
    assert row[0].startswith("$argon2id$") and PASSWORDS["ada"] not in row[0]


def test_read_api_answers_as_before(served):
    vera = served.client("vera")
    status, stations = vera.request("GET", "/api/stations")
    assert status == 200 and {s["station"] for s in stations} == {"bg-north", "bg-south", "city-1"}
    status, hourly = vera.request("GET", "/api/hourly?station=bg-north&species=co2")
    assert {g["stream"] for g in hourly["series"]} == {"inlet:100m", "inlet:10m"}
    assert len(hourly["series"][0]["time"]) == 72
    status, cons = vera.request("GET", "/api/consistency?species=co2")
    (pair,) = cons["offsets"]  # bg-south sits 0.5 ppm above bg-north: beyond the 0.1 ppm goal
    assert pair["beyond_goal"] and abs(pair["mean"] + 0.5) < 0.05
    status, doc = vera.request("GET", "/api/hourly")
    assert status == 400 and doc["parameter"] == "station"
    status, doc = vera.request("GET", "/api/hourly?station=bg-north&days=1e3")
    assert status == 400 and doc["parameter"] == "days"
    status, doc = vera.request("GET", "/api/nowhere")
    assert status == 404 and "no such endpoint" in doc["error"]
    status, fleet = vera.request("GET", "/api/fleet")
    row = {r["station"]: r for r in fleet}["bg-north"]
    assert row["last_calibration"] and row["target_bias"] and row["target_bias"][0]["goal"] == 0.1
    status, events = vera.request("GET", "/api/events" + QUERY.split("&stream")[0])
    assert status == 200 and isinstance(events["events"], list)
