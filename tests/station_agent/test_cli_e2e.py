"""The technician's CLI against a running agent and simulators (real processes): each command's
output and exit code, maintenance flagging the minutes, and a manual valve move."""

from __future__ import annotations

import json
import os
import re
import socket
import stat
from datetime import timedelta

import pytest
from support.station import Hil
from support.wait import wait_until

from ghgnet.wire import STORE_ID_PATTERN


def wait(predicate, timeout=60.0, what="condition"):
    return wait_until(predicate, timeout_s=timeout, interval_s=0.1, message=what)


@pytest.fixture(scope="module")
def station(tmp_path_factory):
    hil = Hil(tmp_path_factory.mktemp("cli"), speed=120)
    hil.start_agent()
    wait(lambda: (hil.tmp / "agent.sock").exists(), what="the control socket")
    yield hil
    hil.close()


def engine(hil):
    return hil.status()["agent"]["engine"]


def test_control_socket_admits_only_owner_and_group(station):
    mode = stat.S_IMODE(os.stat(station.tmp / "agent.sock").st_mode)
    assert mode == 0o660


def test_status_reports_stream_devices_and_exit_code(station):
    wait(lambda: station.status()["counts"]["minute"] > 0, what="a first minute")
    res = station.agent_cli("status")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "demo-tower agent running" in res.stdout and "picarro-1" in res.stdout and "stream" in res.stdout
    info = json.loads(station.agent_cli("status", "--json").stdout)
    assert info["via"] == "control socket" and info["agent"]["devices"]["picarro-1"]["connected"]


def test_drivers_list_and_probe(station):
    import subprocess

    from support.station import BIN

    res = subprocess.run([BIN / "station-agent", "drivers", "list", "--json"], capture_output=True, text=True)
    assert {d["name"] for d in json.loads(res.stdout)} >= {"picarro.g2401", "vici.multiposition", "modbus.device"}
    probe = station.agent_cli("probe", "picarro-1", "--json")
    assert probe.returncode == 0, probe.stdout + probe.stderr
    info = json.loads(probe.stdout)
    assert info["ok"] and info["status"] == 963 and 300 < info["latest"]["co2_dry"] < 600
    bad = station.agent_cli("probe", "nope")
    assert bad.returncode == 2 and "unknown device 'nope'" in bad.stderr


def test_valve_goto_is_refused_outside_maintenance(station):
    res = station.agent_cli("valve", "goto", "3")
    assert res.returncode == 1 and "maintenance" in res.stderr


def test_maintenance_flags_minutes_and_allows_a_manual_valve_move(station):
    res = station.agent_cli("maintenance", "on")
    assert res.returncode == 2 and "--reason" in res.stderr
    assert station.agent_cli("maintenance", "on", "--reason", "filter change").returncode == 0
    wait(lambda: engine(station)["maintenance"] is not None, what="maintenance mode")
    res = station.agent_cli("valve", "goto", "3")
    assert res.returncode == 0, res.stderr
    wait(lambda: engine(station)["stream"] == "inlet:low", what="the valve on port 3")
    on_at = station.sim_now()
    station.run_until(on_at + timedelta(minutes=6))
    assert station.agent_cli("maintenance", "off").returncode == 0
    wait(lambda: engine(station)["maintenance"] is None, what="maintenance off")
    station.run_until(station.sim_now() + timedelta(minutes=3))
    minutes = station.export("minute")
    flagged = [r for r in minutes if "maintenance" in r["reasons"]]
    assert len(flagged) >= 4 and all(r["flag"] == "N" for r in flagged)
    assert any(r["stream"] == "inlet:low" for r in flagged)
    events = json.loads(station.agent_cli("events", "--json", "--limit", "200").stdout)
    kinds = [e["kind"] for e in events]
    assert "maintenance.on" in kinds and "maintenance.off" in kinds


def test_calibrate_now_starts_a_calibration(station):
    res = station.agent_cli("calibrate", "now", "nope")
    assert res.returncode == 1 and "unknown run 'nope'" in res.stderr
    assert station.agent_cli("calibrate", "now").returncode == 0
    wait(lambda: (engine(station)["run"] or {}).get("kind") == "calibration", what="the calibration")


