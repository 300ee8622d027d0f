"""The progress watchdog: WATCHDOG=1 pings over a real datagram socket only while every probe
makes progress; stall allowances measured on the injected (manual) clock."""

from __future__ import annotations

import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from ghgnet.clock import ManualClock, ScaledClock
from ghgnet.logs import get_logger
from ghgnet.records import Event
from ghgnet.sdnotify import SdNotifier
from station_agent.acquisition.poller import DeviceHealth
from station_agent.processing.minute_bins import MinuteAssembler
from station_agent.service.watchdog import (
    Probe,
    ProgressWatchdog,
    forwarder_probe,
    poller_probe,
    writer_probe,
)
from station_agent.storage.writer import StoreWriter

LOG = get_logger(test="watchdog")


class NotifyListener:
    """systemd's side: a bound AF_UNIX datagram socket collecting what the agent sends."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)

    def next(self, timeout: float = 3.0) -> str | None:
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(4096).decode()
        except TimeoutError:
            return None

    def until(self, predicate, timeout: float = 5.0) -> list[str]:
        """Messages up to and including the first one matching `predicate`."""
        got: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = self.next(max(0.01, deadline - time.monotonic()))
            if msg is None:
                break
            got.append(msg)
            if predicate(msg):
                return got
        raise AssertionError(f"no matching message within {timeout} s; got {got}")

    def during(self, seconds: float) -> list[str]:
        """Everything received in the next `seconds`."""
        got: list[str] = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            msg = self.next(left)
            if msg is not None:
                got.append(msg)
        return got

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener(tmp_path):
    lst = NotifyListener(str(tmp_path / "notify"))
    yield lst
    lst.close()


def test_pings_follow_ready_stop_when_acquisition_hangs_and_resume_when_it_moves(listener):
    clock = ManualClock()
    readings = [0]
    broker_down = True
    notifier = SdNotifier(environ={"NOTIFY_SOCKET": listener.path, "WATCHDOG_USEC": "100000"})
    assert notifier.watchdog_s == 0.1
    wd = ProgressWatchdog(
        notifier,
        clock,
        [
            Probe("acquisition:picarro-1", lambda: readings[0], max_stall_s=300),
            Probe("storage", lambda: 0, max_stall_s=120, idle=lambda: True),  # nothing queued
            Probe("forwarding", lambda: 0, max_stall_s=900, idle=lambda: broker_down),
        ],
        LOG,
    )
    assert wd.check_every_s == pytest.approx(0.05)  # half the watchdog interval
    notifier.ready(status="running")
    wd.start()
    try:
        assert listener.next() == "READY=1\nSTATUS=running"
        for _ in range(10):  # an hour of healthy polling in simulated time
            readings[0] += 12
            clock.advance(60)
        assert [listener.next() for _ in range(3)] == ["WATCHDOG=1"] * 3

        # The analyzer's poller hangs: its counter stops while simulated time runs on.
        clock.advance(301)
        msgs = listener.until(lambda m: m.startswith("STATUS="))
        assert set(msgs[:-1]) <= {"WATCHDOG=1"}
        assert msgs[-1].startswith("STATUS=watchdog not fed: acquisition:picarro-1 stalled")
        assert "allowed 300 s" in msgs[-1]
        assert listener.during(0.6) == []  # 12 check periods: not one ping
        (acq,) = [s for s in wd.states() if s.stalled]
        assert acq.name == "acquisition:picarro-1" and acq.stalled_s >= 301

        # It moves again before systemd's timeout: the status says so and pings resume.
        readings[0] += 1
        assert listener.next() == "STATUS=running"
        assert [listener.next() for _ in range(3)] == ["WATCHDOG=1"] * 3
        assert not any(s.stalled for s in wd.states())
    finally:
        wd.stop()
        notifier.close()
    assert wd.stats.stalls == 1 and wd.stats.pings >= 6


def test_without_watchdog_usec_stalls_are_still_detected_but_nothing_is_pinged(listener):
    clock = ManualClock()
    notifier = SdNotifier(environ={"NOTIFY_SOCKET": listener.path})
    wd = ProgressWatchdog(notifier, clock, [Probe("acquisition:x", lambda: 1, max_stall_s=10)], LOG,
                          fallback_check_s=0.02)
    wd.start()
    try:
        assert listener.during(0.2) == []
        clock.advance(11)
        msg = listener.next()
        assert msg is not None and msg.startswith("STATUS=watchdog not fed: acquisition:x stalled")
    finally:
        wd.stop()
        notifier.close()
    assert wd.stats.pings == 0 and wd.stats.checks >= 5


def check_names(wd: ProgressWatchdog) -> list[str]:
    return [s.name for s in wd.check()]


def test_forwarding_with_broker_down_or_empty_outbox_never_stalls_but_a_stuck_one_does():
    clock = ManualClock()
    fw = SimpleNamespace(connected=False, stats={"published_messages": 0, "acked": 0, "resent": 0, "denied": 0},
                         thread=SimpleNamespace(is_alive=lambda: True))
    backlog = [5000]
    real = [0.0]  # the forwarder's time base is real time; stepped by hand here
    probe = forwarder_probe(fw, lambda: backlog[0], max_stall_s=900)
    probe.timebase = lambda: real[0]
    wd = ProgressWatchdog(SdNotifier(environ={}), clock, [probe], LOG)
    assert check_names(wd) == []
    real[0] += 86400  # a day without network: data waits in the outbox, no restart loop
    assert check_names(wd) == []
    fw.connected = True
    backlog[0] = 0
    real[0] += 86400  # connected, nothing to send
    assert check_names(wd) == []
    backlog[0] = 10
    real[0] += 800
    assert check_names(wd) == []
    real[0] += 800
    fw.stats["resent"] += 10  # central silent: records go out again after the ack timeout
    assert check_names(wd) == []
    real[0] += 901  # connected, backlog, nothing published or acked: the forwarder is stuck
    assert check_names(wd) == ["forwarding"]
    fw.stats["acked"] += 10
    assert check_names(wd) == []


def test_a_dead_worker_thread_is_a_stall_at_once_whatever_its_counter_says():
    clock = ManualClock()
    health = DeviceHealth(connected=True)
    worker = threading.Thread(target=lambda: None)
    worker.start()
    worker.join()
    poller = SimpleNamespace(health=health, driver=SimpleNamespace(device_id="picarro-1"), thread=worker)
    wd = ProgressWatchdog(SdNotifier(environ={}), clock, [poller_probe(poller, max_stall_s=300)], LOG)
    (state,) = wd.check()
    assert state.name == "acquisition:picarro-1" and state.reason == "thread not running"


def test_acquisition_is_idle_while_the_analyzer_is_unreachable_and_progresses_on_polls():
    clock = ManualClock()
    health = DeviceHealth(connected=False)
    alive = threading.Event()
    worker = threading.Thread(target=alive.wait, name="poll-picarro-1")
    worker.start()
    try:
        poller = SimpleNamespace(health=health, driver=SimpleNamespace(device_id="picarro-1"), thread=worker)
        wd = ProgressWatchdog(SdNotifier(environ={}), clock, [poller_probe(poller, max_stall_s=300)], LOG)
        assert wd.check() == []
        clock.advance(3600)  # analyzer switched off for an hour: an alarm, not a restart
        assert wd.check() == []
        health.connected = True
        clock.advance(200)
        health.polls += 40  # polls that return no new records still show the poller turning
        assert wd.check() == []
        clock.advance(301)  # connected, and not one poll completes: stuck in the driver
        assert [s.name for s in wd.check()] == ["acquisition:picarro-1"]
    finally:
        alive.set()
        worker.join()


def test_a_probe_that_raises_is_no_evidence_of_progress_and_does_not_stop_the_watchdog():
    clock = ManualClock()

    def broken():
        raise RuntimeError("probe bug")

    wd = ProgressWatchdog(SdNotifier(environ={}), clock, [Probe("storage", broken, max_stall_s=60)], LOG)
    assert wd.check() == []
    clock.advance(61)
    (state,) = wd.check()
    assert state.name == "storage"


def test_a_counter_that_resets_counts_as_progress():
    clock = ManualClock()
    n = [500]
    wd = ProgressWatchdog(SdNotifier(environ={}), clock, [Probe("storage", lambda: n[0], max_stall_s=60)], LOG)
    wd.check()
    clock.advance(50)
    n[0] = 0
    wd.check()
    clock.advance(50)
    assert wd.check() == []


def test_writer_probe_on_a_real_store_writer(tmp_path):
    clock = ScaledClock()
    writer = StoreWriter(tmp_path / "s.sqlite", clock, MinuteAssembler(20.0), make_minute=None,
                         log=LOG, state=dict, raw_retention=timedelta(days=30))
    probe = writer_probe(writer, max_stall_s=120)
    writer.start()
    try:
        assert probe.alive() and probe.idle()
        before = probe.mark()
        writer.submit_event(Event(datetime(2026, 1, 1, tzinfo=UTC), "agent.start", "info", "started"))
        deadline = time.monotonic() + 5
        while probe.mark() == before and time.monotonic() < deadline:
            time.sleep(0.01)
        assert probe.mark() != before
    finally:
        writer.stop()
    assert not probe.alive()
    wd = ProgressWatchdog(SdNotifier(environ={}), ManualClock(), [probe], LOG)
    assert [s.reason for s in wd.check()] == ["thread not running"]


def test_probe_names_must_be_unique_and_allowances_positive():
    with pytest.raises(ValueError):
        Probe("x", lambda: 0, max_stall_s=0)
    with pytest.raises(ValueError):
        ProgressWatchdog(SdNotifier(environ={}), ManualClock(),
                         [Probe("x", lambda: 0, 1), Probe("x", lambda: 0, 1)], LOG)
