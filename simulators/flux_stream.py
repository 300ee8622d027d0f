"""The stream of one instrument at a simulated flux site, paced by the injected clock.

`take` hands a client every record due since its last take (record i is at i / fs s since the
epoch), so a stream keeps pace in simulated time and two instruments on one clock stay aligned.
A subclass says how record k of a half hour's columns (simulators.flux_site) becomes its line.
A `StreamDevice` for simulators.lgr.stream's servers (TCP, pty).
"""

from __future__ import annotations

import random
import threading
from abc import ABC, abstractmethod
from datetime import datetime
from typing import Any, Literal

import numpy as np
from pydantic import Field

from ghgnet.clock import Clock
from simulators.config import InstrumentConfig
from simulators.flux_site import FluxSiteSpec, simulate_half_hour
from simulators.lgr.stream import StreamPty, StreamTcpServer


class FluxInstrument(InstrumentConfig):
    """A simulated flux-site instrument (`[[instruments]]`): the site's turbulence (simulators.
    flux_site) at `fs_hz`. A sonic and an analyzer with the same `seed` and site fields see the
    same air, so their records make the site's known fluxes."""

    fs_hz: float = Field(default=20.0, gt=0, le=20, description="records a second")
    path: Literal["open", "closed"] = "open"
    mean_wind_ms: float = 3.0
    ustar_ms: float = Field(default=0.4, gt=0)
    h_w_m2: float = 150.0
    le_w_m2: float = 200.0
    co2_flux: float = Field(default=-10.0, description="umol m-2 s-1")
    lag_s: float = Field(default=0.3, ge=0)
    spike_fraction: float = Field(default=0.0005, ge=0, lt=0.1)
    dropout_fraction: float = Field(default=0.005, ge=0, lt=0.5)
    nonstationary: bool = Field(default=False, description="bad conditions: 30-min swings against the fluxes")

    def spec(self) -> FluxSiteSpec:
        return FluxSiteSpec(fs_hz=self.fs_hz, path=self.path, mean_wind_ms=self.mean_wind_ms, ustar_ms=self.ustar_ms,
                            h_w_m2=self.h_w_m2, le_w_m2=self.le_w_m2, co2_flux=self.co2_flux, lag_s=self.lag_s,
                            spike_fraction=self.spike_fraction, dropout_fraction=self.dropout_fraction,
                            nonstationary=self.nonstationary)


class ServedStream:
    """A flux-site stream serving itself on TCP (and a pty with `pty_link`), for the bench."""

    def __init__(self, stream: FluxSiteStream, config: InstrumentConfig) -> None:
        self.stream = stream
        self.config = config
        self._servers: list[Any] = []

    def start(self) -> ServedStream:
        c = self.config
        self._servers = [StreamTcpServer(self.stream, c.host, c.port).start()]
        if c.pty_link is not None:
            self._servers.append(StreamPty(self.stream, c.pty_link).start())
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.stop()
        self._servers = []

    @property
    def url(self) -> str:
        return self._servers[-1].url if self._servers else f"socket://{self.config.host}:{self.config.port}"

    def stats(self) -> dict[str, int]:
        return self.stream.stats()


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
        self.records_sent = 0
        self._pace = random.Random(seed)  # pump pauses only: the records do not depend on it

    def stats(self) -> dict[str, int]:
        """Records handed to clients (every client's count: one client is the station)."""
        return {"records_sent": self.records_sent}

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
            self.records_sent += max(due - start, 0)
        return self.lines(start, max(due - start, 0))

    def detach(self, client: int) -> None:
        with self._lock:
            self._clients.pop(client, None)

    def pause_s(self) -> float:
        """Real seconds until the next pump: 25-75 ms, drawn afresh each time. A fixed 50 ms is
        6 simulated s at --speed 120, six times the agent's 1-s poll: pump and poll then keep one
        phase, each stream's least delayed poll stays up to a poll interval late, and the record
        clocks (drivers/record_clock.py) of two instruments anchor up to 1 s apart, outside a lag
        window. Varying the pause lets every phase occur, so some poll follows a pump at once."""
        return self._pace.uniform(0.025, 0.075)
