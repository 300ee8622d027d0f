"""One thread per device (analyzer or auxiliary): poll, hand over; reconnect with backoff; never die.

Polling never blocks on storage: readings go to the writer through a bounded queue, and when that
queue is full the poller simply leaves the records in the analyzer's own buffer (the Picarro keeps
512) until there is room. Every wait is on the injected clock.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from drivers.base import AnalyzerDriver, DriverError
from drivers.reading import Reading
from drivers.transport import TransportError, TransportTimeout
from ghgnet.clock import Clock
from ghgnet.records import Event
from station_agent.faults import FaultTracker
from station_agent.sequencing.timeline import OffsetEstimator

Environment = Callable[[], dict[str, float]]
"""The latest values of other devices an analyzer compensates with (name -> value), e.g. the
station's pressure and humidity for a GMP343 (see Agent.environment_for)."""

Tagger = Callable[[Reading, float, float | None], Reading]
"""(reading, analyzer clock offset in s, its lower bound) -> the reading tagged with its stream and
conditions (see StreamTimeline.tag)."""


@dataclass
class DeviceHealth:
    """What status and the minute closer know about a device; written by its poller only."""

    connected: bool = False
    last_reading: datetime | None = None
    last_poll_ok_mono: float | None = None
    readings: int = 0
    polls: int = 0
    problems: int = 0
    status_flags: tuple[str, ...] = ()
    last_values: dict[str, float] | None = None


