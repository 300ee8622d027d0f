"""The GMP343 simulator with the real driver over a real pty and a real TCP socket: its reading
depends on the pressure it was told as an uncompensated NDIR's would, it records every
compensation value it received, and it reports errors through `errs`; plus its bench model."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from drivers.base import transport_for
from drivers.transport import TransportError
from drivers.vaisala.gmp343 import GMP343
from ghgnet.clock import ManualClock
from simulators.bench import Bench
from simulators.config import BenchConfig
from simulators.polled import Response
from simulators.serve import PtyServer, TcpServer
from simulators.vaisala.gmp343 import PRESSURE_EFFECT_PER_HPA, GMP343Simulator

START = datetime(2026, 3, 1, tzinfo=UTC)
GAS = {"co2": 420.0, "h2o": 1.0}
WET = 420.0 * 0.99
SOURCES = {"pressure": "met-1:pressure", "humidity": "met-1:humidity", "temperature": "met-1:temperature"}


def make_sim(clock, pressure_hpa: float = 950.0) -> GMP343Simulator:
    return GMP343Simulator(clock, lambda t: dict(GAS), Response(noise={"co2": 0.0}), seed=2,
                           pressure_hpa=pressure_hpa)


def driver(url: str, clock, **cfg) -> GMP343:
    config = GMP343.Config.model_validate({"id": "gmp-1", "driver": "vaisala.gmp343", "url": url,
                                           "timeout_s": 0.5, **cfg})
    drv = GMP343(config, transport_for(config))
    drv.now = clock.now
    return drv


@pytest.fixture
def pty_probe():
    clock = ManualClock(START)
    sim = make_sim(clock)
    server = PtyServer(sim).start()
    yield clock, sim, server
    server.stop()


def test_compensated_with_the_stations_pressure_the_probe_reads_the_truth(pty_probe):
    clock, sim, server = pty_probe
    drv = driver(server.url, clock, compensation=SOURCES)
    drv.open()
    try:
        drv.set_environment({"pressure": 950.0, "humidity": 45.0, "temperature": 20.0})
        (r,) = drv.poll().readings
    finally:
        drv.close()
    assert sim.switches["pressure"] and sim.switches["humidity"] and not sim.echo
    assert [(c, v) for _, c, v in sim.pushes] == [("p", 950.0), ("rh", 45.0)]  # what the station sent
    assert r.values["co2"] == pytest.approx(WET, abs=0.06)
    # the raw uncompensated channel still shows the pressure effect
    assert r.values["co2_uncompensated"] == pytest.approx(WET * (1 + PRESSURE_EFFECT_PER_HPA * (950 - 1013.25)), abs=0.1)
    assert r.values["h2o"] > 0


def test_without_compensation_the_reading_is_off_by_the_pressure_effect(pty_probe):
    clock, sim, server = pty_probe
    drv = driver(server.url, clock)  # no sources: pc off, nothing pushed
    drv.open()
    try:
        (r,) = drv.poll().readings
    finally:
        drv.close()
    assert sim.pushes == [] and not sim.switches["pressure"]
    expected = WET * (1 + PRESSURE_EFFECT_PER_HPA * (950.0 - 1013.25))  # about 9.5 % low at 950 hPa
    assert r.values["co2"] == pytest.approx(expected, abs=0.06)
    assert WET - r.values["co2"] > 30


def test_a_stale_compensation_value_biases_the_reading_until_the_station_pushes_again(pty_probe):
    clock, sim, server = pty_probe
    drv = driver(server.url, clock, compensation=SOURCES)
    drv.open()
    try:
        drv.set_environment({"pressure": 1013.0, "humidity": 45.0, "temperature": 20.0})
        (off,) = drv.poll().readings
        drv.set_environment({"pressure": 950.0, "humidity": 45.0, "temperature": 20.0})
        (on,) = drv.poll().readings
    finally:
        drv.close()
    assert off.values["co2"] < WET - 30 and on.values["co2"] == pytest.approx(WET, abs=0.06)
    assert [v for _, c, v in sim.pushes if c == "p"] == [1013.0, 950.0]


def test_errs_fault_garbage_and_silence_over_tcp():
    clock = ManualClock(START)
    sim = make_sim(clock)
    server = TcpServer(sim).start()
    drv = driver(server.url, clock)
    try:
        drv.open()
        sim.inject("errs", message="Error: IR source intensity too low")
        (r,) = drv.poll().readings
        assert r.status_flags == ("probe_error",) and drv.last_errors == ["Error: IR source intensity too low"]
        assert drv.poll().readings[0].status_ok
        sim.inject("garbage")
        result = drv.poll()
        assert len(result.readings) == 1 and result.problems  # noise before the errs reply, named
        sim.inject("silent")
        with pytest.raises(TransportError):
            drv.poll()
    finally:
        drv.close()
        server.stop()


def test_commands_answer_as_the_probe_does():
    sim = make_sim(ManualClock(START))
    assert sim.receive(b"vers\r\n") == b"vers\r\nGMP343 - Version STD 2.0\r\n>"  # echo on by default
    assert sim.receive(b"echo off\r\n") == b"echo off\r\nECHO      : OFF\r\n>"
    assert sim.receive(b"p\r\n") == b"P         : 1013.25\r\n>"
    assert sim.receive(b"form CO2 BOGUS\r\n") == b"Invalid format\r\n>"
    assert sim.receive(b"frobnicate\r\n") == b"Unknown command\r\n>"


def test_bench_model_and_its_control_port():
    cfg = BenchConfig.model_validate({"instruments": [{
        "id": "gmp-1", "model": "vaisala.gmp343", "pressure_hpa": 990.0, "gas": {"co2": 415.0, "h2o": 0.0},
        "noise": {"co2": 0.0}}]})
    clock = ManualClock(START)
    with Bench(cfg, clock) as bench:
        drv = driver(bench.endpoints()["instruments"]["gmp-1"]["url"], clock, compensation={"pressure": "met-1:pressure"})
        drv.open()
        try:
            drv.set_environment({"pressure": 990.0})
            (r,) = drv.poll().readings
        finally:
            drv.close()
        stats = bench.handle({"cmd": "stats", "device": "gmp-1"})["stats"]["gmp-1"]
    assert r.values["co2"] == pytest.approx(415.0, abs=0.06)
    assert stats["compensation"]["pressure"] == 990.0 and stats["pushes"][0]["command"] == "p"
