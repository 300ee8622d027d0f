"""What a simulated analyzer that is asked for its current values shares (LI-COR LI-8x0, Vaisala
GMP343): the gas it measures, its own calibration error and noise, a ledger of every record it
sent with the true values, faults on demand, and the command framing of `receive`
(simulators.serve.CommandDevice).

Unlike the Picarro there is no record buffer: a record is made when it is asked for (or, when
streaming, on a grid of simulated time), from the injected clock. A subclass says how commands end
(`TERMINATOR`), answers one command (`_answer`) and what a line of noise ends with (`LINE_END`).
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from ghgnet.clock import Clock
from simulators.faults import FaultSet
from simulators.gas import analyzer_reading
from simulators.picarro.g2401 import GasFn, LedgerEntry
from simulators.serve import CommandDevice

COMMON_FAULTS = ("garbage", "silent", "disconnect")
"""garbage: a line of noise before the reply. silent: the command is lost (no reply). disconnect:
the connection drops."""


@dataclass
class Response:
    """The analyzer's own calibration error on the dry values and its noise, per species (co2 ppm):
    measured = gain * true + offset + drift_per_day * days since it was made, plus noise (std)."""

    gain: dict[str, float] = field(default_factory=dict)
    offset: dict[str, float] = field(default_factory=dict)
    drift_per_day: dict[str, float] = field(default_factory=dict)
    noise: dict[str, float] = field(default_factory=dict)


class PolledSimulator(CommandDevice):
    """A simulated analyzer answering commands; `receive(bytes) -> bytes` for simulators.serve."""

    LINE_END: ClassVar[str] = "\n"
    FAULTS: ClassVar[tuple[str, ...]] = COMMON_FAULTS

    def __init__(self, clock: Clock, gas: GasFn, response: Response | None = None, seed: int = 0) -> None:
        self.clock = clock
        self.gas = gas
        self.resp = response or Response()
        self._drift_epoch = clock.now()
        self._rng = random.Random(seed)
        self._noise_rng = random.Random(seed + 1)
        self._lock = threading.RLock()
        self._ledger: list[LedgerEntry] = []
        self.faults = FaultSet(self.FAULTS, clock.monotonic)
        self._inbuf = b""
        self.clients = 0
        self.commands = 0

    # ------------------------------------------------------------------ the gas

    def response(self, species: str, true_value: float, t: datetime) -> float:
        """The analyzer's noise-free reading of a true dry value (gain, offset, drift)."""
        days = (t - self._drift_epoch).total_seconds() / 86400.0
        return analyzer_reading(self.resp, species, true_value, days)

    def noise(self, quantity: str, scale: float = 1.0) -> float:
        return self._noise_rng.gauss(0.0, self.resp.noise.get(quantity, 0.0) * scale)

    def record(self, t: datetime, values: dict[str, float], truth: dict[str, float]) -> LedgerEntry:
        """Keep a record sent now in the ledger, with the true values it was made from."""
        entry = LedgerEntry(len(self._ledger), t, values, connected=self.clients > 0, fate="delivered",
                            truth=dict(truth))
        self._ledger.append(entry)
        return entry

    # ------------------------------------------------------------------ faults

    def inject(self, fault: str, count: int | None = None, duration_s: float | None = None, **params: Any) -> None:
        """Start a fault for `count` uses and/or `duration_s` simulated seconds, whichever ends
        first; with neither, for one use."""
        self.faults.inject(fault, count, duration_s, **params)

    def clear_faults(self) -> None:
        self.faults.clear()

    # ------------------------------------------------------------------ the wire

    def client_connected(self) -> None:
        with self._lock:
            self.clients += 1
            self._inbuf = b""

    def client_disconnected(self) -> None:
        with self._lock:
            self.clients = max(0, self.clients - 1)

    def garbage(self) -> bytes:
        """A line of noise (never valid XML nor a number: it starts with a non-ASCII byte)."""
        noise = bytes(self._rng.choice(b"\x07\x1b~#@!?%&*abcXYZ0123456789") for _ in range(self._rng.randint(3, 24)))
        return b"\xfe" + noise + self.LINE_END.encode()

    # ------------------------------------------------------------------ what tests count

    @property
    def ledger(self) -> list[LedgerEntry]:
        with self._lock:
            return list(self._ledger)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"produced": len(self._ledger), "delivered": len(self._ledger), "overflow_connected": 0,
                    "produced_connected": sum(e.connected for e in self._ledger),
                    "clients": self.clients, "commands": self.commands}

    def ledger_rows(self, since_seq: int = 0) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {"seq": e.seq, "time": e.time.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                 "values": dict(e.values), "connected": e.connected, "fate": e.fate, "truth": dict(e.truth)}
                for e in self._ledger[since_seq:]
            ]
