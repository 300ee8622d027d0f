"""Remote configuration end to end: central signs and pushes station configs over a real mosquitto,
the real station agent (against the simulated bench) verifies, applies, health-checks, rolls back
and reports every step as an event that the real central receiver stores.

One station run holds every case, in order: a good push, a replay of it, an invalid config, a
forged and an unsigned one, one that validates but cannot reach the analyzer (rolled back), and a
push made while the station is down (taken from the retained message when it comes back)."""

from __future__ import annotations

import json
import re
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.site import BIN
from support.station import Hil

from central.fleet.config_push import publish_retained
from ghgnet.mqttlink import MqttConfig
from ghgnet.signed_config import SignedConfig, new_private_key, sign_config
from station_agent.fleet.config_history import ConfigHistory

pytestmark = pytest.mark.slow  # a station restarted four times at --speed 60

STATION = "demo-tower"
SPEED = 60.0


def _central(tmp: Path, port: int) -> Path:
    path = tmp / "central.toml"
    path.write_text(f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\n\n[storage]\npath = "{tmp / "central.sqlite"}"\n\n'
                    f'[fleet]\nsigning_key = "{tmp / "keys" / "signing.pem"}"\n')
    return path


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([BIN / "central-receiver", *args], capture_output=True, text=True, timeout=60)


