"""Stations as they are built: two analyzers, one on the valve's manifold and one on a line of its
own; two valves in series. Real TCP to simulated Picarros and VICI valves, the agent in-process on
simulated time.

The manifold's analyzer is calibrated and follows the valve's streams; the other keeps its own
inlet and goes out `uncalibrated` (no cylinder ever reaches it).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from support.station import ROOT, bench_toml

from ghgnet.clock import ScaledClock
from ghgnet.config import ConfigError, read_toml
from simulators.bench import Bench
from simulators.config import load_bench_config
from simulators.serve import TcpServer
from simulators.vici.multiposition import ViciValveSimulator
from station_agent.agent import Agent
from station_agent.config import station_model
from station_agent.storage.store import StationStore

START = datetime(2026, 3, 1, tzinfo=UTC)


def two_analyzer_configs(tmp_path, **sampling):
    bench = load_bench_config(bench_toml(tmp_path))
    second = bench.instruments[0].model_copy(update={"id": "picarro-2", "seed": 11})
    bench.instruments.append(second)
    station = read_toml(ROOT / "configs" / "station.example.toml")
    station.pop("mqtt", None)
    station["storage"]["path"] = str(tmp_path / "station.sqlite")
    station["logging"] = {"format": "json", "level": "warning"}
    station["sampling"].pop("interlocks", None)
    station["analyzers"].append(dict(station["analyzers"][0], id="picarro-2"))
    station["sampling"].update(sampling)
    return bench, station


def run_station(tmp_path, bench_cfg, data, hours: float, extra_valves: dict | None = None):
    """Serve the bench (and `extra_valves`: id -> simulator), run the agent for `hours` simulated."""
    clock = ScaledClock(speed=1440, start=START)
    bench = Bench(bench_cfg, clock).start(control=False)
    servers = {vid: TcpServer(sim).start() for vid, sim in (extra_valves or {}).items()}
    try:
        urls = {k: v["url"] for k, v in bench.endpoints()["instruments"].items()} | {
            vid: srv.url for vid, srv in servers.items()}
        for table in ("analyzers", "valves", "devices"):
            for dev in data[table]:
                dev["url"] = urls[dev["id"]]
        config = station_model().model_validate(data, context={"base_dir": tmp_path})
        agent = Agent(config, clock)
        agent.start()
        try:
            deadline = time.monotonic() + 60
            while clock.now() < START + timedelta(hours=hours):
                assert time.monotonic() < deadline, "simulated time stalled"
                time.sleep(0.1)
        finally:
            agent.shutdown()
    finally:
        bench.stop()
        for srv in servers.values():
            srv.stop()
    return config


def test_an_analyzer_on_its_own_line_keeps_its_inlet_and_goes_out_uncalibrated(tmp_path):
    bench_cfg, data = two_analyzer_configs(tmp_path, analyzers=["picarro-1"], own_lines={"picarro-2": "mast-10m"})
    config = run_station(tmp_path, bench_cfg, data, hours=2)
    store = StationStore(config.storage.path)
    try:
        rows = list(store.minute_rows(START, START + timedelta(days=1)))
        calibrations = store.calibrations()
    finally:
        store.close()
    own = [r for r in rows if r["device"] == "picarro-2"]
    manifold = [r for r in rows if r["device"] == "picarro-1"]
    assert len(own) > 60 and len(manifold) > 60
    assert {r["stream"] for r in own} == {"inlet:mast-10m"}
    assert all("uncalibrated" in r["reasons"] and r["calibration_id"] is None for r in own)
    streams = {r["stream"] for r in manifold}
    assert {"cal:CAL-1", "inlet:top"} <= streams, streams
    assert {c["device"] for c in calibrations} == {"picarro-1"}, calibrations
    assert any(r["calibration_id"] for r in manifold if r["stream"] == "inlet:top")


def test_two_valves_in_series_select_the_cylinders_and_the_station_calibrates(tmp_path):
    bench_cfg, data = two_analyzer_configs(tmp_path)
    data["analyzers"].pop()
    bench_cfg.instruments.pop()
    # valve-1 picks the inlet or the cylinder line (its ports 4-9 in the bench's gas); valve-2, on
    # the cylinder line, picks the cylinder: each cylinder stream names a position on both.
    data["valves"].append(dict(data["valves"][0], id="valve-2"))
    data["sampling"]["valve"] = ["valve-1", "valve-2"]
    for i, stream in enumerate(data["sampling"]["streams"]):
        on_line = stream["name"].startswith(("cal:", "target:"))
        stream["positions"] = {"valve-1": stream["port"], **({"valve-2": i + 1} if on_line else {})}
    valve_2 = ViciValveSimulator(ScaledClock(speed=1440, start=START), positions=10, seed=5)
    config = run_station(tmp_path, bench_cfg, data, hours=1.5, extra_valves={"valve-2": valve_2})
    store = StationStore(config.storage.path)
    try:
        rows = list(store.minute_rows(START, START + timedelta(days=1)))
        calibrations = store.calibrations()
    finally:
        store.close()
    cylinder_positions = {s["positions"]["valve-2"] for s in data["sampling"]["streams"] if "valve-2" in s["positions"]}
    assert {m.to_position for m in valve_2.moves} <= cylinder_positions
    assert {4, 5, 6, 7} <= {m.to_position for m in valve_2.moves}  # the four standards
    assert len(calibrations) >= 1 and calibrations[0]["device"] == "picarro-1"
    # Minutes before the engine's first move are flagged as of unknown history, as with one valve.
    settled = [r for r in rows if r["time"] >= "2026-03-01T00:10"]
    assert len(settled) > 60
    assert not [(r["time"], r["stream"]) for r in settled if "valve_mismatch" in r["reasons"]]
    assert any(r["calibration_id"] for r in rows if r["stream"] == "inlet:top")


@pytest.mark.parametrize(
    ("sampling", "message"),
    [
        ({"analyzers": ["picarro-9"]}, "analyzer(s) ['picarro-9'] are not [[analyzers]]"),
        ({"own_lines": {"nobody": "mast"}}, "analyzer(s) ['nobody'] are not [[analyzers]]"),
        ({"own_lines": {"picarro-1": "mast"}}, "['picarro-1'] are on the valve's manifold and on an own line"),
    ],
)
def test_manifold_and_own_line_errors_name_the_analyzer(tmp_path, sampling, message):
    _, data = two_analyzer_configs(tmp_path, **sampling)
    with pytest.raises((ConfigError, ValueError)) as err:
        station_model().model_validate(data, context={"base_dir": tmp_path})
    assert message in str(err.value)
