"""A simulated analyzer that speaks any `generic.line` definition: the same definition file the
station's driver reads decides what the simulator writes (framing, delimiter or template, units,
scale and offset, time format and zone, status texts).

Poll mode: a line device (`receive(bytes) -> bytes`, served on TCP and a pty by the bench) that
answers each `poll_command` with one record made at that instant. Stream mode: it serves itself
(simulators/bench.py): a TCP listener that sends every client one record every
`record_interval_s` simulated seconds, made whether or not anyone listens (`ledger` says which
were heard by a TCP client), and, with `pty_link`, the same records on a pseudo-terminal.

Values: each mapped quantity from the gas it measures (dry co2 ppm, ch4/co ppb, h2o %; a wet species
is the dry value diluted by the water), through the analyzer's `response` (gain, offset, drift),
diagnostics at their `diagnostics` value, plus seeded
noise, written back through the definition's units, scale and offset. A regex definition needs its
`template` (a format string over the field names) for the simulator to write records.

Faults (`inject`): garbage (a line of noise before the next records), silence (no records, no
replies), bad_status (the status field reads `status_text`, default the first non-ok text the
definition names, or its first bit set).
"""

from __future__ import annotations

import math
import random
import socket
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import Field

from drivers.generic.line import GenericLineConfig, unescape
from drivers.generic.units import conversion
from drivers.reading import unit_of
from ghgnet.clock import Clock
from ghgnet.config import RelPath
from simulators.bench import DiurnalGas
from simulators.config import AnalyzerResponseConfig, DiurnalGasConfig, InstrumentConfig
from simulators.faults import Fault, FaultSet
from simulators.gas import analyzer_reading
from simulators.serve import Listener, PtyServer

FAULTS = ("garbage", "silence", "bad_status")
GAS = ("co2", "ch4", "co", "n2o", "h2o")


class GenericLineInstrument(InstrumentConfig):
    """A simulated `generic.line` analyzer (`[[instruments]]` with model = "generic.line")."""

    model: Literal["generic.line"] = "generic.line"
    definition: RelPath = Field(description="the analyzer's definition (the file the station's driver reads)")
    record_interval_s: float = Field(default=2.0, gt=0, description="stream mode: simulated seconds per record")
    decimals: int = Field(default=3, ge=0, le=9, description="decimals written for each value")
    noise: dict[str, float] = Field(default_factory=lambda: {"co2": 0.05, "ch4": 0.5, "co": 2.0, "n2o": 0.1,
                                                             "h2o": 0.002}, description="std, ghgnet units")
    diagnostics: dict[str, float] = Field(
        default_factory=lambda: {"cavity_pressure": 140.0, "cavity_temp": 45.0, "cell_pressure": 1013.0,
                                 "cell_temp": 50.0}, description="values of the non-gas quantities, ghgnet units")
    n2o: float = Field(default=337.0, ge=0, description="dry N2O (ppb) when the gas has none")
    response: AnalyzerResponseConfig = Field(default_factory=AnalyzerResponseConfig,
                                             description="the analyzer's own calibration error (gain, offset, drift)")
    gas: DiurnalGasConfig = Field(default_factory=DiurnalGasConfig,
                                  description="the gas it measures when the bench has no valve")


@dataclass
class LedgerEntry:
    """One record made: `truth` the true gas (dry, ghgnet units), `line` what was written;
    `heard` whether a client was connected (stream mode; poll mode: always)."""

    seq: int
    time: datetime
    truth: dict[str, float]
    line: bytes
    heard: bool = True
    fault: str | None = None


