"""A simulated GC that exports result files into a folder, as GCWerks or ChemStation would.

It serves itself (simulators/bench.py): `start()` runs a thread that writes, on the injected clock,
one result file per injection into `folder`; `url` is the folder (file://...), what the station's
`gc.results` driver watches. Injections come every `injection_interval_s` simulated seconds and
follow `sequence` (by default sample, standard, sample, standard ...: a GC brackets its samples
with standards). A sample reports the air's true dry mole fractions, a standard its assigned
values, each plus seeded noise: the GC software's calibrated result. Layouts as in
drivers/gc/layouts.py; ChemStation reports are written in UTF-16 with a byte-order mark.

Faults (`inject`): malformed (the next file has a cell that is not a number), garbage (a file of
noise, ending in a newline), half_written (the next file appears half-written and is finished `delay_s` simulated
seconds later, or never with `never: true`), duplicate (the next file is written twice, under a
second name), bad_status (the next injection flags its first compound: GCWerks flag `F---`,
ChemStation an `Error :` line), silence (no files for `duration_s`).
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import Field

from drivers.base import TimeZoneName
from drivers.gc.layouts import CHEMSTATION_DATE_FORMAT, END_OF_REPORT
from ghgnet.clock import Clock
from ghgnet.config import RelPath, StrictModel
from simulators.config import InstrumentConfig
from simulators.faults import FaultSet

FAULTS = ("malformed", "garbage", "half_written", "duplicate", "bad_status", "silence")
WIRE_NAMES = {"co2": "CO2", "ch4": "CH4", "n2o": "N2O", "co": "CO"}
SCALES = {"co2": "WMO-CO2-X2019", "ch4": "WMO-CH4-X2004A", "n2o": "NOAA-2006A", "co": "WMO-CO-X2014A"}


class StandardConfig(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    values: dict[str, float] = Field(description="assigned dry mole fractions: co2 ppm, ch4/n2o/co ppb")


class GcResultsInstrument(InstrumentConfig):
    """A simulated GC exporting result files (`[[instruments]]` with model = "gc.results")."""

    model: Literal["gc.results"] = "gc.results"
    folder: RelPath = Field(description="where the result files go (the station's gc.results folder)")
    layout: Literal["gcwerks", "chemstation"] = "gcwerks"
    timezone: TimeZoneName = "UTC"
    injection_interval_s: float = Field(default=300.0, gt=0, description="simulated seconds between injections")
    inlet: str = Field(default="ambient", description="the sample inlet's name in the files")
    standards: list[StandardConfig] = Field(
        default_factory=lambda: [StandardConfig(name="std-1", values={"co2": 410.0, "ch4": 1950.0, "n2o": 335.0})])
    sequence: list[str] = Field(default_factory=lambda: ["sample", "std-1"],
                                description="what each injection is, in turn: `sample` or a standard's name")
    air: dict[str, float] = Field(default_factory=lambda: {"co2": 420.0, "ch4": 2000.0, "n2o": 337.0},
                                  description="the sampled air's base dry mole fractions (co2 ppm, others ppb)")
    diurnal_amplitude: dict[str, float] = Field(default_factory=lambda: {"co2": 8.0, "ch4": 30.0, "n2o": 0.3})
    noise: dict[str, float] = Field(default_factory=lambda: {"co2": 0.05, "ch4": 1.0, "n2o": 0.1})
    units: dict[str, str] = Field(default_factory=lambda: {"co2": "ppm", "ch4": "ppb", "n2o": "ppb"},
                                  description="unit each compound is written in")


@dataclass
class Injection:
    """One injection the simulated GC made: `truth` is what was injected (dry, ghgnet units),
    `values` what the file reports (its units), `file` the result file's name."""

    seq: int
    time: datetime
    source: str
    truth: dict[str, float]
    values: dict[str, float]
    file: str
    fault: str | None = None
    flagged: list[str] = field(default_factory=list)


@dataclass
class _Pending:
    path: Path
    rest: bytes
    due: float | None


