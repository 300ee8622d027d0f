"""The stream of one instrument at a simulated flux site, paced by the injected clock.

`take` hands a client every record due since its last take (record i is at i / fs s since the
epoch), so a stream keeps pace in simulated time and two instruments on one clock stay aligned.
A subclass says how record k of a half hour's columns (simulators.flux_site) becomes its line.
A `StreamDevice` for simulators.lgr.stream's servers (TCP, pty).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from datetime import datetime

import numpy as np

from ghgnet.clock import Clock
from simulators.flux_site import FluxSiteSpec, simulate_half_hour


class FluxSiteStream(ABC):
    """Records of the site's half hours, sent as lines; `lines(start_index, count)` for tests."""

    def __init__(self, clock: Clock, spec: FluxSiteSpec | None = None, seed: int = 0) -> None:
        self.clock = clock
        self.spec = spec or FluxSiteSpec()
        self.seed = seed
        self._lock = threading.Lock()
        self._clients: dict[int, int] = {}
        self._next_client = 0
        self._half_hours: dict[datetime, dict[str, np.ndarray]] = {}

    @abstractmethod
    def line(self, columns: dict[str, np.ndarray], k: int, index: int) -> bytes:
        """The line of record k of a half hour's columns; `index` counts records since the epoch."""

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
            out.append(self.line(c, k, i))
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
