"""LI-COR LI-7500 family (open path: LI-7500, -7500A, -7500RS, -7500DS) and LI-7200 family (enclosed
path: LI-7200, -7200RS) CO2/H2O analyzers on their RS-232 data stream.

The analyzer only talks: at its RS-232 output rate (`(Outputs(RS232(Freq 20)))`, 10 or 20 Hz for
eddy covariance) it sends one labelled record a line, e.g.
`(Data (Ndx 1545)(DiagVal 250)(CO2D 1.6532e1)(H2OD 4.1221e2)(Temp 2.41e1)(Pres 9.86e1))<EOL>`
(LI-COR's "Configuration grammar" appendix of the LI-7200RS and LI-7500RS manuals: `(Labels TRUE)`,
the default, gives `(Data ..)` records of `(Label value)` pairs; the fields present are those
switched on under `(Outputs(RS232 ..))`; `Ndx` counts records; `DiagVal` is the diagnostic word;
CO2D and H2OD are molar densities in mmol m-3, Temp degC, Pres kPa). `(Diagnostics ..)` and `(Ack ..)`
records between the data are skipped; an `(Error ..)` record is named in the problems.

The diagnostic word (bits 0-3 the AGC or signal indicator in steps of 6.25 %, each other bit 1 when
its part is OK): bit 4 sync, 5 PLL, 6 detector, 7 chopper (LI-7500 manual, "cell diagnostic value",
as quoted by NCAR EOL's ISFS pages); the LI-7200 adds bit 8 pressure, 9 reference voltages, 10 inlet
and 11 outlet thermocouples, 12 sensor head detected (as decoded by the Thünen Institute's
LI7200Diagnostic.jl). No public source we found fixes the labels of the LI-7200's mole fractions:
`LABELS` below holds them (CO2MF umol/mol, H2OMF mmol/mol, both wet) in one place.

Records carry no usable time: the driver stamps them on the station's clock by counting them at
`output_rate_hz` (drivers/record_clock.py), as for the sonic, so the two align on one clock. A gap
in `Ndx` (records lost on the line) is named in `PollResult.problems` with the count, and the
records after it keep their place in time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import Field

from drivers.base import AnalyzerDriver, DeviceConfig, PollResult
from drivers.reading import Reading
from drivers.record_clock import RecordClock
from drivers.transport import TransportTimeout

MAX_LINE = 2048

# label -> (Reading value name, factor to its unit in drivers.reading.UNITS)
LABELS: dict[str, tuple[str, float]] = {
    "CO2D": ("co2_density", 1.0),  # mmol m-3
    "H2OD": ("h2o_density", 1.0),  # mmol m-3
    "CO2MF": ("co2", 1.0),  # umol/mol wet (LI-7200)
    "H2OMF": ("h2o", 0.1),  # mmol/mol wet -> % (LI-7200)
    "Temp": ("temperature", 1.0),  # degC
    "Pres": ("pressure", 10.0),  # kPa -> hPa
}

# bit -> name, a 1 meaning OK; bits 0-3 are the AGC / signal indicator
DIAG_BITS_LI7500: dict[int, str] = {4: "sync", 5: "pll", 6: "detector", 7: "chopper"}
DIAG_BITS_LI7200: dict[int, str] = {**DIAG_BITS_LI7500, 8: "pressure", 9: "voltage", 10: "inlet_temp",
                                    11: "outlet_temp", 12: "head"}
AGC_STEP_PCT = 6.25

_RECORD = re.compile(rb"\(Data\s*((?:\(\s*\w+\s+[^()]*\)\s*)*)\)")
_PAIR = re.compile(rb"\(\s*(\w+)\s+([^()]*?)\s*\)")


class MalformedLine(ValueError):
    """A line that holds no record of the analyzer's grammar; the message says why."""


@dataclass(frozen=True, slots=True)
class Li7x00Record:
    """One `(Data ..)` record: its fields by label, as sent (numbers)."""

    fields: dict[str, float]

    @property
    def index(self) -> int | None:
        return int(self.fields["Ndx"]) if "Ndx" in self.fields else None

    @property
    def diag(self) -> int | None:
        return int(self.fields["DiagVal"]) if "DiagVal" in self.fields else None


def parse_line(line: bytes) -> list[Li7x00Record]:
    """The `(Data ..)` records of one line; MalformedLine naming an `(Error ..)` or an unreadable line."""
    text = line.strip(b"\r\n\t ")
    head = text.split(b"(", 2)[1].strip() if text.startswith(b"(") else b""
    if head.startswith(b"Error"):
        raise MalformedLine(f"the analyzer reports an error: {text[:200]!r}")
    if head.startswith((b"Ack", b"Diagnostics")):
        return []
    records = []
    found = False
    for body in _RECORD.findall(text):
        found = True
        fields = {}
        for label, value in _PAIR.findall(body):
            try:
                fields[label.decode("ascii")] = float(value)
            except ValueError:
                raise MalformedLine(f"({label.decode('ascii', 'replace')} {value[:40]!r}) is not a number") from None
        records.append(Li7x00Record(fields))
    if not found:
        raise MalformedLine("no (Data ..) record")
    return records


