"""Running the example bench and the example station as real processes, on free ports, in a
temporary folder, with one shared simulated clock (--start/--anchor): hardware in the loop."""

from __future__ import annotations

import csv
import io
import json
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
START = "2026-03-01T00:00:00Z"


def bench_toml(tmp: Path) -> Path:
    text = (ROOT / "configs" / "bench.example.toml").read_text()
    text = re.sub(r"(?m)^port = \d{4,5}$", "port = 0", text)  # TCP ports; valve ports stay
    text = re.sub(r"(?m)^pty_link = .*$", "", text)
    path = tmp / "bench.toml"
    path.write_text(text)
    return path


def station_toml(tmp: Path, endpoints: dict, forwarding: str | None = None) -> Path:
    """The example station pointed at the bench's endpoints, storing in `tmp`; no broker unless
    `forwarding` gives an [mqtt] table (and more) to append."""
    text = (ROOT / "configs" / "station.example.toml").read_text()
    inst = endpoints["instruments"]
    text = text.replace("socket://127.0.0.1:51020", inst["picarro-1"]["url"])
    text = text.replace("socket://127.0.0.1:51030", inst["valve-1"]["url"])
    text = text.replace("tcp://127.0.0.1:51040", inst["flow-1"]["url"])
    text = text.replace('path = "../data/demo-tower/station.sqlite"', 'path = "station.sqlite"')
    text = text.split("# Central's broker")[0] + (forwarding or "")
    path = tmp / "station.toml"
    path.write_text(text)
    return path


def control(address: str, request: dict) -> dict:
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall((json.dumps(request) + "\n").encode())
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = sock.recv(1 << 22)
            if not chunk:
                break
            buf += chunk
    reply = json.loads(buf)
    assert reply["ok"], reply
    return reply


class Hil:
    """station-sim + station-agent processes sharing simulated time."""

    def __init__(self, tmp: Path, speed: float = 1440.0, forwarding: str | None = None) -> None:
        self.tmp = tmp
        self.speed = speed
        self.anchor = (datetime.now(UTC) + timedelta(seconds=2)).isoformat().replace("+00:00", "Z")
        self.forwarding = forwarding
        self.sim = subprocess.Popen(
            [BIN / "station-sim", "run", "--config", bench_toml(tmp), "--speed", str(speed),
             "--start", START, "--anchor", self.anchor],
            stdout=subprocess.PIPE, stderr=(tmp / "sim.log").open("w"), text=True)
        self.endpoints = json.loads(self.sim.stdout.readline())
        self.config = station_toml(tmp, self.endpoints, forwarding)
        self.agent: subprocess.Popen | None = None

    def start_agent(self) -> None:
        self.agent = subprocess.Popen(
            [BIN / "station-agent", "run", "--config", self.config, "--speed", str(self.speed),
             "--start", START, "--anchor", self.anchor],
            stdout=(self.tmp / "agent.log").open("a"), stderr=subprocess.STDOUT)

    def sim_now(self) -> datetime:
        anchor = datetime.fromisoformat(self.anchor.replace("Z", "+00:00"))
        start = datetime.fromisoformat(START.replace("Z", "+00:00"))
        return start + (datetime.now(UTC) - anchor) * self.speed

    def run_until(self, sim_time: datetime, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while self.sim_now() < sim_time:
            assert self.agent is None or self.agent.poll() is None, "the agent died"
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.05)

    def agent_cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([BIN / "station-agent", *args, "--config", self.config],
                              capture_output=True, text=True, timeout=timeout)

    def status(self) -> dict:
        """`station-agent status --json`, or {} while there is no database yet (exit 3)."""
        res = self.agent_cli("status", "--json")
        if res.returncode == 3:
            return {}
        return json.loads(res.stdout)

    def stop_agent(self, sig: int = signal.SIGTERM) -> int:
        assert self.agent is not None
        self.agent.send_signal(sig)
        rc = self.agent.wait(timeout=60)
        self.agent = None
        return rc

    def control(self, request: dict) -> dict:
        return control(self.endpoints["control"], request)

    def export(self, level: str) -> list[dict]:
        out = self.agent_cli("export", "--from", "2000-01-01", "--to", "2100-01-01", "--level", level)
        assert out.returncode == 0, out.stderr
        return list(csv.DictReader(io.StringIO(out.stdout)))

    def truth(self) -> dict[str, dict]:
        rows = self.control({"cmd": "truth", "device": "picarro-1", "from": "2000-01-01T00:00:00Z",
                             "to": "2100-01-01T00:00:00Z"})["truth"]
        return {r["time"]: r for r in rows}

    def close(self) -> None:
        if self.agent is not None and self.agent.poll() is None:
            self.agent.kill()
            self.agent.wait(30)
        if self.sim.poll() is None:
            self.sim.send_signal(signal.SIGTERM)
            self.sim.wait(30)
