"""Faults in the loop (real processes): a SIGKILL mid-calibration, a stuck valve, a dead Modbus
sensor. The station keeps measuring, flags what it must, raises events, and labels no minute with
the wrong stream."""

from __future__ import annotations

import signal
from datetime import timedelta

import pytest
from support.station import Hil
from support.wait import wait_until

CYLINDERS = {"CAL-1": 380.0, "CAL-2": 420.0, "CAL-3": 460.0, "CAL-4": 500.0, "TGT-1": 430.0, "TGT-2": 410.0}


def wait(predicate, timeout=60.0, what="condition"):
    return wait_until(predicate, timeout_s=timeout, interval_s=0.1, message=what)


@pytest.fixture(scope="module")
def faults(tmp_path_factory):
    hil = Hil(tmp_path_factory.mktemp("hilfaults"), speed=600)
    out = {}
    try:
        hil.start_agent()
        # 1. SIGKILL while the start-up calibration is on its second standard, then restart.
        wait(lambda: ((hil.status().get("agent") or {}).get("engine") or {}).get("stream") == "cal:CAL-2",
             what="the calibration to reach CAL-2")
        hil.stop_agent(signal.SIGKILL)
        out["killed_at"] = hil.sim_now()
        hil.start_agent()
        hil.run_until(out["killed_at"] + timedelta(minutes=70))
        # 2. The flow sensor dies: the analyzer must keep being polled; the interlock holds the
        # sequence and flags the minutes.
        raw_before = hil.status()["counts"]["raw"]
        hil.control({"device": "flow-1", "fault": "power_off"})
        out["flow_off"] = hil.sim_now()
        hil.run_until(out["flow_off"] + timedelta(minutes=20))
        out["raw_during_flow_off"] = hil.status()["counts"]["raw"] - raw_before
        out["status_flow_off"] = hil.status()
        hil.control({"device": "flow-1", "cmd": "clear_faults"})
        hil.run_until(hil.sim_now() + timedelta(minutes=10))
        # 3. The valve sticks: moves are retried, then an event, and the minutes are flagged.
        hil.control({"device": "valve-1", "fault": "stuck"})
        out["stuck"] = hil.sim_now()
        hil.run_until(out["stuck"] + timedelta(minutes=30))
        hil.control({"device": "valve-1", "cmd": "clear_faults"})
        hil.run_until(hil.sim_now() + timedelta(minutes=30))
        assert hil.stop_agent() == 0
        out["minute"] = hil.export("minute")
        out["truth"] = hil.truth()
        out["events"] = hil.agent_cli("status", "--json")
        import sqlite3

        db = sqlite3.connect(hil.tmp / "station.sqlite")
        out["event_kinds"] = [r[0] for r in db.execute("SELECT kind FROM event ORDER BY seq")]
        out["valve_position"] = hil.control({"cmd": "ledger", "device": "valve-1"})["ledger"][-1]
    finally:
        hil.close()
    return out


def test_a_restart_mid_calibration_aborts_it_and_labels_no_minute_wrongly(faults):
    assert "run.aborted" in faults["event_kinds"]
    n = 0
    for r in faults["minute"]:
        if r["flag"] != "U" or "flush" in r["reasons"] or not r["stream"].startswith(("cal:", "target:")):
            continue
        t = faults["truth"][r["time_utc"]]
        if int(r["co2_n"]) != t["n"]:
            continue  # a switch inside the minute
        assert abs(t["co2"] - CYLINDERS[r["stream"].split(":", 1)[1]]) < 0.05, r
        n += 1
    assert n >= 20


def test_a_dead_modbus_sensor_never_stops_the_analyzer_and_suspends_the_sequence(faults):
    assert faults["raw_during_flow_off"] > 200  # ~30 analyzer records a minute for 20 minutes
    devices = faults["status_flow_off"]["agent"]["devices"]
    assert devices["flow-1"]["faults"] and devices["picarro-1"]["connected"] and not devices["picarro-1"]["faults"]
    assert faults["status_flow_off"]["agent"]["engine"]["interlocked"] is True
    assert "interlock.on" in faults["event_kinds"] and "interlock.off" in faults["event_kinds"]
    flagged = [r for r in faults["minute"] if "interlock" in r["reasons"]]
    assert len(flagged) >= 10 and all(r["flag"] == "N" for r in flagged)


def test_a_stuck_valve_gives_an_event_and_flagged_minutes(faults):
    assert "fault.mismatch" in faults["event_kinds"]
    flagged = [r for r in faults["minute"] if "valve_mismatch" in r["reasons"]]
    assert flagged and all(r["flag"] == "N" for r in flagged)


def test_sigterm_parks_the_valve_on_the_sample_port(faults):
    assert faults["valve_position"]["landed"] == 1  # where the rotor is after the last move
