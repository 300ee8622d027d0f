"""A simulated Picarro G2401/G2301 speaking the remote command interface.

Served by simulators.serve over a real TCP socket or a real pty. Records are made lazily from the
injected clock (no thread): one every 1-3 s of simulated time (seeded), into a 512-record FIFO that
drops its oldest record when full, as the analyzer does. Every record produced is kept in a
ledger with its fate (still buffered, delivered to a client, dropped on overflow, or cleared)
and whether a client was connected when it was made, so a test can
count both sides of the link.

Reply formats follow Picarro's CommandInterface: errors are `ERR:<code>` TAB time; a record is
`time;value;` per label (or, with `record_format="single_time"`, `time;value;value;...;` as newer
host software writes it); values have 3 decimals; replies end in CR. Commands are
case-insensitive; LF around commands is ignored.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from drivers.water import G2401_WATER_CORRECTION
from ghgnet.clock import Clock
from simulators.faults import FaultSet
from simulators.gas import analyzer_reading
from simulators.serve import CommandDevice

GasFn = Callable[[datetime], dict[str, float]]
"""True dry mole fractions at a time: co2 ppm, ch4 ppb, co ppb, plus h2o in %."""

ERR_BUFFER_EMPTY = 3002
# The number the analyzer uses for an unknown command is set in its CommandInterface.ini, which is
# not public; this value is a stand-in (unconfirmed).
ERR_COMMAND_NOT_RECOGNIZED = 1001

FAULTS = ("garbage", "drop", "error_status", "pressure", "disconnect")
"""garbage: a line of noise before the reply. drop: the command is lost (no reply, nothing done).
error_status: `_Instr_GetStatus` answers a fault word. pressure: cavity-pressure excursion on the
records made meanwhile (and the pressure-locked bit clears). disconnect: the connection drops."""

# Status word while an error_status fault runs: system error (bit 14) set, pressure lock (bit 7) lost.
FAULT_STATUS_WORD = 963 - (1 << 7) + (1 << 14)
PRESSURE_LOCK_BIT = 1 << 7

# What each label reports, in wire units (CO2/CH4/CO in ppm, H2O in %, Torr, degC).
SUPPORTED_LABELS = (
    "CO2",
    "CO2_dry",
    "CH4",
    "CH4_dry",
    "CO",
    "H2O",
    "CavityPressure",
    "CavityTemp",
    "WarmBoxTemp",
    "DasTemp",
    "OutletValve",
)


@dataclass
class PicarroSimConfig:
    """How the simulated analyzer behaves. Noise std in ghgnet units (co2 ppm, ch4/co ppb, h2o %)."""

    columns: list[str] = field(
        default_factory=lambda: [
            "CO2", "CO2_dry", "CH4", "CH4_dry", "CO", "H2O", "CavityPressure", "CavityTemp",
        ]
    )
    seed: int = 0
    noise: dict[str, float] = field(
        default_factory=lambda: {"co2": 0.05, "ch4": 0.5, "co": 5.0, "h2o": 0.002}
    )
    record_interval_s: tuple[float, float] = (1.0, 3.0)
    buffer_size: int = 512
    water_correction: dict[str, tuple[float, float]] = field(
        default_factory=lambda: dict(G2401_WATER_CORRECTION)
    )
    cavity_pressure_torr: float = 140.0
    cavity_temp_c: float = 45.0
    warm_box_temp_c: float = 45.0
    pressure_excursion_torr: float = 5.0
    status_word: int = 963
    timezone: str = "UTC"
    reply_end: str = "\r"
    record_format: Literal["per_label", "single_time"] = "per_label"
    # The analyzer's own calibration error, per species (co2 ppm, ch4/co ppb), on the dry values:
    # measured = gain * true + offset + drift_per_day * days since `drift_epoch` (default: when
    # the simulator was made), then the noise. Missing species: gain 1, offset 0, drift 0.
    gain: dict[str, float] = field(default_factory=dict)
    offset: dict[str, float] = field(default_factory=dict)
    drift_per_day: dict[str, float] = field(default_factory=dict)
    drift_epoch: datetime | None = None

    def __post_init__(self) -> None:
        unknown = [c for c in self.columns if c not in SUPPORTED_LABELS]
        if unknown:
            raise ValueError(f"simulator cannot produce {unknown}; it knows {list(SUPPORTED_LABELS)}")
        lo, hi = self.record_interval_s
        if not 0 < lo <= hi:
            raise ValueError(f"record_interval_s must be 0 < low <= high, got {self.record_interval_s}")


@dataclass
class LedgerEntry:
    """One record the simulator made. `values` are as sent on the wire (3 decimals, wire units).

    fate: "buffered" (still in the FIFO), "delivered" (sent in a reply), "overflow" (pushed out of
    the full FIFO), "cleared" (`_Meas_ClearBuffer`). Faults never swallow a popped record: a
    dropped or disconnected command is lost before the analyzer executes it.
    connected: a client was connected when the record was made.
    truth: the true values in the cell when the record was made (dry co2 ppm, ch4/co ppb, h2o %),
    before the analyzer's gain, offset, drift and noise: what a calibrated record should give.
    """

    seq: int
    time: datetime
    values: dict[str, float]
    connected: bool
    fate: str = "buffered"
    truth: dict[str, float] = field(default_factory=dict)


class PicarroSimulator(CommandDevice):
    """A Picarro analyzer: `receive(bytes) -> bytes` for simulators.serve, faults via `inject`."""

    TERMINATOR = b"\r"
    STRIP = "\n "
    SILENT_FAULT = "drop"

    def __init__(self, clock: Clock, config: PicarroSimConfig | None = None, gas: GasFn | None = None) -> None:
        self.clock = clock
        self.config = config or PicarroSimConfig()
        self.gas: GasFn = gas or (lambda t: {"co2": 420.0, "ch4": 2000.0, "co": 150.0, "h2o": 1.2})
        self._zone = ZoneInfo(self.config.timezone)
        self._drift_epoch = self.config.drift_epoch or self.clock.now()
        self._rng = random.Random(self.config.seed)
        self._noise_rng = random.Random(self.config.seed + 1)
        self._lock = threading.RLock()
        self._fifo: deque[LedgerEntry] = deque()
        self._ledger: list[LedgerEntry] = []
        self._latest: LedgerEntry | None = None
        first = self._interval()
        self._next_time = self.clock.now() + timedelta(seconds=first)
        self._next_mono = self.clock.monotonic() + first
        self.faults = FaultSet(FAULTS, clock.monotonic)
        self._inbuf = b""
        self.clients = 0
        self.commands = 0

    # ------------------------------------------------------------------ record production

    def _interval(self) -> float:
        lo, hi = self.config.record_interval_s
        return self._rng.uniform(lo, hi)

    def _advance(self) -> None:
        """Make every record due by now (records carry their own simulated time)."""
        now = self.clock.monotonic()
        while self._next_mono <= now:
            self._produce(self._next_time, self._next_mono)
            step = self._interval()
            self._next_mono += step
            self._next_time += timedelta(seconds=step)

    def _produce(self, t: datetime, mono: float) -> None:
        truth = self.gas(t)
        noise = self.config.noise
        h2o = max(0.0, truth.get("h2o", 0.0) + self._noise_rng.gauss(0.0, noise.get("h2o", 0.0)))
        dry = {
            s: self.response(s, truth.get(s, 0.0), t) + self._noise_rng.gauss(0.0, noise.get(s, 0.0))
            for s in ("co2", "ch4", "co")
        }

        def wet(species: str) -> float:
            a, b = self.config.water_correction.get(species, (0.0, 0.0))
            return dry[species] * (1.0 + a * h2o + b * h2o * h2o)

        pressure = self.config.cavity_pressure_torr + self._noise_rng.gauss(0.0, 0.01)
        if self.faults.active("pressure", mono, consume=True):
            pressure += self.faults.param("pressure", "offset_torr", self.config.pressure_excursion_torr)
        wire = {
            "CO2": wet("co2"),
            "CO2_dry": dry["co2"],
            "CH4": wet("ch4") / 1000.0,
            "CH4_dry": dry["ch4"] / 1000.0,
            "CO": wet("co") / 1000.0,
            "H2O": h2o,
            "CavityPressure": pressure,
            "CavityTemp": self.config.cavity_temp_c + self._noise_rng.gauss(0.0, 0.002),
            "WarmBoxTemp": self.config.warm_box_temp_c + self._noise_rng.gauss(0.0, 0.002),
            "DasTemp": 30.0 + self._noise_rng.gauss(0.0, 0.05),
            "OutletValve": 20000.0 + self._noise_rng.gauss(0.0, 50.0),
        }
        values = {label: round(wire[label], 3) for label in self.config.columns}
        entry = LedgerEntry(len(self._ledger), t, values, connected=self.clients > 0, truth=dict(truth))
        self._ledger.append(entry)
        self._latest = entry
        if len(self._fifo) >= self.config.buffer_size:
            self._fifo.popleft().fate = "overflow"
        self._fifo.append(entry)

    def response(self, species: str, true_value: float, t: datetime) -> float:
        """The analyzer's noise-free reading of a true dry value (gain, offset, drift)."""
        days = (t - self._drift_epoch).total_seconds() / 86400.0
        return analyzer_reading(self.config, species, true_value, days)

    # ------------------------------------------------------------------ faults

    def inject(
        self, fault: str, count: int | None = None, duration_s: float | None = None, **params: Any
    ) -> None:
        """Start a fault for `count` uses (replies, or records for "pressure") and/or `duration_s`
        simulated seconds, whichever ends first; with neither, for one use.

        Parameters: error_status takes `word` (the status to report); pressure `offset_torr`.
        """
        with self._lock:
            self._advance()  # records already due are made before the fault starts
            self.faults.inject(fault, count, duration_s, **params)

    def clear_faults(self) -> None:
        self.faults.clear()

    # ------------------------------------------------------------------ connection bookkeeping

    def client_connected(self) -> None:
        """Called by the server when a client connects (records made from now are 'connected')."""
        with self._lock:
            self._advance()
            self.clients += 1
            self._inbuf = b""

    def client_disconnected(self) -> None:
        with self._lock:
            self._advance()
            self.clients = max(0, self.clients - 1)

    # ------------------------------------------------------------------ the wire

    def _stamp(self, t: datetime) -> str:
        local = t.astimezone(self._zone)
        return local.strftime("%y/%m/%d %H:%M:%S") + f".{local.microsecond // 1000:03d}"

    def _line(self, text: str) -> bytes:
        return (text + self.config.reply_end).encode("ascii")

    def _err(self, code: int) -> bytes:
        return self._line(f"ERR:{code}\t{self._stamp(self.clock.now())}")

    def _record_line(self, entry: LedgerEntry) -> str:
        stamp = self._stamp(entry.time)
        vals = [f"{entry.values[c]:.3f}" for c in self.config.columns]
        if self.config.record_format == "single_time":
            return stamp + ";" + "".join(v + ";" for v in vals)
        return "".join(f"{stamp};{v};" for v in vals)

    def status_word(self) -> int:
        with self._lock:
            return self._status_word(consume=False)

    def _status_word(self, consume: bool) -> int:
        word = self.config.status_word
        if self.faults.active("pressure"):
            word &= ~PRESSURE_LOCK_BIT
        if self.faults.active("error_status", consume=consume):
            word = int(self.faults.param("error_status", "word", FAULT_STATUS_WORD))
        return word

    def receive(self, data: bytes) -> bytes:
        with self._lock:
            self._advance()
            return super().receive(data)

    def garbage(self) -> bytes:
        """A line of noise: always starts with a non-ASCII byte, so it can never read as a number."""
        noise = b"\xfe" + bytes(
            self._rng.choice(b"\x00\x07\x1b\xff~#@!?%&*abcXYZ0123456789")
            for _ in range(self._rng.randint(3, 24))
        )
        return noise + self.config.reply_end.encode()

    def _answer(self, line: str) -> bytes:
        parts = line.split(" ")
        cmd = parts[0].upper()
        if cmd == "_INSTR_GETSTATUS":
            return self._line(str(self._status_word(consume=True)))
        if cmd == "_MEAS_GETBUFFER":
            entries = list(self._fifo)
            self._fifo.clear()
            for e in entries:
                e.fate = "delivered"
            return self._line(f"{len(entries)};") + b"".join(
                self._line(self._record_line(e)) for e in entries
            )
        if cmd == "_MEAS_GETBUFFERFIRST":
            if not self._fifo:
                # the analyzer reports the empty queue once per label
                return b"".join(self._err(ERR_BUFFER_EMPTY) for _ in self.config.columns)
            entry = self._fifo.popleft()
            entry.fate = "delivered"
            return self._line(self._record_line(entry))
        if cmd == "_MEAS_CLEARBUFFER":
            for e in self._fifo:
                e.fate = "cleared"
            self._fifo.clear()
            return self._line("OK")
        if cmd in ("_MEAS_GETCONC", "_MEAS_GETCONCEX"):
            if self._latest is None:
                return self._line("")
            vals = ";".join(f"{self._latest.values[c]:.3f}" for c in self.config.columns)
            if cmd == "_MEAS_GETCONCEX":
                return self._line(f"{self._stamp(self._latest.time)};{vals}")
            return self._line(vals)
        return self._err(ERR_COMMAND_NOT_RECOGNIZED)

    # ------------------------------------------------------------------ what tests count

    @property
    def ledger(self) -> list[LedgerEntry]:
        """Every record made up to now, oldest first (a copy of the list; entries are live)."""
        with self._lock:
            self._advance()
            return list(self._ledger)

    def buffered(self) -> int:
        with self._lock:
            self._advance()
            return len(self._fifo)

    def stats(self) -> dict[str, int]:
        """Counts over the ledger: produced, by fate, and overflow split by connection state."""
        with self._lock:
            self._advance()
            counts = {"produced": len(self._ledger), "buffered": 0, "delivered": 0, "overflow": 0,
                      "cleared": 0, "produced_connected": 0,
                      "overflow_connected": 0, "overflow_disconnected": 0,
                      "clients": self.clients, "commands": self.commands}
            for e in self._ledger:
                counts[e.fate] += 1
                counts["produced_connected"] += e.connected
                if e.fate == "overflow":
                    counts["overflow_connected" if e.connected else "overflow_disconnected"] += 1
            return counts

    def ledger_rows(self, since_seq: int = 0) -> list[dict[str, Any]]:
        """The ledger as JSON-ready rows (time as ISO 8601 UTC)."""
        with self._lock:
            self._advance()
            return [
                {"seq": e.seq, "time": e.time.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                 "values": dict(e.values), "connected": e.connected, "fate": e.fate,
                 "truth": dict(e.truth)}
                for e in self._ledger[since_seq:]
            ]
