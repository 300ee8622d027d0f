"""The simulated LGR analyzer streaming over a real TCP socket and a real pty to the real driver."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from drivers.base import PollResult
from drivers.lgr.ugga import GGA, UGGA
from drivers.transport import TransportError
from ghgnet.clock import ManualClock
from simulators.bench import Bench
from simulators.config import BenchConfig
from simulators.lgr.ugga import LgrInstrument, LgrSimulator

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def collect(drv, n: int, timeout: float = 5.0) -> PollResult:
    """Poll until `n` readings have come (the stream arrives in its own time)."""
    out = PollResult()
    deadline = time.monotonic() + timeout
    while len(out.readings) < n:
        assert time.monotonic() < deadline, f"only {len(out.readings)} of {n} readings: {out.problems}"
        got = drv.poll()
        out.readings += got.readings
        out.problems += got.problems
        time.sleep(0.01)
    return out


def connect(cls, url: str, **kw):
    config = cls.Config.model_validate({"id": "ugga-1", "driver": cls.name, "url": url, "timeout_s": 1.0,
                                        "silent_s": 1e6, **kw})
    d = cls(config, cls.make_transport(config))
    d.open()
    return d


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def ugga(clock) -> Iterator[LgrSimulator]:
    sim = LgrSimulator(clock, LgrInstrument(id="ugga-1", model="lgr.ugga", seed=3)).start()
    yield sim
    sim.stop()


def wait_for_client(sim: LgrSimulator, n: int = 1) -> None:
    deadline = time.monotonic() + 5
    while sim.stats()["clients"] < n:
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_the_stream_starts_with_the_header_and_carries_every_record_made_while_connected(ugga, clock):
    clock.advance(5)  # nobody listens: these records are lost
    d = connect(UGGA, ugga.url)
    try:
        wait_for_client(ugga)
        clock.advance(30)
        got = collect(d, 30)
        assert d.header_seen and d.identity["VC"] == "1ab9a44" and got.problems == []
        sent = [e for e in ugga.ledger if e.fate == "delivered"]
        assert [r.time for r in got.readings] == [e.time for e in sent]
        assert [r.values["co2_dry"] for r in got.readings] == [e.values["[CO2]d_ppm"] for e in sent]
        assert all(abs(r.values["co2_dry"] - e.truth["co2"]) < 2.0 for r, e in zip(got.readings, sent, strict=True))
        stats = ugga.stats()
        assert (stats["lost"], stats["delivered"], stats["produced"]) == (5, 30, 35)
    finally:
        d.close()


def test_fit_flag_garbage_and_silence_faults(ugga, clock):
    d = connect(UGGA, ugga.url)
    try:
        wait_for_client(ugga)
        collect(d, 0)
        ugga.inject("fit_flag", count=3, value=0)
        ugga.inject("garbage", count=2)
        clock.advance(5)
        got = collect(d, 5)
        assert [r.status_ok for r in got.readings] == [False] * 3 + [True] * 2
        assert got.readings[0].status_flags == ("fit_flag_0",)
        assert len(got.problems) == 2 and all("malformed record skipped" in p for p in got.problems)
        ugga.inject("silent", duration_s=10)
        clock.advance(15)
        got = collect(d, 5)
        assert ugga.stats()["silenced"] == 9  # the records of 6..14 s: silent from 5 s for 10 s
        assert got.readings[0].time == T0.replace(second=15)
    finally:
        d.close()


def test_a_firmware_change_sends_the_new_header_and_the_driver_follows(ugga, clock):
    d = connect(UGGA, ugga.url, date_order="mdy")
    try:
        wait_for_client(ugga)
        clock.advance(2)
        before = collect(d, 2)
        ugga.inject("firmware", layout="2014")
        clock.advance(2)
        after = collect(d, 2)
        assert before.problems == after.problems == []
        assert d.layout.names[0] == "Time" and len(d.layout.names) == 24
        assert [r.values["co2_dry"] for r in after.readings] == [e.values["[CO2]d_ppm"] for e in ugga.ledger[-2:]]
    finally:
        d.close()


def test_after_a_disconnect_the_reconnected_client_gets_the_header_again(ugga, clock):
    d = connect(GGA, ugga.url)  # a GGA driver: 2014 columns until the header says otherwise
    try:
        wait_for_client(ugga)
        clock.advance(1)
        collect(d, 1)
        ugga.inject("disconnect")
        with pytest.raises(TransportError):
            for _ in range(500):
                d.poll()
                time.sleep(0.01)
        d.layout = type(d.layout).from_names(["Time", "[CO2]d_ppm", "Fit_Flag"])  # forget the layout
        d.open()
        wait_for_client(ugga)
        clock.advance(1)
        got = collect(d, 1)
        assert got.problems == [] and len(d.layout.names) == 35 and ugga.stats()["connections"] == 2
    finally:
        d.close()


def test_the_stream_on_a_pty(clock, tmp_path):
    sim = LgrSimulator(clock, LgrInstrument(id="mgga-1", model="lgr.mgga", pty_link=tmp_path / "mgga.tty")).start()
    try:
        assert sim.url == str(tmp_path / "mgga.tty")
        d = connect(GGA, sim.url, driver="lgr.gga")
        try:
            clock.advance(3)
            got = collect(d, 3)
            assert got.readings[-1].values["ch4_dry"] == pytest.approx(2000.0, abs=10)
        finally:
            d.close()
    finally:
        sim.stop()


def test_the_bench_serves_it_and_takes_its_faults_and_truth(clock):
    config = BenchConfig.model_validate({"instruments": [
        {"id": "ugga-1", "model": "lgr.ugga", "record_interval_s": 2.0, "gas": {"co2": 410.0}}]})
    bench = Bench(config, clock).start(control=False)
    try:
        url = bench.endpoints()["instruments"]["ugga-1"]["url"]
        assert url.startswith("socket://")
        assert bench.handle({"device": "ugga-1", "fault": "fit_flag", "count": 1}) == {"ok": True}
        with pytest.raises(ValueError, match="unknown fault 'melt'"):
            bench.handle({"device": "ugga-1", "fault": "melt"})
        clock.advance(120)
        truth = bench.truth("ugga-1", T0, T0.replace(minute=2))
        assert [t["n"] for t in truth] == [29, 30]  # the first record at 2 s
        assert truth[0]["co2"] == pytest.approx(410.0)
        assert bench.stats("ugga-1")["produced"] == 60
    finally:
        bench.stop()


def test_identify_over_tcp_shows_identity_header_and_the_first_record(ugga, clock):
    d = connect(UGGA, ugga.url)
    try:
        wait_for_client(ugga)
        clock.advance(1)
        info = d.identify()
        assert info["identity"]["SN"] == "3K43SIM00001" and info["header_seen"] and len(info["columns"]) == 35
        assert info["latest"]["valid"] and info["latest"]["co2_dry"] == pytest.approx(420.0, abs=2.0)
    finally:
        d.close()
