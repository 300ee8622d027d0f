"""LI-COR LI-830 (CO2) and LI-850 (CO2/H2O) gas analyzers: XML over RS-232 or USB serial.

The protocol, from LI-COR's LI-830/LI-850 manual ("Configuration grammar" and "Element
descriptions", licor.com/support/LI-850/topics/grammar-01.html and grammar-02.html) and the LI-820
manual's appendix D (the same grammar for the older model):

* Every message is one XML element whose root names the model: `<li850>` or `<li830>`. Tags are
  not case sensitive. A command sent to the analyzer ends in a line feed.
* `<li850><data>?</data></li850>` asks for the current values; the analyzer answers one line
  `<li850><data><celltemp>..</celltemp><cellpres>..</cellpres><co2>..</co2>...</data></li850>`.
  DATA children: CO2 (ppm), CO2ABS, H2O (mmol/mol, LI-850 only), H2ODEWPOINT (degC), H2OABS,
  CELLTEMP (degC), CELLPRES (kPa), IVOLT (V), FLOWRATE, RAW (detector counts).
* `<li850><cfg><outrate>N</outrate></cfg></li850>` sets the streaming interval in seconds: the
  analyzer then sends a DATA line every N s unasked; 0 stops the stream (polled use). A command is
  acknowledged with `<li850><ack>true</ack></li850>`, or `<ack>false</ack>` when the XML could not
  be parsed. An `<error>` element carries an error message.
* `<ver>?</ver>` and `<serialnum>?</serialnum>` answer the software version and serial number.

Both ways of reading are supported, chosen by `mode` in the config: "poll" (the driver sets outrate
0 when it opens the link and asks for each record) and "stream" (it sets outrate `outrate_s` and
reads the lines that arrive until the stream pauses for `timeout_s`, for `timeout_s` at most).

What the grammar does not fix, kept in one place each:
* Records carry no time. A polled record is stamped with the station clock when it is read; a
  streamed batch is stamped back from the read time at `outrate_s` steps (see `_stamp_stream`).
  The station hands its clock in as `Driver.now` (the agent's simulated time in tests).
* The wire documents one CO2 value; whether it is the cell's (wet) mole fraction or already
  corrected for dilution depends on the analyzer's set-up. `co2_basis` says which ("wet" by
  default, corrected by the station with `water_correction`, plain dilution unless configured).
* The grammar documents no status word. Status flags come from what the record does carry:
  an `<error>` element ("analyzer_error"), the cell temperature outside its window (the LI-850
  heats its cell to about 51 degC: "cell_temp_unstable"), the cell pressure outside its window
  ("cell_pressure_out_of_range") and a low supply voltage ("low_input_voltage"); limits in the
  config (`STATUS_FLAGS` names them).
* Lines end in LF (a CR before it is dropped): REPLY_END.

Faults: a line that is not well-formed XML, has another root, or a value that is not a number is
skipped and named in `PollResult.problems`; the other records are kept. `<ack>false</ack>` to a
command raises `Li8x0Error`. No reply in time raises `TransportTimeout` (after stale input is
discarded).
"""

from __future__ import annotations

import math
import time
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from drivers.base import AnalyzerDriver, DeviceConfig, DriverError, PollResult
from drivers.reading import Reading
from drivers.transport import TransportError, TransportTimeout
from drivers.water import water_correction_field

REPLY_END = b"\n"
COMMAND_END = "\n"


# DATA child tag -> (ghgnet quantity, factor from the wire unit to the ghgnet unit)
DATA_TAGS: dict[str, tuple[str, float]] = {
    "co2": ("co2", 1.0),  # ppm
    "h2o": ("h2o", 0.1),  # mmol/mol -> %
    "celltemp": ("cell_temp", 1.0),  # degC
    "cellpres": ("cell_pressure", 10.0),  # kPa on the wire, hPa in ghgnet
    "ivolt": ("input_voltage", 1.0),  # V
}

STATUS_FLAGS = ("analyzer_error", "cell_temp_unstable", "cell_pressure_out_of_range", "low_input_voltage")

# Never read more than this many lines for one reply.
MAX_EXTRA_LINES = 32

Window = tuple[float, float]


class Li8x0Error(DriverError):
    """The analyzer refused a command (`<ack>false</ack>`) or answered `<error>`."""


class _Li8x0Config(DeviceConfig):
    """Fields shared by the LI-830 and LI-850."""

    ROOT: ClassVar[str] = "li850"

    baudrate: int = 9600
    poll_interval_s: float = Field(default=2.0, gt=0, description="seconds between polls")
    mode: Literal["poll", "stream"] = Field(
        default="poll", description="poll: ask for each record; stream: the analyzer sends one every outrate_s"
    )
    outrate_s: float = Field(default=1.0, gt=0, le=20, description="stream mode: seconds between records")
    co2_basis: Literal["wet", "dry"] = Field(
        default="wet", description="wet: <co2> is the cell's mole fraction; dry: already corrected for water"
    )
    water_correction: dict[str, tuple[float, float]] = water_correction_field("licor.li850")
    cell_temp_c: Window = Field(default=(50.0, 53.0), description="cell temperature outside -> cell_temp_unstable")
    cell_pressure_kpa: Window = Field(
        default=(60.0, 110.0), description="cell pressure outside -> cell_pressure_out_of_range"
    )
    min_input_voltage: float = Field(default=10.0, description="supply below this (V) -> low_input_voltage")

    @model_validator(mode="after")
    def _windows(self) -> _Li8x0Config:
        for name in ("cell_temp_c", "cell_pressure_kpa"):
            lo, hi = getattr(self, name)
            if lo >= hi:
                raise ValueError(f"{name}: window ({lo}, {hi}) must have low < high")
        return self