class GenericLineSimulator:
    """A simulated generic.line analyzer: record making shared by the poll and stream simulators."""

    def __init__(self, clock: Clock, config: GenericLineInstrument, gas: Any) -> None:
        self.clock = clock
        self.config = config
        self.definition = GenericLineConfig.model_validate(
            {"id": config.id, "url": "sim://", "definition": str(config.definition)})
        d = self.definition
        if d.regex is not None and d.template is None:
            raise ValueError(f"{config.definition}: a regex definition needs a `template` for the simulator")
        self.gas = gas or DiurnalGas.from_config(config.gas)
        self._zone = ZoneInfo(d.timestamp.zone) if d.timestamp else UTC
        self._rng = random.Random(config.seed)
        self._lock = threading.RLock()
        self.faults = FaultSet(FAULTS, clock.monotonic)
        self._ledger: list[LedgerEntry] = []
        self._terminator = unescape(d.terminator)
        self._epoch = clock.monotonic()

    # ---- faults

    def inject(self, fault: str, count: int | None = None, duration_s: float | None = None, **params: Any) -> None:
        self.faults.inject(fault, count, duration_s, **params)

    def clear_faults(self) -> None:
        self.faults.clear()

    # ---- records

    def _value(self, quantity: str, truth: dict[str, float]) -> float:
        base = quantity.removesuffix("_dry")
        noise = self._rng.gauss(0.0, self.config.noise.get(base, 0.0))
        if base in GAS:
            dry = self._response(base, truth.get(base, self.config.n2o if base == "n2o" else 0.0)) + noise
            if base == "h2o" or quantity.endswith("_dry"):
                return dry
            return dry * (1.0 - truth.get("h2o", 0.0) / 100.0)
        return self.config.diagnostics.get(quantity, 0.0) + noise

    def _response(self, species: str, true_value: float) -> float:
        """The analyzer's noise-free reading of a true dry value: gain, offset, drift per day."""
        days = (self.clock.monotonic() - self._epoch) / 86400.0
        return analyzer_reading(self.config.response, species, true_value, days)

    def _bad_status(self, f: Fault) -> str:
        s = self.definition.status
        assert s is not None
        if "status_text" in f.params:
            return str(f.params["status_text"])
        if s.bits:
            return format(1 << min(s.bits), "x" if s.base == 16 else "d")
        return next(iter(s.values), "1")

    def make(self, t: datetime) -> LedgerEntry:
        """The record made at `t` (ledgered)."""
        d = self.definition
        truth = dict(self.gas(t))
        texts: dict[str, str] = {}
        for name, q in d.quantities.items():
            factor, offset = conversion(q.unit, unit_of(q.quantity))
            wire = ((self._value(q.quantity, truth) - offset) / factor - q.offset) / q.scale
            texts[name] = f"{wire:.{self.config.decimals}f}"
        if d.timestamp is not None:
            local = t.astimezone(self._zone)
            texts[d.timestamp.field] = f"{t.timestamp():.3f}" if d.timestamp.format == "epoch" \
                else local.strftime(d.timestamp.format)
        fault = None
        if d.status is not None:
            bad = self.faults.active("bad_status", consume=True)
            texts[d.status.field] = self._bad_status(bad) if bad else (d.status.ok[0] if not d.status.bits else "0")
            fault = "bad_status" if bad else None
        if d.template is not None:
            text = d.template.format(**texts)
        else:
            sep = d.delimiter if d.delimiter != " " else " "
            text = sep.join(texts.get(name, "0") for name in d.fields)
        line = (d.start + text).encode(d.encoding) + self._terminator
        if self.faults.active("garbage", consume=True):
            line = b"\xfe" + bytes(self._rng.choice(b"~#@!?%&*abcXYZ0123456789") for _ in range(12)) \
                + self._terminator + line
            fault = "garbage"
        entry = LedgerEntry(len(self._ledger), t, truth, line, fault=fault)
        self._ledger.append(entry)
        return entry

    @property
    def ledger(self) -> list[LedgerEntry]:
        with self._lock:
            self.advance()
            return list(self._ledger)

    def advance(self) -> None:
        """Make every record due by now (stream mode); poll mode makes them on request."""

    def ledger_rows(self, since_seq: int = 0) -> list[dict[str, Any]]:
        return [{"seq": e.seq, "time": e.time.isoformat().replace("+00:00", "Z"), "truth": e.truth,
                 "line": e.line.decode("latin-1"), "heard": e.heard, "fault": e.fault}
                for e in self.ledger[since_seq:]]

    def stats(self) -> dict[str, int]:
        ledger = self.ledger
        return {"produced": len(ledger), "heard": sum(e.heard for e in ledger),
                **{f: sum(e.fault == f for e in ledger) for f in FAULTS}}


