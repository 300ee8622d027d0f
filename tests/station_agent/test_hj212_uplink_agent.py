"""Hardware in the loop: `station-sim` and `station-agent` of the example configs (as real processes,
simulated time at 1440x) with an `[[uplinks]]` table pointing at the simulated platform. The platform
gets the minutes of the one inlet the uplink reports, with their stored values in mg/m3, and the
hours; nothing else, nothing twice once acknowledged."""

from __future__ import annotations

import csv
import io
from contextlib import closing
from datetime import timedelta

import pytest
from support.station import Hil

from simulators.hj212_platform import PlatformSimulator
from station_agent.storage.hj212_queue import Hj212Queue
from station_agent.storage.store import StationStore

MN = "010000A8900016F000169DC0"
CO2_MG_M3 = 44.01 / 22.414


def uplink_toml(port: int) -> str:
    return f"""
[[uplinks]]
name = "provincial"
host = "127.0.0.1"
port = {port}
mn = "{MN}"
pw = "123456"
data = [2051, 2061]
streams = ["inlet:top"]
timezone = "UTC"
settle_s = 60
"""


@pytest.mark.slow
def test_the_agent_sends_one_inlets_minutes_and_hours_to_the_platform(tmp_path):
    with PlatformSimulator(mn=MN) as platform:
        hil = Hil(tmp_path, speed=1440.0, forwarding=uplink_toml(platform.port))
        try:
            hil.start_agent()
            hil.run_for(timedelta(hours=4))
            status = hil.status()["agent"]["uplinks"]["provincial"]
            assert status["connected"] and status["acked"] > 0
            human = hil.agent_cli("status")
            assert "HJ 212 uplink provincial: connected" in human.stdout
            assert hil.stop_agent() == 0
            export = hil.agent_cli("export", "--from", "2000-01-01", "--to", "2100-01-01", "--level", "minute")
        finally:
            hil.close()
    minutes = {r["time_utc"]: r for r in csv.DictReader(io.StringIO(export.stdout)) if r["stream"] == "inlet:top"}
    sent = platform.points("2051")
    assert len(sent) >= 20
    for (_, data_time), packet in sent.items():
        stamp = f"{data_time[:4]}-{data_time[4:6]}-{data_time[6:8]}T{data_time[8:10]}:{data_time[10:12]}:00.000Z"
        assert stamp in minutes, f"{data_time} is not an inlet:top minute of the station"
        assert packet.factors()["a05001"]["Avg"] == f"{float(minutes[stamp]['co2_mean']) * CO2_MG_M3:.3f}"
    assert len(platform.points("2061")) >= 2
    assert platform.sent_after_ack() == []
    with closing(StationStore(tmp_path / "station.sqlite", read_only=True)) as store:
        waiting = {p.qn for p in Hj212Queue(store).pending("provincial", 0, 10_000)}
    assert not waiting & set(platform.acked)
