"""Sequences as plans: generators of messages that one engine executes (the Bluesky pattern).

A plan never touches hardware or time: it yields `Move` (select a stream) and `Wait` (stay
there), and `Segment` marks for the runs' bookkeeping. The engine executes them, or a test runs
them through `simulate()` with no clock and no valve. A plan that is interrupted (pre-empted, a
failure) gets the exception thrown in at its `Wait`, and its `finally` returns the valve to the
safe stream.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass, field

from station_agent.sequencing.sampling_config import (
    AmbientStep,
    CalibrationRun,
    CheckRun,
    PerformanceTestRun,
    SamplingConfig,
    TargetRun,
)


@dataclass(frozen=True)
class Move:
    stream: str


@dataclass(frozen=True)
class Wait:
    seconds: float


@dataclass(frozen=True)
class Segment:
    """The measurement that starts now: `cylinder` on `stream`, cycle `cycle` of the run."""

    stream: str
    cycle: int


Message = Move | Wait | Segment
Plan = Generator[Message, None, None]


@dataclass
class RunSpec:
    """What the engine runs: a kind, a name, a priority and the plan that does it."""

    kind: str  # "ambient", "calibration", "target", "check", "performance", "assignment", "manual"
    name: str
    priority: int
    plan: Plan
    config: object = None
    segments: list[tuple[str, int]] = field(default_factory=list)


def ambient_plan(steps: list[AmbientStep]) -> Plan:
    """The ambient inlet cycle, for ever (it is pre-empted, never finished)."""
    while True:
        for step in steps:
            yield Move(step.stream)
            yield Wait(step.duration_s)


def calibration_plan(run: CalibrationRun, safe_stream: str) -> Plan:
    try:
        for cycle in range(run.cycles):
            for cyl in run.standards:
                stream = f"cal:{cyl}"
                yield Move(stream)
                yield Segment(stream, cycle)
                yield Wait(run.measure_s)
        if run.long_term_target:
            stream = f"target:{run.long_term_target}"
            yield Move(stream)
            yield Segment(stream, 0)
            yield Wait(run.measure_s)
    finally:
        yield Move(safe_stream)


def target_plan(run: TargetRun, safe_stream: str) -> Plan:
    try:
        for cycle in range(run.cycles):
            stream = f"target:{run.cylinder}"
            yield Move(stream)
            yield Segment(stream, cycle)
            yield Wait(run.measure_s)
    finally:
        yield Move(safe_stream)


def check_plan(run: CheckRun, safe_stream: str) -> Plan:
    try:
        yield Move(run.stream)
        yield Segment(run.stream, 0)
        yield Wait(run.measure_s)
    finally:
        yield Move(safe_stream)


@dataclass(frozen=True)
class AssignmentRun:
    """A value assignment of `candidate` against `references` (cylinder ids, with their streams),
    asked for by a technician (`station-agent cylinders assign`). `device`: the analyzer whose
    minutes assign the value (None: every analyzer on the valve, the last one written wins)."""

    name: str
    candidate: str
    candidate_stream: str
    references: tuple[str, ...]
    reference_streams: tuple[str, ...]
    cycles: int = 6
    measure_s: float = 1800.0
    use_last_minutes: int = 10
    degree: int = 1
    device: str | None = None
    priority: int = 100


def cylinder_stream(cfg: SamplingConfig, cylinder: str) -> str | None:
    """The stream a registry cylinder is on: cal:<id>, else target:<id>."""
    names = {s.name for s in cfg.streams}
    return next((s for s in (f"cal:{cylinder}", f"target:{cylinder}") if s in names), None)


def assignment_plan(run: AssignmentRun, safe_stream: str) -> Plan:
    """refs, candidate, refs, candidate, ..., refs: every injection of the candidate bracketed by
    the references (the last round of references is cycle `run.cycles`)."""
    try:
        for cycle in range(run.cycles):
            for stream in (*run.reference_streams, run.candidate_stream):
                yield Move(stream)
                yield Segment(stream, cycle)
                yield Wait(run.measure_s)
        for stream in run.reference_streams:
            yield Move(stream)
            yield Segment(stream, run.cycles)
            yield Wait(run.measure_s)
    finally:
        yield Move(safe_stream)


def performance_plan(run: PerformanceTestRun, safe_stream: str) -> Plan:
    """The performance test: the continuous cylinder, the cycles, then the humidified cylinder."""
    try:
        yield Move(run.continuous)
        yield Segment(run.continuous, 0)
        yield Wait(run.continuous_s)
        for cycle in range(run.cycles):
            for stream in run.cycle:
                yield Move(stream)
                yield Segment(stream, cycle)
                yield Wait(run.cycle_measure_s)
        if run.water:
            yield Move(run.water)
            yield Segment(run.water, 0)
            yield Wait(run.water_s)
    finally:
        yield Move(safe_stream)


def hold_plan(stream: str) -> Plan:
    """A technician's manual position: stay on `stream` until pre-empted."""
    yield Move(stream)
    while True:
        yield Wait(3600.0)


def simulate(plan: Plan, fail_at: int | None = None, limit: int = 10_000) -> list[Message]:
    """The messages a plan emits, with no clock and no valve. `fail_at=k` throws a RuntimeError
    into the plan at its k-th Wait, as the engine does on a failure, to check the cleanup."""
    out: list[Message] = []
    waits = 0
    exc: BaseException | None = None
    while len(out) < limit:
        try:
            msg = plan.throw(exc) if exc is not None else next(plan)
        except (StopIteration, RuntimeError):
            break
        exc = None
        out.append(msg)
        if isinstance(msg, Wait):
            waits += 1
            if fail_at is not None and waits == fail_at:
                exc = RuntimeError("simulated failure")
    return out


def runs_of(cfg: SamplingConfig) -> Iterator[tuple[str, CalibrationRun | TargetRun | CheckRun | PerformanceTestRun]]:
    for c in cfg.calibrations:
        yield "calibration", c
    for t in cfg.targets:
        yield "target", t
    for k in cfg.checks:
        yield "check", k
    for p in cfg.performance_tests:
        yield "performance", p


def plan_for(kind: str, run, safe_stream: str) -> Plan:
    return {"calibration": calibration_plan, "target": target_plan, "check": check_plan,
            "performance": performance_plan, "assignment": assignment_plan}[kind](run, safe_stream)
