"""Feed systemd's watchdog only while the daemon makes progress (the station agent, central's receiver).

A process that is alive is not a station that works: a poller stuck in a read, a writer stuck on
the disk, or a forwarder that died leave the daemon running and the data lost. `ProgressWatchdog`
is given named progress probes; every half watchdog interval it reads them and sends WATCHDOG=1
only when each probe has progressed within its allowance. When one stalls it stops pinging, logs
which one and says so in a STATUS= line; systemd then kills and restarts the agent (WatchdogSec=,
Restart=always). When the probe moves again before that, pings resume.

What counts as progress (decided here, documented in systemd/README.md):
- A probe's `mark` is any value that changes when work gets done: a counter (readings received,
  rows written, records acked) or a last-progress timestamp. Any change counts, so a counter
  that resets when a component restarts is progress too.
- A probe may be `idle`: nothing is expected of it right now, which counts as progress. This is
  how a station without network survives: forwarding is idle while the outbox is empty OR the
  broker is known to be down. Restarting cannot bring a network or an analyzer back, so those are
  alarms (fault events), never watchdog restarts; a restart loop would only add a gap in the data.
  Likewise an analyzer that is unreachable (its poller is reconnecting with backoff) is idle.
- A probe may name the thread that does the work (`alive`): a dead thread is a stall at once,
  whatever its marks say.
- Allowances run on the probe's time base: the injected clock's monotonic time by default (the
  pollers and the writer wait on it, so `--speed 60` scales them together), or real time for
  parts that run on real time (the forwarder's ack timeout and backoffs).
The ping cadence itself is real time (systemd's watchdog is), waited on a threading.Event.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from ghgnet.clock import Clock
from ghgnet.sdnotify import SdNotifier


@dataclass
class Probe:
    """One thing that must keep moving.

    `mark()` returns a value that changes on progress; `max_stall_s` is how long (on `timebase`,
    default the watchdog's clock) it may stay unchanged while not idle; `idle()` True means
    nothing is expected now; `alive()` False means the worker thread is gone.
    """

    name: str
    mark: Callable[[], Hashable]
    max_stall_s: float
    idle: Callable[[], bool] | None = None
    alive: Callable[[], bool] | None = None
    timebase: Callable[[], float] | None = None

    def __post_init__(self) -> None:
        if self.max_stall_s <= 0:
            raise ValueError(f"probe {self.name}: max_stall_s must be > 0, got {self.max_stall_s}")


@dataclass
class ProbeState:
    """What the watchdog last saw of a probe (read by status and metrics)."""

    name: str
    last_mark: Any = None
    last_progress: float = 0.0
    stalled_s: float = 0.0
    stalled: bool = False
    reason: str = ""


@dataclass
class _Tracked:
    probe: Probe
    state: ProbeState
    seen: bool = False
    errors: int = 0


@dataclass
class WatchdogStats:
    checks: int = 0
    pings: int = 0
    stalls: int = 0
    stalled: list[str] = field(default_factory=list)


class ProgressWatchdog:
    """Checks the probes every `check_every_s` real seconds and pings systemd while all progress.

    `check_every_s` defaults to half the watchdog interval read from the notifier (WATCHDOG_USEC),
    or to `fallback_check_s` when systemd has no watchdog for us: the probes are then still
    checked, so stalls are logged and visible in `states()`, but nothing is pinged.
    `status_ok` is the STATUS= text sent when every probe is moving again after a stall.
    """

    def __init__(
        self,
        notifier: SdNotifier,
        clock: Clock,
        probes: list[Probe],
        log,
        check_every_s: float | None = None,
        fallback_check_s: float = 10.0,
        status_ok: str = "running",
    ) -> None:
        names = [p.name for p in probes]
        if len(set(names)) != len(names):
            raise ValueError(f"probe names must be unique: {names}")
        self.notifier = notifier
        self.clock = clock
        self.log = log.bind(component="watchdog")
        self.status_ok = status_ok
        if check_every_s is None:
            check_every_s = notifier.watchdog_s / 2 if notifier.watchdog_s else fallback_check_s
        if check_every_s <= 0:
            raise ValueError(f"check_every_s must be > 0, got {check_every_s}")
        self.check_every_s = check_every_s
        self.stats = WatchdogStats()
        self._tracked = [_Tracked(p, ProbeState(p.name)) for p in probes]
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._was_stalled: tuple[str, ...] = ()
        self.thread = threading.Thread(target=self._run, name="watchdog", daemon=True)

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        """Start checking; each probe's allowance counts from now."""
        for t in self._tracked:
            t.state.last_progress = self._now(t.probe)
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self.thread.is_alive():
            self.thread.join(10)

    def states(self) -> list[ProbeState]:
        """A copy of each probe's state, for status and metrics."""
        with self._lock:
            return [ProbeState(**vars(t.state)) for t in self._tracked]

    # -- the check ----------------------------------------------------------------------------
    def _now(self, probe: Probe) -> float:
        return (probe.timebase or self.clock.monotonic)()

    def check(self) -> list[ProbeState]:
        """Read every probe once; return the stalled ones (empty: all progressing)."""
        stalled = []
        with self._lock:
            for t in self._tracked:
                self._check_one(t)
                if t.state.stalled:
                    stalled.append(ProbeState(**vars(t.state)))
            self.stats.checks += 1
            self.stats.stalled = [s.name for s in stalled]
        return stalled

    def _check_one(self, t: _Tracked) -> None:
        p, s = t.probe, t.state
        now = self._now(p)
        try:
            if p.alive is not None and not p.alive():
                s.stalled, s.reason = True, "thread not running"
                s.stalled_s = now - s.last_progress
                return
            idle = bool(p.idle()) if p.idle is not None else False
            mark = p.mark()
        except Exception as exc:  # a broken probe must not take the watchdog thread down
            t.errors += 1
            if t.errors == 1:
                self.log.exception("watchdog_probe_failed", probe=p.name, error=repr(exc))
            idle, mark = False, s.last_mark  # no evidence of progress
        if not t.seen or mark != s.last_mark:
            t.seen = True
            s.last_mark = mark
            s.last_progress = now
        elif idle:
            s.last_progress = now
        s.stalled_s = now - s.last_progress
        s.stalled = s.stalled_s > p.max_stall_s
        s.reason = f"no progress for {s.stalled_s:.0f} s (allowed {p.max_stall_s:.0f} s)" if s.stalled else ""

    def _run(self) -> None:
        while True:
            try:
                stalled = self.check()
                if stalled:
                    self._report_stall(stalled)
                else:
                    if self._was_stalled:
                        self.log.info("watchdog_recovered", probes=list(self._was_stalled))
                        self.notifier.status(self.status_ok)
                        self._was_stalled = ()
                    if self.notifier.watchdog_s and self.notifier.watchdog():
                        self.stats.pings += 1
            except Exception as exc:  # keep checking; a missing ping is what systemd acts on
                self.log.exception("watchdog_error", error=repr(exc))
            if self._stop.wait(self.check_every_s):
                return

    def _report_stall(self, stalled: list[ProbeState]) -> None:
        names = tuple(s.name for s in stalled)
        if names == self._was_stalled:
            return
        self.stats.stalls += 1
        self._was_stalled = names
        for s in stalled:
            self.log.error("watchdog_stall", probe=s.name, reason=s.reason, stalled_s=round(s.stalled_s, 1))
        text = "; ".join(f"{s.name} stalled: {s.reason}" for s in stalled)
        self.notifier.status(f"watchdog not fed: {text}")
