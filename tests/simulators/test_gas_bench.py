"""The gas bench: inlet series, cylinders, the line's flush, the analyzer's gain/offset/drift, the
truth ledger and its control command, valve faults changing the gas, Modbus sensors following the
line, and the real drivers moving the valve and reading the analyzer over real sockets."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from drivers.base import transport_for
from drivers.modbus.device import ModbusDevice
from drivers.picarro.g2401 import G2401
from drivers.vici.multiposition import ViciMultiposition
from ghgnet.clock import ManualClock
from ghgnet.config import ConfigError
from simulators.bench import Bench
from simulators.config import BenchConfig, load_bench_config
from simulators.gas import AmbientInlet, AmbientModel

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "configs" / "bench.example.toml"
START = datetime(2026, 3, 1, tzinfo=UTC)
CYLINDERS = {
    4: ("CAL-1", 380.0, 1800.0, 80.0), 5: ("CAL-2", 420.0, 1950.0, 150.0),
    6: ("CAL-3", 460.0, 2150.0, 300.0), 7: ("CAL-4", 500.0, 2400.0, 500.0),
    8: ("TGT-1", 430.0, 2000.0, 200.0), 9: ("TGT-2", 410.0, 1900.0, 120.0),
}


def example(**changes: Any) -> BenchConfig:
    """The example bench on free ports, no pty links; `changes` patch top-level tables."""
    data = load_bench_config(EXAMPLE).model_dump(exclude_unset=True)
    for inst in data["instruments"]:
        inst.update(port=0, pty_link=None)
    data["valve"].update(port=0, pty_link=None)
    for m in data["modbus"]:
        m.update(port=0)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key].update(value)
        else:
            data[key] = value
    return BenchConfig.model_validate(data)


def quiet(cfg: BenchConfig) -> BenchConfig:
    """The same bench with a noise-free analyzer."""
    data = cfg.model_dump(exclude_unset=True)
    data["instruments"][0]["noise"] = {"co2": 0.0, "ch4": 0.0, "co": 0.0, "h2o": 0.0}
    return BenchConfig.model_validate(data)


def go(bench: Bench, port: int) -> datetime:
    """Move the valve as the driver would (GOnn), let it land; the landing time."""
    assert bench.valve is not None
    bench.valve.receive(f"GO{port:02d}\r".encode())
    move = bench.valve.moves[-1]
    return move.time + timedelta(seconds=move.duration_s)


def truth_of(port: int) -> dict[str, float]:
    _, co2, ch4, co = CYLINDERS[port]
    return {"co2": co2, "ch4": ch4, "co": co, "n2o": 0.0, "h2o": 0.0}


# ----------------------------------------------------------------------------- the inlet series


def ambient(seed: int = 1) -> AmbientModel:
    cfg = load_bench_config(EXAMPLE).gas
    assert cfg is not None
    a = cfg.ambient
    return AmbientModel(
        base={"co2": a.co2, "ch4": a.ch4, "co": a.co, "h2o": a.h2o},
        diurnal_amplitude=dict(a.diurnal_amplitude), peak_hour_utc=a.peak_hour_utc,
        synoptic_std=dict(a.synoptic_std), synoptic_timescale_h=a.synoptic_timescale_h,
        variability_std=dict(a.variability_std), variability_timescale_s=a.variability_timescale_s,
        seed=seed,
    )


def test_inlet_series_is_a_function_of_absolute_time_and_seed():
    times = [START + timedelta(seconds=137.3 * i) for i in range(200)]
    first = [AmbientInlet("low", 10.0, ambient())(t) for t in times]
    again = AmbientInlet("low", 10.0, ambient())
    assert [again(t) for t in reversed(times)] == list(reversed(first))  # order of asking is irrelevant
    other = AmbientInlet("low", 10.0, ambient(seed=2))
    assert [other(t)["co2"] for t in times] != [x["co2"] for x in first]
    # two benches whose clocks start an hour apart agree on the inlet at the same instant
    early, late = ManualClock(START), ManualClock(START + timedelta(hours=1))
    a, b = Bench(example(), early), Bench(example(), late)
    early.advance(7200)
    late.advance(3600)
    t = START + timedelta(hours=2)
    assert a.line is not None and b.line is not None
    assert a.line.source_at(3, t) == b.line.source_at(3, t)
    assert a.line(t) == b.line(t)


def test_inlets_are_smooth_and_higher_inlets_are_smoother_with_a_smaller_diurnal_cycle():
    model = ambient()
    low, mid, top = (AmbientInlet(n, h, model) for n, h in (("low", 10.0), ("mid", 50.0), ("top", 100.0)))
    seconds = range(0, 6 * 3600, 1)
    series = {inlet.name: [inlet(START + timedelta(seconds=s))["co2"] for s in seconds] for inlet in (low, mid, top)}
    steps = {n: [abs(b - a) for a, b in zip(v, v[1:])] for n, v in series.items()}
    # smooth: no jumps from one second to the next, even at the ground
    assert max(steps["low"]) < 0.1
    # smoother higher up: the short-term variability shrinks with height
    minute_changes = {n: statistics.pstdev([b - a for a, b in zip(v[::60], v[60::60])]) for n, v in series.items()}
    assert minute_changes["top"] < minute_changes["mid"] < minute_changes["low"]
    # the diurnal amplitude shrinks with height: 10 ppm at 10 m, (10/100)^0.7 of it at 100 m
    night = START.replace(hour=21)  # peak_hour_utc
    assert low.diurnal(night)["co2"] == pytest.approx(10.0)
    assert top.diurnal(night)["co2"] == pytest.approx(10.0 * 0.1 ** 0.7)
    assert mid.diurnal(night)["co2"] == pytest.approx(10.0 * 0.2 ** 0.7)


def test_co2_near_the_ground_is_higher_at_night_than_in_the_afternoon():
    low = AmbientInlet("low", 10.0, ambient())
    days = [START + timedelta(days=d) for d in range(10)]
    night = statistics.mean(low(d.replace(hour=21))["co2"] for d in days)
    afternoon = statistics.mean(low(d.replace(hour=9))["co2"] for d in days)
    assert night - afternoon > 10.0  # 2 x 10 ppm of diurnal cycle, synoptic change averaged out
    assert low.diurnal(days[0].replace(hour=9))["co2"] == pytest.approx(-10.0)


def test_synoptic_change_moves_the_level_over_days_and_is_shared_by_all_heights():
    model = ambient()
    low, top = AmbientInlet("low", 10.0, model), AmbientInlet("top", 100.0, model)
    # at the hour where the diurnal cosine is zero, what is left is synoptic + variability
    daily = [START + timedelta(days=d, hours=3) for d in range(30)]
    low_levels = [low(t)["co2"] - 420.0 for t in daily]
    top_levels = [top(t)["co2"] - 420.0 for t in daily]
    assert max(low_levels) - min(low_levels) > 3.0  # the level wanders by several ppm over a month
    assert statistics.correlation(low_levels, top_levels) > 0.9  # the same air mass at both heights


# ----------------------------------------------------------------------------- the line and the analyzer


def test_a_switch_approaches_the_cylinder_with_the_configured_time_constant():
    clock = ManualClock(START)
    bench = Bench(example(), clock)
    assert bench.line is not None
    clock.advance(600)
    landed = go(bench, 6)  # CAL-3, tau 20 s
    before = bench.line(landed - timedelta(microseconds=1))
    target = truth_of(6)
    for taus in (1, 2, 3):
        t = landed + timedelta(seconds=20.0 * taus)
        cell = bench.line(t)
        for q in ("co2", "ch4", "co"):
            assert (cell[q] - target[q]) / (before[q] - target[q]) == pytest.approx(math.exp(-taus), rel=1e-6)
    # back to an inlet: tau 30 s, towards the (moving) inlet value
    clock.advance(600)
    cell0 = bench.line(clock.now())
    landed = go(bench, 3)
    t = landed + timedelta(seconds=30.0)
    src = bench.line.source_at(3, t)
    assert (bench.line(t)["co2"] - src["co2"]) / (cell0["co2"] - src["co2"]) == pytest.approx(math.exp(-1), rel=1e-3)


def test_analyzer_records_follow_the_flush_e_folding_against_the_clock():
    clock = ManualClock(START)
    bench = Bench(quiet(example()), clock)
    sim = bench.devices["picarro-1"]
    clock.advance(300)
    seen_before = sim.ledger[-1].truth["co2"]
    landed = go(bench, 7)  # CAL-4, 500 ppm
    clock.advance(300)
    after = [e for e in sim.ledger if e.time > landed]
    assert after
    for e in after:
        dt = (e.time - landed).total_seconds()
        expected = 500.0 + (bench.line(landed)["co2"] - 500.0) * math.exp(-dt / 20.0)
        assert e.truth["co2"] == pytest.approx(expected, abs=1e-6)
    # the first record after the switch is still close to the inlet's value, the last one flushed
    assert abs(after[0].truth["co2"] - seen_before) < abs(after[0].truth["co2"] - 500.0)
    assert after[-1].truth["co2"] == pytest.approx(500.0, abs=1e-3)


def test_gain_offset_and_drift_are_applied_as_configured():
    clock = ManualClock(START)
    bench = Bench(quiet(example()), clock)
    sim = bench.devices["picarro-1"]
    go(bench, 8)  # TGT-1
    clock.advance(3 * 86400)
    checked = 0
    for e in sim.ledger[-500:]:
        days = (e.time - START).total_seconds() / 86400.0
        assert e.truth["co2"] == pytest.approx(430.0, abs=1e-9)
        assert e.values["CO2_dry"] == pytest.approx(1.02 * 430.0 - 3.0 + 0.05 * days, abs=6e-4)
        assert e.values["CH4_dry"] * 1000 == pytest.approx(1.02 * 2000.0 + 15.0 + 0.5 * days, abs=0.6)
        assert e.values["CO"] * 1000 == pytest.approx(200.0, abs=0.6)  # gain 1, no offset (h2o 0: wet = dry)
        checked += 1
    assert checked == 500
    assert 3.0 * 0.05 == pytest.approx(sim.ledger[-1].values["CO2_dry"] - (1.02 * 430.0 - 3.0), abs=1e-3)


def test_stuck_valve_keeps_the_old_gas_and_wrong_port_gives_another():
    clock = ManualClock(START)
    bench = Bench(example(), clock)
    assert bench.valve is not None and bench.line is not None
    sim = bench.devices["picarro-1"]
    reply = bench.handle({"device": "valve-1", "fault": "stuck"})
    assert reply == {"ok": True}
    go(bench, 4)
    clock.advance(300)
    assert bench.valve.current_position() == 1
    last = sim.ledger[-1]
    assert last.truth == pytest.approx(bench.line.source_at(1, last.time), abs=1e-9)  # still the top inlet
    assert bench.handle({"device": "valve-1", "fault": "wrong_port", "port": 3}) == {"ok": True}
    assert bench.handle({"device": "valve-1", "cmd": "clear_faults"}) == {"ok": True}
    bench.handle({"device": "valve-1", "fault": "wrong_port", "port": 3})
    go(bench, 4)
    clock.advance(300)
    last = sim.ledger[-1]
    assert bench.valve.current_position() == 3
    # the low inlet (300 s = 10 time constants after leaving the top one: within 5e-5 of the step)
    assert last.truth == pytest.approx(bench.line.source_at(3, last.time), abs=5e-3)
    bench.handle({"device": "valve-1", "cmd": "clear_faults"})
    go(bench, 4)
    clock.advance(300)
    assert sim.ledger[-1].truth == pytest.approx(truth_of(4), abs=1e-3)
    moves = bench.handle({"cmd": "ledger", "device": "valve-1"})["ledger"]
    assert [(m["to"], m["landed"], m["fault"]) for m in moves] == [(4, 1, "stuck"), (4, 3, "wrong_port"), (4, 4, None)]


def test_a_closed_port_holds_the_gas_in_the_cell():
    clock = ManualClock(START)
    bench = Bench(example(), clock)
    assert bench.line is not None
    landed = go(bench, 5)
    clock.advance(40)
    closed = go(bench, 10)  # unassigned: no flow from the moment the rotor lands there
    held = bench.line(closed)
    clock.advance(600)
    assert bench.line(clock.now()) == pytest.approx(held, abs=1e-9)
    assert bench.line(clock.now()) != pytest.approx(truth_of(5), abs=1e-3)  # 40 s of 20 s: not flushed yet
    assert landed < clock.now()


def test_ledger_truth_matches_each_cylinder_after_flushing():
    clock = ManualClock(START)
    bench = Bench(example(), clock)
    sim = bench.devices["picarro-1"]
    for port in CYLINDERS:
        landed = go(bench, port)
        clock.advance(300)  # the station's cylinder flush: 15 time constants
        flushed = [e for e in sim.ledger if e.time >= landed + timedelta(seconds=280)]
        assert flushed and all(e.truth == pytest.approx(truth_of(port), abs=1e-3) for e in flushed)
        rows = sim.ledger_rows(flushed[0].seq)
        assert rows[0]["truth"] == pytest.approx(flushed[0].truth)


def test_truth_command_returns_per_minute_means_of_the_records_of_each_minute():
    clock = ManualClock(START)
    bench = Bench(example(), clock).start()
    try:
        clock.advance(60)
        go(bench, 4)
        clock.advance(330)
        host, port = bench.endpoints()["control"].split(":")
        with socket.create_connection((host, int(port)), timeout=5) as conn:
            stream = conn.makefile("rwb")
            stream.write(json.dumps({"cmd": "truth", "device": "picarro-1", "from": "2026-03-01T00:00:00Z",
                                     "to": "2026-03-01T00:06:00Z"}).encode() + b"\n")
            stream.flush()
            reply = json.loads(stream.readline())
            stream.write(json.dumps({"cmd": "truth", "device": "valve-1", "from": "2026-03-01", "to": "2026-03-02"}).encode() + b"\n")
            stream.flush()
            refused = json.loads(stream.readline())
    finally:
        bench.stop()
    assert reply["ok"] is True
    minutes = reply["truth"]
    assert [m["time"] for m in minutes] == [f"2026-03-01T00:0{i}:00.000Z" for i in range(6)]
    ledger = bench.devices["picarro-1"].ledger
    for m in minutes:
        start = datetime.fromisoformat(m["time"].replace("Z", "+00:00"))
        inside = [e for e in ledger if start <= e.time < start + timedelta(minutes=1)]
        assert m["n"] == len(inside) > 15
        for q in ("co2", "ch4", "co", "h2o"):
            assert m[q] == pytest.approx(statistics.fmean(e.truth[q] for e in inside), abs=1e-9)
    assert minutes[-1]["co2"] == pytest.approx(380.0, abs=1e-3)  # flushed on CAL-1 by then
    assert minutes[0]["co2"] > 395.0  # ambient before the switch at 00:01:00
    assert minutes[0]["h2o"] > 0.5 and minutes[-1]["h2o"] < 1e-3
    assert refused["ok"] is False and "picarro-1" in refused["error"]


def test_without_a_valve_the_analyzer_measures_its_diurnal_gas_as_before():
    cfg = BenchConfig.model_validate({"instruments": [{"id": "p", "model": "picarro.g2401", "seed": 3,
                                                       "gas": {"co2": 415.0}}]})
    clock = ManualClock(START)
    bench = Bench(cfg, clock)
    assert bench.valve is None and bench.line is None
    clock.advance(60)
    entries = bench.devices["p"].ledger
    assert entries and all(e.truth["co2"] == 415.0 for e in entries)
    assert bench.truth("p", START, START + timedelta(minutes=1))[0]["co2"] == pytest.approx(415.0)


# ----------------------------------------------------------------------------- config


def test_example_bench_has_the_port_map_the_station_uses():
    cfg = load_bench_config(EXAMPLE)
    assert cfg.valve is not None and cfg.gas is not None
    assert (cfg.valve.id, cfg.valve.model, cfg.valve.port, cfg.valve.positions, cfg.valve.device_id) == (
        "valve-1", "vici.multiposition", 51030, 10, None)
    assert {i.port: (i.name, i.height_m) for i in cfg.gas.inlets} == {
        1: ("top", 100.0), 2: ("mid", 50.0), 3: ("low", 10.0)}
    assert {c.port: (c.name, c.co2, c.ch4, c.co) for c in cfg.gas.cylinders} == CYLINDERS
    assert {c.name: c.role for c in cfg.gas.cylinders}["TGT-2"] == "target"
    (inst,) = cfg.instruments
    assert (inst.id, inst.port) == ("picarro-1", 51020)
    assert inst.response.gain == {"co2": 1.02, "ch4": 1.02, "co": 1.0}
    assert inst.response.offset == {"co2": -3.0, "ch4": 15.0, "co": 0.0}
    assert inst.response.drift_per_day == {"co2": 0.05, "ch4": 0.5, "co": 0.0}
    assert (cfg.gas.cylinder_flush_tau_s, cfg.gas.inlet_flush_tau_s) == (20.0, 30.0)
    (flow,) = cfg.modbus
    assert (flow.id, flow.port, [p.name for p in flow.points]) == ("flow-1", 51040, ["flow", "pressure", "temperature"])


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ("del gas", "[valve] and [gas] go together"),
        ("port 11", "beyond the valve's 10 positions"),
        ("own gas", "set their own gas table"),
        ("twice", "port(s) given twice"),
    ],
)
def test_bench_config_errors_name_the_problem(tmp_path: Path, patch: str, message: str):
    text = EXAMPLE.read_text()
    if patch == "del gas":
        text = text.split("[gas]\n")[0]
    elif patch == "port 11":
        text = text.replace("name = \"TGT-2\"\nport = 9", "name = \"TGT-2\"\nport = 11")
    elif patch == "own gas":
        text = text.replace("[instruments.noise]", "[instruments.gas]\nco2 = 400.0\n\n[instruments.noise]")
    else:
        text = text.replace("name = \"TGT-2\"\nport = 9", "name = \"TGT-2\"\nport = 8")
    path = tmp_path / "bench.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_bench_config(path)
    assert len(info.value.lines) == 1 and info.value.lines[0].startswith(f"{path}: ")
    assert message in info.value.lines[0]


# ----------------------------------------------------------------------------- real drivers, real sockets


@contextmanager
def served_bench(clock: ManualClock) -> Iterator[Bench]:
    bench = Bench(quiet(example()), clock).start()
    try:
        yield bench
    finally:
        bench.stop()


def test_vici_driver_moving_the_bench_valve_changes_what_the_picarro_driver_reads():
    clock = ManualClock(START)
    with served_bench(clock) as bench:
        ends = bench.endpoints()["instruments"]
        assert ends["valve-1"]["driver"] == "vici.multiposition"
        vcfg = ViciMultiposition.Config.model_validate(
            {"id": "valve-1", "driver": "vici.multiposition", "url": ends["valve-1"]["tcp"], "positions": 10,
             "timeout_s": 1.0})
        pcfg = G2401.Config(id="picarro-1", url=ends["picarro-1"]["tcp"], timeout_s=1.0)
        valve = ViciMultiposition(vcfg, ViciMultiposition.make_transport(vcfg))
        analyzer = G2401(pcfg, transport_for(pcfg))
        valve.open()
        analyzer.open()
        try:
            clock.advance(120)
            ambient = analyzer.poll().readings
            valve.goto(5)  # CAL-2: 420 ppm true, read as 1.02 * 420 - 3 (+ drift)
            assert valve.position() == 1  # the read-back orders the GO before the clock moves
            clock.advance(2)
            assert valve.position() == 5
            clock.advance(300)
            analyzer.poll()  # the flush
            clock.advance(60)
            cal = analyzer.poll().readings
        finally:
            valve.close()
            analyzer.close()
    assert ambient and cal
    assert bench.line is not None
    for r in ambient:  # the top inlet, as this analyzer reads it
        top = bench.line.source_at(1, r.time)["co2"]
        assert r.values["co2_dry"] == pytest.approx(1.02 * top - 3.0, abs=2e-3)
    days = 482 / 86400
    for r in cal:
        assert r.values["co2_dry"] == pytest.approx(1.02 * 420.0 - 3.0 + 0.05 * days, abs=2e-3)
        assert r.values["ch4_dry"] == pytest.approx(1.02 * 1950.0 + 15.0, abs=1.0)


def test_modbus_flow_sensor_follows_the_line_and_the_no_flow_fault():
    clock = ManualClock(START)
    with served_bench(clock) as bench:
        assert bench.line is not None
        url = bench.endpoints()["instruments"]["flow-1"]["url"]
        cfg_points = [p.model_dump() for p in bench.config.modbus[0].points]
        mcfg = ModbusDevice.Config.model_validate(
            {"id": "flow-1", "driver": "modbus.device", "url": url, "points": cfg_points, "timeout_s": 1.0})
        sensor = ModbusDevice(mcfg, ModbusDevice.make_transport(mcfg))
        sensor.open()
        try:
            flowing = sensor.read().values
            assert flowing["flow"] == pytest.approx(250.0, abs=5.0)
            assert flowing["pressure"] == pytest.approx(1000.0, abs=3.0)
            assert flowing["temperature"] == pytest.approx(30.0)
            go(bench, 4)
            clock.advance(30)
            assert bench.handle({"device": "flow-1", "fault": "no_flow"}) == {"ok": True}
            frozen = bench.line(clock.now())
            clock.advance(300)
            blocked = sensor.read().values
            assert blocked["flow"] == 0.0 and blocked["pressure"] == pytest.approx(150.0)
            assert bench.line(clock.now()) == pytest.approx(frozen, abs=1e-9)  # no flow: cell unchanged
            assert bench.handle({"device": "flow-1", "cmd": "clear_faults"}) == {"ok": True}
            clock.advance(300)
            assert sensor.read().values["flow"] == pytest.approx(250.0, abs=5.0)
            assert bench.line(clock.now()) == pytest.approx(truth_of(4), abs=1e-3)
            go(bench, 10)  # a closed port: no flow either
            clock.advance(5)
            assert sensor.read().values["flow"] == 0.0
            assert bench.stats("flow-1")["flow"] == 0.0
        finally:
            sensor.close()


def test_control_port_takes_valve_and_modbus_faults_and_endpoints_list_every_instrument():
    clock = ManualClock(START)
    with served_bench(clock) as bench:
        assert bench.valve is not None
        host, port = bench.endpoints()["control"].split(":")
        with socket.create_connection((host, int(port)), timeout=5) as conn:
            stream = conn.makefile("rwb")

            def request(obj: dict) -> dict:
                stream.write(json.dumps(obj).encode() + b"\n")
                stream.flush()
                return json.loads(stream.readline())

            instruments = request({"cmd": "endpoints"})["endpoints"]["instruments"]
            assert {k: v["driver"] for k, v in instruments.items()} == {
                "picarro-1": "picarro.g2401", "valve-1": "vici.multiposition", "flow-1": "modbus.device"}
            assert instruments["valve-1"]["tcp"].startswith("socket://127.0.0.1:")
            assert instruments["flow-1"]["url"].startswith("tcp://127.0.0.1:")
            refused = request({"device": "valve-1", "fault": "wrong_port"})
            assert refused["ok"] is False and "port" in refused["error"]
            assert request({"device": "valve-1", "fault": "wrong_port", "port": 3}) == {"ok": True}
            go(bench, 7)
            clock.advance(5)
            assert bench.valve.current_position() == 3
            assert request({"device": "valve-1", "cmd": "clear_faults"}) == {"ok": True}
            go(bench, 7)
            clock.advance(5)
            assert request({"cmd": "stats", "device": "valve-1"})["stats"]["valve-1"]["position"] == 7
            assert request({"device": "flow-1", "fault": "power_off"}) == {"ok": True}
            assert bench.modbus["flow-1"].running is False
            assert request({"device": "flow-1", "cmd": "clear_faults"}) == {"ok": True}
            assert bench.modbus["flow-1"].running is True


def test_control_server_refuses_bad_valve_and_modbus_faults():
    clock = ManualClock(START)
    bench = Bench(example(), clock)
    with pytest.raises(ValueError, match="wrong_port needs port"):
        bench.handle({"device": "valve-1", "fault": "wrong_port"})
    with pytest.raises(ValueError, match="no_flow"):
        bench.handle({"device": "flow-1", "fault": "meteor"})
    with pytest.raises(ValueError, match="valve-1"):
        bench.handle({"device": "nope", "fault": "stuck"})
    stats = bench.handle({"cmd": "stats"})["stats"]
    assert set(stats) == {"picarro-1", "valve-1", "flow-1"}
    assert stats["valve-1"]["position"] == 1 and stats["flow-1"]["running"] is False


def test_station_sim_serves_the_example_bench_with_its_valve(tmp_path: Path):
    text = EXAMPLE.read_text()
    for port in ("51020", "51030", "51040"):
        text = text.replace(f"port = {port}", "port = 0")
    text = text.replace("../run/", "")
    path = tmp_path / "bench.toml"
    path.write_text(text)
    exe = Path(sys.executable).parent / "station-sim"
    proc = subprocess.Popen([str(exe), "run", "--config", str(path), "--speed", "60",
                             "--start", "2026-03-01T00:00:00Z"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    valve = None
    try:
        endpoints = json.loads(proc.stdout.readline())
        inst = endpoints["instruments"]
        assert inst["valve-1"]["driver"] == "vici.multiposition" and os.path.exists(inst["valve-1"]["pty"])
        assert inst["flow-1"]["driver"] == "modbus.device"
        vcfg = ViciMultiposition.Config.model_validate(
            {"id": "valve-1", "driver": "vici.multiposition", "url": inst["valve-1"]["pty_link"], "positions": 10,
             "timeout_s": 2.0})
        valve = ViciMultiposition(vcfg, ViciMultiposition.make_transport(vcfg))
        valve.open()
        valve.goto(9)
        assert valve.position() in range(1, 11)  # the read-back also makes sure GO09 has arrived
        host, port = endpoints["control"].split(":")
        with socket.create_connection((host, int(port)), timeout=5) as conn:
            stream = conn.makefile("rwb")
            stream.write(b'{"cmd": "stats", "device": "valve-1"}\n')
            stream.flush()
            stats = json.loads(stream.readline())["stats"]["valve-1"]
        assert stats["moves"] == 1
        valve.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if valve is not None:
            valve.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
