"""Two analyzers on one station: one on the valve's manifold, one on a line of its own.

The manifold's analyzer is calibrated and follows the valve's streams; the other keeps its own
inlet and goes out `uncalibrated` (no cylinder ever reaches it). Real TCP to simulated Picarros and
a simulated valve, the agent in-process on simulated time.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from ghgnet.clock import ScaledClock
from ghgnet.config import ConfigError, read_toml
from simulators.bench import Bench
from simulators.config import load_bench_config
from station_agent.agent import Agent
from station_agent.config import station_model
from station_agent.storage.store import StationStore
from support.station import ROOT, bench_toml

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


def test_an_analyzer_on_its_own_line_keeps_its_inlet_and_goes_out_uncalibrated(tmp_path):
    bench_cfg, data = two_analyzer_configs(tmp_path, analyzers=["picarro-1"], own_lines={"picarro-2": "mast-10m"})
    clock = ScaledClock(speed=1440, start=START)
    bench = Bench(bench_cfg, clock).start(control=False)
    try:
        urls = bench.endpoints()["instruments"]
        data["analyzers"][0]["url"] = urls["picarro-1"]["url"]
        data["analyzers"][1]["url"] = urls["picarro-2"]["url"]
        data["valves"][0]["url"] = urls["valve-1"]["url"]
        data["devices"][0]["url"] = urls["flow-1"]["url"]
        config = station_model().model_validate(data, context={"base_dir": tmp_path})
        agent = Agent(config, clock)
        agent.start()
        try:
            deadline = time.monotonic() + 60
            while clock.now() < START + timedelta(hours=2):
                assert time.monotonic() < deadline, "simulated time stalled"
                time.sleep(0.1)
        finally:
            agent.shutdown()
    finally:
        bench.stop()
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