class PollLoop(ABC):
    """The thread every poller runs: one `poll_once` per turn, then the poll interval while the
    device is connected, else a backoff that doubles from `backoff_initial_s` to `backoff_max_s`.
    A bug in a driver is logged, reported as an "internal" fault and treated as a lost link: the
    loop never dies. Subclasses implement `poll_once` and call `_poll_succeeded` after a good poll."""

    def __init__(
        self,
        driver,
        clock: Clock,
        emit: Callable[[Event], None],
        log,
        stop: threading.Event,
        backoff_initial_s: float = 2.0,
        backoff_max_s: float = 120.0,
    ) -> None:
        self.driver = driver
        driver.now = clock.now  # stamps the records of an instrument that sends no time
        self.clock = clock
        self.stop = stop
        self.log = log.bind(device=driver.device_id)
        self.health = DeviceHealth()
        self.faults = FaultTracker(driver.device_id, self.log, emit)
        self._backoff_initial = backoff_initial_s
        self._backoff_max = backoff_max_s
        self._backoff = backoff_initial_s
        self.thread = threading.Thread(target=self._run, name=f"poll-{driver.device_id}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def join(self, timeout: float | None = None) -> None:
        self.thread.join(timeout)

    @abstractmethod
    def poll_once(self) -> None:
        """One turn: read the device (and whatever the subclass does with it)."""

    def _poll_succeeded(self) -> None:
        self._backoff = self._backoff_initial

    def _wait_backoff(self) -> None:
        self.clock.wait(self.stop, self._backoff)
        self._backoff = min(self._backoff * 2, self._backoff_max)

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                self.poll_once()
            except Exception as exc:  # the poller must outlive any bug in a driver
                self.log.exception("poller_error", error=repr(exc))
                self.faults.report("internal", repr(exc), self.clock.now())
                self._close()
            self._wait_after_poll()
        self._close()

    def _wait_after_poll(self) -> None:
        """The poll interval while connected, else the backoff (which then doubles)."""
        if self.health.connected:
            self.clock.wait(self.stop, self.driver.config.poll_interval_s)
        else:
            self._wait_backoff()

    def _close(self) -> None:
        try:
            self.driver.close()
        except Exception:  # closing a broken link may fail in many ways; it is closed either way
            pass
        self.health.connected = False


class AnalyzerPoller(PollLoop):
    """One thread per analyzer: drains its buffer each poll, tags the readings with their stream
    and hands them to the writer; reconnects after MAX_TIMEOUTS_BEFORE_RECONNECT timeouts.

    Optional driver hooks: `set_environment(values)` before every poll with what `environment()`
    gives (when it gives anything), so that the driver can push it to the instrument; `resume(t)`
    at every open (see `_resume`)."""

    MAX_TIMEOUTS_BEFORE_RECONNECT = 3

    def __init__(
        self,
        driver: AnalyzerDriver,
        clock: Clock,
        submit: Callable[..., bool],
        has_room: Callable[[], bool],
        emit: Callable[[Event], None],
        tag: Tagger,
        log,
        stop: threading.Event,
        backoff_initial_s: float = 2.0,
        backoff_max_s: float = 120.0,
        environment: Environment | None = None,
        newest_stored: Callable[[str], datetime | None] | None = None,
    ) -> None:
        super().__init__(driver, clock, emit, log, stop, backoff_initial_s, backoff_max_s)
        self.environment = environment if callable(getattr(driver, "set_environment", None)) else None
        self.submit = submit
        self.has_room = has_room
        self.tag = tag
        self.newest_stored = newest_stored
        self.offset = OffsetEstimator(max_age_s=driver.max_record_age_s)
        self._timeouts = 0

    def poll_once(self) -> None:
        """One step: connect if needed, then poll once (skipped while the writer has no room)."""
        now = self.clock.now
        if not self.driver.transport.is_open:
            try:
                self.driver.open()
            except TransportError as exc:
                self.health.connected = False
                self.faults.report("connect", str(exc), now())
                return
            self.health.connected = True
            self._timeouts = 0
            self.faults.clear(now(), ("connect",))
            self._resume()
        if not self.has_room():
            self.faults.report("backpressure", "writer queue full; records left in the analyzer", now())
            return
        self.health.polls += 1
        before = now()  # every record the analyzer made before this instant is in this poll's reply
        try:
            if self.environment is not None:
                values = self.environment()
                if values:
                    self.driver.set_environment(values)
            result = self.driver.poll()
        except TransportTimeout as exc:
            self._timeouts += 1
            self.faults.report("timeout", str(exc), now())
            if self._timeouts >= self.MAX_TIMEOUTS_BEFORE_RECONNECT:
                self._close()
            return
        except TransportError as exc:
            self.faults.report("link", str(exc), now())
            self._close()
            return
        except DriverError as exc:
            self.faults.report("protocol", str(exc), now())
            return
        self._timeouts = 0
        self._poll_succeeded()
        self.health.connected = True
        self.health.last_poll_ok_mono = self.clock.monotonic()
        self.faults.clear(now(), ("timeout", "link", "protocol", "backpressure", "internal"))
        if result.problems:
            self.health.problems += len(result.problems)
            self.faults.report("garbage", "; ".join(result.problems)[:500], now())
        else:
            self.faults.clear(now(), ("garbage",))
        after = now()
        readings: list[Reading] = []
        if result.readings:
            self.offset.update(result.readings[-1].time, before, after)
            offset_s, low_s = self.offset.offset_s, self.offset.low
            # a reading that names its own stream (a GC's result file says what was injected) keeps it
            readings = [r if r.stream else self.tag(r, offset_s, low_s) for r in result.readings]
            self.health.readings += len(readings)
            self.health.last_reading = readings[-1].time
            self.health.status_flags = readings[-1].status_flags
            self.health.last_values = dict(readings[-1].values)
        # The buffer is now empty up to `before` on the analyzer's clock (its offset is estimated
        # from below, so this errs early, never late).
        drained = (self.driver.device_id, before + timedelta(seconds=min(self.offset.low, self.offset.offset_s))) \
            if self.offset.known and not result.problems else None
        if readings or drained:
            self.submit(readings, drained)


    def _resume(self) -> None:
        """A driver whose records outlive the instrument's link (a file drop: `resume(newest)`) is told,
        at every open, the time of its newest reading in the store, so it delivers again exactly
        what a crash kept from the store and nothing the store already holds."""
        resume = getattr(self.driver, "resume", None)
        if resume is not None and self.newest_stored is not None:
            resume(self.newest_stored(self.driver.device_id))


def constant_stream(stream: str) -> Tagger:
    """The tagger of a station without a sampling sequence: one stream, never flushing."""

    def tag(r: Reading, offset_s: float = 0.0, low_s: float | None = None) -> Reading:
        return replace(r, stream=stream, flushing=False)

    return tag


class DevicePoller(PollLoop):
    """One thread per auxiliary device (Modbus flow, pressure, relays): read, store, remember the
    latest values for interlocks. A dead device is retried with backoff and never stops another."""

    def __init__(self, driver, clock: Clock, submit: Callable[[list[Reading]], bool],
                 emit: Callable[[Event], None], log, stop: threading.Event) -> None:
        super().__init__(driver, clock, emit, log, stop)
        self.submit = submit
        self.latest: dict[str, tuple[float, float]] = {}  # quantity -> (value, clock.monotonic())

    def value(self, quantity: str) -> tuple[float, float] | None:
        """(latest value, its age in simulated seconds), or None if never read."""
        got = self.latest.get(quantity)
        return None if got is None else (got[0], self.clock.monotonic() - got[1])

    def poll_once(self) -> None:
        """One step: open if needed, then read once; a lost link closes the device (backoff)."""
        now = self.clock.now
        try:
            if not self.health.connected:
                self.driver.open()
                self.health.connected = True
                self.faults.clear(now(), ("connect",))
            reading = self.driver.read(at=now())
        except TransportError as exc:
            kind = "connect" if not self.health.connected else "link"
            self.faults.report(kind, str(exc), now())
            self._close()
            return
        except DriverError as exc:
            self.faults.report("protocol", str(exc), now())
            return
        self._poll_succeeded()
        self.faults.clear(now(), ("link", "protocol", "internal"))
        mono = self.clock.monotonic()
        for k, v in reading.values.items():
            self.latest[k] = (v, mono)
        self.health.readings += 1
        self.health.polls += 1
        self.health.last_reading = reading.time
        self.health.last_values = dict(reading.values)
        self.submit([replace(reading, stream="aux")])
