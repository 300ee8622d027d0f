"""A simulated month of the stack CEMS, hardware in the loop at full speed: the bench's simulated
unit (simulators/stack.py) served by a real pymodbus server, read by the station's real Modbus
driver through its DevicePoller every simulated minute, the readings stored in the real station
store and turned into emission minutes and hours by the agent's EmissionWorker.

A month of 60 s polls (40,320 Modbus requests for February) cannot run on the shared real-time clock
of `station-sim run` / `station-agent run` here (the pollers keep up to about 10,000x: a month would
take five minutes), so the test steps one ManualClock, shared by the bench and the poller, a minute
at a time: every part but the daemon's threads and the wall clock is the real one. The devices sit
behind one data-acquisition unit (one register block, one request a minute). The site's own test
(test_stack_cems.py) runs the processes, MQTT and central for a day.

Faults: the analyzer over range for 2 h (scheduled in the bench config), the DAS lost for 2.5 h
(scheduled), an 8 % span error that the daily zero/span check catches (out of control for a day,
until the next check passes), the pitot blocked for 3 h (injected live through the bench's
control handler). The
month's mass must match the simulator's true emission within 1 %, the measured hours' mass their
truth within 1 %, and exactly the hours the faults covered must be substituted, with their codes.
"""

from __future__ import annotations

import json
import subprocess
import threading
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.site import BIN

from drivers.registry import load_driver
from ghgnet.clock import ManualClock
from ghgnet.logs import get_logger
from simulators.bench import Bench
from simulators.config import BenchConfig
from station_agent.acquisition.poller import DevicePoller
from station_agent.config import load_station_config
from station_agent.emission.worker import EmissionWorker, stamp
from station_agent.storage.store import StationStore

pytestmark = [pytest.mark.slow, pytest.mark.stepped_clock]  # one stepped clock: no real-time pacing
START = datetime(2026, 2, 1, tzinfo=UTC)
END = datetime(2026, 3, 1, tzinfo=UTC)
POINTS = """[
  { name = "co2_pct", kind = "input", address = 0, type = "float32" },
  { name = "o2_pct", kind = "input", address = 2, type = "float32" },
  { name = "differential_pressure_pa", kind = "input", address = 4, type = "float32" },
  { name = "temperature_c", kind = "input", address = 6, type = "float32" },
  { name = "static_pa", kind = "input", address = 8, type = "float32" },
  { name = "barometric_pa", kind = "input", address = 10, type = "float32" },
  { name = "moisture_pct", kind = "input", address = 12, type = "float32" },
  { name = "running", kind = "input", address = 14, type = "uint16" },
  { name = "check_zero_pct", kind = "input", address = 16, type = "float32" },
  { name = "check_span_pct", kind = "input", address = 18, type = "float32" },
]"""
BENCH = {
    "stack": {
        "seed": 18,
        "faults": [
            {"kind": "co2_over_range", "start": "2026-02-10T04:00:00Z", "end": "2026-02-10T06:00:00Z"},
            {"kind": "device_lost", "start": "2026-02-20T10:00:00Z", "end": "2026-02-20T12:30:00Z"},
            # an 8 % span error the daily check of the 14th sees: out of control until the 15th's passes
            {"kind": "analyzer_drift", "start": "2026-02-14T00:00:00Z", "end": "2026-02-14T12:00:00Z",
             "span_error": 0.08},
        ],
        "devices": [{"id": "cems-das", "role": "flow", "port": 0, "points": tomllib.loads(f"p = {POINTS}")["p"]}],
    }
}
BLOCKED = (datetime(2026, 2, 5, 8, tzinfo=UTC), 3 * 3600.0)
SUBSTITUTED = {  # hour -> (co2 substituted, flow substituted)
    **{f"2026-02-05T{h:02d}:00:00Z": (False, True) for h in (8, 9, 10)},
    **{f"2026-02-10T{h:02d}:00:00Z": (True, False) for h in (4, 5)},
    **{f"2026-02-20T{h:02d}:00:00Z": (True, True) for h in (10, 11, 12)},
    **{f"2026-02-14T{h:02d}:00:00Z": (True, False) for h in range(2, 24)},
    **{f"2026-02-15T{h:02d}:00:00Z": (True, False) for h in (0, 1)},
}
OUT_OF_CONTROL = {h for h in SUBSTITUTED if h.startswith(("2026-02-14", "2026-02-15"))}


