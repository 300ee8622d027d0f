"""The station PC's clock synchronisation, from chrony (`chronyc tracking`) or systemd-timesyncd
(`timedatectl timesync-status`), for the status message to central. Parsers are pure and tested on
captured outputs; where neither tool answers the state is "unknown", said as such. Nothing here
touches a timestamp: minute stamps are the system clock's, and this only reports how good it is.

Field meanings from chronyc(1), `tracking`: "System time" is the system clock's offset from NTP
time, "slow" meaning behind it; "Leap status" is Normal, Insert second, Delete second or Not
synchronised; "Ref time (UTC)" is when the last measurement from the reference was processed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class ClockSync:
    source: str  # "chrony", "timesyncd" or "unknown"
    synchronised: bool | None  # None: unknown
    offset_s: float | None = None  # system clock minus the reference, seconds (+: the system clock is ahead)
    stratum: int | None = None
    reference: str | None = None
    last_sync: str | None = None  # chrony: Ref time (UTC) as printed; timesyncd: the poll interval
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fields(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip().lower()] = value.strip()
    return out


def parse_chronyc_tracking(text: str) -> ClockSync:
    f = _fields(text)
    if "system time" not in f or "leap status" not in f:
        return ClockSync("unknown", None, detail="chronyc tracking: no System time / Leap status line")
    m = re.match(r"([0-9.]+) seconds (slow|fast) of NTP time", f["system time"])
    offset = None
    if m:
        offset = float(m.group(1)) * (-1.0 if m.group(2) == "slow" else 1.0)
    stratum = int(f["stratum"]) if f.get("stratum", "").isdigit() else None
    leap = f["leap status"]
    return ClockSync("chrony", leap.lower() != "not synchronised", offset, stratum,
                     f.get("reference id"), f.get("ref time (utc)"), f"leap status {leap}")


def _duration(text: str) -> float | None:
    """`-1.129ms`, `+250us`, `2.1s` in seconds; None when it is not one."""
    m = re.match(r"^([+-]?[0-9.]+)\s*(ns|us|µs|ms|s|min|h)$", text.strip())
    return float(m.group(1)) * _UNITS[m.group(2)] if m else None


def parse_timesync_status(text: str) -> ClockSync:
    f = _fields(text)
    if "offset" not in f and "server" not in f:
        return ClockSync("unknown", None, detail="timedatectl timesync-status: no Server / Offset line")
    offset = _duration(f.get("offset", ""))
    stratum = int(f["stratum"]) if f.get("stratum", "").isdigit() else None
    packets = int(f["packet count"]) if f.get("packet count", "").isdigit() else 0
    # synchronised: an answer was taken (a packet, an offset) and the leap indicator is not "not synchronized"
    synced = offset is not None and packets > 0 and "not" not in f.get("leap", "").lower()
    return ClockSync("timesyncd", synced, offset, stratum, f.get("server"), f.get("poll interval"),
                     f"leap {f.get('leap', '?')}, {packets} packet(s)")


Runner = Callable[[list[str]], str | None]


def run_tool(argv: list[str]) -> str | None:
    """A tool's standard output, or None when it is missing, fails or takes more than 2 s."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=2)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def read_clock_sync(run: Runner = run_tool) -> ClockSync:
    """chrony first, then systemd-timesyncd; "unknown" (with why) when neither answers."""
    out = run(["chronyc", "tracking"])
    if out is not None:
        return parse_chronyc_tracking(out)
    out = run(["timedatectl", "timesync-status"])
    if out is not None:
        return parse_timesync_status(out)
    return ClockSync("unknown", None, detail="neither chronyc tracking nor timedatectl timesync-status answered")


class ClockSyncReader:
    """read_clock_sync at most once every `every_s` real seconds (the status asks every 30 s)."""

    def __init__(self, every_s: float = 300.0, run: Runner = run_tool) -> None:
        self.every_s, self.run = every_s, run
        self._last: tuple[float, ClockSync] | None = None

    def __call__(self) -> ClockSync:
        now = time.monotonic()
        if self._last is None or now - self._last[0] >= self.every_s:
            self._last = (now, read_clock_sync(self.run))
        return self._last[1]
