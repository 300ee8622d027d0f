"""Fixtures shared by the whole suite."""

from __future__ import annotations

import threading
import time

import pytest


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups into the node ids
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (`./dev test` runs `-n 2 --dist loadgroup`): the long simulated-time runs
    paced by the wall clock (marked `slow`, not `stepped_clock`) go first and together to one worker,
    one after the other, so no two of them compete for the two cores; every other module goes whole
    to a worker, so its module-scoped fixtures run once."""
    if not getattr(config.option, "loadgroup", False):  # set by xdist's --dist loadgroup, in every worker
        return
    def paced(item) -> bool:  # simulated time paced by the wall clock: it must not share the cores
        return item.get_closest_marker("slow") is not None and item.get_closest_marker("stepped_clock") is None

    items.sort(key=lambda item: not paced(item))  # stable: the paced ones first
    for item in items:
        item.add_marker(pytest.mark.xdist_group("slow" if paced(item) else item.module.__name__))


@pytest.fixture(autouse=True)
def no_thread_left_behind():
    """Fail any test that leaves threads running: for a daemon that runs for years this is the
    cheapest leak detector there is (the pymodbus habit)."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5.0
    while True:
        leaked = [
            t for t in threading.enumerate()
            if t not in before and t.is_alive() and not t.name.startswith(("pydevd", "asyncio_"))
        ]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not leaked, f"threads left running: {[t.name for t in leaked]}"


# Central and MQTT fixtures (tests/support): `mosquitto`, `mosquitto_acl`, `mosquitto_tls`,
# `tls_files` (real mosquitto processes on free ports) and `pg_dsn`, `pg_schema` (a real
# PostgreSQL database for the session, a schema per test).
from support.broker import mosquitto, mosquitto_acl, mosquitto_tls, tls_files  # noqa: E402,F401
from support.pg import pg_dsn, pg_schema  # noqa: E402,F401

