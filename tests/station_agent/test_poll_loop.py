"""The one poll loop under both pollers: the interval while connected, a doubling backoff while the
device is down (reset by a good poll), and a driver bug survived. A real Modbus device simulator
over TCP, a manual clock: each step's wait is read off the clock."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from drivers.modbus.device import ModbusDevice, ModbusDeviceConfig
from drivers.modbus.registermap import Point
from ghgnet.clock import ManualClock
from ghgnet.logs import get_logger
from simulators.modbus.device import ModbusDeviceSimulator
from station_agent.acquisition.poller import DevicePoller

T0 = datetime(2026, 3, 1, tzinfo=UTC)
POINTS = [Point(name="flow", kind="input", address=0, type="uint16", scale=0.1)]


def steady(t: datetime) -> dict[str, float]:
    return {"flow": 12.5}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def sim(clock) -> Iterator[ModbusDeviceSimulator]:
    s = ModbusDeviceSimulator(POINTS, steady, clock=clock).start()
    yield s
    s.stop()


@pytest.fixture
def poller(sim, clock) -> Iterator[tuple[DevicePoller, list, list]]:
    cfg = ModbusDeviceConfig(id="flow-1", url=f"tcp://127.0.0.1:{sim.port}", timeout_s=0.3,
                             poll_interval_s=5, points=POINTS)
    submitted: list = []
    events: list = []
    p = DevicePoller(ModbusDevice(cfg, ModbusDevice.make_transport(cfg)), clock,
                     lambda readings: submitted.extend(readings) or True, events.append,
                     get_logger(component="test"), threading.Event())
    yield p, submitted, events
    p._close()


def step(p: DevicePoller, clock: ManualClock) -> float:
    """One turn of the loop without its thread: poll, then wait; returns the seconds waited."""
    p.poll_once()
    before = clock.monotonic()
    p._wait_after_poll()
    return clock.monotonic() - before


def test_backoff_doubles_while_the_device_is_down_and_a_good_read_resets_it(sim, clock, poller):
    p, submitted, events = poller
    assert step(p, clock) == 5 and submitted[-1].values == {"flow": pytest.approx(12.5)}
    sim.power_off()
    waits = [step(p, clock) for _ in range(4)]
    assert waits == [2, 4, 8, 16]
    assert not p.health.connected
    assert [e.kind for e in events] == ["fault.link", "fault.connect"]  # the failed reconnects: one episode
    sim.power_on()
    assert step(p, clock) == 5 and p.health.connected and len(submitted) == 2
    sim.power_off()
    assert step(p, clock) == 2  # the backoff starts over after a good read


def test_backoff_stops_doubling_at_its_ceiling(sim, clock, poller):
    p, _, _ = poller
    sim.power_off()
    waits = [step(p, clock) for _ in range(8)]
    assert waits == [2, 4, 8, 16, 32, 64, 120, 120]


def test_a_driver_bug_is_reported_closes_the_device_and_the_loop_goes_on(sim, clock, poller, monkeypatch):
    p, submitted, events = poller
    step(p, clock)

    def broken(at):
        raise ZeroDivisionError("a bug in the driver")

    monkeypatch.setattr(p.driver, "read", broken)
    stop = p.stop
    thread = threading.Thread(target=p._run)
    calls = []
    monkeypatch.setattr(p, "_wait_after_poll", lambda: (calls.append(p.health.connected), stop.set()))
    thread.start()
    thread.join(5)
    assert not thread.is_alive()
    assert calls == [False]  # the bug closed the device: the loop backs off, then reopens it
    assert any(e.kind == "fault.internal" and "ZeroDivisionError" in e.message for e in events)
