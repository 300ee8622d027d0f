"""The simulated generic.line analyzer (simulators/generic/line.py), driven by the same definition
files as the driver: poll mode over a real pty, stream mode over a real TCP socket, with faults."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from drivers.generic.line import GenericLine, GenericLineConfig
from drivers.transport import SerialTransport, SocketTransport, TransportTimeout
from ghgnet.clock import ScaledClock
from simulators.bench import Bench
from simulators.config import BenchConfig
from simulators.generic.line import GenericLineInstrument, GenericLinePollSimulator
from simulators.serve import PtyServer

DEFS = Path(__file__).resolve().parents[2] / "configs" / "analyzers"
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def test_poll_mode_over_a_pty_answers_each_command_with_a_record_of_the_true_gas(tmp_path):
    clock = ScaledClock(60.0, T0)
    sim = GenericLinePollSimulator(clock, GenericLineInstrument(id="ceas-1", definition=DEFS / "ceas-ghg-poll.toml"))
    server = PtyServer(sim, tmp_path / "ceas").start()
    try:
        cfg = GenericLineConfig.model_validate({"id": "ceas-1", "url": str(tmp_path / "ceas"), "timeout_s": 2,
                                                "definition": str(DEFS / "ceas-ghg-poll.toml")})
        drv = GenericLine(cfg, SerialTransport(cfg.url, timeout_s=2))
        drv.now = clock.now
        drv.open()
        got = [drv.poll() for _ in range(3)]
        sim.inject("bad_status")
        bad = drv.poll().readings[0]
        sim.inject("garbage")
        noisy = drv.poll()
        sim.inject("silence")
        with pytest.raises(TransportTimeout):
            drv.poll()
        drv.close()
    finally:
        server.stop()
    ledger = sim.ledger
    for result, entry in zip(got, ledger, strict=False):
        (r,) = result.readings
        assert r.values["co2_dry"] == pytest.approx(entry.truth["co2"], abs=0.3)
        assert r.values["ch4_dry"] == pytest.approx(entry.truth["ch4"], abs=3)
        assert r.values["cavity_pressure"] == pytest.approx(140.0, abs=0.01)
    assert not bad.status_ok and bad.status_flags == ("warming_up",)
    assert len(noisy.readings) == 1 and len(noisy.problems) == 1 and "does not match" in noisy.problems[0]


def test_stream_mode_over_tcp_from_the_bench_with_garbage_and_bad_status():
    cfg = BenchConfig.model_validate({"instruments": [
        {"id": "ndir-1", "model": "generic.line", "definition": str(DEFS / "ndir-co2-stream.toml"),
         "record_interval_s": 1.0}]})
    clock = ScaledClock(20.0, T0)
    with Bench(cfg, clock) as bench:
        url = bench.endpoints()["instruments"]["ndir-1"]["url"]
        drv_cfg = GenericLineConfig.model_validate({"id": "ndir-1", "url": url, "timeout_s": 0.3,
                                                    "definition": str(DEFS / "ndir-co2-stream.toml")})
        drv = GenericLine(drv_cfg, SocketTransport(url, timeout_s=0.3))
        drv.open()
        time.sleep(0.3)
        first = drv.poll()
        bench.handle({"device": "ndir-1", "fault": "garbage", "count": 2})
        bench.handle({"device": "ndir-1", "fault": "bad_status", "count": 3})
        time.sleep(0.5)
        second = drv.poll()
        drv.close()
        truth = {e.time: e.truth for e in bench.devices["ndir-1"].ledger}
    assert first.readings and first.problems == []
    for r in first.readings + second.readings:
        assert r.values["co2_dry"] == pytest.approx(truth[r.time]["co2"], abs=0.3)
    assert sum(not r.status_ok for r in second.readings) == 3
    assert {r.status_flags for r in second.readings if not r.status_ok} == {("source_low",)}
    assert len(second.problems) == 2 and all("no start character" in p for p in second.problems)


def test_a_regex_definition_without_a_template_cannot_be_simulated(tmp_path):
    text = (DEFS / "ceas-ghg-poll.toml").read_text().replace('template = "', '# template = "')
    (tmp_path / "d.toml").write_text(text)
    with pytest.raises(ValueError, match="needs a `template`"):
        GenericLinePollSimulator(ScaledClock(1.0, T0), GenericLineInstrument(id="x", definition=tmp_path / "d.toml"))


def test_stream_mode_on_a_pty_is_read_as_a_serial_line(tmp_path):
    cfg = BenchConfig.model_validate({"instruments": [
        {"id": "ndir-1", "model": "generic.line", "definition": str(DEFS / "ndir-co2-stream.toml"),
         "record_interval_s": 1.0, "pty_link": str(tmp_path / "ndir")}]})
    with Bench(cfg, ScaledClock(20.0, T0)) as bench:
        drv_cfg = GenericLineConfig.model_validate({"id": "ndir-1", "url": str(tmp_path / "ndir"), "timeout_s": 0.3,
                                                    "definition": str(DEFS / "ndir-co2-stream.toml")})
        drv = GenericLine(drv_cfg, SerialTransport(drv_cfg.url, timeout_s=0.3))
        drv.open()
        time.sleep(0.4)
        result = drv.poll()
        drv.close()
        truth = {e.time: e.truth for e in bench.devices["ndir-1"].ledger}
    assert len(result.readings) >= 3 and result.problems == []
    assert all(r.values["co2_dry"] == pytest.approx(truth[r.time]["co2"], abs=0.3) for r in result.readings)
