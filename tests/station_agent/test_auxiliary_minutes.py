"""`[processing] auxiliary`: an auxiliary device's minute means carried on the analyzers' minutes
(station_agent/processing/minute_bins.py AuxiliaryMinutes), hand-computed cases."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from drivers.reading import Reading
from station_agent.processing.minute_bins import AuxiliaryMinutes

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SOURCES = ["met-1:temperature", "met-1:humidity", "met-1:pressure"]


def met(seconds: float, ok: bool = True, **values: float) -> Reading:
    return Reading(T0 + timedelta(seconds=seconds), "met-1", values, status_ok=ok, stream="aux")


def test_the_mean_of_the_minutes_valid_readings_and_absent_never_zero():
    aux = AuxiliaryMinutes(SOURCES)
    aux.add([met(0, temperature=20.0, humidity=40.0, pressure=1000.0),
             met(10, temperature=21.0, humidity=float("nan"), pressure=1001.0),
             met(20, ok=False, temperature=99.0, humidity=99.0, pressure=99.0),  # the device said it is not ok
             met(30, temperature=23.0, pressure=1002.0),  # no humidity in this reading
             met(60, temperature=30.0),  # the next minute
             Reading(T0, "flow-1", {"temperature": 55.0}, stream="aux")])  # not configured
    assert aux.means(T0) == {"met-1:temperature": pytest.approx(64.0 / 3), "met-1:humidity": 40.0,
                             "met-1:pressure": pytest.approx(1001.0)}
    assert aux.means(T0 + timedelta(minutes=1)) == {"met-1:temperature": 30.0}  # humidity, pressure absent
    assert aux.means(T0 + timedelta(minutes=2)) == {}  # nothing read: no diagnostic at all
    aux.add([met(30, humidity=float("nan"))])
    assert "met-1:humidity" not in aux.means(T0 + timedelta(minutes=3))


def test_old_minutes_are_dropped_and_threads_may_add_while_another_reads():
    aux = AuxiliaryMinutes(["met-1:temperature"], keep=timedelta(minutes=10))
    aux.add([met(0, temperature=1.0)])
    aux.add([met(11 * 60, temperature=2.0)])
    assert aux.means(T0) == {} and aux.means(T0 + timedelta(minutes=11)) == {"met-1:temperature": 2.0}

    aux = AuxiliaryMinutes(["met-1:temperature"])
    threads = [threading.Thread(target=lambda: [aux.add([met(i % 60, temperature=1.0)]) for i in range(2000)])
               for _ in range(4)]
    for t in threads:
        t.start()
    seen = [aux.means(T0) for _ in range(200)]
    for t in threads:
        t.join()
    assert aux.means(T0) == {"met-1:temperature": 1.0} and all(s in ({}, {"met-1:temperature": 1.0}) for s in seen)
    assert not AuxiliaryMinutes([]) and AuxiliaryMinutes(SOURCES).sources == tuple(SOURCES)


def test_the_agents_minutes_carry_them_and_a_restart_takes_them_back_from_the_raw_table(tmp_path):
    """configs/sites/gmp343-rooftop/station.toml as shipped: the agent's minute of the probe carries
    met-1's means; after a restart (nothing in memory) the minute still open at the stop gets them
    from the met sensor's raw readings stored before it."""
    from support.site import SITES

    from ghgnet.clock import ManualClock
    from station_agent.agent import Agent
    from station_agent.config import load_station_config
    from station_agent.processing.minute_bins import MinuteBin
    from station_agent.storage.store import StationStore

    text = (SITES / "gmp343-rooftop" / "station.toml").read_text()
    path = tmp_path / "station.toml"
    path.write_text(text.replace('path = "../../../data/gmp343-rooftop/station.sqlite"', 'path = "station.sqlite"'))
    config = load_station_config(path)
    probe = MinuteBin("gmp343-1", T0, "inlet:ambient", [
        Reading(T0 + timedelta(seconds=s), "gmp343-1", {"co2": 420.0 + s / 10, "h2o": 1.7}) for s in range(0, 60, 5)])

    live = Agent(config, ManualClock(T0 + timedelta(seconds=70)))
    live._submit_auxiliary([met(0, temperature=20.0, humidity=40.0, pressure=1000.0),
                            met(30, temperature=22.0, humidity=42.0, pressure=float("nan"))])
    rec = live.make_minute(probe)
    assert rec.diagnostics["met-1:temperature"] == 21.0 and rec.diagnostics["met-1:humidity"] == 41.0
    assert rec.diagnostics["met-1:pressure"] == 1000.0 and rec.species["co2"].raw_mean is not None

    store = StationStore(config.storage.path)  # what the writer stored before the stop
    store.insert_raw([met(0, temperature=20.0, humidity=40.0, pressure=1000.0),
                      met(30, temperature=22.0, humidity=42.0)])
    restarted = Agent(config, ManualClock(T0 + timedelta(seconds=70)))
    assert "met-1:temperature" not in restarted.make_minute(probe).diagnostics
    restarted._restore_auxiliary(store, T0 + timedelta(seconds=70))
    store.close()
    got = restarted.make_minute(probe).diagnostics
    assert got["met-1:temperature"] == 21.0 and got["met-1:humidity"] == 41.0 and got["met-1:pressure"] == 1000.0
    before = [replace(r, time=r.time - timedelta(minutes=1)) for r in probe.readings]
    assert not restarted.make_minute(MinuteBin("gmp343-1", T0 - timedelta(minutes=1), "inlet:ambient", before)
                                     ).diagnostics.keys() & {"met-1:temperature", "met-1:pressure"}  # none read then
