"""The engine: one thread that owns the valve and executes plans, one at a time.

It decides what runs (a technician's command, then due calibration/target/check runs by priority,
else the ambient cycle), executes the plan's messages with the injected clock, writes the stream
timeline that tags every reading, and pre-empts a running plan at its next `Wait` when something
more important is due: the exception thrown into the plan makes its `finally` return the valve to
the safe stream. Interlocks suspend the running plan (its clock stops, the minutes are flagged)
until the condition has cleared for a while, then the line is flushed again.

State that must survive a restart (current stream and since when, a run in progress, when each
scheduled run is next due, maintenance) is persisted through the store writer. After a restart a
run in progress is aborted (an event says so) and the readings still buffered in the analyzer are
tagged with the stream the valve was really on.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from drivers.base import DriverError, ValveDriver
from drivers.transport import TransportError
from ghgnet.clock import Clock
from ghgnet.records import Event
from ghgnet.timeutil import iso_utc, parse_utc
from station_agent.faults import FaultTracker
from station_agent.sequencing.plans import (
    AssignmentRun,
    Move,
    Plan,
    RunSpec,
    Segment,
    Wait,
    ambient_plan,
    assignment_plan,
    cylinder_stream,
    hold_plan,
    plan_for,
    runs_of,
)
from station_agent.sequencing.sampling_config import SamplingConfig, Schedule
from station_agent.sequencing.timeline import StreamTimeline

MANUAL_PRIORITY = 100


class Preempted(Exception):
    """Thrown into a plan when something more important must run (or the agent stops)."""


class ValveFailure(Exception):
    """The valve could not be brought to the commanded port."""


@dataclass
class RunRecord:
    """A finished run, for the calibration/target computations."""

    kind: str
    name: str
    start: datetime
    end: datetime
    segments: list[tuple[str, int, datetime, datetime]]  # stream, cycle, start, end
    config: Any = None


@dataclass
class _Active:
    spec: RunSpec
    start: datetime
    segments: list[tuple[str, int, datetime, datetime | None]] = field(default_factory=list)
    step_end_mono: float | None = None


def make_trigger(s: Schedule, anchor_day: datetime):
    if s.cron is not None:
        return CronTrigger.from_crontab(s.cron, timezone=UTC)
    start = anchor_day.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(hours=s.offset_hours)
    return IntervalTrigger(seconds=s.interval_hours * 3600, start_date=start, timezone=UTC)


class Engine:
    def __init__(
        self,
        cfg: SamplingConfig,
        valve: ValveDriver,
        clock: Clock,
        timeline: StreamTimeline,
        emit: Callable[[Event], None],
        log,
        persist: Callable[[dict[str, Any]], None],
        restored: dict[str, Any] | None,
        run_finished: Callable[[RunRecord], None],
        needs_calibration: Callable[[], bool] = lambda: False,
        interlock_value: Callable[[str, str], tuple[float, float] | None] = lambda d, q: None,
    ) -> None:
        self.cfg = cfg
        self.valve = valve
        self.clock = clock
        self.timeline = timeline
        self.emit = emit
        self.log = log.bind(component="engine", device=valve.device_id)
        self.persist_cb = persist
        self.restored = restored or {}
        self.run_finished = run_finished
        self.needs_calibration = needs_calibration
        self.interlock_value = interlock_value
        self.faults = FaultTracker(valve.device_id, self.log, emit)
        self.stop_event = threading.Event()
        self._wake = threading.Event()
        self._commands: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=100)
        self._lock = threading.Lock()
        self.maintenance: dict[str, Any] | None = self.restored.get("maintenance")
        self._manual: RunSpec | None = None
        self._active: _Active | None = None
        self._stream: str | None = None
        self._stream_since: datetime | None = None
        self._flush_until: datetime | None = None
        self._ambient_index = int(self.restored.get("ambient_index", 0)) % len(cfg.ambient)
        self._interlocked = False
        self.stop_at: datetime | None = None
        now = clock.now()
        self._runs = {run.name: (kind, run) for kind, run in runs_of(cfg)}
        self._triggers = {name: make_trigger(run.schedule, now) for name, (_, run) in self._runs.items()
                          if run.schedule is not None}
        saved = self.restored.get("next_due", {})
        self.next_due: dict[str, datetime] = {}
        for name, trig in self._triggers.items():
            self.next_due[name] = parse_utc(saved[name]) if name in saved else trig.get_next_fire_time(None, now)
        self.thread = threading.Thread(target=self._run, name="engine", daemon=True)

    # -- requests from other threads (control socket, CLI) ---------------------------------
    def request(self, command: str, **args: Any) -> tuple[bool, str]:
        """Validate and queue a technician's command; (accepted, message)."""
        with self._lock:
            if command == "calibrate":
                name = args.get("name")
                cals = [n for n, (k, _) in self._runs.items() if k == "calibration"]
                runs = [n for n in self._runs if self._runs[n][0] in ("calibration", "target", "check", "performance")]
                if name is None:
                    if not cals:
                        return False, "no calibration run is configured"
                    name = cals[0]
                if name not in runs:
                    return False, f"unknown run {name!r}; configured: {', '.join(runs) or '(none)'}"
                if self.maintenance:
                    return False, "station is in maintenance: turn it off first"
            elif command == "goto":
                port = int(args["port"])
                if not self.maintenance:
                    return False, "valve goto is allowed in maintenance mode only (station-agent maintenance on)"
                n = getattr(self.valve.config, "positions", None)
                if port < 1 or (n is not None and port > n):
                    return False, f"port {port} is out of range"
            elif command == "maintenance":
                pass
            elif command == "assign":
                if self.maintenance:
                    return False, "station is in maintenance: turn it off first"
                try:
                    args = {"run": self._assignment_run(**args)}
                except ValueError as exc:
                    return False, str(exc)
            else:
                return False, f"unknown command {command!r}"
            try:
                self._commands.put_nowait((command, args | ({"name": name} if command == "calibrate" else {})))
            except queue.Full:
                return False, "too many commands queued; try again"
        self._wake.set()
        return True, "accepted"

    def _assignment_run(self, candidate: str, references: list[str], cycles: int = 6, measure_s: float = 1800.0,
                        use_last_minutes: int = 10, device: str | None = None) -> AssignmentRun:
        """A value-assignment run from a technician's request; ValueError saying what is wrong."""
        refs = list(dict.fromkeys(references))
        if len(refs) < 2:
            raise ValueError(f"value assignment needs at least 2 references, got {refs}")
        if candidate in refs:
            raise ValueError(f"candidate {candidate!r} is also a reference")
        streams = {c: cylinder_stream(self.cfg, c) for c in [candidate, *refs]}
        missing = [c for c, s in streams.items() if s is None]
        if missing:
            raise ValueError(f"cylinder(s) {missing} have no cal:<id> or target:<id> stream in [sampling]")
        if not 1 <= cycles <= 100:
            raise ValueError(f"cycles must be 1..100, got {cycles}")
        if measure_s < 60 * (use_last_minutes + 1):
            raise ValueError(f"measure_s {measure_s:g} leaves no {use_last_minutes} whole minutes to use")
        return AssignmentRun(f"assign-{candidate}", candidate, streams[candidate], tuple(refs),
                             tuple(streams[r] for r in refs), cycles, measure_s, use_last_minutes, device=device)

    def status(self) -> dict[str, Any]:
        now = self.clock.now()
        act = self._active
        left = None
        if act and act.step_end_mono is not None:
            left = max(0.0, act.step_end_mono - self.clock.monotonic())
        return {
            "stream": self._stream,
            "since": iso_utc(self._stream_since) if self._stream_since else None,
            "flushing": bool(self._flush_until and now < self._flush_until),
            "run": {"kind": act.spec.kind, "name": act.spec.name, "started": iso_utc(act.start)} if act else None,
            "step_left_s": left,
            "maintenance": self.maintenance,
            "interlocked": self._interlocked,
            "next_due": {n: iso_utc(t) for n, t in self.next_due.items()},
            "valve_faults": sorted(self.faults.open),
        }

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        self.thread.start()

    def run_until(self, t: datetime) -> None:
        """Run in the calling thread until the clock reaches `t`, then park (tests, on a ManualClock)."""
        self.stop_at = t
        self._run()

    def stop(self) -> None:
        self.stop_event.set()
        self._wake.set()
        self.thread.join(120)

    def _persist(self) -> None:
        act = self._active
        self.persist_cb({
            "stream": self._stream,
            "since": iso_utc(self._stream_since) if self._stream_since else None,
            "flush_until": iso_utc(self._flush_until) if self._flush_until else None,
            "port": self.cfg.stream(self._stream).port if self._stream in {s.name for s in self.cfg.streams} else None,
            "run": {"kind": act.spec.kind, "name": act.spec.name, "started": iso_utc(act.start)}
            if act and act.spec.kind != "ambient" else None,
            "next_due": {n: iso_utc(t) for n, t in self.next_due.items()},
            "maintenance": self.maintenance,
            "ambient_index": self._ambient_index,
        })

    def _run(self) -> None:
        try:
            self._open_valve()
            self._restore()
            while not self.stop_event.is_set():
                spec = self._next_run()
                self._execute(spec)
        except Exception as exc:  # the engine must not die silently
            self.log.exception("engine_failed", error=repr(exc))
            self.emit(Event(self.clock.now(), "engine.failed", "error", f"sequence engine failed: {exc!r}"))
        finally:
            self._park()

    def _open_valve(self) -> None:
        try:
            self.valve.open()
        except TransportError as exc:
            self.faults.report("connect", str(exc), self.clock.now())

    def _restore(self) -> None:
        """Put the timeline where the valve really is, and abort a run the restart interrupted."""
        now = self.clock.now()
        r = self.restored
        if r.get("run"):
            run = r["run"]
            self.emit(Event(now, "run.aborted", "warning",
                            f"{run['kind']} {run['name']} started {run['started']} was interrupted by a restart",
                            self.valve.device_id, {"run": run}))
        pos = self._read_position()
        if self.maintenance:
            self.timeline.set_condition(now, "maintenance", True)
        if r.get("stream") and r.get("port") is not None and pos == r["port"]:
            since = parse_utc(r["since"])
            flush_until = parse_utc(r["flush_until"]) if r.get("flush_until") else since
            self.timeline.switch(since, r["stream"], (flush_until - since).total_seconds(), pos,
                                 frozenset({"maintenance"}) if self.maintenance else frozenset())
            self._stream, self._stream_since, self._flush_until = r["stream"], since, flush_until
        else:
            # Unknown history: whatever the analyzer still holds is flagged (flushing, mismatch).
            stream = self.cfg.stream_at_port(pos).name if pos and self.cfg.stream_at_port(pos) else "unknown"
            since = parse_utc(r["since"]) if r.get("since") else now - timedelta(days=1)
            self.timeline.switch(since, stream, (now - since).total_seconds(), pos,
                                 frozenset({"valve_mismatch"}))
        if self.cfg.calibrate_at_start and self.needs_calibration() and not self.maintenance:
            cals = [n for n, (k, _) in self._runs.items() if k == "calibration"]
            if cals:
                self._manual = self._spec("calibration", cals[0], MANUAL_PRIORITY)

    # -- deciding -----------------------------------------------------------------------------
    def _spec(self, kind: str, name: str, priority: int | None = None) -> RunSpec:
        _, run = self._runs[name]
        return RunSpec(kind, name, run.priority if priority is None else priority,
                       plan_for(kind, run, self.cfg.safe_stream), run)

    def _drain_commands(self) -> None:
        while True:
            try:
                cmd, args = self._commands.get_nowait()
            except queue.Empty:
                return
            now = self.clock.now()
            if cmd == "maintenance":
                on = bool(args.get("on"))
                if on and not self.maintenance:
                    self.maintenance = {"since": iso_utc(now), "reason": args.get("reason", "")}
                    self.timeline.set_condition(now, "maintenance", True)
                    self.emit(Event(now, "maintenance.on", "info", f"maintenance on: {args.get('reason', '')}",
                                    None, {"reason": args.get("reason", "")}))
                elif not on and self.maintenance:
                    self.emit(Event(now, "maintenance.off", "info",
                                    f"maintenance off (was on since {self.maintenance['since']})"))
                    self.maintenance = None
                    self.timeline.set_condition(now, "maintenance", False)
                    self._manual = None
                self._persist()
            elif cmd == "calibrate":
                kind = self._runs[args["name"]][0]
                self._manual = self._spec(kind, args["name"], MANUAL_PRIORITY)
                self.emit(Event(now, "run.requested", "info", f"{kind} {args['name']} requested by a technician"))
            elif cmd == "assign":
                run = args["run"]
                self._manual = RunSpec("assignment", run.name, MANUAL_PRIORITY,
                                       assignment_plan(run, self.cfg.safe_stream), run)
                self.emit(Event(now, "run.requested", "info",
                                f"value assignment of {run.candidate} against {', '.join(run.references)} "
                                f"({run.cycles} cycles) requested by a technician"))
            elif cmd == "goto" and self.maintenance:
                port = int(args["port"])
                stream = self.cfg.stream_at_port(port)
                self._manual = RunSpec("manual", f"port {port}", MANUAL_PRIORITY + 1,
                                       hold_plan(stream.name if stream else f"port:{port}"))

    def _due_runs(self, now: datetime) -> list[str]:
        return sorted((n for n, t in self.next_due.items() if t <= now),
                      key=lambda n: (-self._runs[n][1].priority, self.next_due[n]))

    def _next_run(self) -> RunSpec:
        self._drain_commands()
        now = self.clock.now()
        if self._manual is not None:
            spec, self._manual = self._manual, None
            return spec
        if self.maintenance:
            return RunSpec("maintenance", "hold", MANUAL_PRIORITY, _hold_here())
        due = self._due_runs(now)
        if due:
            name = due[0]
            self.next_due[name] = self._triggers[name].get_next_fire_time(None, now + timedelta(seconds=1))
            return self._spec(self._runs[name][0], name)
        return RunSpec("ambient", "ambient", 0, ambient_plan(self.cfg.ambient[self._ambient_index:] + self.cfg.ambient[: self._ambient_index]))

    def _should_preempt(self, spec: RunSpec) -> bool:
        if self.stop_at is not None and self.clock.now() >= self.stop_at:
            self.stop_event.set()
        if self.stop_event.is_set():
            return True
        self._drain_commands()
        if spec.kind in ("maintenance", "manual"):
            return self._manual is not None or not self.maintenance
        if self._manual is not None or self.maintenance:
            return True
        due = self._due_runs(self.clock.now())
        return bool(due) and self._runs[due[0]][1].priority > spec.priority

    # -- executing -----------------------------------------------------------------------------
    def _execute(self, spec: RunSpec) -> None:
        act = self._active = _Active(spec, self.clock.now())
        self.log.info("run_started", kind=spec.kind, name=spec.name)
        self._persist()
        plan = spec.plan
        exc: BaseException | None = None
        completed = False
        while True:
            try:
                msg = plan.throw(exc) if exc is not None else next(plan)
            except StopIteration:
                completed = exc is None
                break
            except (Preempted, ValveFailure):
                break
            exc = None
            try:
                self._do(msg, spec, act)
            except (Preempted, ValveFailure) as e:
                exc = e
        end = self.clock.now()
        self._close_segment(act, end)
        self._active = None
        if spec.kind in ("calibration", "target", "check", "performance", "assignment"):
            if completed:
                self.run_finished(RunRecord(spec.kind, spec.name, act.start, end,
                                            [(s, c, a, b) for s, c, a, b in act.segments if b is not None],
                                            spec.config))
                self.log.info("run_finished", kind=spec.kind, name=spec.name)
            else:
                self.emit(Event(end, "run.aborted", "warning", f"{spec.kind} {spec.name} aborted", None,
                                {"kind": spec.kind, "name": spec.name, "started": iso_utc(act.start)}))
        self._persist()

    def _close_segment(self, act: _Active, t: datetime) -> None:
        if act.segments and act.segments[-1][3] is None:
            s, c, a, _ = act.segments[-1]
            act.segments[-1] = (s, c, a, t)

    def _do(self, msg, spec: RunSpec, act: _Active) -> None:
        if isinstance(msg, Move):
            self._close_segment(act, self.clock.now())
            if spec.kind == "ambient":
                self._ambient_index = next(
                    (i for i, s in enumerate(self.cfg.ambient) if s.stream == msg.stream), self._ambient_index)
            try:
                self._move(msg.stream)
            except ValveFailure:
                if spec.kind not in ("ambient", "manual"):
                    raise
        elif isinstance(msg, Segment):
            act.segments.append((msg.stream, msg.cycle, self.clock.now(), None))
        elif isinstance(msg, Wait):
            self._wait(msg.seconds, spec, act)

    def _read_position(self) -> int | None:
        try:
            if not self.valve.transport.is_open:
                self.valve.open()
            return self.valve.position()
        except (TransportError, DriverError) as exc:
            self.faults.report("read", str(exc), self.clock.now())
            self._reopen()
            return None

    def _reopen(self) -> None:
        try:
            self.valve.close()
        except Exception:  # a broken link may fail to close; it is closed either way
            pass

    def _move(self, stream: str) -> None:
        cfg = next((s for s in self.cfg.streams if s.name == stream), None)
        port = cfg.port if cfg else int(stream.split(":")[1])
        flush_s = cfg.flush_s if cfg else 300.0
        t = self.clock.now()
        cur = self.timeline.current()
        if stream == self._stream and cur is not None and cur.port == port and "valve_mismatch" not in cur.conditions:
            return  # already there and flushed (e.g. ambient resuming on the port a run parked on)
        pos: int | None = None
        for attempt in range(self.cfg.move_retries + 1):
            try:
                if not self.valve.transport.is_open:
                    self.valve.open()
                self.valve.goto(port)
            except (TransportError, DriverError, ValueError) as exc:
                self.faults.report("move", f"GO {port}: {exc}", self.clock.now())
                self._reopen()
                self.clock.sleep(self.cfg.settle_s)
                continue
            self.clock.sleep(self.cfg.settle_s)
            pos = self._read_position()
            if pos == port:
                break
            self.log.warning("valve_position_mismatch", commanded=port, reported=pos, attempt=attempt + 1)
        conditions = frozenset({"maintenance"}) if self.maintenance else frozenset()
        if pos == port:
            # The new stream starts when the move was commanded (nothing after it belongs to the
            # old one) and is flushed from when the move was confirmed: the valve may have turned
            # at any moment in between.
            confirmed = self.clock.now()
            self.faults.clear(confirmed, ("move", "read", "mismatch", "connect"))
            flush_until = confirmed + timedelta(seconds=flush_s)
            self.timeline.switch(t, stream, (flush_until - t).total_seconds(), port, conditions)
            self._stream, self._stream_since, self._flush_until = stream, t, flush_until
            self._persist()
            return
        actual = self.cfg.stream_at_port(pos) if pos else None
        self.faults.report("mismatch", f"commanded port {port} ({stream}), valve reports {pos}", self.clock.now())
        label = actual.name if actual else "unknown"
        self.timeline.switch(t, label, flush_s, pos, conditions | {"valve_mismatch"})
        self._stream, self._stream_since, self._flush_until = label, t, t + timedelta(seconds=flush_s)
        self._persist()
        raise ValveFailure(f"valve did not reach port {port} for {stream} (reports {pos})")

    def _interlock_tripped(self) -> str | None:
        for il in self.cfg.interlocks:
            got = self.interlock_value(il.device, il.quantity)
            if got is None:
                return f"{il.device}.{il.quantity}: no value"
            value, age = got
            if age > il.stale_s:
                return f"{il.device}.{il.quantity}: no value for {age:.0f} s"
            if (il.min is not None and value < il.min) or (il.max is not None and value > il.max):
                return f"{il.device}.{il.quantity} = {value:g} outside [{il.min}, {il.max}]"
        return None

    def _wait(self, seconds: float, spec: RunSpec, act: _Active) -> None:
        end = self.clock.monotonic() + seconds
        act.step_end_mono = end
        clear_since: float | None = None
        while True:
            if self._should_preempt(spec):
                raise Preempted()
            now_mono = self.clock.monotonic()
            reason = self._interlock_tripped() if self.cfg.interlocks else None
            if reason is not None or self._interlocked:
                if reason is not None and not self._interlocked:
                    self._interlocked = True
                    self.timeline.set_condition(self.clock.now(), "interlock", True)
                    self.emit(Event(self.clock.now(), "interlock.on", "warning", f"sequence suspended: {reason}"))
                    clear_since = None
                elif reason is not None:
                    clear_since = None
                elif clear_since is None:
                    clear_since = now_mono
                resume_after = max((il.resume_after_s for il in self.cfg.interlocks), default=0.0)
                if reason is None and now_mono - clear_since >= resume_after:
                    self._interlocked = False
                    t = self.clock.now()
                    self.timeline.set_condition(t, "interlock", False)
                    cur = self.cfg.stream(self._stream) if self._stream in {s.name for s in self.cfg.streams} else None
                    self.timeline.reflush(t, cur.flush_s if cur else 300.0)
                    self._flush_until = t + timedelta(seconds=cur.flush_s if cur else 300.0)
                    self.emit(Event(t, "interlock.off", "info", "sequence resumed"))
                else:
                    before = self.clock.monotonic()
                    self.clock.wait(self._wake, 5.0)
                    self._wake.clear()
                    end += self.clock.monotonic() - before  # the step's clock stands still
                    continue
            remaining = end - now_mono
            if remaining <= 0:
                act.step_end_mono = None
                return
            step = min(remaining, 10.0)
            if self.stop_at is not None:
                step = min(step, max(0.0, (self.stop_at - self.clock.now()).total_seconds()))
            due = [t for n, t in self.next_due.items() if self._runs[n][1].priority > spec.priority]
            if due:
                step = min(step, max(0.0, (min(due) - self.clock.now()).total_seconds()) + 0.001)
            self.clock.wait(self._wake, step)
            self._wake.clear()

    def _park(self) -> None:
        """Leave the valve on the safe stream (SIGTERM, or the engine failing)."""
        if self._stream == self.cfg.safe_stream:
            return
        try:
            self._move(self.cfg.safe_stream)
            self.log.info("valve_parked", stream=self.cfg.safe_stream)
        except ValveFailure as exc:
            self.log.error("valve_park_failed", error=str(exc))


def _hold_here() -> Plan:
    while True:
        yield Wait(3600.0)
