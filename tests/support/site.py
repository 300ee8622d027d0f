"""Running a bench config and a station config as real processes, `station-sim run` and
`station-agent run`, in a temporary folder, on free ports, with one shared simulated clock
(--speed/--start/--anchor): hardware in the loop, for the sites of configs/sites/<site>/ and for
the example configs (support.station.Hil).

The configs name fixed ports and paths so that they run out of the box; here the bench's TCP ports
are set to 0, the station's device URLs are replaced by the ones the bench reports, the data paths
point into the temporary folder and the shared definitions (configs/analyzers/) are found where they
are. The agent is waited for until it logs `agent_started`; `started` is the simulated time then,
so that a run's length is counted from when the agent measures, whatever its start-up took.
"""

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
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SITES = ROOT / "configs" / "sites"
START = "2026-03-01T00:00:00Z"
START_TIME = datetime.fromisoformat(START.replace("Z", "+00:00"))
ANCHOR_DELAY_S = 2.0
"""Real seconds from the bench's launch to the simulated START: the agent's start-up mostly falls in it."""


def next_midnight(t: datetime) -> datetime:
    """The midnight that ends a simulated day begun at `t` (the agent may start a little before START)."""
    return (t + timedelta(hours=12)).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)


def control(address: str, request: dict) -> dict:
    """One request to the bench's control port; its reply (which must say ok)."""
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


def _localised(text: str, source: Path, tmp: Path) -> str:
    """A config's relative paths made absolute: its data folder (`../data/<name>/`) becomes `tmp`,
    anything else (shared definitions) is found beside the source file; fixed TCP ports become free ones."""

    def path(m: re.Match) -> str:
        rel = m.group(1)
        data = re.match(r"(?:\.\./)+data/[^/]+/(.*)$", rel)
        return json.dumps(str(tmp / data.group(1)) if data else str((source.parent / rel).resolve()))

    text = re.sub(r'"((?:\.\./)+[^"]*)"', path, text)
    return re.sub(r"(?m)^port = \d{4,5}\b.*$", "port = 0", text)


def bench_toml(source: Path, tmp: Path) -> Path:
    """The bench config in `tmp`: free TCP ports, no pty links, its data in `tmp`."""
    text = re.sub(r"(?m)^(pty_link|link) = .*$", "", _localised(source.read_text(), source, tmp))
    path = tmp / "bench.toml"
    path.write_text(text)
    return path


def station_toml(source: Path, tmp: Path, endpoints: dict, edit: Callable[[str], str] | None = None) -> Path:
    """The station config in `tmp`, each device's `url` pointed at where the bench serves the device
    of the same id, storing in `tmp`; `edit` changes the text further."""
    text = source.read_text()
    parsed = tomllib.loads(text)
    served = endpoints["instruments"]
    for table in ("analyzers", "valves", "devices"):
        for dev in parsed.get(table, []):
            if "url" in dev and "url" in served.get(dev["id"], {}):
                text = text.replace(f"url = {json.dumps(dev['url'])}", f"url = {json.dumps(served[dev['id']]['url'])}")
    text = re.sub(r'(?m)^path = ".*station\.sqlite"', f"path = {json.dumps(str(tmp / 'station.sqlite'))}", text)
    text = _localised(text, source, tmp)
    path = tmp / "station.toml"
    path.write_text(edit(text) if edit else text)
    return path


