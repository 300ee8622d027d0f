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

from station_agent.sequencing.sampling_config import AmbientStep, CalibrationRun, CheckRun, SamplingConfig, TargetRun


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

    kind: str  # "ambient", "calibration", "target", "check", "manual"
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


def runs_of(cfg: SamplingConfig) -> Iterator[tuple[str, CalibrationRun | TargetRun | CheckRun]]:
    for c in cfg.calibrations:
        yield "calibration", c
    for t in cfg.targets:
        yield "target", t
    for k in cfg.checks:
        yield "check", k


def plan_for(kind: str, run, safe_stream: str) -> Plan:
    return {"calibration": calibration_plan, "target": target_plan, "check": check_plan}[kind](run, safe_stream)