def station_toml(tmp: Path) -> Path:
    inputs = "\n".join(f'{q} = "cems-das:{q}"' for q in ("co2_pct", "o2_pct", "differential_pressure_pa",
                                                           "temperature_c", "static_pa", "barometric_pa",
                                                           "moisture_pct", "running"))
    path = tmp / "station.toml"
    path.write_text(f"""[station]
id = "stack-month"
[storage]
path = "{tmp / 'station.sqlite'}"
[[devices]]
id = "cems-das"
driver = "modbus.device"
url = "tcp://127.0.0.1:1"
poll_interval_s = 60
timeout_s = 2
points = {POINTS}
[cems]
unit = "unit-1"
duct = {{ shape = "round", diameter_m = 7.5 }}
kv = 1.06
[cems.inputs]
{inputs}
[cems.daily_check]
zero_source = "cems-das:check_zero_pct"
span_source = "cems-das:check_span_pct"
""")
    return path


@pytest.fixture(scope="module")
def month(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stack-month")
    clock = ManualClock(START + timedelta(seconds=30))  # polls at mid-minute
    bench = Bench(BenchConfig.model_validate(BENCH), clock).start(control=False)
    cfg = load_station_config(station_toml(tmp))
    (dev,) = cfg.devices
    dev = dev.model_copy(update={"url": bench.modbus["cems-das"].url})
    cls = load_driver(dev.driver)
    readings: list = []
    poller = DevicePoller(cls(dev, cls.make_transport(dev)), clock, lambda rs: readings.extend(rs) or True,
                          lambda event: None, get_logger(), threading.Event())
    store = StationStore(cfg.storage.path)
    worker = EmissionWorker(cfg.cems, get_logger())
    worker.open(store)
    try:
        minute = 0
        while clock.now() < END:
            if BLOCKED[0] <= clock.now() < BLOCKED[0] + timedelta(minutes=1):  # the live fault, once
                bench.handle({"device": "cems-das", "fault": "blocked_pitot", "duration_s": BLOCKED[1]})
            poller.poll_once()
            minute += 1
            if minute % 60 == 0:
                store.insert_raw(readings)
                readings.clear()
                worker.tick(store, clock.now())
            clock.advance(60)
        store.insert_raw(readings)
        clock.advance(600)
        worker.tick(store, clock.now())
        truth = {h: bench.stack.true_mass_t(START + timedelta(hours=h), START + timedelta(hours=h + 1))
                 for h in range(int((END - START).total_seconds() // 3600))}
        hours = store.emission_rows("hour", stamp(START), stamp(END), "unit-1")
        minutes = store.emission_rows("minute", stamp(START), stamp(END), "unit-1")
    finally:
        store.close()
        poller.driver.close()
        bench.stop()
    cli = subprocess.run([BIN / "station-agent", "emissions", "--config", str(tmp / "station.toml"),
                          "--from", stamp(START), "--to", stamp(END), "--by", "month", "--json"],
                         capture_output=True, text=True, timeout=60)
    return {"hours": hours, "minutes": minutes, "truth": truth, "cli": cli}


def test_every_minute_and_hour_of_the_month_is_computed(month):
    assert len(month["minutes"]) == 28 * 1440
    assert len(month["hours"]) == 28 * 24


def test_the_monthly_mass_matches_the_true_emission_within_1_percent(month):
    mass_t = sum(h["mass_kg"] for h in month["hours"]) / 1000.0
    assert mass_t == pytest.approx(sum(month["truth"].values()), rel=0.01)


def test_the_measured_hours_match_their_truth_within_1_percent(month):
    by_hour = {stamp(START + timedelta(hours=h)): t for h, t in month["truth"].items()}
    measured = [h for h in month["hours"] if h["co2_modc"] == "01" and h["flow_modc"] == "01"]
    assert len(measured) == 28 * 24 - len(SUBSTITUTED)
    mass_t = sum(h["mass_kg"] for h in measured) / 1000.0
    assert mass_t == pytest.approx(sum(by_hour[h["time"]] for h in measured), rel=0.01)


def test_exactly_the_faulty_hours_are_substituted_and_marked(month):
    got = {h["time"]: (h["co2_modc"] != "01", h["flow_modc"] != "01") for h in month["hours"]
           if h["co2_modc"] != "01" or h["flow_modc"] != "01"}
    assert got == SUBSTITUTED
    for h in month["hours"]:
        if h["time"] in SUBSTITUTED:
            assert h["mass_kg"] is not None and h["mass_kg"] > 0
            codes = {"H4"} if h["time"] in OUT_OF_CONTROL else {"H1"}  # <= 24 h, capture rate >= 90 %
            assert {h["co2_modc"], h["flow_modc"]} - {"01"} == codes, h


def test_the_emissions_command_gives_the_month(month):
    assert month["cli"].returncode == 0, month["cli"].stderr
    (row,) = json.loads(month["cli"].stdout)
    assert row["start"] == "2026-02-01T00:00:00Z"
    assert row["substituted_hours"] == len(SUBSTITUTED) and row["operating_hours"] == 28 * 24
    assert row["mass_t"] == pytest.approx(sum(h["mass_kg"] for h in month["hours"]) / 1000.0, rel=1e-6)
