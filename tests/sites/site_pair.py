"""Running a site's bench and station (configs/sites/<site>/) as real processes, in a temporary
folder, on free ports, with one shared simulated clock (--start/--anchor)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from support.station import BIN, ROOT, START, control

START_TIME = datetime.fromisoformat(START.replace("Z", "+00:00"))


class SitePair:
    """`station-sim run` and `station-agent run` of one site; paths under `tmp`."""

    def __init__(self, site: str, tmp: Path, speed: float) -> None:
        self.site, self.tmp, self.speed = site, tmp, speed
        self.anchor = (datetime.now(UTC) + timedelta(seconds=2)).isoformat().replace("+00:00", "Z")
        src = ROOT / "configs" / "sites" / site
        self.bench = self._copy(src / "bench.toml")
        self.sim = subprocess.Popen(
            [BIN / "station-sim", "run", "--config", self.bench, "--speed", str(speed), "--start", START,
             "--anchor", self.anchor], stdout=subprocess.PIPE, stderr=(tmp / "sim.log").open("w"), text=True)
        self.endpoints = json.loads(self.sim.stdout.readline())
        self.station = self._copy(src / "station.toml")
        self.agent: subprocess.Popen | None = None

    def _copy(self, path: Path) -> Path:
        """The site's config with its data under tmp, its ports free, and the shared definitions
        found where they are."""
        text = path.read_text().replace(f"../../../data/{self.site}/", f"{self.tmp}/")
        text = text.replace("../../analyzers/", f"{ROOT}/configs/analyzers/")
        text = re.sub(r"(?m)^port = \d{4,5}", "port = 0", text)
        if hasattr(self, "endpoints"):
            text = self._point_at_bench(text)
        out = self.tmp / path.name
        out.write_text(text)
        return out

    def _point_at_bench(self, text: str) -> str:
        """Each device table's `url` set to where the bench serves the device of the same id."""
        lines, device = text.splitlines(), None
        for i, line in enumerate(lines):
            m = re.match(r'^id = "(.+)"', line)
            if m:
                device = self.endpoints["instruments"].get(m.group(1))
            elif line.startswith("url = ") and device is not None and "url" in device:
                lines[i] = f'url = "{device["url"]}"'
        return "\n".join(lines) + "\n"

    def start_agent(self) -> None:
        self.agent = subprocess.Popen(
            [BIN / "station-agent", "run", "--config", self.station, "--speed", str(self.speed), "--start", START,
             "--anchor", self.anchor], stdout=(self.tmp / "agent.log").open("a"), stderr=subprocess.STDOUT)

    def stop_agent(self, sig: int = signal.SIGTERM) -> int:
        assert self.agent is not None
        self.agent.send_signal(sig)
        rc = self.agent.wait(timeout=60)
        self.agent = None
        return rc

    def sim_now(self) -> datetime:
        anchor = datetime.fromisoformat(self.anchor.replace("Z", "+00:00"))
        return START_TIME + (datetime.now(UTC) - anchor) * self.speed

    def wait_until(self, sim_time: datetime, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.sim_now() < sim_time:
            assert self.agent is None or self.agent.poll() is None, "the agent died"
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.05)

    def control(self, request: dict) -> dict:
        return control(self.endpoints["control"], request)

    def close(self) -> None:
        if self.agent is not None:
            self.stop_agent()
        self.sim.send_signal(signal.SIGTERM)
        self.sim.wait(timeout=30)
