"""Two valves in series (inlets, then the cylinder line) driven as one by the engine: the real VICI
driver against two VICI simulators (in process: the same bytes, a ManualClock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from drivers.vici.multiposition import ViciMultiposition
from ghgnet.clock import ManualClock
from ghgnet.logs import get_logger
from simulators.inprocess import InProcessTransport
from simulators.vici.multiposition import ViciValveSimulator
from station_agent.sequencing.engine import Engine
from station_agent.sequencing.sampling_config import SamplingConfig
from station_agent.sequencing.timeline import StreamTimeline
from station_agent.sequencing.valve_train import NO_STREAM, ValveTrain

T0 = datetime(2026, 3, 1, 0, 0, 30, tzinfo=UTC)

SERIES = {
    "valve": ["inlets", "cylinders"],
    "safe_stream": "inlet:top",
    "calibrate_at_start": False,
    "streams": [
        {"name": "inlet:top", "port": 1, "flush_s": 120, "positions": {"inlets": 1}},
        {"name": "inlet:low", "port": 2, "flush_s": 120, "positions": {"inlets": 2}},
        {"name": "cal:A", "port": 3, "flush_s": 300, "positions": {"inlets": 4, "cylinders": 1}},
        {"name": "cal:B", "port": 4, "flush_s": 300, "positions": {"inlets": 4, "cylinders": 2}},
        {"name": "cal:C", "port": 5, "flush_s": 300, "positions": {"inlets": 4, "cylinders": 3}},
    ],
    "ambient": [{"stream": "inlet:top", "duration_s": 600}, {"stream": "inlet:low", "duration_s": 600}],
    "calibrations": [{"name": "cal", "standards": ["A", "B", "C"], "measure_s": 600, "cycles": 1,
                      "use_last_minutes": 3, "schedule": {"interval_hours": 6}}],
}


class Series:
    def __init__(self, **overrides):
        self.clock = ManualClock(T0)
        self.cfg = SamplingConfig.model_validate({**SERIES, **overrides})
        self.sims = {vid: ViciValveSimulator(self.clock, positions=8, seed=i) for i, vid in enumerate(self.cfg.valve)}
        valves = [ViciMultiposition(ViciMultiposition.Config(id=vid, driver="vici.multiposition", url="inprocess://",
                                                             positions=8), InProcessTransport(sim))
                  for vid, sim in self.sims.items()]
        self.train = ValveTrain(valves, {s.port: s.positions for s in self.cfg.streams})
        self.timeline = StreamTimeline()
        self.events, self.runs = [], []
        self.engine = Engine(self.cfg, self.train, self.clock, self.timeline, self.events.append, get_logger(),
                             lambda state: None, None, self.runs.append)


def test_a_calibration_moves_both_valves_and_the_ambient_cycle_only_the_first():
    s = Series()
    s.engine.request("calibrate")
    s.engine.run_until(T0 + timedelta(hours=1))
    segs = [seg for seg in s.timeline._segments if seg.start >= T0]
    assert [seg.stream for seg in segs[:5]] == ["cal:A", "cal:B", "cal:C", "inlet:top", "inlet:low"]
    assert [seg.port for seg in segs[:5]] == [3, 4, 5, 1, 2]
    assert not any(seg.conditions for seg in segs[:5])
    # Each standard was on the cylinder valve's own position while the inlet valve sat on 4.
    moves = {vid: [m.to_position for m in sim.moves] for vid, sim in s.sims.items()}
    assert moves["cylinders"][:3] == [1, 2, 3]
    assert moves["inlets"][:1] == [4] and 1 in moves["inlets"] and 2 in moves["inlets"]
    assert [r.kind for r in s.runs] == ["calibration"]
    assert s.train.device_id == "inlets+cylinders"


def test_a_stuck_cylinder_valve_is_a_mismatch_named_by_the_stream_it_really_selects():
    s = Series(move_retries=0)
    s.sims["cylinders"].inject("stuck")  # stays on its first position: cal:A's
    s.engine.request("calibrate")
    s.engine.run_until(T0 + timedelta(minutes=40))
    segs = [seg for seg in s.timeline._segments if seg.start >= T0]
    assert segs[0].stream == "cal:A" and not segs[0].conditions
    assert segs[1].stream == "cal:A" and "valve_mismatch" in segs[1].conditions  # cal:B commanded
    assert any(e.kind == "fault.mismatch" and "cal:B" in e.message for e in s.events)
    assert not any(r.kind == "calibration" for r in s.runs)


def test_positions_that_match_no_stream_read_as_no_stream():
    s = Series()
    s.train.open()
    s.train.valves[0].goto(4)  # the cylinder line, while the cylinder valve sits on an unused port
    s.train.valves[1].goto(7)
    s.clock.sleep(30)
    assert s.train.position() == NO_STREAM
    s.train.goto(2)
    s.clock.sleep(30)
    assert s.train.position() == 2
    with pytest.raises(ValueError, match="no stream on port 9"):
        s.train.goto(9)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"streams": [dict(SERIES["streams"][0], positions=None), *SERIES["streams"][1:]]},
         "stream inlet:top: with several valves give its positions"),
        ({"streams": [dict(SERIES["streams"][0], positions={"mast": 1}), *SERIES["streams"][1:]]},
         "stream inlet:top: positions name valve(s) ['mast'] not in valve"),
        ({"streams": [*SERIES["streams"], {"name": "cal:D", "port": 6, "positions": {"inlets": 4, "cylinders": 3}}]},
         "streams cal:C and cal:D select the same valve positions"),
        ({"valve": "inlets"}, "give positions, but there is one valve"),
    ],
)
def test_series_config_errors_name_the_stream(change, message):
    with pytest.raises(ValidationError) as err:
        SamplingConfig.model_validate({**SERIES, **change})
    assert message in str(err.value)