class LI850Config(_Li8x0Config):
    """A LI-COR LI-850 (CO2 and H2O): `[[analyzers]]` entry with driver = "licor.li850"."""

    driver: Literal["licor.li850"] = "licor.li850"


class LI830Config(_Li8x0Config):
    """A LI-COR LI-830 (CO2 only; the sample is dried upstream, so `<co2>` is taken as dry by
    default): `[[analyzers]]` entry with driver = "licor.li830"."""

    ROOT: ClassVar[str] = "li830"

    driver: Literal["licor.li830"] = "licor.li830"
    co2_basis: Literal["wet", "dry"] = Field(
        default="dry", description="dry: the sample is dried before the analyzer (it measures no H2O)"
    )
    water_correction: dict[str, tuple[float, float]] = water_correction_field(
        when="only with co2_basis = wet and an H2O source")


class _Malformed(ValueError):
    """A line that is not a record of this analyzer; the message says why."""


def parse_message(line: str, root: str) -> ET.Element:
    """The XML element of one line, tags in lower case; _Malformed unless its root is `root`."""
    try:
        elem = ET.fromstring(line)
    except ET.ParseError as exc:
        raise _Malformed(f"not well-formed XML ({exc})") from None
    for e in elem.iter():
        e.tag = e.tag.lower()
    if elem.tag != root:
        raise _Malformed(f"root <{elem.tag}>, expected <{root}>")
    return elem


def ack_of(elem: ET.Element) -> bool | None:
    """True/False for an <ack> message, None for any other."""
    ack = elem.find("ack")
    return None if ack is None else (ack.text or "").strip().lower() == "true"


