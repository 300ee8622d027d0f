"""The control socket's input surface, against a running agent and simulators (real processes):
every malformed request (deep nesting, an oversized line, invalid UTF-8, a non-object, an unknown
command, wrong field types) is answered with what was wrong, the connection and the agent keep
serving, and nothing is changed or lost. Contract cases first, then property-based fuzzing with
`parse_request` (the socket's own parser) as the oracle."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from support.station import Hil
from support.wait import wait_until

from station_agent.service.control import COMMANDS, MAX_DEPTH, MAX_REQUEST, RequestError, parse_request

HARMLESS = [{"cmd": "status"}, {"cmd": "events", "limit": 3}, {"cmd": "tail", "after_seq": 0}]


class Client:
    """One connection to agent.sock: a line out, a line back."""

    def __init__(self, path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(str(path))
        self.buf = b""

    def ask(self, line: bytes) -> dict[str, Any]:
        self.sock.sendall(line + b"\n")
        return self.reply()

    def reply(self) -> dict[str, Any]:
        while b"\n" not in self.buf:
            chunk = self.sock.recv(1 << 20)
            assert chunk, "the agent closed the connection without a reply"
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def station(tmp_path_factory) -> Iterator[Hil]:
    hil = Hil(tmp_path_factory.mktemp("control"), speed=120)
    hil.start_agent()
    wait_until(lambda: (hil.tmp / "agent.sock").exists(), timeout_s=60, interval_s=0.1, message="agent.sock")
    yield hil
    try:
        assert hil.agent is not None and hil.agent.poll() is None, "the agent died"
        log = (hil.tmp / "agent.log").read_text()
        assert "Traceback" not in log and "control_error" not in log, log[-3000:]
    finally:
        hil.close()


@pytest.fixture
def client(station) -> Iterator[Client]:
    c = Client(station.tmp / "agent.sock")
    yield c
    c.close()


def state(client: Client) -> dict[str, Any]:
    reply = client.ask(b'{"cmd": "status"}')
    assert reply["ok"], reply
    return reply["state"]


CONTRACT = [
    (b"[" * 100_000, f"nested deeper than {MAX_DEPTH} levels"),
    (b'{"cmd": "status", "x": ' + b"[" * 50 + b"]" * 50 + b"}", "nested deeper"),
    (b"\xff\xfe{}", "not UTF-8 (byte 0xff at offset 0)"),
    (b'{"cmd": "status", "r": "caf\xe9"}', "not UTF-8 (byte 0xe9 at offset 27)"),
    (b"", "malformed JSON"),
    (b"{", "malformed JSON"),
    (b'[{"cmd": "status"}]', "a JSON object with a string 'cmd', got an array"),
    (b'"status"', "got a string"),
    (b"42", "got a number"),
    (b"{}", "'cmd' missing"),
    (b'{"cmd": ["status"]}', "'cmd' must be a string, got an array"),
    (b'{"cmd": "reboot"}', "unknown command 'reboot'; known: status, maintenance"),
    (b'{"cmd": "status", "verbose": true}', "status: unknown field 'verbose' (takes: no fields)"),
    (b'{"cmd": "maintenance", "on": "false"}', "maintenance: 'on' must be true or false, got a string"),
    (b'{"cmd": "maintenance", "on": 1}', "'on' must be true or false, got a number"),
    (b'{"cmd": "maintenance", "reason": "x"}', "maintenance: 'on' missing"),
    (b'{"cmd": "maintenance", "on": true, "reason": {"a": 1}}', "'reason' must be a string, got an object"),
    (b'{"cmd": "maintenance", "on": true, "reason": null}', "'reason' must be a string, got null"),
    (b'{"cmd": "goto", "port": "3"}', "goto: 'port' must be an integer from 1, got a string"),
    (b'{"cmd": "goto", "port": true}', "'port' must be an integer from 1, got a boolean"),
    (b'{"cmd": "goto", "port": 2.7}', "'port' must be an integer from 1, got a number"),
    (b'{"cmd": "goto", "port": 1e400}', "'port' must be an integer"),
    (b'{"cmd": "goto", "port": Infinity}', "Infinity, which is not a JSON number"),
    (b'{"cmd": "calibrate", "name": 5}', "'name' must be a string or null"),
    (b'{"cmd": "cylinder_add", "cylinder": [1]}', "'cylinder' must be an object, got an array"),
    (b'{"cmd": "cylinder_add", "cylinder": {"id": "T-1", "role": "target", "assigned": {"co2": NaN}}}',
     "NaN, which is not a JSON number"),
    (b'{"cmd": "cylinder_add", "cylinder": {"id": "T-1", "role": "nope", "assigned": {"co2": 400}}}',
     "cylinder_add: role:"),
    (b'{"cmd": "cylinder_retire", "id": 7}', "'id' must be a string"),
    (b'{"cmd": "recalibrate", "from": "yesterday", "to": "2026-03-01"}', "'from' must be an ISO 8601 time"),
    (b'{"cmd": "recalibrate", "from": "2026-03-01"}', "'to' missing"),
    (b'{"cmd": "events", "limit": -1}', "'limit' must be an integer from 1 to 100000, got a number"),
    (b'{"cmd": "tail", "after_seq": 99999999999999999999}', "'after_seq' must be an integer from 0"),
    (b'{"cmd": "status\\ud800"}', "not text (a lone surrogate)"),
    (b'{"cmd": "x", "cmd": "status", "on": 1}', "status: unknown field 'on'"),
]


@pytest.mark.parametrize(("line", "message"), CONTRACT)
def test_a_malformed_request_is_answered_and_the_connection_keeps_serving(client, line, message):
    reply = client.ask(line)
    assert reply["ok"] is False and message in reply["error"], reply
    assert "Traceback" not in reply["error"]
    state(client)  # the same connection answers the next request


def test_refused_requests_change_nothing(client, station):
    before = state(client)
    for line in (b'{"cmd": "maintenance", "on": "false", "reason": "x"}', b'{"cmd": "goto", "port": true}',
                 b'{"cmd": "cylinder_add", "cylinder": {"id": "T-9", "role": "target", "assigned": {"co2": NaN}}}'):
        assert client.ask(line)["ok"] is False
    after = state(client)
    assert before["engine"]["maintenance"] is None and after["engine"]["maintenance"] is None
    cylinders = station.agent_cli("cylinders", "list", "--json")
    assert cylinders.returncode == 0 and "T-9" not in {r["id"] for r in json.loads(cylinders.stdout)}
    events = client.ask(b'{"cmd": "events", "limit": 1000}')["events"]
    assert not [e for e in events if e["kind"].startswith("maintenance")]


def test_an_oversized_line_is_refused_and_other_clients_are_served(client, station):
    other = Client(station.tmp / "agent.sock")
    try:
        client.sock.sendall(b'{"cmd": "status", "pad": "' + b"x" * (MAX_REQUEST + 10))
        reply = client.reply()
        assert reply == {"ok": False, "error": f"request line longer than {MAX_REQUEST} bytes"}
        assert state(other)["station"] == "demo-tower"  # a second client meanwhile
    finally:
        other.close()


def test_a_client_that_stalls_mid_line_holds_up_no_one(client, station):
    client.sock.sendall(b'{"cmd": "sta')  # and never finishes
    other = Client(station.tmp / "agent.sock")
    try:
        state(other)
    finally:
        other.close()
    client.sock.sendall(b'tus"}\n')
    assert client.reply()["ok"]


# ----------------------------------------------------------------------------------------- fuzz

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
fields = st.sampled_from(sorted({f for req, opt in COMMANDS.values() for f in (*req, *opt)}))


@st.composite
def requests(draw) -> bytes:
    """Mostly near-valid requests (a known command, its fields with any values), else any bytes."""
    if draw(st.integers(0, 4)) == 0:
        return draw(st.binary(max_size=200)).replace(b"\n", b" ")
    doc: dict[str, Any] = {"cmd": draw(st.sampled_from(sorted(COMMANDS)) | st.text(max_size=8) | json_values)}
    for name in draw(st.lists(fields | st.text(max_size=6), max_size=3)):
        doc[name] = draw(json_values)
    text = json.dumps(doc, allow_nan=True)
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(text)))
        text = text[:cut] + draw(st.text(max_size=3)).replace("\n", "") + text[cut:]
    return text.encode("utf-8", "surrogatepass")


@settings(max_examples=300, deadline=None)
@given(line=requests())
def test_parse_request_raises_only_request_errors(line):
    try:
        request = parse_request(line)
    except RequestError as exc:
        assert str(exc)
        return
    required, optional = COMMANDS[request["cmd"]]
    assert set(required) <= set(request) <= {"cmd", *required, *optional}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(requests(), min_size=1, max_size=4))
def test_fuzzed_requests_on_one_connection_each_get_the_parsers_answer(station, lines):
    """Only requests the parser refuses are sent (a valid one might move the valve); each gets the
    parser's message back, in order, on one connection."""
    expected = []
    for line in lines:
        try:
            parse_request(line)
        except RequestError as exc:
            expected.append(str(exc))
            continue
        assume(False)
    c = Client(station.tmp / "agent.sock")
    try:
        c.sock.sendall(b"".join(line + b"\n" for line in lines) + json.dumps(HARMLESS[0]).encode() + b"\n")
        got = [c.reply() for _ in lines]
        assert got == [{"ok": False, "error": e} for e in expected]
        assert c.reply()["ok"]
    finally:
        c.close()


def latest_seq(client: Client) -> int:
    seq = 0
    while minutes := client.ask(json.dumps({"cmd": "tail", "after_seq": seq}).encode())["minutes"]:
        seq = minutes[-1]["seq"]
    return seq


def test_after_the_fuzz_the_agent_still_stores_minutes(station, client):
    stored = latest_seq(client)
    wait_until(lambda: latest_seq(client) > stored, timeout_s=60, interval_s=0.2,
               message="a minute stored after the fuzz")
    for req in HARMLESS:
        assert client.ask(json.dumps(req).encode())["ok"]
