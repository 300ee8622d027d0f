"""The gas bench's gas: what each valve port delivers and what the analyzer's cell holds.

Pure and deterministic: every value is a function of absolute UTC time, the configured seed and
the valve's move log, so two processes with the same config and clock start agree, and the order
in which records ask does not matter.

- `AmbientInlet`: the true dry mole fractions (co2 ppm, ch4/co/n2o ppb) and h2o (%) at one inlet height:
  base + diurnal cosine + synoptic change + short-term atmospheric variability. The synoptic part
  (a smooth seeded random curve over days: two octaves of value noise) is the same air mass at
  every height; the diurnal amplitude and the variability shrink with height by
  (reference_height / height) ** height_exponent, and the variability's time scale grows by the
  inverse of that factor (higher inlets are smoother).
- `Cylinder`: constant truths (dry, h2o ~0 %); `HumidifiedCylinder`: the same gas through a
  humidifier (h2o a sawtooth of time), for the water vapour test of an analyzer.
- `SampleLine`: the valve's common outlet to the analyzer. After every switch the cell mixes
  first-order from what it held at the switch to the new source,
      cell(t) = src(t) + (c0 - src(t)) * exp(-(t - t_switch) / tau)
  with c0 the cell at the switch and tau the new port's flush time constant (exact for a cylinder;
  for an inlet, whose source moves slowly against tau, a close approximation). A closed (unassigned) port or a blocked line has no flow: the
  cell holds what it had. Switches come from the valve simulator's move log: a move takes effect
  when the rotor lands (a stuck valve lands where it was, a wrong-port fault elsewhere); a move
  interrupted by the next one takes effect where the rotor was when interrupted. The ports the
  rotor passes in transit (0.15 s each) are ignored.
"""

from __future__ import annotations

import bisect
import math
import threading
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

QUANTITIES = ("co2", "ch4", "co", "n2o", "h2o")
"""What a source delivers: dry co2 ppm, dry ch4 ppb, dry co ppb, dry n2o ppb, h2o %."""

_MASK = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def stream_key(*parts: int | str) -> int:
    """A 64-bit key for one random stream (seed, quantity, inlet ...), stable across processes."""
    key = 0x243F6A8885A308D3
    for p in parts:
        code = zlib.crc32(p.encode()) if isinstance(p, str) else int(p) & _MASK
        key = _splitmix64(key ^ code)
    return key


@lru_cache(maxsize=65536)
def knot(key: int, k: int) -> float:
    """A standard normal number for knot `k` of stream `key` (Box-Muller on a counter hash)."""
    h1 = _splitmix64(key ^ (k & _MASK))
    h2 = _splitmix64(h1)
    u1 = ((h1 >> 11) + 0.5) / 9007199254740992.0
    u2 = (h2 >> 11) / 9007199254740992.0
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


def value_noise(key: int, seconds: float, spacing_s: float) -> float:
    """A smooth (C1) random curve of absolute time: seeded standard normals at knots every
    `spacing_s` seconds (counted from the Unix epoch), joined by Catmull-Rom splines. Unit
    variance at the knots, somewhat less between them."""
    x = seconds / spacing_s
    k = math.floor(x)
    f = x - k
    p0, p1, p2, p3 = knot(key, k - 1), knot(key, k), knot(key, k + 1), knot(key, k + 2)
    return p1 + 0.5 * f * (p2 - p0 + f * (2 * p0 - 5 * p1 + 4 * p2 - p3 + f * (3 * (p1 - p2) + p3 - p0)))


@dataclass(frozen=True)
class AmbientModel:
    """The site's air, shared by every inlet. Units: co2 ppm, ch4/co/n2o ppb, h2o %.

    base: mean level. diurnal_amplitude: half peak-to-peak of the daily cycle at the reference
    height, peaking at `peak_hour_utc` (night, near the ground). synoptic_std / synoptic_timescale_h:
    size and time scale of the slow change over days. variability_std / variability_timescale_s:
    short-term atmospheric variability at the reference height.
    """

    base: Mapping[str, float]
    diurnal_amplitude: Mapping[str, float]
    peak_hour_utc: float
    synoptic_std: Mapping[str, float]
    synoptic_timescale_h: float
    variability_std: Mapping[str, float]
    variability_timescale_s: float
    reference_height_m: float = 10.0
    height_exponent: float = 0.7
    seed: int = 0


