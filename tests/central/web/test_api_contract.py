"""The API's contract, checked from its own OpenAPI description (/openapi.json) by schemathesis
against the real app served by uvicorn on a synthetic network (support/webapp.py), as an admin
with an API token: every operation, with generated valid and invalid requests, against the checks
that the description can decide: no server error; status codes, content types, headers (Allow of a
405) and bodies as described; data the description calls invalid refused.

One default check is left out: `positive_data_acceptance` (every request the description calls
valid is accepted). The API has rules between parameters that OpenAPI cannot state (from and to
together and in order, not with days; a time in 1900..2200; days above 0; a user name not taken),
so a request valid by the description may be refused, with a 400 (or 409) that names the rule.
Each parameter's own rule is in the description (pattern, length, enum) and checked here."""

from __future__ import annotations

import threading
import time

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance
from support.webapp import serve_network

ADMIN = "contract-admin-7f3c"


@pytest.fixture(autouse=True)
def no_thread_left_behind():
    """The app is served once for the module (not once per operation): its threads are checked
    when the module is done, by `contract_app`, instead of after each test (tests/conftest.py)."""
    yield


@pytest.fixture(scope="module")
def contract_app(tmp_path_factory):
    before = set(threading.enumerate())
    for served in serve_network(tmp_path_factory.mktemp("contract")):
        served.accounts.add(ADMIN, "admin", "contract-pass-9")
        served.token = served.accounts.new_token(ADMIN, "schemathesis")
        yield served
    deadline = time.monotonic() + 10
    while (left := [t.name for t in threading.enumerate() if t not in before and t.is_alive()]) and \
            time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left, f"threads left running: {left}"


@pytest.fixture(scope="module")
def api_schema(contract_app):
    return schemathesis.openapi.from_url(contract_app.url + "/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_every_operation_keeps_its_contract(case, contract_app):
    case.call_and_validate(headers={"Authorization": f"Bearer {contract_app.token}"},
                           excluded_checks=[positive_data_acceptance])


def test_every_operation_is_in_the_description(api_schema, contract_app):
    """The contract test above covers every API route the app serves (its operations come from
    the description, so a route left out of it would go unchecked)."""
    from fastapi.routing import APIRoute

    described = {(op.method.upper(), op.path) for op in (r.ok() for r in api_schema.get_all_operations())}
    served = {(m, r.path) for r in contract_app.app.routes if isinstance(r, APIRoute) and r.path.startswith("/api/")
              for m in r.methods}
    assert described == served and len(served) >= 27
    assert ("GET", "/api/registry/{station}") in described and ("DELETE", "/api/users/{name}") in described
