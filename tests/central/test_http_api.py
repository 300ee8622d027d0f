"""The HTTP API's input surface, against a real `central-receiver serve` process on a free port
(a viewer's API token from `central-receiver users add` and `users token`):
every bad query parameter is HTTP 400 with a JSON message naming the parameter, an unknown path
404, another method 405; never a 500, a traceback or exception text; the process keeps serving and
its answers to good requests do not change. Contract cases first, then a property-based fuzz."""

from __future__ import annotations

import http.client
import json
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.network import central_stations_toml, fill_network

from central.aggregation.worker import aggregate_all
from central.config import load_central_config
from central.query import ENDPOINTS, MAX_DAYS, days, label, query_values, station, time_range
from central.store import open_store

BIN = Path(sys.executable).parent
GOOD = "/api/hourly?station=bg-north&species=co2&days=2"
LEAKS = ("Traceback", "Error:", "Exception", 'File "', "line ")


class Served:
    def __init__(self, proc: subprocess.Popen, url: str, token: str) -> None:
        self.proc = proc
        self.token = token
        self.host, self.port = urlsplit(url).hostname, urlsplit(url).port

    def request(self, method: str, target: str) -> tuple[int, http.client.HTTPMessage, bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            conn.putrequest(method, target, skip_host=False, skip_accept_encoding=True)
            conn.putheader("Authorization", f"Bearer {self.token}")
            conn.endheaders()
            res = conn.getresponse()
            return res.status, res.headers, res.read()  # case-insensitive names
        finally:
            conn.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("http")
    config = tmp / "central.toml"
    config.write_text(f'[storage]\npath = "{tmp / "c.sqlite"}"\n\n[logging]\nlevel = "info"\n\n'
                      + central_stations_toml())
    store = open_store("sqlite", path=tmp / "c.sqlite")
    try:
        fill_network(store, days=2)
        aggregate_all(store, load_central_config(config))
    finally:
        store.close()
    subprocess.run([str(BIN / "central-receiver"), "users", "add", "--config", str(config), "vera", "--role",
                    "viewer", "--password-stdin"], input="viewer-pass-1\n", text=True, check=True,
                   capture_output=True)
    token = subprocess.run([str(BIN / "central-receiver"), "users", "token", "--config", str(config), "vera"],
                           text=True, check=True, capture_output=True).stdout.strip()
    stderr = (tmp / "serve.log").open("w+")
    proc = subprocess.Popen([str(BIN / "central-receiver"), "serve", "--config", str(config), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=stderr, text=True)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    line = proc.stdout.readline() if ready else ""
    if not line:
        proc.kill()
        pytest.fail(f"central-receiver serve did not print its URL:\n{(tmp / 'serve.log').read_text()[-3000:]}")
    s = Served(proc, json.loads(line)["url"], token)
    baseline = s.request("GET", GOOD)
    assert baseline[0] == 200 and json.loads(baseline[2])["series"], baseline
    yield s
    assert proc.poll() is None, "central-receiver serve died"
    assert s.request("GET", GOOD)[2] == baseline[2], "a good request's answer changed"
    proc.terminate()
    proc.wait(30)
    log = (tmp / "serve.log").read_text()
    assert "api_failed" not in log and "Traceback" not in log, log[-3000:]


def assert_refused(status: int, body: bytes, code: int, parameter: str | None) -> dict:
    assert status == code, body
    doc = json.loads(body)
    assert isinstance(doc["error"], str) and doc["error"]
    assert not any(leak in doc["error"] for leak in LEAKS), doc
    if parameter is not None:
        assert doc["parameter"] == parameter and doc["error"].startswith(f"{parameter}: "), doc
    return doc


BAD = [
    ("/api/hourly?station=bg-north&days=nan", "days", "not a plain decimal"),
    ("/api/hourly?station=bg-north&days=inf", "days", "not a plain decimal"),
    ("/api/hourly?station=bg-north&days=-inf", "days", "not a plain decimal"),
    ("/api/hourly?station=bg-north&days=1e9", "days", "not a plain decimal"),
    ("/api/hourly?station=bg-north&days=1000000000", "days", "out of range"),
    ("/api/hourly?station=bg-north&days=3660.5", "days", "out of range"),
    ("/api/hourly?station=bg-north&days=-1", "days", "not a plain decimal"),
    ("/api/hourly?station=bg-north&days=0", "days", "out of range"),
    ("/api/hourly?station=bg-north&days=seven", "days", "not a plain decimal"),
    ("/api/hourly?station=bg-north&days=", "days", "not a plain decimal"),
    ("/api/hourly?station=bg-north&days=%207", "days", "not a plain decimal"),
    ("/api/hourly?station=bg-north&days=1_0", "days", "not a plain decimal"),
    ("/api/hourly?station=bg-north&days=2&days=3", "days", "more than once"),
    ("/api/hourly?station=bg-north&days=" + "9" * 300, "days", "longer than 256"),
    ("/api/completeness?station=bg-north&days=0x10", "days", "not a plain decimal"),
    ("/api/hourly", "station", "missing"),
    ("/api/hourly?station=", "station", "missing"),
    ("/api/hourly?station=BG%20North", "station", "not a station id"),
    ("/api/hourly?station=bg-north%0A", "station", "not a station id"),
    ("/api/hourly?station=" + "a" * 33, "station", "not a station id"),
    ("/api/flags?station=%00", "station", "not a station id"),
    ("/api/afternoon?station=bg-north&stream=inlet:100m", "species", "missing"),
    ("/api/afternoon?station=bg-north&stream=in%01let&species=co2", "stream", "printable"),
    ("/api/hourly?station=bg-north&species=" + "x" * 65, "species", "printable"),
    ("/api/hourly?station=bg-north&from=2026-03-01", "to", "go together"),
    ("/api/hourly?station=bg-north&to=2026-03-01", "from", "go together"),
    ("/api/hourly?station=bg-north&from=yesterday&to=2026-03-01", "from", "ISO 8601"),
    ("/api/hourly?station=bg-north&from=2026-03-02&to=2026-03-01", "to", "later than from"),
    ("/api/hourly?station=bg-north&from=0001-01-01&to=2026-03-01", "from", "outside"),
    ("/api/targets?station=bg-north&from=2026-03-01&to=9999-12-31T23:59:59", "to", "outside"),
    ("/api/hourly?station=bg-north&from=1950-01-01&to=2026-03-01", "to", "more than 3660 days"),
    ("/api/hourly?station=bg-north&from=2026-02-01&to=2026-03-01&days=3", "days", "not both"),
    ("/api/hourly?station=bg-north&dayz=3", "query", "unknown parameter 'dayz'"),
    ("/api/stations?station=bg-north", "query", "takes: no parameters"),
    ("/api/series?station=bg-north&days=3", "query", "unknown parameter 'days'"),
    ("/api/hourly?station=%ff%fe", "query", "not UTF-8"),
    ("/api/flags?" + "&".join(f"p{i}=1" for i in range(40)), "query", "more than 16 parameters"),
]


@pytest.mark.parametrize(("target", "parameter", "message"), BAD)
def test_a_bad_parameter_is_400_naming_it(served, target, parameter, message):
    status, headers, body = served.request("GET", target)
    doc = assert_refused(status, body, 400, parameter)
    assert message in doc["error"]
    assert headers["Content-Type"] == "application/json"


@pytest.mark.parametrize("target", ["/api/nope", "/api/hourly/", "/api", "/index.html", "/api/stations/../x",
                                    "/%ff", "//api/nope", "/api/STATIONS"])
def test_an_unknown_path_is_404(served, target):
    assert_refused(*served.request("GET", target)[::2], 404, None)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"])
def test_any_method_but_get_and_head_is_405(served, method):
    status, headers, body = served.request(method, "/api/stations")
    assert_refused(status, body, 405, None)
    assert headers["Allow"] == "GET, HEAD"


def test_head_answers_the_headers_of_get_without_a_body(served):
    status, headers, body = served.request("HEAD", "/api/stations")
    get_status, get_headers, get_body = served.request("GET", "/api/stations")
    assert (status, body, get_status) == (200, b"", 200)
    assert headers["Content-Type"] == get_headers["Content-Type"] == "application/json"
    assert int(get_headers["Content-Length"]) == len(get_body) > 2


def test_a_request_line_too_long_is_a_json_refusal(served):
    status, _, body = served.request("GET", "/api/flags?station=" + "a" * 70000)
    assert_refused(status, body, 414, None)


def test_the_accepted_bounds_answer_200(served):
    for target in ("/api/hourly?station=bg-north&days=3660", "/api/hourly?station=bg-north&days=.5",
                   "/api/completeness?station=bg-north&days=0.04",
                   "/api/hourly?station=bg-north&from=1900-01-01&to=1910-01-01",
                   "/api/targets?station=bg-north&from=2189-12-31&to=2200-01-01T00:00:00Z",
                   "/api/monthly?station=bg-north&stream=inlet%3A100m&species=co2&days=90",
                   "/api/afternoon?station=unknown-station&stream=x&species=y",
                   "/api/consistency", "/api/flags", "/api/network", "/?cache=1", "/static/app.js"):
        status, _, body = served.request("GET", target)
        assert status == 200, (target, body)


# ----------------------------------------------------------------------------------------- fuzz

good_values = {
    "station": ["bg-north", "city-1", "nobody"], "stream": ["inlet:100m", "inlet:10m"],
    "species": ["co2", "ch4"], "days": ["1", "2.5", "3660"], "from": ["2026-03-01T00:00:00Z"],
    "to": ["2026-03-02", "2026-03-03T12:00:00+08:00"],
}
names = st.sampled_from(sorted({n for e in ENDPOINTS.values() for n in e.accepted})) | st.text(max_size=6)
values = (
    st.sampled_from([v for vs in good_values.values() for v in vs])
    | st.sampled_from(["nan", "NaN", "inf", "-inf", "1e9", "1e-9", "-1", "0", "", "+7", " 7", "7 ", "0x1",
                       "1_000", "३", "9" * 400, "2026-02-30", "2026-03-01T25:00", "99999-01-01", "\x00", "%"])
    | st.floats(allow_nan=True, allow_infinity=True).map(repr)
    | st.integers(-(10**30), 10**30).map(str)
    | st.text(max_size=40)
)


@st.composite
def targets(draw) -> str:
    path = draw(st.sampled_from(sorted(ENDPOINTS)) | st.sampled_from(["/api/x", "/api/hourly/extra"]))
    pairs = draw(st.lists(st.tuples(names, values), max_size=7))
    if draw(st.booleans()) and path in ENDPOINTS:  # mostly well-formed around one or two bad values
        pairs = [(n, draw(st.sampled_from(good_values[n]))) for n in ENDPOINTS[path].required] + pairs[:2]
    query = "&".join(f"{quote(n, safe='')}={quote(v, safe='', errors='surrogatepass')}" for n, v in pairs)
    if draw(st.booleans()):
        query += draw(st.sampled_from(["&", "&&", "=", "&=x", "&%zz", "&%ff=1", "&station", "#frag"]))
    return f"{path}?{query}" if query else path


def accepted(path: str, query: str) -> bool:
    """Whether the API's own rules (central.query) take this query: the oracle for a 200."""
    try:
        q = query_values(query, ENDPOINTS[path])
        if "station" in q:
            station(q["station"])
        for n in ("stream", "species"):
            if n in q:
                label(n, q[n])
        if time_range(q) is None and "days" in q:
            days(q["days"])
    except ValueError:
        return False
    return True


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(target=targets())
def test_fuzzed_queries_get_an_answer_or_a_400_never_a_500(served, target):
    status, _, body = served.request("GET", target)
    url = urlsplit(target)
    if url.path not in ENDPOINTS:
        assert_refused(status, body, 404, None)
        return
    if status == 200:
        json.loads(body)
        assert accepted(url.path, url.query), target
        return
    doc = assert_refused(status, body, 400, None)
    assert doc["parameter"] and doc["error"].startswith(doc["parameter"] + ": ")
    assert not accepted(url.path, url.query), target


def test_days_bounds_are_the_documented_ones():
    assert days("3660") == MAX_DAYS and days("0.5") == 0.5
    for text in ("nan", "inf", "1e3", "-1", "0", "3660.01", "", " 1"):
        with pytest.raises(ValueError, match="^days: "):
            days(text)