class GcResultsSimulator:
    """Writes result files into `config.folder` as simulated time passes (see the module docstring)."""

    def __init__(self, clock: Clock, config: GcResultsInstrument) -> None:
        self.clock = clock
        self.config = config
        self.folder = Path(config.folder)
        self._zone = ZoneInfo(config.timezone)
        self._rng = random.Random(config.seed)
        self._lock = threading.RLock()
        self._standards = {s.name: s.values for s in config.standards}
        # the standard a sample row names as its bracketing reference (GCWerks `Standard` column)
        self._bracketing = next((s for s in config.sequence if s != "sample"), "--")
        unknown = [s for s in config.sequence if s != "sample" and s not in self._standards]
        if unknown:
            raise ValueError(f"sequence names unknown standard(s) {unknown}; known: {list(self._standards)}")
        interval = timedelta(seconds=config.injection_interval_s)
        start = clock.now()
        # injections on the interval's grid, so two processes with the same clock agree
        epoch = datetime(2000, 1, 1, tzinfo=UTC)
        self._next = epoch + interval * math.ceil((start - epoch) / interval)
        self._interval = interval
        self._ledger: list[Injection] = []
        self.faults = FaultSet(FAULTS, clock.monotonic)
        self._silent_until: datetime | None = None
        self._pending: list[_Pending] = []
        self._last_standard: datetime | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.files = 0

    # ---- serving itself

    @property
    def url(self) -> str:
        return self.folder.resolve().as_uri()

    def start(self) -> "GcResultsSimulator":
        self.folder.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="sim-gc", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.advance()

    # ---- making injections

    def advance(self) -> None:
        """Write every injection and finish every half-written file due by now."""
        with self._lock:
            now = self.clock.now()
            mono = self.clock.monotonic()
            for p in [p for p in self._pending if p.due is not None and p.due <= mono]:
                with p.path.open("ab") as f:
                    f.write(p.rest)
                self._pending.remove(p)
            while self._next <= now:
                self._inject(self._next)
                self._next += self._interval

    def _truth(self, source: str, t: datetime) -> dict[str, float]:
        if source != "sample":
            return dict(self._standards[source])
        hours = t.hour + t.minute / 60 + t.second / 3600
        phase = math.cos(2 * math.pi * (hours - 21.0) / 24)
        return {k: v + self.config.diurnal_amplitude.get(k, 0.0) * phase for k, v in self.config.air.items()}

    def _inject(self, t: datetime) -> None:
        seq = len(self._ledger)
        source = self.config.sequence[seq % len(self.config.sequence)]
        truth = self._truth(source, t)
        values = {sp: round((v + self._rng.gauss(0.0, self.config.noise.get(sp, 0.0))) /
                            _factor(self.config.units.get(sp, "ppb"), sp), 4) for sp, v in truth.items()}
        name = self.config.inlet if source == "sample" else source
        entry = Injection(seq, t, name, truth, values, "")
        self._ledger.append(entry)
        if source != "sample":
            self._last_standard = t
        if self._silent_until is not None and t < self._silent_until:
            entry.fault = "silence"
            return
        if self.faults.active("bad_status", consume=True):
            entry.flagged = [next(iter(values))]
            entry.fault = "bad_status"
        malformed = self.faults.active("malformed", consume=True) is not None
        entry.fault = "malformed" if malformed else entry.fault
        data = self._render(entry, malformed)
        entry.file = self._file_name(entry)
        if self.faults.active("garbage", consume=True):
            noise = bytes(self._rng.randrange(256) for _ in range(200)) + b"\n"
            self._write(self.folder / f"{entry.file}.noise", noise)
        half = self.faults.active("half_written", consume=True)
        if half is not None:
            entry.fault = "half_written"
            cut = len(data) // 2
            self._write(self.folder / entry.file, data[:cut])
            due = None if half.params.get("never") else self.clock.monotonic() + float(half.params.get("delay_s", 120.0))
            self._pending.append(_Pending(self.folder / entry.file, data[cut:], due))
            return
        self._write(self.folder / entry.file, data)
        if self.faults.active("duplicate", consume=True):
            entry.fault = "duplicate"
            self._write(self.folder / f"copy-{entry.file}", data)

    def _write(self, path: Path, data: bytes) -> None:
        path.write_bytes(data)
        self.files += 1

    def _file_name(self, e: Injection) -> str:
        stamp = e.time.astimezone(self._zone).strftime("%Y%m%d-%H%M%S")
        return f"gc-{stamp}.C" if self.config.layout == "gcwerks" else f"{stamp}-{e.source}.TXT"

    def _render(self, e: Injection, malformed: bool) -> bytes:
        if self.config.layout == "gcwerks":
            return self._gcwerks(e, malformed).encode("ascii")
        return self._chemstation(e, malformed).encode("utf-16")

    def _gcwerks(self, e: Injection, malformed: bool) -> str:
        local = e.time.astimezone(self._zone)
        ref = (self._last_standard or e.time).astimezone(self._zone)
        species = list(e.values)
        lead = ["--"] * 12
        cols = ["Year", "yyyy", "mm", "dd", "hh", "mi", "ryyy", "rm", "rd", "rh", "ri", "Inlet", "Standard"]
        year = local.year + (local.timetuple().tm_yday - 1 + local.hour / 24 + local.minute / 1440) / 365.0
        row = [f"{year:.6f}", f"{local:%Y}", f"{local:%m}", f"{local:%d}", f"{local:%H}", f"{local:%M}",
               f"{ref:%Y}", f"{ref:%m}", f"{ref:%d}", f"{ref:%H}", f"{ref:%M}", e.source,
               self._bracketing if e.source == self.config.inlet else e.source]
        scale, unit = ["Scale:", *lead], ["Unit:", *lead]
        for sp in species:
            cols += [WIRE_NAMES[sp], "Flag"]
            scale += [SCALES[sp], "--"]
            unit += [self.config.units.get(sp, "ppb"), "--"]
            flag = "F---" if sp in e.flagged else "----"
            row += [f"{e.values[sp]:.4f}" if not malformed else "n/a?", flag]
        lines = [f"Created: {self.clock.now():%d %b %y %H:%M} GMT", "ghgnet-gc",
                 *("  ".join(f"{c:>12}" for c in r) for r in (scale, unit, cols, row))]
        return "\n".join(lines) + "\n"

    def _chemstation(self, e: Injection, malformed: bool) -> str:
        local = e.time.astimezone(self._zone)
        widths = [7, 6, 10, 10, 10, 2]

        def table_line(cells: list[str]) -> str:
            return "".join(c.rjust(w) + " " for c, w in zip(cells, widths, strict=False)) + cells[-1]

        out = [f"Data File C:\\Chem32\\1\\DATA\\GHG\\{local:%Y%m%d-%H%M%S}.D", f"Sample Name: {e.source}", "",
               "=" * 69,
               "Acq. Operator   : ghgnet                          Seq. Line :   1",
               f"Injection Date  : {local.strftime(CHEMSTATION_DATE_FORMAT)}            Inj :   1",
               "Acq. Method     : C:\\Chem32\\1\\METHODS\\GHG.M", "=" * 69,
               "                         External Standard Report", "=" * 69, ""]
        for signal, (label, unit) in enumerate((("FID1 A", "ppm"), ("ECD1 B", "ppb")), start=1):
            rows = [sp for sp in e.values if (self.config.units.get(sp, "ppb") == unit)]
            if not rows:
                continue
            out += [f"Signal {signal}: {label}", "",
                    table_line(["RetTime", "Type", "Area", "Amt/Area", "Amount", "Grp", "Name"]),
                    table_line(["[min]", "", "[pA*s]", "ratio", f"[{unit}]", "", ""]),
                    "|".join("-" * w for w in widths) + "|" + "-" * 18]
            for i, sp in enumerate(rows):
                amount = "n/a?" if malformed else f"{e.values[sp]:.4f}"
                out.append(table_line([f"{1.2 + i:.3f}", "BB", f"{e.values[sp] * 3.1:.4f}", "3.2258e-1", amount, "",
                                       WIRE_NAMES[sp]]))
            out.append("")
        if e.flagged:
            out += ["1 Warnings or Errors :", "", f"Error : {WIRE_NAMES[e.flagged[0]]} peak not found", ""]
        out += ["=" * 69, f"                          {END_OF_REPORT}", ""]
        return "\r\n".join(out)

    # ---- faults and what tests count

    def inject(self, fault: str, count: int | None = None, duration_s: float | None = None, **params: Any) -> None:
        with self._lock:
            if fault == "silence":
                seconds = duration_s or self.config.injection_interval_s
                self._silent_until = self.clock.now() + timedelta(seconds=seconds)
            else:  # `count` injections (default one); only silence takes a duration
                self.faults.inject(fault, count or 1, None, **params)

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()
            self._silent_until = None

    @property
    def ledger(self) -> list[Injection]:
        with self._lock:
            self.advance()
            return list(self._ledger)

    def ledger_rows(self, since_seq: int = 0) -> list[dict[str, Any]]:
        return [{"seq": e.seq, "time": e.time.isoformat().replace("+00:00", "Z"), "source": e.source,
                 "truth": e.truth, "values": e.values, "file": e.file, "fault": e.fault}
                for e in self.ledger[since_seq:]]

    def stats(self) -> dict[str, int]:
        ledger = self.ledger
        return {"injections": len(ledger), "files": self.files,
                "samples": sum(e.source == self.config.inlet for e in ledger),
                **{f: sum(e.fault == f for e in ledger) for f in FAULTS}}


def _factor(unit: str, species: str) -> float:
    """Multiply a value in `unit` by this to get ghgnet's unit (co2 ppm, others ppb)."""
    scale = {"ppm": 1e-6, "ppb": 1e-9, "ppt": 1e-12}
    return scale[unit] / scale["ppm" if species == "co2" else "ppb"]


class GcBench:
    """The bench model of the GC result-file export (entry point gc.results)."""

    kind = "analyzer"
    Config = GcResultsInstrument

    @staticmethod
    def build(config: GcResultsInstrument, clock: Clock, gas: Any = None) -> GcResultsSimulator:
        return GcResultsSimulator(clock, config)
