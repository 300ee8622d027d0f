"""The VICI valve simulator: its wire protocol, its timing, its faults, and the driver against it
over a real pty and a real TCP socket."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from pydantic import ValidationError

from drivers.base import DriverError
from drivers.transport import TransportTimeout
from drivers.vici.multiposition import ViciMultiposition
from ghgnet.clock import ManualClock, ScaledClock
from simulators.serve import PtyServer, TcpServer
from simulators.vici.multiposition import SharedLine, ViciValveSimulator


def sim(clock: Any = None, **kwargs: Any) -> ViciValveSimulator:
    kwargs.setdefault("move_time_jitter", 0.0)
    return ViciValveSimulator(clock or ManualClock(), **kwargs)


@contextmanager
def served(device: Any, how: str, **driver_config: Any) -> Iterator[ViciMultiposition]:
    """The driver, opened on a real pty or TCP socket served by `device`."""
    server = PtyServer(device) if how == "pty" else TcpServer(device)
    server.start()
    cfg = ViciMultiposition.Config.model_validate(
        {"id": "valve1", "driver": "vici.multiposition", "url": server.url, "timeout_s": 0.5}
        | {"positions": 10}
        | driver_config
    )
    valve = ViciMultiposition(cfg, ViciMultiposition.make_transport(cfg))
    valve.open()
    try:
        yield valve
    finally:
        valve.close()
        server.stop()


# --- the protocol, byte by byte -------------------------------------------------------------------


def test_queries_answer_in_the_modern_format():
    valve = sim(positions=16, position=3)
    assert valve.receive(b"CP\r") == b"CP03\r"
    assert valve.receive(b"NP\r") == b"NP16\r"
    assert valve.receive(b"ID\r") == b"ID*\r"
    assert valve.receive(b"AM\r") == b"AM3\r"
    assert valve.receive(b"VR\r") == b"Jan 07 2020\r10:41:02\rUA_MAIN_EQ\r"


def test_lg1_switches_to_the_legacy_format():
    valve = sim(position=5)
    assert valve.receive(b"LG1\r") == b""
    assert valve.receive(b"CP\r") == b"Position is = 5\r"
    assert valve.receive(b"NP\r") == b"NP = 10\r"
    assert valve.receive(b"ID\r") == b"ID = not used\r"
    assert valve.receive(b"LG0\rCP\r") == b"CP05\r"


def test_commands_split_across_reads_lower_case_and_lf():
    valve = sim(position=2)
    assert valve.receive(b"C") == b""
    assert valve.receive(b"P") == b""
    assert valve.receive(b"\r") == b"CP02\r"
    assert valve.receive(b"cp\n") == b"CP02\r"
    assert valve.receive(b"CP\r\n") == b"CP02\r"


def test_with_an_id_it_obeys_only_its_prefix_and_echoes_it():
    valve = sim(device_id="1", position=4)
    assert valve.receive(b"CP\r") == b""
    assert valve.receive(b"2CP\r") == b""
    assert valve.receive(b"1CP\r") == b"1CP04\r"
    assert valve.receive(b"1VR\r") == b"1Jan 07 2020\r110:41:02\r1UA_MAIN_EQ\r"
    assert valve.receive(b"*NP\r") == b"1NP10\r"


def test_id_can_be_set_and_cleared_on_the_wire():
    valve = sim()
    assert valve.receive(b"ID5\r") == b""
    assert valve.receive(b"5ID\r") == b"5ID5\r"
    assert valve.receive(b"5ID*\r") == b""
    assert valve.receive(b"ID\r") == b"ID*\r"


def test_refused_commands():
    valve = sim()
    assert valve.receive(b"GO11\r") == b"E2 GO Invalid\r"
    assert valve.receive(b"GO0\r") == b"E2 GO Invalid\r"
    assert valve.receive(b"XYZZY\r") == b"E2 XYZ Invalid\r"
    assert valve.moves == []


def test_shared_line_only_the_addressed_valve_answers():
    one, two = sim(device_id="1", position=1), sim(device_id="2", position=7)
    line = SharedLine(one, two)
    assert line.receive(b"2CP\r") == b"2CP07\r"
    assert line.receive(b"1GO3\r") == b""
    assert [m.to_position for m in one.moves] == [3]
    assert two.moves == []


# --- motion and its timing ------------------------------------------------------------------------


def test_move_time_is_proportional_to_the_steps_and_cp_shows_the_port_in_transit():
    clock = ManualClock()
    valve = sim(clock, positions=10, position=1, move_time_s_per_step=0.15)
    commanded_at = clock.now()
    valve.receive(b"GO6\r")  # 5 steps forward, 0.75 s
    assert valve.receive(b"CP\r") == b"CP01\r"
    clock.advance(0.31)
    assert valve.receive(b"CP\r") == b"CP03\r"
    assert valve.is_moving()
    clock.advance(0.45)
    assert valve.receive(b"CP\r") == b"CP06\r"
    assert not valve.is_moving()
    (move,) = valve.moves
    assert (move.from_position, move.to_position, move.landed) == (1, 6, 6)
    assert move.duration_s == pytest.approx(0.75)
    assert move.time == commanded_at


def test_go_takes_the_shortest_route_cw_and_cc_keep_their_direction():
    clock = ManualClock()
    valve = sim(clock, positions=10, position=2, move_time_s_per_step=1.0)
    valve.receive(b"GO9\r")  # backward through 1, 10: 3 steps
    clock.advance(1.5)
    assert valve.current_position() == 1
    clock.advance(2.0)
    assert valve.current_position() == 9
    valve.receive(b"CW2\r")  # forward through 10, 1: 3 steps
    clock.advance(3.0)
    assert valve.current_position() == 2
    valve.receive(b"CC3\r")  # backward: 9 steps
    clock.advance(9.0)
    assert valve.current_position() == 3
    assert [m.duration_s for m in valve.moves] == [3.0, 3.0, 9.0]
    assert valve.receive(b"CNT\r") == b"CNT15\r"


def test_home_goes_to_position_one():
    clock = ManualClock()
    valve = sim(clock, position=4)
    valve.receive(b"HM\r")
    clock.advance(1.0)
    assert valve.receive(b"CP\r") == b"CP01\r"
    assert valve.moves[-1].to_position == 1


def test_jitter_is_seeded_and_deterministic():
    def durations(seed: int) -> list[float]:
        valve = ViciValveSimulator(ManualClock(), positions=10, seed=seed, move_time_jitter=0.1)
        for target in (5, 9, 2):
            valve.receive(f"GO{target}\r".encode())
        return [m.duration_s for m in valve.moves]

    assert durations(7) == durations(7)
    assert durations(7) != durations(8)
    first = durations(7)[0]  # GO5 from 1: 4 steps of 0.15 s, within the 10 % jitter
    assert 0.9 * 0.6 <= first <= 1.1 * 0.6


# --- faults ---------------------------------------------------------------------------------------


def test_stuck_valve_stays_and_logs_the_failed_move():
    clock = ManualClock()
    valve = sim(clock, position=2)
    valve.inject("stuck")
    valve.receive(b"GO7\r")
    clock.advance(5.0)
    assert valve.receive(b"CP\r") == b"CP02\r"
    assert valve.moves[-1].landed == 2 and valve.moves[-1].fault == "stuck"
    valve.clear()
    valve.receive(b"GO7\r")
    clock.advance(5.0)
    assert valve.receive(b"CP\r") == b"CP07\r"


def test_wrong_port_lands_elsewhere():
    clock = ManualClock()
    valve = sim(clock, position=1)
    valve.inject("wrong_port", port=3)
    valve.receive(b"GO7\r")
    clock.advance(5.0)
    assert valve.receive(b"CP\r") == b"CP03\r"
    move = valve.moves[-1]
    assert (move.to_position, move.landed, move.fault) == (7, 3, "wrong_port")


def test_silent_valve_obeys_but_does_not_answer():
    clock = ManualClock()
    valve = sim(clock, position=1)
    valve.inject("silent")
    assert valve.receive(b"CP\rGO4\r") == b""
    clock.advance(5.0)
    valve.clear("silent")
    assert valve.receive(b"CP\r") == b"CP04\r"


@pytest.mark.parametrize(
    ("fault", "params"),
    [("melted", {}), ("wrong_port", {}), ("wrong_port", {"port": 11}), ("stuck", {"port": 2})],
)
def test_bad_fault_requests_are_refused(fault, params):
    with pytest.raises(ValueError):
        sim().inject(fault, **params)


# --- plain config, for the bench ------------------------------------------------------------------


def test_built_from_a_plain_config_entry():
    clock = ManualClock()
    valve = ViciValveSimulator.from_config(
        clock,
        {"positions": 16, "device_id": "1", "move_time_s_per_step": 0.2, "legacy_replies": True,
         "position": 16, "seed": 3},
    )
    assert valve.receive(b"1CP\r") == b"1Position is = 16\r"
    assert valve.positions == 16


@pytest.mark.parametrize(
    "bad", [{"position": 11}, {"device_id": "x"}, {"positions": 1}, {"speed": 2}]
)
def test_plain_config_errors(bad):
    with pytest.raises(ValidationError):
        ViciValveSimulator.Config.model_validate(bad)


# --- the driver against the simulator, over real links --------------------------------------------


@pytest.mark.parametrize("how", ["pty", "tcp"])
def test_driver_identifies_moves_and_reads_back(how):
    clock = ManualClock()
    device = sim(clock, positions=10, position=1, move_time_s_per_step=0.15)
    with served(device, how) as valve:
        info = valve.identify()
        assert info["positions"] == 10
        assert info["valve_id"] is None
        assert info["firmware"] == ["Jan 07 2020", "10:41:02", "UA_MAIN_EQ"]
        valve.goto(6)
        assert valve.position() == 1
        clock.advance(0.31)
        assert valve.position() == 3
        clock.advance(0.5)
        assert valve.position() == 6
    assert [(m.from_position, m.to_position, m.landed) for m in device.moves] == [(1, 6, 6)]


@pytest.mark.parametrize("how", ["pty", "tcp"])
def test_driver_with_id_prefix_and_legacy_replies_on_a_shared_line(how):
    clock = ManualClock()
    one = sim(clock, device_id="1", positions=10, position=1)
    two = sim(clock, device_id="2", positions=16, position=5)
    with served(SharedLine(one, two), how, device_id_prefix="2", positions=16,
                legacy_replies=True) as valve:
        assert valve.identify()["valve_id"] == "2"
        valve.goto(12)
        assert valve.position() == 5  # the read-back also orders the GO before the clock moves
        clock.advance(10.0)
        assert valve.position() == 12
    assert two.legacy_replies is True and one.legacy_replies is False
    assert one.moves == [] and [m.to_position for m in two.moves] == [12]


@pytest.mark.parametrize("how", ["pty", "tcp"])
def test_move_timing_with_a_scaled_clock(how):
    """At speed 10 a 4 s (simulated) move of 8 steps is seen in transit, then arriving on time."""
    clock = ScaledClock(speed=10)
    device = ViciValveSimulator(
        clock, positions=16, position=1, move_time_s_per_step=0.5, move_time_jitter=0.05, seed=1
    )
    with served(device, how, positions=16) as valve:
        start = clock.monotonic()
        valve.goto(9)
        seen = [valve.position()]
        while seen[-1] != 9 and clock.monotonic() - start < 20.0:
            time.sleep(0.005)
            seen.append(valve.position())
        arrived = clock.monotonic() - start
    expected = device.moves[0].duration_s
    assert 0.95 * 4.0 <= expected <= 1.05 * 4.0
    assert seen[0] != 9
    assert seen[-1] == 9
    assert any(1 < p < 9 for p in seen), seen
    assert seen == sorted(seen), "forward route: positions only go up"
    assert expected <= arrived <= expected + 1.0  # one poll late at most, in simulated seconds


@pytest.mark.parametrize("how", ["pty", "tcp"])
def test_stuck_and_wrong_port_seen_through_cp(how):
    clock = ManualClock()
    device = sim(clock, positions=10, position=2)
    with served(device, how) as valve:
        device.inject("stuck")
        valve.goto(7)
        assert valve.position() == 2  # GO is in flight until a reply proves it was read
        clock.advance(5.0)
        assert valve.position() == 2
        device.clear()
        device.inject("wrong_port", port=4)
        valve.goto(7)
        assert valve.position() == 2
        clock.advance(5.0)
        assert valve.position() == 4
        device.clear()
        valve.goto(7)
        assert valve.position() == 4
        clock.advance(5.0)
        assert valve.position() == 7
    assert [(m.landed, m.fault) for m in device.moves] == [
        (2, "stuck"), (4, "wrong_port"), (7, None)
    ]


@pytest.mark.parametrize("how", ["pty", "tcp"])
def test_silent_valve_times_out_then_recovers(how):
    device = sim(positions=10, position=3)
    with served(device, how, timeout_s=0.3) as valve:
        device.inject("silent")
        with pytest.raises(TransportTimeout):
            valve.position()
        device.clear()
        assert valve.position() == 3


def test_driver_refuses_a_valve_configured_with_other_positions():
    device = sim(positions=6)
    with served(device, "pty", positions=10) as valve:
        with pytest.raises(DriverError, match="indexes 6 positions"):
            valve.identify()
