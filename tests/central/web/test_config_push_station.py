"""A config pushed from the operations pages reaches a real station: an admin POSTs it to the
operations center (served by uvicorn on central's store), which signs it and publishes it on a real
mosquitto; the real station agent (against the simulated bench) verifies it, applies it and finds it
healthy; the real central receiver stores the steps it reports, and GET /api/registry/<id>/config
shows them. The fixtures are those of tests/station_agent/test_remote_config.py (support.station)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from support.site import BIN
from support.station import Hil
from support.webapp import PASSWORDS, Client

from central.config import load_central_config
from central.store import open_store
from central.users import Accounts
from central.web import WebServer
from station_agent.fleet.config_history import ConfigHistory

pytestmark = pytest.mark.slow  # a station restarted once at --speed 60

STATION = "demo-tower"


def _wait(what, check, timeout: float, hil: Hil):
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"{what() if callable(what) else what}\n{hil.log_tail()}"
        if hil.agent is not None:
            assert hil.agent.poll() is None, "the agent died: " + hil.log_tail()
        time.sleep(0.5)


def test_a_push_from_the_web_is_applied_by_the_station_and_its_steps_shown(tmp_path: Path, mosquitto):
    central_toml = tmp_path / "central.toml"
    central_toml.write_text(f'[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\n\n'
                            f'[storage]\npath = "{tmp_path / "central.sqlite"}"\n\n'
                            f'[fleet]\nsigning_key = "{tmp_path / "keys" / "signing.pem"}"\n')
    keys = subprocess.run([BIN / "central-receiver", "keys", "init", "--config", central_toml],
                          capture_output=True, text=True, timeout=60)
    assert keys.returncode == 0, keys.stderr
    public = json.loads(keys.stdout)["central_public_key"]
    fleet = (f'[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\n\n[forwarding]\nstop_drain_s = 5\n\n'
             f'[fleet]\ncentral_public_key = "{public}"\nhealth_check_s = 600\n')
    hil = Hil(tmp_path, speed=60.0, forwarding=fleet)
    receiver = subprocess.Popen([BIN / "central-receiver", "run", "--config", central_toml, *hil.clock_args()],
                                stdout=(tmp_path / "central.log").open("w"), stderr=subprocess.STDOUT)
    server = store = None
    try:
        hil.start_agent()
        config = load_central_config(central_toml)
        _wait("central's store", lambda: (tmp_path / "central.sqlite").exists(), 60, hil)
        store = open_store("sqlite", path=tmp_path / "central.sqlite")
        accounts = Accounts(store)
        accounts.add("ada", "admin", PASSWORDS["ada"])
        accounts.add("vera", "viewer", PASSWORDS["vera"])
        server = WebServer(config, "127.0.0.1", 0, store=store).start()
        ada, vera = Client(server.url).login("ada"), Client(server.url).login("vera")
        path = f"/api/registry/{STATION}/config"

        original = hil.config.read_text()
        pushed = original.replace('name = "Demo tall tower (simulated)"', 'name = "Demo tower, pushed from the web"')
        assert pushed != original
        status, err = vera.request("POST", path, {"config": pushed})
        assert status == 403, err
        status, row = ada.request("POST", path, {"config": pushed})
        assert status == 201 and row["version"] == 1 and row["user"] == "ada", row

        history = ConfigHistory(tmp_path / "config-versions")  # the station's own record
        _wait("the station never found version 1 healthy",
              lambda: any(s["version"] == 1 and s["step"] == "healthy" for s in history.steps()), 120, hil)
        assert "pushed from the web" in hil.config.read_text()
        assert history.active() == 1

        seen: list = []

        def shown():  # central's view, once the receiver has stored the station's events
            status, doc = vera.request("GET", path)
            assert status == 200, doc
            seen[:] = [doc]
            v1 = [v for v in doc["versions"] if v["version"] == 1]
            return v1[0] if v1 and any(s["step"] == "healthy" for s in v1[0]["steps"]) else None

        v1 = _wait(lambda: f"central never showed version 1 healthy: {seen}", shown, 120, hil)
        assert v1["state"] == "healthy", v1
        steps = [s["step"] for s in v1["steps"]]
        # after its restart the station is handed the retained copy again and refuses it as a replay
        assert steps[:3] == ["received", "applied", "healthy"] and set(steps[3:]) <= {"refused_replay"}, steps
        times = [s["time"] for s in v1["steps"]]
        assert times == sorted(times) and v1["pushes"][0]["source"] == "operations center"
        print(f"push to healthy at central: steps {steps}, {times[0]} .. {times[-1]} (simulated time)")
    finally:
        if server is not None:
            server.stop()
        if store is not None:
            store.close()
        hil.close()
        receiver.terminate()
        receiver.wait(30)
