"""The value-assignment and performance-test plans as messages (no clock, no valve), and the
engine's checks of a technician's assignment request."""

from __future__ import annotations

from datetime import timedelta

from test_engine import T0, Harness  # tests/station_agent is on sys.path under pytest

from station_agent.sequencing.plans import (
    AssignmentRun,
    Move,
    Segment,
    Wait,
    assignment_plan,
    performance_plan,
    simulate,
)
from station_agent.sequencing.sampling_config import PerformanceTestRun


def test_each_candidate_injection_is_bracketed_by_the_references():
    run = AssignmentRun("assign-N", "N", "target:N", ("A", "B"), ("cal:A", "cal:B"), cycles=2, measure_s=600)
    msgs = simulate(assignment_plan(run, "inlet:top"))
    segs = [(m.stream, m.cycle) for m in msgs if isinstance(m, Segment)]
    assert segs == [("cal:A", 0), ("cal:B", 0), ("target:N", 0), ("cal:A", 1), ("cal:B", 1), ("target:N", 1),
                    ("cal:A", 2), ("cal:B", 2)]
    assert all(m.seconds == 600 for m in msgs if isinstance(m, Wait))
    assert msgs[-1] == Move("inlet:top")


def test_an_interrupted_assignment_parks_the_valve():
    run = AssignmentRun("assign-N", "N", "target:N", ("A", "B"), ("cal:A", "cal:B"), cycles=3)
    msgs = simulate(assignment_plan(run, "inlet:top"), fail_at=2)
    assert msgs[-1] == Move("inlet:top") and sum(isinstance(m, Wait) for m in msgs) == 2


def test_performance_plan_runs_continuous_then_cycles_then_water():
    run = PerformanceTestRun(continuous="target:T", continuous_s=3600, cycle=["cal:A", "cal:B"], cycle_measure_s=900,
                             cycles=2, water="target:W", water_s=1800)
    msgs = simulate(performance_plan(run, "inlet:top"))
    assert [m.stream for m in msgs if isinstance(m, Move)] == [
        "target:T", "cal:A", "cal:B", "cal:A", "cal:B", "target:W", "inlet:top"]
    assert [m.seconds for m in msgs if isinstance(m, Wait)] == [3600, 900, 900, 900, 900, 1800]


def test_engine_refuses_an_assignment_it_cannot_run():
    h = Harness()
    ok, msg = h.engine.request("assign", candidate="T", references=["A"])
    assert not ok and "at least 2 references" in msg
    ok, msg = h.engine.request("assign", candidate="NOPE", references=["A", "B"])
    assert not ok and "['NOPE'] have no cal:<id> or target:<id> stream" in msg
    ok, msg = h.engine.request("assign", candidate="A", references=["A", "B"])
    assert not ok and "also a reference" in msg
    ok, msg = h.engine.request("assign", candidate="T", references=["A", "B"], measure_s=120, use_last_minutes=4)
    assert not ok and "no 4 whole minutes" in msg
    ok, msg = h.engine.request("assign", candidate="T", references=["A", "B", "C"], cycles=2, measure_s=600,
                               use_last_minutes=4)
    assert ok, msg


def test_engine_runs_a_requested_assignment_and_hands_it_over():
    h = Harness()
    ok, msg = h.engine.request("assign", candidate="T", references=["A", "B"], cycles=2, measure_s=600,
                               use_last_minutes=4)
    assert ok, msg
    h.engine.run_until(T0 + timedelta(hours=1, minutes=45))
    done = [r for r in h.runs if r.kind == "assignment"]
    assert len(done) == 1, [(r.kind, r.name) for r in h.runs]
    run = done[0]
    assert run.name == "assign-T" and run.config.references == ("A", "B")
    assert [(s, k) for s, k, *_ in run.segments] == [("cal:A", 0), ("cal:B", 0), ("target:T", 0), ("cal:A", 1),
                                                     ("cal:B", 1), ("target:T", 1), ("cal:A", 2), ("cal:B", 2)]
    assert all(timedelta(seconds=600) <= b - a < timedelta(seconds=610) for *_, a, b in run.segments)