class GenericLinePollSimulator(GenericLineSimulator):
    """Poll mode: answers each poll command with one record (`receive` for simulators.serve)."""

    def __init__(self, clock: Clock, config: GenericLineInstrument, gas: Any = None) -> None:
        super().__init__(clock, config, gas)
        self._command = unescape(self.definition.poll_command)
        self._inbuf = b""

    def receive(self, data: bytes) -> bytes:
        with self._lock:
            self._inbuf += data
            out = b""
            while self._command in self._inbuf:
                _, self._inbuf = self._inbuf.split(self._command, 1)
                if self.faults.active("silence", consume=True):
                    continue
                out += self.make(self.clock.now()).line
            self._inbuf = self._inbuf[-len(self._command):]  # a command may arrive in pieces
            return out


class _StreamListener(Listener):
    thread_name = "sim-line-stream"

    def __init__(self, sim: "GenericLineStreamSimulator", host: str, port: int) -> None:
        super().__init__(host, port)
        self.sim = sim

    def _serve(self, conn: socket.socket) -> None:
        next_seq = self.sim.connect()
        try:
            while not self._stop.wait(0.02):
                lines, next_seq = self.sim.lines_since(next_seq)
                if lines:
                    conn.sendall(lines)
        finally:
            self.sim.disconnect()


class _StreamPty(PtyServer):
    """The stream on a pseudo-terminal (a serial line): records made from the start on are written
    to it; `link` is a symlink to the slave side with a stable name."""

    def __init__(self, sim: "GenericLineStreamSimulator", link: Path) -> None:
        super().__init__(sim, link)  # type: ignore[arg-type]  # written to, never asked
        self.sim = sim

    def _loop(self) -> None:
        next_seq = len(self.sim.ledger)
        while not self._stop.wait(0.02):
            lines, next_seq = self.sim.lines_since(next_seq)
            if lines:
                self._send(lines)


class GenericLineStreamSimulator(GenericLineSimulator):
    """Stream mode: serves itself on TCP, one record every `record_interval_s` (see the module
    docstring)."""

    def __init__(self, clock: Clock, config: GenericLineInstrument, gas: Any = None) -> None:
        super().__init__(clock, config, gas)
        self._step = timedelta(seconds=config.record_interval_s)
        # records on the interval's grid (whole seconds for a whole-second interval, as the time
        # field may not say more), so two processes on the same clock agree
        epoch = datetime(2000, 1, 1, tzinfo=UTC)
        self._next = epoch + self._step * (math.floor((clock.now() - epoch) / self._step) + 1)
        self._clients = 0
        self._server: _StreamListener | None = None
        self._pty: _StreamPty | None = None

    @property
    def url(self) -> str:
        """Where the station reaches it (the configured address until started)."""
        host, port = (self._server.host, self._server.port) if self._server else (self.config.host, self.config.port)
        return f"socket://{host}:{port}"

    def start(self) -> "GenericLineStreamSimulator":
        self._server = _StreamListener(self, self.config.host, self.config.port).start()
        if self.config.pty_link is not None:
            self._pty = _StreamPty(self, self.config.pty_link).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
        if self._pty is not None:
            self._pty.stop()

    def connect(self) -> int:
        with self._lock:
            self.advance()
            self._clients += 1
            return len(self._ledger)

    def disconnect(self) -> None:
        with self._lock:
            self.advance()
            self._clients = max(0, self._clients - 1)

    def advance(self) -> None:
        with self._lock:
            now = self.clock.now()
            while self._next <= now:
                if not self.faults.active("silence"):
                    self.make(self._next).heard = self._clients > 0
                self._next += self._step

    def lines_since(self, seq: int) -> tuple[bytes, int]:
        with self._lock:
            self.advance()
            return b"".join(e.line for e in self._ledger[seq:]), len(self._ledger)


class GenericLineBench:
    """The bench model of `generic.line` (entry point generic.line): poll or stream by definition."""

    kind = "analyzer"
    Config = GenericLineInstrument

    @staticmethod
    def build(config: GenericLineInstrument, clock: Clock, gas: Any = None) -> GenericLineSimulator:
        mode = GenericLineConfig.model_validate(
            {"id": config.id, "url": "sim://", "definition": str(config.definition)}).mode
        cls = GenericLinePollSimulator if mode == "poll" else GenericLineStreamSimulator
        return cls(clock, config, gas)
