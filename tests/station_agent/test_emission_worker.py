"""The emission worker against a real station store, fed raw readings made from simulate_stack:
minutes and hours are stored once across a restart (a new worker resumes where the store ends),
the hours recover the simulated truth, and the minutes wait `close_after_s` before they are made."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from drivers.reading import Reading
from ghgnet.logs import get_logger
from simulators.stack import UnitSpec, simulate_stack
from station_agent.config import load_station_config
from station_agent.emission.worker import EmissionWorker
from station_agent.storage.store import StationStore

SITE = Path(__file__).resolve().parents[2] / "configs" / "sites" / "stack-cems" / "station.toml"
T0 = datetime(2026, 3, 1, 4, tzinfo=UTC)
DEVICES = {"cems-analyzer": ("co2_pct", "o2_pct"),
           "cems-flow": ("differential_pressure_pa", "temperature_c", "static_pa", "barometric_pa", "moisture_pct")}


def readings(hours: int) -> tuple[list[Reading], float]:
    times = np.datetime64("2026-03-01T04:00") + np.arange(hours * 60)
    sim = simulate_stack(UnitSpec(), times, seed=3)
    out = []
    for i in range(len(times)):
        t = T0 + timedelta(minutes=i, seconds=20)
        for dev, names in DEVICES.items():
            out.append(Reading(time=t, device=dev, values={n: float(sim.values[n][i]) for n in names}, stream="aux"))
        out.append(Reading(time=t, device="unit-1", values={"running": float(sim.running[i])}, stream="aux"))
    return out, sim.true_mass_t()


def test_minutes_and_hours_are_stored_once_across_a_restart(tmp_path):
    cems = load_station_config(SITE).cems
    rows, truth_t = readings(6)
    store = StationStore(tmp_path / "s.sqlite")
    try:
        store.insert_raw(rows[: len(rows) // 2])
        first = EmissionWorker(cems, get_logger())
        first.open(store)
        first.tick(store, T0 + timedelta(hours=3, minutes=1))   # minutes end close_after_s (120 s) before now
        assert store.last_emission_time("unit-1", "minute") == "2026-03-01T06:58:00Z"
        assert len(store.emission_rows("hour")) == 2
        store.insert_raw(rows[len(rows) // 2:])
        again = EmissionWorker(cems, get_logger())  # the agent restarted
        again.open(store)
        again.tick(store, T0 + timedelta(hours=6, minutes=2))  # up to the last reading
        minutes, hours = store.emission_rows("minute"), store.emission_rows("hour")
    finally:
        store.close()
    assert [m["time"] for m in minutes] == [(T0 + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
                                            for i in range(6 * 60)]
    assert len(hours) == 6 and all(h["co2_modc"] == h["flow_modc"] == "01" for h in hours)
    assert sum(h["mass_kg"] for h in hours) / 1000.0 == pytest.approx(truth_t, rel=0.01)


def test_part75_flow_hours_are_substituted_by_load_range_across_a_restart(tmp_path):
    """The Part 75 option with the unit's load: the flow device lost for hour 4 is filled with the
    mean flow of the earlier hours in that hour's load range (code 07, the initial procedure), the
    ranges of the hours before the restart rebuilt from the raw load readings. The morning's load
    rises (hourly means 377, 392, 414, 438, 457 MW: ranges 7, 7, 7, 8, 8 of 600 MW): hour 4 takes
    hour 3's flow, the only earlier hour of range 8."""
    from station_agent.processing.cems import load_ranges

    cems = load_station_config(SITE).cems.model_copy(update={
        "substitution": "part75", "part75_max_co2_pct": 16.0, "part75_max_flow_m3_h": 3.0e6,
        "part75_max_load": 600.0, "inputs": {**load_station_config(SITE).cems.inputs, "load": "unit-1:load_mw"}})
    assert cems.load_based
    times = np.datetime64("2026-03-01T04:00") + np.arange(6 * 60)
    sim = simulate_stack(UnitSpec(), times, seed=3)
    rows = []
    for i in range(len(times)):
        t = T0 + timedelta(minutes=i, seconds=20)
        for dev, names in DEVICES.items():
            if dev == "cems-flow" and 240 <= i < 300:
                continue                                    # the flow device lost for hour 4
            rows.append(Reading(time=t, device=dev, values={n: float(sim.values[n][i]) for n in names}, stream="aux"))
        rows.append(Reading(time=t, device="unit-1", stream="aux",
                            values={"running": float(sim.running[i]), "load_mw": float(sim.load_mw[i])}))
    store = StationStore(tmp_path / "s.sqlite")
    try:
        store.insert_raw(rows)
        first = EmissionWorker(cems, get_logger())
        first.open(store)
        first.tick(store, T0 + timedelta(hours=3, minutes=1))
        assert len(store.emission_rows("hour")) == 2
        again = EmissionWorker(cems, get_logger())          # restarted: hours 0-1 rebuilt from the store
        again.open(store)
        assert again.history_ranges.tolist() == load_ranges(
            [sim.load_mw[:60].mean(), sim.load_mw[60:120].mean()], 600.0).tolist()
        again.tick(store, T0 + timedelta(hours=6, minutes=2))
        hours = store.emission_rows("hour")
    finally:
        store.close()
    assert [h["flow_modc"] for h in hours] == ["01", "01", "01", "01", "07", "01"]
    # the wet analyzer's CO2 needs the moisture, which the flow device reads: substituted too (07: HB/HA)
    assert [h["co2_modc"] for h in hours] == ["01", "01", "01", "01", "07", "01"]
    ranges = load_ranges([sim.load_mw[60 * k:60 * (k + 1)].mean() for k in range(6)], 600.0)
    assert ranges.tolist() == [7, 7, 7, 8, 8, 8]
    assert hours[4]["standard_flow_m3_h"] == pytest.approx(hours[3]["standard_flow_m3_h"])