class AmbientInlet:
    """True ambient values at one inlet height: `inlet(t) -> {co2, ch4, co, n2o, h2o}`."""

    def __init__(self, name: str, height_m: float, model: AmbientModel) -> None:
        if height_m <= 0:
            raise ValueError(f"inlet {name!r}: height_m must be > 0, got {height_m}")
        self.name = name
        self.height_m = height_m
        self.model = model
        self.factor = (model.reference_height_m / height_m) ** model.height_exponent
        self.variability_spacing_s = model.variability_timescale_s / self.factor
        synoptic_s = model.synoptic_timescale_h * 3600.0
        self._synoptic_spacing = (synoptic_s, synoptic_s / 4.0)
        self._keys = {
            q: (
                stream_key(model.seed, "synoptic", q),
                stream_key(model.seed, "synoptic-fine", q),
                stream_key(model.seed, "variability", name, q),
            )
            for q in QUANTITIES
        }

    def diurnal(self, t: datetime) -> dict[str, float]:
        """The daily-cycle part alone (for tests and plots)."""
        hours = (t.timestamp() / 3600.0) % 24.0
        phase = math.cos(2.0 * math.pi * (hours - self.model.peak_hour_utc) / 24.0)
        return {q: self.factor * self.model.diurnal_amplitude.get(q, 0.0) * phase for q in QUANTITIES}

    def __call__(self, t: datetime) -> dict[str, float]:
        m = self.model
        s = t.timestamp()
        phase = math.cos(2.0 * math.pi * ((s / 3600.0) % 24.0 - m.peak_hour_utc) / 24.0)
        out: dict[str, float] = {}
        for q in QUANTITIES:
            k_syn, k_fine, k_var = self._keys[q]
            syn_std = m.synoptic_std.get(q, 0.0)
            var_std = m.variability_std.get(q, 0.0)
            value = m.base.get(q, 0.0) + self.factor * m.diurnal_amplitude.get(q, 0.0) * phase
            if syn_std:
                value += syn_std * (
                    value_noise(k_syn, s, self._synoptic_spacing[0])
                    + 0.35 * value_noise(k_fine, s, self._synoptic_spacing[1])
                )
            if var_std:
                value += self.factor * var_std * value_noise(k_var, s, self.variability_spacing_s)
            out[q] = max(0.0, value)
        return out


@dataclass(frozen=True)
class Cylinder:
    """A gas cylinder: constant true values (dry; h2o ~0 %)."""

    name: str
    values: Mapping[str, float]
    role: str = "standard"

    def __call__(self, t: datetime) -> dict[str, float]:
        return {q: float(self.values.get(q, 0.0)) for q in QUANTITIES}


@dataclass(frozen=True)
class HumidifiedCylinder:
    """A cylinder's gas through a humidifier: the cylinder's dry values, and h2o (%) falling from
    `h2o_start` to `h2o_end` over each `period_s` of absolute time (counted from the Unix epoch)."""

    cylinder: Cylinder
    h2o_start: float
    h2o_end: float
    period_s: float

    def h2o(self, t: datetime) -> float:
        phase = (t.timestamp() % self.period_s) / self.period_s
        return self.h2o_start + (self.h2o_end - self.h2o_start) * phase

    def __call__(self, t: datetime) -> dict[str, float]:
        return self.cylinder(t) | {"h2o": self.h2o(t)}


Source = Callable[[datetime], dict[str, float]]


@dataclass(frozen=True)
class Port:
    """What one valve port delivers and how fast the line flushes after switching to it."""

    number: int
    name: str
    kind: str  # "inlet" | "cylinder"
    source: Source
    flush_tau_s: float


@dataclass(frozen=True)
class _Switch:
    at: float  # epoch seconds
    port: int | None  # None: no flow (blocked line)


