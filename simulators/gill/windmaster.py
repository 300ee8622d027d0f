"""A simulated Gill WindMaster: the UVW ASCII stream of the simulated flux site's wind.

The wind comes from simulators.flux_site (turbulence with a known flux, the sonic's tilt, spikes),
sent in the anemometer's line format (drivers.gill.windmaster.format_line) at the site's rate,
timed by the injected clock: `take` hands a client every record due since its last take, so the
stream keeps pace in simulated time. Records under a bad diagnostic carry status 0x0B (a failed
path) and the garbage values. A `StreamDevice` for simulators.lgr.stream's servers (TCP, pty).
"""

from __future__ import annotations

import threading
from datetime import datetime

import numpy as np

from drivers.gill.windmaster import WindMasterRecord, format_line
from ghgnet.clock import Clock
from simulators.flux_site import FluxSiteSpec, simulate_half_hour

FAILED_PATH_STATUS = 0x0B


class WindMasterStream:
    """The stream of one anemometer; `lines(start_index, count)` for tests without a clock."""

    def __init__(self, clock: Clock, spec: FluxSiteSpec | None = None, seed: int = 0, node: str = "Q") -> None:
        self.clock = clock
        self.spec = spec or FluxSiteSpec()
        self.seed = seed
        self.node = node
        self._lock = threading.Lock()
        self._clients: dict[int, int] = {}
        self._next_client = 0
        self._half_hours: dict[datetime, dict[str, np.ndarray]] = {}

    def _columns(self, half_hour: datetime) -> dict[str, np.ndarray]:
        if half_hour not in self._half_hours:
            self._half_hours = {half_hour: simulate_half_hour(self.spec, self.seed, half_hour).columns}
        return self._half_hours[half_hour]

    def _index(self, when: datetime) -> int:
        return int(when.timestamp() * self.spec.fs_hz)

    def lines(self, start_index: int, count: int) -> bytes:
        """The lines of records start_index .. start_index + count (record i is at i / fs s)."""
        out = []
        per_half_hour = int(self.spec.duration_s * self.spec.fs_hz)
        for i in range(start_index, start_index + count):
            hh, k = divmod(i, per_half_hour)
            c = self._columns(datetime.fromtimestamp(hh * self.spec.duration_s, tz=self.clock.now().tzinfo))
            ts_c = float(c["ts"][k]) - 273.15
            sos = 20.067 * np.sqrt(max(float(c["ts"][k]), 1.0))  # Ts = c^2 / 403 (Kaimal and Gaynor 1991)
            status = 0 if c["sonic_diag"][k] == 0 else FAILED_PATH_STATUS
            u, v, w, ts = (float(np.clip(x, -999, 999)) for x in (c["u"][k], c["v"][k], c["w"][k], ts_c))
            rec = WindMasterRecord(self.node, u, v, w, sos, ts, status)
            out.append(format_line(rec))
        return b"".join(out)

    def attach(self) -> int:
        with self._lock:
            self._next_client += 1
            self._clients[self._next_client] = self._index(self.clock.now())
            return self._next_client

    def take(self, client: int) -> bytes:
        with self._lock:
            start = self._clients[client]
            due = self._index(self.clock.now())
            self._clients[client] = max(due, start)
        return self.lines(start, max(due - start, 0))

    def detach(self, client: int) -> None:
        with self._lock:
            self._clients.pop(client, None)

    def pause_s(self) -> float:
        return 0.05
