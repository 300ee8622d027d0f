"""simulators.faults: the one fault record every simulator keeps (count, simulated deadline,
params), looked up by kind."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from ghgnet.clock import ManualClock
from simulators.faults import FaultSet


@pytest.fixture
def clock():
    return ManualClock(datetime(2026, 1, 1, tzinfo=UTC))


def test_a_fault_lasts_its_count_or_its_duration_whichever_ends_first(clock):
    faults = FaultSet(("garbage", "silent"), clock.monotonic)
    faults.inject("garbage")  # neither: one use
    assert faults.active("garbage", consume=True) is not None
    assert faults.active("garbage") is None
    faults.inject("silent", 5, 10.0)
    for _ in range(3):
        assert faults.active("silent", consume=True)
    assert faults.active("silent").remaining == 2
    clock.advance(10.0)
    assert faults.active("silent") is None
    faults.inject("silent", None, 10.0)
    assert faults.active("silent", now=clock.monotonic() + 9.9) is not None  # a record's own time
    assert faults.active("silent", now=clock.monotonic() + 10.0) is None


def test_lasting_kinds_stay_until_cleared_and_unknown_kinds_are_named(clock):
    faults = FaultSet(("broker_down", "bad_diag"), clock.monotonic, lasting=("broker_down",))
    faults.inject("broker_down")
    clock.advance(1e6)
    for _ in range(100):
        assert faults.active("broker_down", consume=True) is not None
    faults.clear()
    assert faults.active("broker_down") is None
    with pytest.raises(ValueError, match=r"unknown fault 'fire'; known: broker_down, bad_diag"):
        faults.inject("fire")


def test_params_and_take_all(clock):
    faults = FaultSet(("garbage", "status"), clock.monotonic)
    faults.inject("status", 1, None, word=7, kind="a param may be called kind")
    assert faults.active("status", consume=True).params["kind"] == "a param may be called kind"
    assert faults.param("status", "word", 0) == 7  # still there right after its last use
    assert faults.param("status", "code", 4) == 4
    faults.inject("garbage", 3)
    faults.inject("garbage", None, 60.0)
    assert faults.take_all("garbage") == 4
    assert faults.active("garbage") is None


def test_threads_share_one_set(clock):
    faults = FaultSet(("garbage",), clock.monotonic)
    faults.inject("garbage", 4000)
    used = []

    def worker():
        used.extend(1 for _ in range(1000) if faults.active("garbage", consume=True))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(used) == 4000 and faults.active("garbage") is None