class LI850(AnalyzerDriver):
    """LI-COR LI-850: CO2 and H2O by NDIR, XML over serial, polled or streamed."""

    name = "licor.li850"
    Config = LI850Config
    simulator = "simulators.licor.li8x0:Li8x0Simulator"

    config: _Li8x0Config

    def __init__(self, config: DeviceConfig, transport: Any) -> None:
        super().__init__(config, transport)
        self.root = config.ROOT
        self.last_error: str | None = None
        self._partial = b""  # stream mode: the start of a line cut by the last read

    # ---- wire helpers

    def _send(self, inner: str) -> None:
        self.transport.write(f"<{self.root}>{inner}</{self.root}>{COMMAND_END}".encode("ascii"))

    def _line(self) -> str:
        raw = self.transport.read_until(REPLY_END)
        return raw.decode("ascii", errors="replace").strip("\r\n\x00 ")

    def _exchange(self, inner: str, want: str, problems: list[str]) -> tuple[ET.Element, str]:
        """Send `inner` and return the first reply holding <want> (or <ack>), with its line; noise,
        malformed lines and stale records in front of it are named in `problems` and skipped."""
        self._send(inner)
        try:
            for _ in range(MAX_EXTRA_LINES):
                line = self._line()
                try:
                    elem = parse_message(line, self.root)
                except _Malformed as why:
                    problems.append(f"{inner}: line skipped ({why}): {line!r}")
                    continue
                if elem.find(want) is not None or elem.find("ack") is not None:
                    return elem, line
                error = elem.find("error")
                if error is not None:
                    raise Li8x0Error(f"{inner}: analyzer error: {(error.text or '').strip()!r}")
                if want != "data" and elem.find("data") is not None:
                    continue  # a streamed record arriving before the reply
                problems.append(f"{inner}: unexpected reply skipped: {line!r}")
        except TransportTimeout as exc:
            self.transport.discard_input()
            if problems:  # say what came instead of the reply
                raise TransportTimeout(f"{exc}; instead: {problems[-1]}", partial=exc.partial) from None
            raise
        self.transport.discard_input()
        raise DriverError(f"{inner}: no reply in {MAX_EXTRA_LINES} lines")

    def command(self, inner: str) -> None:
        """A configuration command; Li8x0Error unless acknowledged."""
        elem, _ = self._exchange(inner, "ack", [])
        if not ack_of(elem):
            raise Li8x0Error(f"{inner}: the analyzer answered <ack>false</ack> (it could not parse the command)")

    # ---- link

    def open(self) -> None:
        """Open the link and set the output rate: 0 (polled) or `outrate_s` (streamed)."""
        self.transport.open()
        self._partial = b""
        rate = 0 if self.config.mode == "poll" else self.config.outrate_s
        try:
            self.transport.discard_input()
            self.command(f"<cfg><outrate>{rate:g}</outrate></cfg>")
        except (TransportError, DriverError):
            self.transport.close()
            raise

    # ---- records

    def _reading(self, elem: ET.Element, at: datetime, problems: list[str], line: str) -> Reading | None:
        data = elem.find("data")
        assert data is not None
        values: dict[str, float] = {}
        for tag, (quantity, factor) in DATA_TAGS.items():
            child = data.find(tag)
            if child is None:
                continue
            text = (child.text or "").strip()
            try:
                value = float(text)
            except ValueError:
                problems.append(f"record skipped (<{tag}> is not a number: {text!r}): {line!r}")
                return None
            if not math.isfinite(value):
                problems.append(f"<{tag}> non-finite value {text!r} left out")
                continue
            values[quantity] = round(value * factor, 9)
        if "co2" not in values:
            problems.append(f"record skipped (no <co2>): {line!r}")
            return None
        if self.config.co2_basis == "dry":
            values["co2_dry"] = values.pop("co2")
        flags = self._flags(elem, values)
        return Reading(time=at, device=self.device_id, values=values, status_ok=not flags, status_flags=flags)

    def _flags(self, elem: ET.Element, values: dict[str, float]) -> tuple[str, ...]:
        cfg = self.config
        flags = []
        error = elem.find(".//error")
        if error is not None:
            self.last_error = (error.text or "").strip()
            flags.append("analyzer_error")
        t = values.get("cell_temp")
        if t is not None and not cfg.cell_temp_c[0] <= t <= cfg.cell_temp_c[1]:
            flags.append("cell_temp_unstable")
        p = values.get("cell_pressure")
        if p is not None and not cfg.cell_pressure_kpa[0] <= p / 10.0 <= cfg.cell_pressure_kpa[1]:
            flags.append("cell_pressure_out_of_range")
        v = values.get("input_voltage")
        if v is not None and v < cfg.min_input_voltage:
            flags.append("low_input_voltage")
        return tuple(flags)

    def poll(self) -> PollResult:
        """Polled: one record, stamped now. Streamed: every complete line that has arrived."""
        if self.config.mode == "stream":
            return self._poll_stream()
        result = PollResult()
        self.transport.discard_input()  # a late reply to an earlier, timed-out request
        inner = "<data>?</data>"
        elem, line = self._exchange(inner, "data", result.problems)
        if elem.find("data") is None:  # an <ack> alone: the record did not come
            result.problems.append(f"{inner}: acknowledged without a record")
            return result
        reading = self._reading(elem, self.now(), result.problems, line)
        if reading is not None:
            result.readings.append(reading)
        return result

    def _poll_stream(self) -> PollResult:
        result = PollResult()
        lines: list[str] = []
        # Lines until the stream pauses for the reply timeout, but never longer than that timeout in
        # all: a stream faster than the timeout never pauses, and the poll must still return.
        deadline = time.monotonic() + self.config.timeout_s
        try:
            while time.monotonic() < deadline:
                raw = self._partial + self.transport.read_until(REPLY_END)
                self._partial = b""
                lines.append(raw.decode("ascii", errors="replace").strip("\r\n\x00 "))
        except TransportTimeout as exc:
            self._partial = exc.partial
            if not lines:
                raise
        now = self.now()
        records: list[tuple[ET.Element, str]] = []
        for line in lines:
            if not line:
                continue
            try:
                elem = parse_message(line, self.root)
            except _Malformed as why:
                result.problems.append(f"stream: line skipped ({why}): {line!r}")
                continue
            if elem.find("data") is None:
                if ack_of(elem) is None:
                    result.problems.append(f"stream: unexpected message skipped: {line!r}")
                continue
            records.append((elem, line))
        for i, (elem, line) in enumerate(records):
            reading = self._reading(elem, self._stamp_stream(now, len(records) - 1 - i), result.problems, line)
            if reading is not None:
                result.readings.append(reading)
        return result

    def _stamp_stream(self, now: datetime, records_after: int) -> datetime:
        """A streamed record's time: the read time, less one output interval per later record."""
        return now - timedelta(seconds=records_after * self.config.outrate_s)

    # ---- identification

    def _query(self, tag: str) -> str:
        elem, _ = self._exchange(f"<{tag}>?</{tag}>", tag, [])
        found = elem.find(tag)
        return "" if found is None else (found.text or "").strip()

    def identify(self) -> dict[str, Any]:
        """What `probe` shows: software version, serial number, mode and one record's values."""
        info = super().identify()
        info.update(version=self._query("ver"), serial_number=self._query("serialnum"), mode=self.config.mode)
        if self.config.mode == "poll":
            result = self.poll()
            if result.readings:
                r = result.readings[-1]
                info.update(latest=dict(r.values), status_flags=list(r.status_flags))
            info["problems"] = result.problems
        if self.last_error:
            info["last_error"] = self.last_error
        return info


class LI830(LI850):
    """LI-COR LI-830: CO2 by NDIR; the LI-850's grammar under the root <li830>, without H2O."""

    name = "licor.li830"
    Config = LI830Config
    simulator = "simulators.licor.li8x0:Li8x0Simulator"