def _wait_step(history: ConfigHistory, version: int, step: str, hil: Hil, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        got = [s for s in history.steps() if s["version"] == version and s["step"] == step]
        if got:
            return got[-1]
        assert time.monotonic() < deadline, (f"no step {step} of version {version}: {history.steps()}\n"
                                             + hil.log_tail())
        if hil.agent is not None:
            assert hil.agent.poll() is None, "the agent died: " + hil.log_tail()
        time.sleep(0.2)


def _print_figures(out: dict) -> None:
    """Figures for the record (pytest -s): each restart's length and the analyzer's minutes missing."""
    steps = out["local_history"]["steps"]
    t = {(s["version"], s["step"]): datetime.fromisoformat(s["time"].replace("Z", "+00:00")) for s in steps}
    for v in (1, 5):
        if (v, "verified") in t and (v, "applied") in t:
            print(f"restart for v{v}: {(t[v, 'applied'] - t[v, 'verified']).total_seconds() / SPEED:.2f} s real")
    minutes = sorted({r["time_utc"] for r in out["minute"] if r["device"] == "picarro-1"})
    first, last = (datetime.fromisoformat(m.replace("Z", "+00:00")) for m in (minutes[0], minutes[-1]))
    print(f"picarro-1 minutes: {len(minutes)} of {int((last - first).total_seconds() // 60) + 1} from first to last")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from simulators.broker import MosquittoBroker

    tmp = tmp_path_factory.mktemp("remote-config")
    broker = MosquittoBroker(tmp / "mosquitto").start()
    central_cfg = _central(tmp, broker.port)
    keys = _cli("keys", "init", "--config", str(central_cfg))
    assert keys.returncode == 0, keys.stderr
    public = json.loads(keys.stdout)["central_public_key"]
    assert _cli("keys", "init", "--config", str(central_cfg)).returncode == 2  # never overwrites a key
    fleet = (f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n\n[forwarding]\nstop_drain_s = 5\n\n'
             f'[fleet]\ncentral_public_key = "{public}"\nhealth_check_s = 600\n')
    hil = Hil(tmp, speed=SPEED, forwarding=fleet)
    central = subprocess.Popen([BIN / "central-receiver", "run", "--config", central_cfg, *hil.clock_args()],
                               stdout=(tmp / "central.log").open("w"), stderr=subprocess.STDOUT)
    history = ConfigHistory(tmp / "config-versions")
    original = hil.config.read_text()
    out: dict = {"tmp": tmp, "original": original}

    def push(text: str, *extra: str) -> subprocess.CompletedProcess:
        f = tmp / "push.toml"
        f.write_text(text)
        res = _cli("station", "config", "push", STATION, str(f), "--config", str(central_cfg), *extra)
        assert res.returncode == 0, res.stderr
        return res

    mqtt = MqttConfig(host="127.0.0.1", port=broker.port)
    try:
        hil.start_agent()
        good = original.replace('name = "Demo tall tower (simulated)"', 'name = "Demo tower, pushed v1"').replace(
            'driver = "picarro.g2401"\n', 'driver = "picarro.g2401"\nserial_number = "CFKADS2001"\n', 1)
        assert good != original
        out["push1"] = json.loads(push(good).stdout)
        out["healthy1"] = _wait_step(history, 1, "healthy", hil)
        out["file_after_1"] = hil.config.read_text()
        out["status_after_1"] = hil.status()

        push(good, "--version", "1")  # a replay of version 1
        out["replay"] = _wait_step(history, 1, "refused_replay", hil)

        push(original.replace("min_samples = 10", "min_samples = 0", 1))  # version 2: invalid
        out["invalid"] = _wait_step(history, 2, "refused_invalid", hil)

        forged = sign_config(new_private_key(), STATION, 3, datetime.now(UTC), good)
        publish_retained(mqtt, "forger", f"ghg/v1/{STATION}/config", forged.encode())
        out["forged"] = _wait_step(history, 3, "refused_signature", hil)
        unsigned = SignedConfig(schema=1, station=STATION, version=4, issued=datetime.now(UTC), config=good)
        publish_retained(mqtt, "forger", f"ghg/v1/{STATION}/config", unsigned.encode())
        out["unsigned"] = _wait_step(history, 4, "refused_signature", hil)

        # version 5 validates but points the analyzer at a port nobody listens on
        url = re.search(r'(?m)^url = "(socket://127\.0\.0\.1:\d+)"', good).group(1)
        broken = good.replace(url, "socket://127.0.0.1:9", 1)
        push(broken, "--version", "5")
        out["applied5"] = _wait_step(history, 5, "applied", hil)
        out["failed5"] = _wait_step(history, 5, "failed_health", hil)
        out["rolled_back"] = _wait_step(history, 1, "rolled_back", hil)
        out["file_after_5"] = hil.config.read_text()
        out["active_after_5"] = history.active()

        # the station is down when version 6 is pushed: it takes the retained message when it is back
        assert hil.stop_agent() == 0
        offline = good.replace("pushed v1", "pushed v6 while offline").replace("CFKADS2001", "CFKADS2077")
        push(offline)
        hil.start_agent()
        out["healthy6"] = _wait_step(history, 6, "healthy", hil)
        out["file_after_6"] = hil.config.read_text()
        deadline = time.monotonic() + 90
        while True:  # the registry: central's view once a status of version 6 has arrived
            shown = _cli("stations", "show", STATION, "--config", str(central_cfg), "--json")
            out["registry"] = json.loads(shown.stdout) if shown.returncode == 0 else {}
            if out["registry"].get("config_version") == 6 and any(
                    h["kind"] == "inventory.device_changed" for h in out["registry"]["history"]):
                break
            assert time.monotonic() < deadline, (shown.stderr, out["registry"])
            time.sleep(1)
        listed = _cli("stations", "list", "--config", str(central_cfg), "--json")
        out["stations_list"] = json.loads(listed.stdout)
        assert hil.stop_agent() == 0
        out["minute"] = hil.export("minute")
        hist = _cli("station", "config", "history", STATION, "--config", str(central_cfg), "--json")
        assert hist.returncode == 0, hist.stderr
        out["central_history"] = json.loads(hist.stdout)
        out["local_history"] = json.loads(hil.agent_cli("config", "history", "--json").stdout)
        _print_figures(out)
    finally:
        hil.close()
        central.terminate()
        central.wait(30)
        broker.kill()
    return out


def test_a_good_push_is_written_applied_and_found_healthy(run):
    assert run["push1"]["version"] == 1
    assert "pushed v1" in run["file_after_1"]
    assert run["status_after_1"]["state"] == "running"


def test_a_replayed_version_is_refused(run):
    assert "not newer than version 1" in run["replay"]["detail"]


def test_an_invalid_config_is_refused_naming_the_field(run):
    assert "processing.min_samples" in run["invalid"]["detail"], run["invalid"]


def test_forged_and_unsigned_configs_are_refused(run):
    assert "does not match central's key" in run["forged"]["detail"]
    assert "unsigned" in run["unsigned"]["detail"]


def test_a_config_that_breaks_the_analyzer_is_rolled_back(run):
    assert "picarro-1 not answering" in run["failed5"]["detail"], run["failed5"]
    assert run["active_after_5"] == 1
    assert "socket://127.0.0.1:9\"" not in run["file_after_5"] and "pushed v1" in run["file_after_5"]


def test_a_push_while_the_station_is_down_is_applied_when_it_is_back(run):
    assert "pushed v6 while offline" in run["file_after_6"]
    assert run["local_history"]["active"] == 6


def test_central_stores_every_step_the_station_reported(run):
    steps = {(r["version"], r["step"]) for r in run["central_history"] if r["source"] == "station"}
    for want in [(1, "config.received"), (1, "config.applied"), (1, "config.healthy"), (1, "config.refused"),
                 (2, "config.refused"), (3, "config.refused"), (5, "config.applied"), (5, "config.failed_health"),
                 (1, "config.rolled_back"), (6, "config.healthy")]:
        assert want in steps, (want, sorted(steps))
    pushed = [r["version"] for r in run["central_history"] if r["source"] == "central"]
    assert pushed == [1, 1, 2, 5, 6]


def test_no_minute_is_stored_twice_across_the_restarts(run):
    """A minute of one stream is one record, whatever restarts fell in it (the writer restores the
    open minutes from the raw readings); two streams in a minute (a valve switch) are two."""
    keys = [(r["device"], r["stream"], r["time_utc"]) for r in run["minute"]]
    twice = sorted(k for k in set(keys) if keys.count(k) > 1)
    assert not twice and len(keys) > 20, twice


def test_the_registry_shows_the_serials_versions_and_the_dated_swap(run):
    reg = run["registry"]
    assert reg["devices"]["picarro-1"] == "CFKADS2077" and reg["config_version"] == 6
    assert reg["agent_version"] and reg["inventory"]["cylinders"], reg
    assert reg["clock_sync"]["source"] in ("chrony", "timesyncd", "unknown")
    changes = [h for h in reg["history"] if h["kind"] == "inventory.device_changed"]
    # v1 recorded the serial the local config lacked; v6 swapped the analyzer
    assert ["serial None" in c["message"] and "CFKADS2001" in c["message"] for c in changes] == [True, False]
    swap = changes[1]
    assert swap["device"] == "picarro-1" and "CFKADS2001" in swap["message"] and "CFKADS2077" in swap["message"]
    assert swap["time"] > run["healthy1"]["time"]  # dated when the swap happened, not at install
    assert [r["station"] for r in run["stations_list"]] == [STATION]