def test_cylinders_add_list_retire(station):
    res = station.agent_cli("cylinders", "add", "TGT-9", "--role", "target", "--value", "co2=415.5",
                            "--value", "ch4=1950", "--pressure-bar", "15")
    assert res.returncode == 0, res.stderr
    rows = json.loads(station.agent_cli("cylinders", "list", "--json").stdout)
    tgt9 = next(r for r in rows if r["id"] == "TGT-9")
    assert tgt9["assigned"] == {"co2": 415.5, "ch4": 1950.0} and tgt9["scale"]["co2"] == "WMO-CO2-X2019"
    bad = station.agent_cli("cylinders", "add", "X", "--role", "target", "--value", "co2:1")
    assert bad.returncode == 2 and "SPECIES=VALUE" in bad.stderr
    # a new pressure entered is a dated reading for central's forecast of when the cylinder runs empty
    assert station.agent_cli("cylinders", "add", "TGT-9", "--role", "target", "--value", "co2=415.5",
                             "--value", "ch4=1950", "--pressure-bar", "12").returncode == 0
    assert station.agent_cli("cylinders", "retire", "TGT-9").returncode == 0
    events = [e for e in json.loads(station.agent_cli("events", "--json", "--limit", "1000").stdout)
              if e["kind"].startswith("inventory.cylinder") and "TGT-9" in e["message"]]
    assert sorted(e["kind"] for e in events) == ["inventory.cylinder_installed", "inventory.cylinder_pressure",
                                                 "inventory.cylinder_removed"]
    assert station.agent_cli("cylinders", "retire", "TGT-9").returncode == 1
    assert "TGT-9" not in {r["id"] for r in json.loads(station.agent_cli("cylinders", "list", "--json").stdout)}


def test_tail_prints_live_minutes(station):
    res = station.agent_cli("tail", "--json", "--raw", "--count", "2", timeout=120)
    assert res.returncode == 0, res.stderr
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    minutes = [x for x in lines if "seq" in x]
    raw = [x for x in lines if "last_reading" in x]
    assert len(minutes) == 2 and all(x["device"] == "picarro-1" for x in minutes)
    analyzer = [x for x in raw if x["device"] == "picarro-1"]
    assert analyzer and 300 < analyzer[-1]["values"]["co2_dry"] < 600


def raw_request(station, payload: bytes) -> dict:
    """One request line to the agent's control socket, as any local program could send it."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(str(station.tmp / "agent.sock"))
        s.sendall(payload + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            buf += chunk
    return json.loads(buf)


def test_the_issues_oversized_maintenance_reason_is_refused_and_the_agent_goes_on(station):
    before = station.status()["counts"]["event"]
    reply = raw_request(station, json.dumps({"cmd": "maintenance", "on": True, "reason": "x" * 600_000}).encode())
    assert reply == {"ok": False, "error": "maintenance: reason: String should have at most 500 characters (got 600000)"}
    assert engine(station)["maintenance"] is None
    res = station.agent_cli("maintenance", "on", "--reason", "r" * 501)
    assert res.returncode == 1 and "at most 500 characters (got 501)" in res.stderr
    assert station.agent_cli("status").returncode == 0
    events = json.loads(station.agent_cli("events", "--json", "--limit", "1000").stdout)
    assert not [e for e in events if e["kind"] == "maintenance.on" and len(e["message"]) > 600]
    assert station.status()["counts"]["event"] >= before


def test_an_overlong_cylinder_serial_is_refused_by_the_cli_and_by_the_socket(station):
    res = station.agent_cli("cylinders", "add", "TGT-8", "--role", "target", "--value", "co2=415", "--serial", "s" * 65)
    assert res.returncode == 2 and "serial: String should have at most 64 characters" in res.stderr
    reply = raw_request(station, json.dumps({"cmd": "cylinder_add", "cylinder": {
        "id": "TGT-8", "role": "target", "assigned": {"co2": 415.0}, "serial": "s" * 100_000}}).encode())
    assert reply == {"ok": False, "error": "cylinder_add: serial: String should have at most 64 characters"}
    assert "TGT-8" not in {r["id"] for r in json.loads(station.agent_cli("cylinders", "list", "--json").stdout)}


def test_status_shows_the_store_identity(station):
    info = station.status()
    assert re.fullmatch(STORE_ID_PATTERN, info["store"])
    assert f"store {info['store']}" in station.agent_cli("status").stdout


def test_set_aside_commands_through_the_control_socket(station):
    listed = station.agent_cli("set-aside", "list", "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout) == [], listed.stderr
    assert "no record is set aside" in station.agent_cli("set-aside", "list").stdout
    res = station.agent_cli("set-aside", "retry", "5")
    assert res.returncode == 1 and "0 set-aside record(s) back in the outbox; not set aside: 5" in res.stderr
    res = station.agent_cli("set-aside", "retry")
    assert res.returncode == 2 and "--all" in res.stderr
    assert station.agent_cli("set-aside", "retry", "--all").returncode == 0
    assert station.agent_cli("set-aside", "export").stdout == ""


def test_commands_after_the_agent_stopped(station):
    assert station.stop_agent() == 0
    res = station.agent_cli("status")
    assert res.returncode == 1 and "stopped" in res.stdout
    res = station.agent_cli("maintenance", "off")
    assert res.returncode == 3 and "not running" in res.stderr
    assert station.agent_cli("events").returncode == 0
    out = station.tmp / "minutes.csv"
    res = station.agent_cli("export", "--from", "2000-01-01", "--to", "2100-01-01", "--out", str(out))
    assert res.returncode == 0 and out.read_text().startswith("time_utc,station,device,stream,seq")