class Site:
    """`station-sim run` and `station-agent run` of one bench and station config; files in `tmp`.

    The bench starts at once (its endpoints read); `start_agent()` starts the agent and waits until
    it has started, `started` being the simulated time then."""

    def __init__(self, tmp: Path, bench: Path, station: Path, speed: float = 1440.0,
                 edit_station: Callable[[str], str] | None = None) -> None:
        self.tmp, self.speed = tmp, speed
        self.anchor = (datetime.now(UTC) + timedelta(seconds=ANCHOR_DELAY_S)).isoformat().replace("+00:00", "Z")
        self.sim = subprocess.Popen(
            [BIN / "station-sim", "run", "--config", bench_toml(bench, tmp), *self.clock_args()],
            stdout=subprocess.PIPE, stderr=(tmp / "sim.log").open("w"), text=True)
        line = self.sim.stdout.readline()
        assert line, "station-sim did not start: " + (tmp / "sim.log").read_text()[-3000:]
        self.endpoints = json.loads(line)
        self.config = station_toml(station, tmp, self.endpoints, edit_station)
        self.agent: subprocess.Popen | None = None
        self.started: datetime | None = None

    def clock_args(self) -> list[str]:
        return ["--speed", str(self.speed), "--start", START, "--anchor", self.anchor]

    @property
    def log(self) -> Path:
        return self.tmp / "agent.log"

    def start_agent(self, timeout: float = 120) -> datetime:
        """Start the agent and return once it logs `agent_started` (signal handlers set, devices
        polled): the simulated time then, also kept as `started`."""
        seen = self.log.stat().st_size if self.log.exists() else 0  # a restart appends to the same log
        with self.log.open("a") as log:
            self.agent = subprocess.Popen([BIN / "station-agent", "run", "--config", self.config, *self.clock_args()],
                                          stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            with self.log.open("rb") as f:
                f.seek(seen)
                if b"agent_started" in f.read():
                    break
            self._check_agent()
            assert time.monotonic() < deadline, "the agent did not start: " + self.log_tail()
            time.sleep(0.05)
        self.started = self.sim_now()
        return self.started

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def _check_agent(self) -> None:
        assert self.agent is None or self.agent.poll() is None, "the agent died: " + self.log_tail()

    def sim_now(self) -> datetime:
        anchor = datetime.fromisoformat(self.anchor.replace("Z", "+00:00"))
        return START_TIME + (datetime.now(UTC) - anchor) * self.speed

    def run_until(self, sim_time: datetime, timeout: float = 300) -> None:
        """Wait (the agent running) until the shared simulated time reaches `sim_time`."""
        deadline = time.monotonic() + timeout
        while self.sim_now() < sim_time:
            self._check_agent()
            assert time.monotonic() < deadline, f"timed out before simulated {sim_time}"
            time.sleep(min(0.05, max(0.001, (sim_time - self.sim_now()).total_seconds() / self.speed)))

    def run_for(self, span: timedelta, timeout: float = 300) -> None:
        """Run until `span` of simulated time after the agent started."""
        assert self.started is not None, "start_agent() first"
        self.run_until(self.started + span, timeout)

    def stop_agent(self, sig: int = signal.SIGTERM) -> int:
        assert self.agent is not None
        self.agent.send_signal(sig)
        rc = self.agent.wait(timeout=60)
        self.agent = None
        return rc

    def control(self, request: dict) -> dict:
        return control(self.endpoints["control"], request)

    def truth(self, device: str) -> dict[str, dict]:
        """The bench's per-minute true values of `device`, by minute start (ISO UTC)."""
        rows = self.control({"cmd": "truth", "device": device, "from": "2000-01-01T00:00:00Z",
                             "to": "2100-01-01T00:00:00Z"})["truth"]
        return {r["time"]: r for r in rows}

    def stats(self, device: str) -> dict:
        return self.control({"cmd": "stats", "device": device})["stats"][device]

    def agent_cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([BIN / "station-agent", *args, "--config", self.config],
                              capture_output=True, text=True, timeout=timeout)

    def status(self) -> dict:
        """`station-agent status --json`, or {} while there is no database yet (exit 3)."""
        res = self.agent_cli("status", "--json")
        if res.returncode == 3:
            return {}
        return json.loads(res.stdout)

    def export(self, level: str) -> list[dict]:
        out = self.agent_cli("export", "--from", "2000-01-01", "--to", "2100-01-01", "--level", level)
        assert out.returncode == 0, out.stderr
        return list(csv.DictReader(io.StringIO(out.stdout)))

    def close(self) -> None:
        if self.agent is not None and self.agent.poll() is None:
            self.agent.kill()
            self.agent.wait(30)
        if self.sim.poll() is None:
            self.sim.send_signal(signal.SIGTERM)
            try:
                self.sim.wait(30)
            except subprocess.TimeoutExpired:
                self.sim.kill()
                self.sim.wait(10)
        if self.sim.stdout is not None:
            self.sim.stdout.close()


def site(name: str, tmp: Path, speed: float, edit_station: Callable[[str], str] | None = None) -> Site:
    """configs/sites/<name>/ (its bench.toml and station.toml, as shipped, unless `edit_station`
    changes the station's text) run in `tmp`."""
    return Site(tmp, SITES / name / "bench.toml", SITES / name / "station.toml", speed, edit_station)
