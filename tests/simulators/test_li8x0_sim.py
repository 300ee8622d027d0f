"""The LI-830/LI-850 simulator with the real driver over a real TCP socket and a real pty, polled
and streamed, with faults injected; and its bench model through the Bench and its control port."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from drivers.base import transport_for
from drivers.licor.li8x0 import LI830, LI850
from drivers.transport import TransportError
from ghgnet.clock import ManualClock
from simulators.bench import Bench
from simulators.config import BenchConfig
from simulators.licor.li8x0 import Li8x0Simulator, StreamingPtyServer, StreamingTcpServer
from simulators.polled import Response

START = datetime(2026, 3, 1, tzinfo=UTC)
GAS = {"co2": 420.0, "ch4": 2000.0, "co": 150.0, "h2o": 1.5}


def make_sim(clock, **kw) -> Li8x0Simulator:
    return Li8x0Simulator(clock, lambda t: dict(GAS), Response(noise={"co2": 0.0, "h2o": 0.0}), seed=3, **kw)


def driver(cls, url: str, clock, **cfg):
    config = cls.Config.model_validate({"id": "li-1", "driver": cls.name, "url": url, "timeout_s": 0.5, **cfg})
    drv = cls(config, transport_for(config))
    drv.now = clock.now
    return drv


@pytest.fixture
def tcp_li850():
    clock = ManualClock(START)
    sim = make_sim(clock)
    server = StreamingTcpServer(sim).start()
    yield clock, sim, server
    server.stop()


def test_polled_over_tcp_gives_the_wet_co2_of_the_humid_gas_and_its_water(tcp_li850):
    clock, sim, server = tcp_li850
    drv = driver(LI850, server.url, clock)
    drv.open()
    try:
        result = drv.poll()
    finally:
        drv.close()
    (r,) = result.readings
    assert r.values["co2"] == pytest.approx(420.0 * (1 - 0.015), abs=1e-4)  # diluted by 1.5 % water
    assert r.values["h2o"] == pytest.approx(1.5, abs=1e-6)
    assert r.status_ok and result.problems == []
    assert sim.outrate_s == 0 and sim.ledger[-1].truth == {"co2": 420.0, "h2o": 1.5}


def test_streamed_over_tcp_every_record_arrives_once(tcp_li850):
    clock, sim, server = tcp_li850
    drv = driver(LI850, server.url, clock, mode="stream", outrate_s=1, timeout_s=0.3)
    drv.open()
    try:
        assert sim.outrate_s == 1
        got = []
        for _ in range(5):
            clock.advance(3)
            got += drv.poll().readings
    finally:
        drv.close()
    assert len(got) == 15 == len(sim.ledger)
    assert [r.time for r in got] == sorted(r.time for r in got)


def test_garbage_silence_malformed_and_error_faults(tcp_li850):
    clock, sim, server = tcp_li850
    drv = driver(LI850, server.url, clock)
    drv.open()
    try:
        sim.inject("garbage")
        result = drv.poll()
        assert len(result.readings) == 1 and "not well-formed XML" in result.problems[0]
        sim.inject("malformed")
        with pytest.raises(TransportError, match="instead: .*not well-formed XML"):  # the cut record, named
            drv.poll()
        sim.inject("silent")
        with pytest.raises(TransportError):
            drv.poll()
        sim.inject("error", message="source failure")
        sim.inject("low_voltage", count=1)
        (r,) = drv.poll().readings
        assert set(r.status_flags) == {"analyzer_error", "low_input_voltage"} and drv.last_error == "source failure"
        sim.inject("cell_temp", duration_s=10, offset_c=-4)
        assert drv.poll().readings[0].status_flags == ("cell_temp_unstable",)
        clock.advance(11)
        assert drv.poll().readings[0].status_ok
    finally:
        drv.close()


def test_an_unparsable_command_is_refused_with_ack_false():
    sim = make_sim(ManualClock(START))
    assert sim.receive(b"<li850><cfg><outrate>x</outrate></cfg></li850>\n") == b"<li850><ack>false</ack></li850>\n"
    assert sim.receive(b"<li850><cfg>\n") == b"<li850><ack>false</ack></li850>\n"
    assert sim.receive(b"<LI850><CFG><OUTRATE>0</OUTRATE></CFG></LI850>\n") == b"<li850><ack>true</ack></li850>\n"


def test_li830_over_a_pty_measures_dried_gas():
    clock = ManualClock(START)
    sim = make_sim(clock, model="licor.li830")
    server = StreamingPtyServer(sim).start()
    drv = driver(LI830, server.url, clock)
    try:
        drv.open()
        (r,) = drv.poll().readings
    finally:
        drv.close()
        server.stop()
    assert r.values["co2_dry"] == pytest.approx(420.0, abs=1e-4) and "h2o" not in r.values


def test_the_wrong_model_on_the_line_fails_the_open_by_name():
    clock = ManualClock(START)
    sim = make_sim(clock, model="licor.li830")  # answers only <li830>
    server = StreamingTcpServer(sim).start()
    drv = driver(LI850, server.url, clock)
    try:
        with pytest.raises(TransportError, match=r"root <li830>, expected <li850>"):
            drv.open()
        assert not drv.transport.is_open
    finally:
        server.stop()


def test_bench_serves_it_with_its_gas_truth_stats_and_faults():
    cfg = BenchConfig.model_validate({"instruments": [{
        "id": "li850-1", "model": "licor.li850", "seed": 1,
        "gas": {"co2": 430.0, "h2o": 1.0}, "noise": {"co2": 0.0, "h2o": 0.0},
        "response": {"gain": {"co2": 1.01}}}]})
    clock = ManualClock(START)
    with Bench(cfg, clock) as bench:
        url = bench.endpoints()["instruments"]["li850-1"]["url"]
        drv = driver(LI850, url, clock)
        drv.open()
        try:
            (r,) = drv.poll().readings
            bench.handle({"device": "li850-1", "fault": "error"})
            assert drv.poll().readings[0].status_flags == ("analyzer_error",)
        finally:
            drv.close()
        assert r.values["co2"] == pytest.approx(430.0 * 1.01 * 0.99, abs=1e-3)
        stats = bench.handle({"cmd": "stats", "device": "li850-1"})["stats"]["li850-1"]
        assert stats["produced"] == 2 and stats["commands"] == 3
        truth = bench.truth("li850-1", START, datetime(2027, 1, 1, tzinfo=UTC))
        assert truth[0]["co2"] == 430.0 and truth[0]["n"] == 2


def test_bench_served_li850_streams_to_a_stream_mode_driver():
    cfg = BenchConfig.model_validate({"instruments": [{"id": "li850-1", "model": "licor.li850",
                                                        "noise": {"co2": 0.0, "h2o": 0.0}}]})
    clock = ManualClock(START)
    with Bench(cfg, clock) as bench:
        drv = driver(LI850, bench.endpoints()["instruments"]["li850-1"]["url"], clock, mode="stream",
                     outrate_s=2, timeout_s=0.3)
        drv.open()
        try:
            clock.advance(10)
            readings = drv.poll().readings
        finally:
            drv.close()
        assert bench.stats("li850-1")["outrate_s"] == 2
    assert len(readings) == 5 and [r.time for r in readings][-1] == clock.now()
