"""The sequence engine on a ManualClock, driving the real VICI driver against the VICI simulator
(in process: the same bytes, no wall clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from drivers.vici.multiposition import ViciMultiposition
from ghgnet.clock import ManualClock
from ghgnet.logs import get_logger
from simulators.inprocess import InProcessTransport
from simulators.vici.multiposition import ViciValveSimulator
from station_agent.sequencing.engine import Engine
from station_agent.sequencing.plans import Move, Segment, Wait, calibration_plan, simulate
from station_agent.sequencing.sampling_config import SamplingConfig
from station_agent.sequencing.timeline import StreamTimeline

T0 = datetime(2026, 3, 1, 0, 0, 30, tzinfo=UTC)

SAMPLING = {
    "valve": "valve-1",
    "safe_stream": "inlet:top",
    "calibrate_at_start": False,
    "streams": [
        {"name": "inlet:top", "port": 1, "flush_s": 120},
        {"name": "inlet:mid", "port": 2, "flush_s": 120},
        {"name": "inlet:low", "port": 3, "flush_s": 120},
        {"name": "cal:A", "port": 4, "flush_s": 300},
        {"name": "cal:B", "port": 5, "flush_s": 300},
        {"name": "cal:C", "port": 6, "flush_s": 300},
        {"name": "target:T", "port": 8, "flush_s": 300},
    ],
    "ambient": [
        {"stream": "inlet:top", "duration_s": 600},
        {"stream": "inlet:mid", "duration_s": 300},
        {"stream": "inlet:low", "duration_s": 300},
    ],
    "calibrations": [{"name": "cal", "standards": ["A", "B", "C"], "measure_s": 600, "cycles": 2,
                      "use_last_minutes": 3, "schedule": {"interval_hours": 6}}],
    "targets": [{"name": "tgt", "cylinder": "T", "measure_s": 600, "use_last_minutes": 3,
                 "schedule": {"interval_hours": 2}}],
}


class Harness:
    def __init__(self, sampling=None, restored=None, clock=None, sim=None, **overrides):
        self.clock = clock or ManualClock(T0)
        self.sim = sim or ViciValveSimulator(self.clock, positions=10, seed=1)
        cfg = SamplingConfig.model_validate({**SAMPLING, **(sampling or {}), **overrides})
        self.valve = ViciMultiposition(
            ViciMultiposition.Config(id="valve-1", driver="vici.multiposition", url="inprocess://", positions=10),
            InProcessTransport(self.sim),
        )
        self.timeline = StreamTimeline()
        self.events, self.runs, self.states = [], [], []
        self.on_persist = lambda state: None
        self.engine = Engine(cfg, self.valve, self.clock, self.timeline, self.events.append, get_logger(),
                             self._persist, restored, self.runs.append)

    def _persist(self, state):
        self.states.append(state)
        self.on_persist(state)

    def segments(self, since=T0):
        return [s for s in self.timeline._segments if s.start >= since]


def offset(seg) -> float:
    return (seg.start - T0).total_seconds()


def test_calibration_plan_emits_the_exact_moves_and_returns_to_the_sample_port():
    cfg = SamplingConfig.model_validate(SAMPLING)
    msgs = simulate(calibration_plan(cfg.calibrations[0], cfg.safe_stream))
    expected = []
    for cycle in range(2):
        for cyl in "ABC":
            expected += [Move(f"cal:{cyl}"), Segment(f"cal:{cyl}", cycle), Wait(600)]
    assert msgs == expected + [Move("inlet:top")]


def test_a_plan_failing_mid_run_still_returns_to_the_sample_port():
    cfg = SamplingConfig.model_validate(SAMPLING)
    msgs = simulate(calibration_plan(cfg.calibrations[0], cfg.safe_stream), fail_at=2)
    assert msgs == [Move("cal:A"), Segment("cal:A", 0), Wait(600), Move("cal:B"), Segment("cal:B", 0),
                    Wait(600), Move("inlet:top")]


def test_ambient_cycle_then_scheduled_runs_in_exact_order_and_durations():
    h = Harness()
    h.engine.run_until(T0 + timedelta(hours=7, minutes=30))
    segs = h.segments()
    streams = [s.stream for s in segs]
    # Ambient from the start: top 600 s, mid 300 s, low 300 s; each move takes the 2 s settle time.
    assert streams[:4] == ["inlet:top", "inlet:mid", "inlet:low", "inlet:top"]
    assert [offset(s) for s in segs[:4]] == [0.0, 602.0, 904.0, 1206.0]
    # flushed from the confirmed move: the 2 s settle time plus the stream's flush
    assert [(s.flush_until - s.start).total_seconds() for s in segs[:3]] == [122.0, 122.0, 122.0]
    # The 2-hourly target pre-empts ambient at 02:00 exactly, then the valve returns to the sample port.
    t2 = next(s for s in segs if s.stream == "target:T")
    assert t2.start == datetime(2026, 3, 1, 2, 0, tzinfo=UTC) + timedelta(milliseconds=1) or abs(
        (t2.start - datetime(2026, 3, 1, 2, 0, tzinfo=UTC)).total_seconds()) < 0.01
    after = segs[segs.index(t2) + 1]
    assert after.stream == "inlet:top" and abs((after.start - t2.start).total_seconds() - 602.0) < 0.01
    # At 06:00 calibration (priority 20) and target (10) are both due: the calibration goes first,
    # 2 cycles x 3 standards x 600 s, then the sample port, then the target, then the sample port.
    six = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)
    late = [s for s in segs if s.start >= six]
    assert [s.stream for s in late[:9]] == [
        "cal:A", "cal:B", "cal:C", "cal:A", "cal:B", "cal:C", "inlet:top", "target:T", "inlet:top"]
    assert late[9].stream in ("inlet:mid", "inlet:low")  # ambient resumes where it was pre-empted
    gaps = [(b.start - a.start).total_seconds() for a, b in zip(late[:7], late[1:8])]
    assert all(abs(g - 602.0) < 0.01 for g in gaps[:6]), gaps
    assert all((s.flush_until - s.start).total_seconds() == 302.0 for s in late[:6])
    # Runs that finished are handed over with their injection segments and cycles.
    cal = next(r for r in h.runs if r.kind == "calibration")
    assert [(s, c) for s, c, _, _ in cal.segments] == [("cal:A", 0), ("cal:B", 0), ("cal:C", 0),
                                                       ("cal:A", 1), ("cal:B", 1), ("cal:C", 1)]
    assert all(abs((b - a).total_seconds() - 600.0) < 0.01 for _, _, a, b in cal.segments)
    assert [r.kind for r in h.runs] == ["target", "target", "calibration", "target"]
    # Stopped: the valve is parked on the sample port.
    assert h.sim.current_position() == 1


def test_valve_failure_mid_calibration_aborts_it_flags_and_returns_to_the_sample_port():
    h = Harness(move_retries=0)
    fired = {"done": False}

    def fault_on_second_standard(state):
        if state["stream"] == "cal:B" and not fired["done"]:
            fired["done"] = True
            h.sim.inject("wrong_port", port=9)
        elif state["stream"] == "unknown":
            h.sim.clear()  # a hiccup: the valve answers again

    h.on_persist = fault_on_second_standard
    h.engine.request("calibrate")  # refused: not in maintenance? no: calibrate is fine
    h.engine.run_until(T0 + timedelta(hours=1))
    segs = h.segments()
    assert [s.stream for s in segs[:4]] == ["cal:A", "cal:B", "unknown", "inlet:top"]
    assert "valve_mismatch" in segs[2].conditions
    assert segs[3].port == 1 and not segs[3].conditions
    assert any(e.kind == "run.aborted" for e in h.events)
    assert any(e.kind == "fault.mismatch" for e in h.events)
    assert not any(r.kind == "calibration" for r in h.runs)


def test_a_stuck_valve_flags_the_ambient_minutes_and_raises_an_event_without_stopping():
    h = Harness()
    h.sim.inject("stuck")
    h.engine.run_until(T0 + timedelta(minutes=30))
    segs = h.segments()
    assert segs[1].stream == "inlet:top" and "valve_mismatch" in segs[1].conditions  # mid commanded, stuck on top
    assert [e.kind for e in h.events].count("fault.mismatch") == 1  # once per episode


def test_maintenance_holds_the_valve_flags_and_allows_manual_moves():
    h = Harness()
    ok, msg = h.engine.request("goto", port=3)
    assert not ok and "maintenance" in msg
    assert h.engine.request("maintenance", on=True, reason="filter change") == (True, "accepted")
    assert h.engine.request("goto", port=3)[0] is False  # not yet in maintenance: the command is queued
    h.engine.run_until(T0 + timedelta(minutes=5))
    assert h.engine.maintenance["reason"] == "filter change"
    assert "maintenance" in h.timeline.current().conditions
    assert h.engine.request("goto", port=3) == (True, "accepted")
    h.engine.stop_event.clear()
    h.engine.run_until(T0 + timedelta(minutes=10))
    seg = h.timeline.at(T0 + timedelta(minutes=9))
    assert seg.stream == "inlet:low" and "maintenance" in seg.conditions
    assert any(e.kind == "maintenance.on" for e in h.events)


def test_restart_mid_calibration_aborts_it_and_tags_buffered_records_with_the_real_stream():
    h = Harness()
    h.sim = ViciValveSimulator(h.clock, positions=10, seed=1, position=5)  # the valve is still on cal:B
    restored = {"stream": "cal:B", "since": "2026-03-01T00:00:00.000Z", "flush_until": "2026-03-01T00:05:00.000Z",
                "port": 5, "run": {"kind": "calibration", "name": "cal", "started": "2026-02-29T23:40:00.000Z"},
                "next_due": {"cal": "2026-03-01T06:00:00.000Z", "tgt": "2026-03-01T02:00:00.000Z"}}
    h2 = Harness(restored=restored, clock=h.clock, sim=h.sim)
    h2.engine.run_until(T0 + timedelta(minutes=1))
    # A record the analyzer took at 00:00:20 (before the restart) is cal:B, not the ambient inlet.
    before = h2.timeline.at(datetime(2026, 3, 1, 0, 0, 20, tzinfo=UTC))
    assert before.stream == "cal:B" and not before.conditions
    assert h2.timeline.at(T0 + timedelta(seconds=1)).stream == "inlet:top"
    assert any(e.kind == "run.aborted" and "restart" in e.message for e in h2.events)


def test_icos_and_urban_presets_fill_in_the_runs():
    base = {k: v for k, v in SAMPLING.items() if k not in ("calibrations", "targets")}
    streams = base["streams"] + [{"name": "cal:D", "port": 7, "flush_s": 300},
                                 {"name": "target:LT", "port": 9, "flush_s": 300}]
    icos = SamplingConfig.model_validate({**base, "streams": streams, "preset": "icos"})
    (cal,) = icos.calibrations
    assert cal.standards == ["A", "B", "C", "D"] and cal.measure_s == 1800 and cal.cycles == 4
    assert cal.schedule.interval_hours == 360 and cal.long_term_target == "LT"
    (tgt,) = icos.targets
    assert tgt.cylinder == "T" and tgt.schedule.interval_hours == 7
    urban = SamplingConfig.model_validate({**base, "streams": streams, "preset": "urban"})
    assert urban.calibrations[0].standards == ["A", "B", "C"] and urban.calibrations[0].schedule.interval_hours == 3
    assert urban.targets[0].schedule.interval_hours == 6


def test_sampling_config_errors_name_what_is_wrong():
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"unknown stream\(s\): calibration cal: cal:Z"):
        SamplingConfig.model_validate({**SAMPLING, "calibrations": [
            {"name": "cal", "standards": ["A", "Z"], "schedule": {"interval_hours": 6}}]})
    with pytest.raises(ValidationError, match="two streams share one valve port"):
        SamplingConfig.model_validate({**SAMPLING, "streams": SAMPLING["streams"] + [{"name": "zero", "port": 1}]})
    with pytest.raises(ValidationError, match="cron"):
        SamplingConfig.model_validate({**SAMPLING, "targets": [
            {"name": "t", "cylinder": "T", "schedule": {"cron": "61 * * * *"}}]})


def test_a_cron_zero_check_runs_on_its_schedule_and_reports_its_mean():
    h = Harness(streams=SAMPLING["streams"] + [{"name": "zero", "port": 10, "flush_s": 60}],
                calibrations=[], targets=[],
                checks=[{"name": "zero-check", "stream": "zero", "measure_s": 300, "schedule": {"cron": "30 1 * * *"}}])
    h.engine.run_until(T0 + timedelta(hours=2))
    zero = [s for s in h.segments() if s.stream == "zero"]
    assert len(zero) == 1
    assert abs((zero[0].start - datetime(2026, 3, 1, 1, 30, tzinfo=UTC)).total_seconds()) < 0.01
    assert [r.kind for r in h.runs] == ["check"] and h.runs[0].segments[0][0] == "zero"


def test_a_reading_the_offset_bound_puts_after_a_switch_is_the_new_streams_flush():
    from drivers.reading import Reading

    tl = StreamTimeline()
    t0 = datetime(2026, 3, 1, 1, 0, tzinfo=UTC)
    tl.switch(t0, "cal:CAL-2", 300.0, 2)
    tl.set_condition(t0 + timedelta(minutes=12), "interlock", True)  # a new segment, not a switch
    switch = t0 + timedelta(minutes=14)
    tl.switch(switch, "cal:CAL-3", 300.0, 3)

    def tagged(seconds_before: float, offset_s: float, low_s: float | None) -> Reading:
        r = Reading(time=switch - timedelta(seconds=seconds_before), device="picarro-1", values={"co2": 428.0})
        return tl.tag(r, offset_s, low_s)

    # stamped 0.4 s before the switch, an analyzer clock that may be 2 s behind: maybe new gas
    late = tagged(0.4, 0.0, -2.0)
    assert (late.stream, late.flushing) == ("cal:CAL-3", True)
    # the same reading with a clock proven to within 0.1 s keeps its stream, as does one 3 s before
    assert (tagged(0.4, 0.0, -0.1).stream, tagged(3.0, 0.0, -2.0).stream) == ("cal:CAL-2", "cal:CAL-2")
    assert not tagged(3.0, 0.0, -2.0).flushing
    # a condition change is not a switch: the reading before it is not made a flush
    r = Reading(time=t0 + timedelta(minutes=12) - timedelta(seconds=0.4), device="picarro-1", values={})
    before_condition = tl.tag(r, 0.0, -2.0)
    assert (before_condition.stream, before_condition.flushing, before_condition.conditions) == ("cal:CAL-2", False, ())