def format_record(fields: dict[str, float]) -> bytes:
    """The line the analyzer sends for `fields` (Labels TRUE, EOL LF); for the simulator and tests."""
    parts = []
    for label, value in fields.items():
        parts.append(f"({label} {int(value)})" if label in ("Ndx", "DiagVal") else f"({label} {value:.7e})")
    return ("(Data " + "".join(parts) + ")\n").encode("ascii")


def diag_problems(diag: int, bits: dict[int, str]) -> tuple[str, ...]:
    """Names of the parts the diagnostic word calls not OK."""
    return tuple(name for bit, name in bits.items() if not diag >> bit & 1)


class Li7x00Config(DeviceConfig):
    """An LI-7500 or LI-7200 family analyzer: `[[analyzers]]` entry with driver "licor.li7500" or "licor.li7200"."""

    driver: Literal["licor.li7500"] = "licor.li7500"
    baudrate: int = 115200
    output_rate_hz: float = Field(default=20.0, gt=0, le=20, description="records a second (RS232 Freq)")
    poll_interval_s: float = Field(default=1.0, gt=0, description="seconds between polls")
    silent_s: float = Field(default=10.0, gt=0, description="seconds without a byte before a timeout")
    clock_window_s: float = Field(default=600.0, gt=0, description="seconds of polls the record clock takes its "
                                  "stream start from (drivers/record_clock.py): longer is steadier, shorter "
                                  "follows an instrument clock running slow")


class Li7200Config(Li7x00Config):
    driver: Literal["licor.li7200"] = "licor.li7200"  # type: ignore[assignment]


class LI7500(AnalyzerDriver):
    """LI-7500 family open-path analyzer: CO2 and H2O molar densities, temperature, pressure."""

    name = "licor.li7500"
    Config = Li7x00Config
    simulator = "simulators.licor.li7x00:Li7x00Stream"
    diag_bits: ClassVar[dict[int, str]] = DIAG_BITS_LI7500

    config: Li7x00Config
    max_record_age_s = float("inf")  # records wait in the serial line: no bound

    def __init__(self, config: DeviceConfig, transport: Any) -> None:
        super().__init__(config, transport)
        self._pending = b""
        self._silent_since = None
        self._last_index: int | None = None
        self._clock = RecordClock(self.config.output_rate_hz, self.config.clock_window_s)

    def open(self) -> None:
        super().open()
        self._pending = b""
        self._silent_since = None
        self._last_index = None
        self._clock.restart()

    def _check_index(self, index: int | None, problems: list[str]) -> int:
        """How far this record moves the stream on: 1, plus the records lost before it."""
        if index is None:
            return 1
        lost = 0
        if self._last_index is not None and index > self._last_index + 1:
            lost = index - self._last_index - 1
            problems.append(f"{lost} records lost (Ndx {self._last_index} -> {index})")
        self._last_index = index
        return 1 + lost

    def _reading(self, rec: Li7x00Record, time) -> Reading:
        values = {name: rec.fields[label] * factor for label, (name, factor) in LABELS.items() if label in rec.fields}
        diag = rec.diag
        flags: tuple[str, ...] = ()
        if diag is not None:
            values["agc_pct"] = (diag & 0x0F) * AGC_STEP_PCT
            flags = diag_problems(diag, self.diag_bits)
        return Reading(time=time, device=self.device_id, values=values, status=diag,
                       status_ok=not flags, status_flags=flags)

    def poll(self) -> PollResult:
        """Every complete record that arrived since the last poll, oldest first."""
        result = PollResult()
        data = self.transport.read_available()
        now = self.now()
        if not data:
            if self._silent_since is None:
                self._silent_since = now
            elif (now - self._silent_since).total_seconds() >= self.config.silent_s:
                self._silent_since = now
                self._clock.restart()
                self._last_index = None
                raise TransportTimeout(f"{self.device_id}: nothing from {self.transport.url} for "
                                       f"{self.config.silent_s:g} s")
            return result
        self._silent_since = None
        *lines, self._pending = (self._pending + data).split(b"\n")
        if len(self._pending) > MAX_LINE:
            result.problems.append(f"{len(self._pending)} bytes without a line end dropped: {self._pending[:80]!r}")
            self._pending = b""
        records: list[Li7x00Record] = []
        advances: list[int] = []
        for raw in lines:
            if not raw.strip(b"\r\x00 \t"):
                continue
            try:
                got = parse_line(raw)
            except MalformedLine as why:
                result.problems.append(f"malformed line skipped ({why}): {raw[:120]!r}")
                continue
            for rec in got:
                advances.append(self._check_index(rec.index, result.problems))
                records.append(rec)
        for rec, when in zip(records, self._clock.stamps(now, advances)):
            result.readings.append(self._reading(rec, when))
        return result


class LI7200(LI7500):
    """LI-7200 family enclosed-path analyzer: adds the cell's pressure and thermocouple diagnostics."""

    name = "licor.li7200"
    Config = Li7200Config
    diag_bits = DIAG_BITS_LI7200
