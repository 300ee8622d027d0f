"""Running a site of configs/sites/<site>/ (its bench.toml and station.toml) as real processes in a
temporary folder, on free ports, with one shared simulated clock (--start/--anchor).

The site's files name fixed ports so that they run out of the box; here the bench's TCP ports are
set to 0 and the station's device URLs are replaced by the ones the bench reports."""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

from support.station import BIN, ROOT, START, Hil, control

SITES = ROOT / "configs" / "sites"


def site_bench(site: str, tmp: Path) -> Path:
    text = (SITES / site / "bench.toml").read_text()
    text = re.sub(r"(?m)^port = \d{4,5}$", "port = 0", text)  # TCP ports; valve ports stay
    text = re.sub(r"(?m)^pty_link = .*$", "", text)
    path = tmp / "bench.toml"
    path.write_text(text)
    return path


def site_station(site: str, tmp: Path, endpoints: dict) -> Path:
    """The site's station config pointed at the bench's endpoints, storing in `tmp`."""
    source = SITES / site / "station.toml"
    text = source.read_text()
    parsed = tomllib.loads(text)
    served = endpoints["instruments"]
    for table in ("analyzers", "valves", "devices"):
        for dev in parsed.get(table, []):
            if dev["id"] in served:
                text = text.replace(f'url = "{dev["url"]}"', f'url = "{served[dev["id"]]["url"]}"')
    text = text.replace(f'path = "{parsed["storage"]["path"]}"', 'path = "station.sqlite"')
    path = tmp / "station.toml"
    path.write_text(text)
    return path


def start_site(site: str, tmp: Path, speed: float) -> Hil:
    """A Hil on the site's files: the bench started now, the agent by `start_agent()`."""
    run = Hil.__new__(Hil)
    run.tmp, run.speed, run.forwarding = tmp, speed, None
    run.anchor = (datetime.now(UTC) + timedelta(seconds=2)).isoformat().replace("+00:00", "Z")
    run.sim = subprocess.Popen(
        [BIN / "station-sim", "run", "--config", site_bench(site, tmp), "--speed", str(speed),
         "--start", START, "--anchor", run.anchor],
        stdout=subprocess.PIPE, stderr=(tmp / "sim.log").open("w"), text=True)
    run.endpoints = json.loads(run.sim.stdout.readline())
    run.config = site_station(site, tmp, run.endpoints)
    run.agent = None
    return run


def truth_of(run: Hil, device: str) -> dict[str, dict]:
    """The bench's per-minute true values of `device`, by minute start (ISO UTC)."""
    rows = control(run.endpoints["control"], {"cmd": "truth", "device": device, "from": "2000-01-01T00:00:00Z",
                                              "to": "2100-01-01T00:00:00Z"})["truth"]
    return {r["time"]: r for r in rows}
