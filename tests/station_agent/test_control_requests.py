"""The control socket's commands are listed once (station_agent/service/requests.py): the socket's
table (control.COMMANDS) is derived from the request models, so a command or field added to a
model is checked by the socket too, and a field without a socket check fails at import."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import StrictInt

from station_agent.service.control import COMMANDS, RequestError, parse_request
from station_agent.service.requests import REQUESTS, TIME, Request, socket_checks
from station_agent.service.requests import parse_request as validate


def test_the_sockets_table_is_the_request_models():
    assert list(COMMANDS) == list(REQUESTS)
    for cmd, model in REQUESTS.items():
        required, optional = COMMANDS[cmd]
        fields = {f.alias or name: f for name, f in model.model_fields.items() if name != "cmd"}
        assert set(required) | set(optional) == set(fields), cmd
        assert {n for n, f in fields.items() if f.is_required()} == set(required), cmd
    assert COMMANDS["recalibrate"][0] == {"from": TIME, "to": TIME}  # the alias is the socket's name


def test_a_field_the_socket_cannot_check_is_refused():
    class BareRequest(Request):
        cmd: Literal["bare"]
        count: StrictInt

    with pytest.raises(TypeError, match="BareRequest.count has no socket Check"):
        socket_checks(BareRequest)


def test_socket_and_model_agree_on_a_fields_shape_and_differ_only_in_bounds():
    # The socket answers the JSON type in words; the model (the agent) the bounds.
    with pytest.raises(RequestError, match="'port' must be an integer from 1, got a string"):
        parse_request(b'{"cmd": "goto", "port": "3"}')
    request = parse_request(b'{"cmd": "goto", "port": 5000}')  # the socket lets it through
    with pytest.raises(ValueError, match="goto: port: Input should be less than or equal to 1000"):
        validate(request)
    assert validate(parse_request(b'{"cmd": "goto", "port": 3}')).port == 3