@dataclass
class SampleLine:
    """The valve's common outlet and the analyzer's cell: `line(t) -> true cell values`.

    `valve` is a ViciValveSimulator (its `moves` log is read) and `start_position` the port the
    rotor starts on. `initial` is what the cell holds before anything flows (used only when the
    start port is closed).
    """

    ports: Mapping[int, Port]
    valve: object
    start_position: int
    initial: Mapping[str, float]
    _flow_events: list[tuple[float, bool]] = field(default_factory=list)
    _switches: list[_Switch] = field(default_factory=list)
    _times: list[float] = field(default_factory=list)
    _c0: dict[int, dict[str, float]] = field(default_factory=dict)
    _seen: tuple[int, int] = (-1, -1)
    _landing_cache: list[tuple[float, int]] = field(default_factory=list)
    _lock: threading.RLock = field(default_factory=threading.RLock)

    # --- flow ------------------------------------------------------------------------------------

    def block_flow(self, t: datetime) -> None:
        """From `t` no gas flows (a blocked line or a dead pump): the cell holds what it has."""
        with self._lock:
            self._flow_events.append((t.timestamp(), False))

    def restore_flow(self, t: datetime) -> None:
        with self._lock:
            if self._flow_events and not self._flow_events[-1][1]:
                self._flow_events.append((t.timestamp(), True))

    def flowing(self, t: datetime) -> bool:
        """Gas flows at `t`: the line is not blocked and the valve is on an assigned port."""
        with self._lock:
            return self._flow_at(t.timestamp()) and self.port_at(t) in self.ports

    def _flow_at(self, s: float) -> bool:
        ok = True
        for at, state in self._flow_events:
            if at > s:
                break
            ok = state
        return ok

    # --- the valve's history -----------------------------------------------------------------------

    def port_at(self, t: datetime) -> int:
        """The port the gas path is on at `t` (switches when the rotor lands)."""
        with self._lock:
            self._refresh()
            return self._valve_port_at(t.timestamp())

    def _landings(self) -> list[tuple[float, int]]:
        moves = list(self.valve.moves)  # type: ignore[attr-defined]
        out: list[tuple[float, int]] = []
        for i, m in enumerate(moves):
            begin = m.time.timestamp()
            end = begin + m.duration_s
            if i + 1 < len(moves) and moves[i + 1].time.timestamp() < end:
                nxt = moves[i + 1]
                out.append((nxt.time.timestamp(), nxt.from_position))
            else:
                out.append((end, m.landed))
        return out

    def _valve_port_at(self, s: float) -> int:
        port = self.start_position
        for at, landed in self._landing_cache:
            if at > s:
                break
            port = landed
        return port

    def _refresh(self) -> None:
        """Rebuild the switch list when the valve moved or the flow changed since last time."""
        n_moves = len(self.valve.moves)  # type: ignore[attr-defined]
        seen = (n_moves, len(self._flow_events))
        if seen == self._seen:
            return
        self._seen = seen
        self._landing_cache = self._landings()
        events = sorted(
            [(at, "valve", port) for at, port in self._landing_cache]
            + [(at, "flow", ok) for at, ok in self._flow_events],
            key=lambda e: e[0],
        )
        port: int | None = self.start_position
        flowing = True
        switches: list[_Switch] = []
        current: int | None = port if port in self.ports else None
        for at, what, value in events:
            if what == "valve":
                port = int(value)
            else:
                flowing = bool(value)
            effective = port if (flowing and port in self.ports) else None
            if effective != current:
                switches.append(_Switch(at, effective))
                current = effective
        keep = 0
        while keep < min(len(switches), len(self._switches)) and switches[keep] == self._switches[keep]:
            keep += 1
        self._c0 = {i: v for i, v in self._c0.items() if i < keep}
        self._switches = switches
        self._times = [sw.at for sw in switches]

    # --- the cell ----------------------------------------------------------------------------------

    def __call__(self, t: datetime) -> dict[str, float]:
        """True values in the analyzer's cell at `t`."""
        with self._lock:
            self._refresh()
            return self._cell(t.timestamp(), t)

    def _cell(self, s: float, t: datetime | None = None) -> dict[str, float]:
        i = bisect.bisect_right(self._times, s) - 1
        if i < 0:
            return self._before_any_switch(s)
        c0 = self._c0_of(i)
        sw = self._switches[i]
        if sw.port is None:
            return dict(c0)
        port = self.ports[sw.port]
        src = port.source(t if t is not None else _utc(s))
        w = math.exp(-(s - sw.at) / port.flush_tau_s) if port.flush_tau_s > 0 else 0.0
        return {q: src[q] + (c0[q] - src[q]) * w for q in QUANTITIES}

    def _c0_of(self, i: int) -> dict[str, float]:
        """The cell just before switch `i` (memoized; filled forward, no recursion)."""
        if i in self._c0:
            return self._c0[i]
        j = i
        while j > 0 and (j - 1) not in self._c0:
            j -= 1
        for k in range(j, i + 1):
            self._c0[k] = self._before_any_switch(self._switches[k].at) if k == 0 else self._cell_before(k)
        return self._c0[i]

    def _before_any_switch(self, s: float) -> dict[str, float]:
        port = self.ports.get(self.start_position)
        return dict(self.initial) if port is None else port.source(_utc(s))

    def _cell_before(self, k: int) -> dict[str, float]:
        """The cell at switch k's time under switch k-1 (whose c0 is known)."""
        prev = self._switches[k - 1]
        c0 = self._c0[k - 1]
        s = self._switches[k].at
        if prev.port is None:
            return dict(c0)
        port = self.ports[prev.port]
        src = port.source(_utc(s))
        w = math.exp(-(s - prev.at) / port.flush_tau_s) if port.flush_tau_s > 0 else 0.0
        return {q: src[q] + (c0[q] - src[q]) * w for q in QUANTITIES}

    def source_at(self, port: int, t: datetime) -> dict[str, float]:
        """What port `port` delivers at `t` (the truth of a cylinder or an inlet)."""
        return self.ports[port].source(t)


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def analyzer_reading(response: Any, species: str, true_value: float, days: float) -> float:
    """An analyzer's noise-free reading of a true dry value, its own calibration error:
    gain * true + offset + drift_per_day * days. `response` has the three per-species mappings
    (simulators.config.AnalyzerResponseConfig or alike); a species left out: gain 1, offset 0, drift 0."""
    r = response
    return r.gain.get(species, 1.0) * true_value + r.offset.get(species, 0.0) + r.drift_per_day.get(species, 0.0) * days
