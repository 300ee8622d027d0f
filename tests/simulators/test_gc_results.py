"""The simulated GC (simulators/gc/results.py): result files written into a real folder on the
injected clock, read back by the gc.results driver; the bench serves it as a self-served device."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drivers.gc.results import GcResults, GcResultsConfig
from ghgnet.clock import ManualClock
from ghgnet.config import load_model
from simulators.bench import Bench
from simulators.config import BenchConfig
from simulators.gc.results import GcResultsInstrument, GcResultsSimulator

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def pair(tmp: Path, layout: str, **sim):
    clock = ManualClock(T0)
    gc = GcResultsSimulator(clock, GcResultsInstrument(id="gc-1", folder=tmp, layout=layout, **sim))
    cfg = GcResultsConfig(id="gc-1", folder=tmp, layout=layout, streams={"std-1": "cal:std-1"})
    drv = GcResults(cfg, GcResults.make_transport(cfg))
    drv.open()
    return clock, gc, drv


def run(clock: ManualClock, gc: GcResultsSimulator, drv: GcResults, minutes: float):
    """Advance in 30 s steps, polling after each; every reading and problem."""
    readings, problems = [], []
    for _ in range(int(minutes * 2)):
        clock.advance(30)
        gc.advance()
        got = drv.poll()
        readings += got.readings
        problems += got.problems
    return readings, problems


@pytest.mark.parametrize("layout", ["gcwerks", "chemstation"])
def test_samples_and_standards_alternate_every_interval_and_read_back_as_the_gc_reported_them(tmp_path, layout):
    clock, gc, drv = pair(tmp_path, layout)
    readings, problems = run(clock, gc, drv, 60)
    assert problems == []
    ledger = gc.ledger
    assert [e.time for e in ledger] == [T0 + timedelta(minutes=5 * i) for i in range(13)]
    assert [e.source for e in ledger[:4]] == ["ambient", "std-1", "ambient", "std-1"]
    # the newest file is read at the next poll, once it is seen unchanged
    assert [r.time for r in readings] == [e.time for e in ledger[:-1]]
    for r, e in zip(readings, ledger, strict=False):
        assert r.stream == ("inlet:ambient" if e.source == "ambient" else "cal:std-1")
        assert r.values["co2_dry"] == pytest.approx(e.truth["co2"], abs=0.3)
        assert r.values["n2o_dry"] == pytest.approx(e.truth["n2o"], abs=0.6)
    assert ledger[1].truth == {"co2": 410.0, "ch4": 1950.0, "n2o": 335.0}


def test_faults_half_written_duplicate_malformed_garbage_and_bad_status(tmp_path):
    clock, gc, drv = pair(tmp_path, "gcwerks")
    gc.inject("half_written", delay_s=90)
    readings, problems = run(clock, gc, drv, 6)
    assert len(readings) == 2 and problems == []  # the half-written first file waited to be finished
    gc.inject("duplicate")
    gc.inject("malformed")
    gc.inject("garbage")
    none, problems = run(clock, gc, drv, 6)
    quarantined = sorted(p.name for p in (tmp_path / "quarantine").iterdir() if not p.name.endswith(".txt"))
    assert none == [] and len(quarantined) == 3 and len(problems) == 3  # the malformed file, its copy, the noise
    gc.inject("bad_status")
    (flagged,), problems = run(clock, gc, drv, 6)
    assert problems == [] and flagged.status_flags == ("co2_flagged",) and "co2_dry" not in flagged.values
    stats = gc.stats()
    assert stats["injections"] == 4 and stats["half_written"] == 1 and stats["bad_status"] == 1


def test_silence_writes_no_files(tmp_path):
    clock, gc, drv = pair(tmp_path, "gcwerks")
    gc.inject("silence", duration_s=1200)
    readings, _ = run(clock, gc, drv, 30)
    assert len(gc.ledger) == 7 and len(readings) == 2  # 20 and 25 min; 30 min is read a poll later


def test_the_site_bench_serves_the_gc_as_a_self_served_device(tmp_path):
    text = (ROOT / "configs/sites/gc-results/bench.toml").read_text().replace("port = 51169", "port = 0")
    (tmp_path / "bench.toml").write_text(text.replace("../../../data/gc-results/drop", str(tmp_path / "drop")))
    cfg = load_model(BenchConfig, tmp_path / "bench.toml")
    clock = ManualClock(T0)
    with Bench(cfg, clock) as bench:
        assert bench.endpoints()["instruments"]["gc-1"] == {"driver": "gc.results",
                                                           "url": (tmp_path / "drop").resolve().as_uri()}
        clock.advance(601)
        assert bench.handle({"cmd": "stats"})["stats"]["gc-1"]["injections"] == 3
        truth = bench.truth("gc-1", T0, T0 + timedelta(hours=1))
        assert [t["n"] for t in truth] == [1, 1, 1] and truth[1]["co2"] == 410.0
