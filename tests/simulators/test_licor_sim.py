"""The simulated LI-78xx on the gas bench: it serves itself (its own mosquitto), publishes the bench's
gas through the valve, takes faults from the control port, and `station-agent probe` reads it with
the real driver."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.station import BIN
from support.wait import wait_until

from drivers.licor.li78xx import LI7820
from drivers.transport import TransportError
from ghgnet.clock import ManualClock
from simulators.bench import Bench
from simulators.config import load_bench_config

SITE = Path(__file__).resolve().parents[2] / "configs" / "sites" / "tall-tower-g2401-li7820"
START = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
def bench(tmp_path) -> Iterator[Bench]:
    """The tall-tower bench on free ports, in-process on a manual clock."""
    config = load_bench_config(SITE / "bench.toml")
    for inst in config.instruments:
        inst.port = 0
    assert config.valve is not None
    config.valve.port = 0
    b = Bench(config, ManualClock(START)).start()
    try:
        yield b
    finally:
        b.stop()


def driver_for(bench: Bench) -> LI7820:
    cfg = LI7820.Config(id="licor-1", url=bench.endpoints()["instruments"]["licor-1"]["url"])
    d = LI7820(cfg, LI7820.make_transport(cfg))
    d.open()
    time.sleep(0.05)
    return d


def advance(bench: Bench, seconds: float) -> None:
    """Move simulated time and wait (real time) until the analyzer has made its records."""
    sim = bench.devices["licor-1"]
    bench.clock.advance(seconds)
    due = bench.clock.now() - timedelta(seconds=sim.config.record_interval_s)
    assert wait_until(lambda: bool(sim.ledger) and sim.ledger[-1].time > due)


def collect(driver: LI7820, n: int):
    readings, problems = [], []
    assert wait_until(lambda: (lambda r: readings.extend(r.readings) or problems.extend(r.problems))(driver.poll())
                      or len(readings) + len(problems) >= n), (len(readings), problems)
    return readings, problems


def test_the_bench_serves_the_analyzer_on_its_own_broker_and_reports_its_url(bench):
    ep = bench.endpoints()["instruments"]
    assert ep["licor-1"]["driver"] == "licor.li7820" and ep["licor-1"]["url"].startswith("mqtt://127.0.0.1:")
    sim = bench.devices["licor-1"]
    assert sim.broker is not None and sim.broker.running
    assert bench.handle({"cmd": "stats", "device": "licor-1"})["stats"]["licor-1"]["produced"] == 0


def test_the_analyzer_measures_the_cylinder_the_valve_selects(bench):
    driver = driver_for(bench)
    try:
        assert bench.valve is not None
        bench.valve.receive(b"GO4\r")  # CAL-1: n2o 325 ppb, dry
        advance(bench, 600)
        readings, problems = collect(driver, 120)
        assert problems == []
        last = readings[-20:]
        mean = sum(r.values["n2o_dry"] for r in last) / len(last)
        assert mean == pytest.approx(1.01 * 325.0 - 2.0, abs=0.15)  # the bench's gain and offset, small drift
        assert all(r.values["h2o"] < 0.01 for r in last)  # a dry cylinder
        truth = bench.truth("licor-1", START, bench.clock.now())
        assert truth[-1]["n2o"] == pytest.approx(325.0, abs=1e-3) and truth[-1]["co2"] == pytest.approx(390.0, abs=1e-3)
    finally:
        driver.close()


def test_faults_from_the_control_port_reach_the_driver(bench):
    driver = driver_for(bench)
    sim = bench.devices["licor-1"]
    try:
        advance(bench, 50)
        collect(driver, 10)
        assert bench.handle({"device": "licor-1", "fault": "garbage", "count": 2}) == {"ok": True}
        advance(bench, 50)
        readings, problems = collect(driver, 10)
        assert len(readings) == 8 and len(problems) == 2 and all("malformed message skipped" in p for p in problems)
        assert bench.handle({"device": "licor-1", "fault": "bad_diag", "count": 3, "word": 5}) == {"ok": True}
        advance(bench, 50)
        readings, problems = collect(driver, 10)
        bad = [r for r in readings if not r.status_ok]
        assert len(bad) == 3 and bad[0].status == 5 and bad[0].status_flags == ("diag_bit_0", "diag_bit_2")
        assert bench.handle({"device": "licor-1", "fault": "silent", "duration_s": 50}) == {"ok": True}
        advance(bench, 50)
        assert driver.poll().readings == []
        stats = bench.handle({"cmd": "stats", "device": "licor-1"})["stats"]["licor-1"]
        assert stats["garbled"] == 2 and stats["silenced"] == 10
        with pytest.raises(ValueError, match="unknown fault 'melt'"):
            bench.handle({"device": "licor-1", "fault": "melt"})
        assert sim.ledger_rows(len(sim.ledger) - 1)[0]["fate"] == "silenced"
    finally:
        driver.close()


def test_broker_down_is_a_lost_link_and_the_analyzer_comes_back_on_the_same_url(bench):
    driver = driver_for(bench)
    sim = bench.devices["licor-1"]
    url = sim.url
    try:
        bench.handle({"device": "licor-1", "fault": "broker_down", "duration_s": 60})
        assert wait_until(lambda: driver.transport.fetch() >= 0 and driver.transport.lost is not None)
        assert driver.poll().problems[-1].endswith("went away (Unspecified error)")  # what came before the loss
        with pytest.raises(TransportError, match="went away"):
            driver.poll()
        driver.close()
        with pytest.raises(TransportError):
            driver.open()
        advance(bench, 120)  # the fault ends: the broker restarts on the same port
        assert wait_until(lambda: sim.broker.running) and sim.url == url
        driver.open()
        assert wait_until(lambda: sim._client.is_connected())
        time.sleep(0.1)
        advance(bench, 30)
        readings, _ = collect(driver, 5)
        assert readings and readings[-1].values["n2o_dry"] > 300
        stats = sim.stats()
        assert stats["broker_down"] >= 11 and stats["broker_restarts"] == 1
    finally:
        driver.close()


def test_station_agent_probe_identifies_the_analyzer(bench, tmp_path):
    text = (SITE / "station.toml").read_text()
    text = text.replace("mqtt://127.0.0.1:52102", bench.endpoints()["instruments"]["licor-1"]["url"])
    text = text.replace('path = "../../../data/tall-tower-g2401-li7820/station.sqlite"', 'path = "station.sqlite"')
    config = tmp_path / "station.toml"
    config.write_text(text)
    stop = False

    def tick() -> None:
        while not stop:
            bench.clock.advance(5)
            time.sleep(0.05)

    ticker = threading.Thread(target=tick, name="test-ticker")
    ticker.start()
    try:
        out = subprocess.run([BIN / "station-agent", "probe", "licor-1", "--config", config, "--json"],
                             capture_output=True, text=True, timeout=60)
    finally:
        stop = True
        ticker.join()
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["ok"] and info["driver"] == "licor.li7820" and info["model"] == "LI-7820"
    assert info["topics"][0] == "licor/niobrara/output/concentration"
    assert 300 < info["latest"]["n2o_dry"] < 400 and info["status_ok"] is True
    assert info["units"]["N2O"] == "ppb"
    listed = subprocess.run([BIN / "station-agent", "drivers", "list", "--json"], capture_output=True, text=True,
                            timeout=60)
    names = {d["name"]: d for d in json.loads(listed.stdout)}
    assert {"licor.li7810", "licor.li7815", "licor.li7820"} <= set(names)
    assert names["licor.li7820"]["simulator"] == "simulators.licor.li78xx:LicorSimulator"
