"""A station whose agent is stopped shows as down within two status intervals: a real receiver, a
real mosquitto, and a station process publishing its retained status (short interval_s) with a
last will, then killed (the broker publishes the will) or frozen (no will: only silence tells)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from support.central import central_config
from support.wait import wait_until
from typer.testing import CliRunner

from central.cli import app
from central.receiver import Receiver
from central.store import open_store
from central.views import station_health

INTERVAL_S = 1.0
STATION_SCRIPT = r'''
import json, sys, time
from datetime import UTC, datetime
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
host, port, station, interval = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
topic = f"ghg/v1/{station}/status"
def status(state):
    return json.dumps({"schema": 1, "station": station, "state": state,
                       "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"), "backlog": 7,
                       "oldest_unacked_age_s": 1.5, "agent_version": "test", "interval_s": interval,
                       "last_seq": 0, "details": {}})
c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"agent-{station}", protocol=mqtt.MQTTv5)
c.will_set(topic, status("down"), qos=1, retain=True)
c.connect(host, port, keepalive=60)
c.loop_start()
while True:
    c.publish(topic, status("up"), qos=1, retain=True)
    print("published", flush=True)
    time.sleep(interval)
'''


def _start_station(tmp_path: Path, broker, station: str) -> subprocess.Popen:
    script = tmp_path / "station.py"
    script.write_text(STATION_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), broker.host, str(broker.port), station, str(INTERVAL_S)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "published"
    return proc


def _state(db: Path, config, station: str) -> str:
    store = open_store("sqlite", path=db)
    try:
        rows = {r["station"]: r for r in station_health(store, config, datetime.now(UTC))}
    finally:
        store.close()
    return rows[station]["state"] if station in rows else "absent"


def _run(tmp_path, mosquitto, start_receiver, stop_signal: int) -> float:
    db = tmp_path / "central.sqlite"
    config = central_config(mosquitto, db, aggregate={"enabled": False})
    start_receiver(config)
    proc = _start_station(tmp_path, mosquitto, "st-a")
    try:
        wait_until(lambda: _state(db, config, "st-a") == "up", 10, 0.05, "station up")
        time.sleep(1.5 * INTERVAL_S)  # a few regular status messages
        assert _state(db, config, "st-a") == "up"
        os.kill(proc.pid, stop_signal)
        stopped = time.monotonic()
        wait_until(lambda: _state(db, config, "st-a") == "down", 5, 0.02, "station down")
        took = time.monotonic() - stopped
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    doc = json.loads(CliRunner().invoke(app, ["status", "--config", str(_write(tmp_path, config)), "--json"]).stdout)
    (row,) = doc["stations"]
    assert row["state"] == "down" and row["backlog"] == 7
    return took


def _write(tmp_path: Path, config) -> Path:
    path = tmp_path / "central.toml"
    path.write_text(f'[storage]\npath = "{config.storage.path}"\n')
    return path


def test_a_killed_agent_shows_down_at_once_through_its_last_will(tmp_path, mosquitto, start_receiver):
    took = _run(tmp_path, mosquitto, start_receiver, signal.SIGKILL)
    print(f"killed agent: down after {took:.2f} s (limit {2 * INTERVAL_S:.1f} s)")
    assert took <= 2 * INTERVAL_S


def test_a_frozen_agent_shows_down_within_two_status_intervals(tmp_path, mosquitto, start_receiver):
    # SIGSTOP: the TCP connection stays open, the broker sends no will; silence alone must tell
    took = _run(tmp_path, mosquitto, start_receiver, signal.SIGSTOP)
    print(f"frozen agent: down after {took:.2f} s (limit {2 * INTERVAL_S:.1f} s + polling)")
    assert INTERVAL_S * 0.9 <= took <= 2 * INTERVAL_S + 0.3


def _status_received(db: Path, station: str):
    store = open_store("sqlite", path=db)
    try:
        return {s.station: s for s in store.stations()}[station].status.received_at
    finally:
        store.close()


def test_a_restarted_receiver_does_not_revive_a_frozen_station_with_its_retained_status(tmp_path, mosquitto):
    # The broker hands the retained "up" to every new subscription: central must see that it is the
    # status it already holds (same station time), not news from the station.
    db = tmp_path / "central.sqlite"
    config = central_config(mosquitto, db, aggregate={"enabled": False})
    proc = _start_station(tmp_path, mosquitto, "st-a")
    try:
        with Receiver(config) as first:
            assert first.subscribed.wait(10)
            wait_until(lambda: _state(db, config, "st-a") == "up", 10, 0.05, "station up")
            os.kill(proc.pid, signal.SIGSTOP)
            wait_until(lambda: _state(db, config, "st-a") == "down", 5, 0.02, "station down")
            received = _status_received(db, "st-a")
        with Receiver(config) as second:
            assert second.subscribed.wait(10)
            wait_until(lambda: second.stats["messages_handled"] >= 1, 10, 0.02, "retained status handled again")
            assert _state(db, config, "st-a") == "down"
            assert _status_received(db, "st-a") == received
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
