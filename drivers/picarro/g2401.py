"""Picarro G2401 (CO2/CH4/CO/H2O) and G2301 (CO2/CH4/H2O) over the remote command interface.

The analyzer answers ASCII commands on RS-232 (19200 8N1, commands end in CR) or TCP port 51020
(commands end in CR LF); every reply line ends in CR. This module only translates: it never sleeps,
retries or decides. The engine polls, backs off after errors and reopens the transport.

How a poll reads the analyzer (checked against Picarro's CommandInterface source,
picarro-cchang/Brooks):

* `_Instr_GetStatus` answers the status word as a decimal integer; it is decoded into named bits
  (`PicarroStatus`) and stamped on every record of the same poll.
* `_Meas_GetBuffer` answers `N;` and then pops N records from the analyzer's 512-record FIFO, one
  line each. It clears what it reports, so one call per poll drains the buffer without duplicates;
  records that arrive during the reply stay for the next poll. `_Meas_GetBufferFirst` pops one
  record per round trip and answers an empty buffer with one `ERR:3002` line *per label*, which a
  reader must consume in full or fall out of step; `_Meas_GetBuffer` answers `0;` instead, and its
  count says exactly how many lines follow, so a cut reply is recognised. `ERR:3002` in place of the
  count is still read as an empty buffer.
* A record line is `time;value;` per label in `meas_label` order (older host software) or
  `time;value;value;...;` with the time once (newer); both are accepted, told apart by field count.
  Times are the analyzer clock, `yy/mm/dd HH:MM:SS.mmm` with no zone.

Faults: `ERR:####` replies raise `PicarroError`. A line that is not a record (line noise) or a
record line that does not parse (partial, wrong field count, bad number) is skipped and named in
`PollResult.problems`; the records around it are kept. A timeout or dropped link raises
`TransportTimeout`/`TransportError` after stale input is discarded, except when records have already
been popped in this poll: those are returned, with the cut named in `problems`, since the analyzer
no longer holds them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator, model_validator

from drivers.base import AnalyzerDriver, DeviceConfig, DriverError, PollResult, TimeZoneName
from drivers.reading import Reading, unit_of
from drivers.transport import TransportError, TransportTimeout
from drivers.water import water_correction_field

# Picarro meas_label -> ghgnet quantity name (drivers.reading.UNITS).
G2401_LABELS: dict[str, str] = {
    "CO2": "co2",
    "CO2_dry": "co2_dry",
    "CH4": "ch4",
    "CH4_dry": "ch4_dry",
    "CO": "co",
    "H2O": "h2o",
    "CavityPressure": "cavity_pressure",
    "CavityTemp": "cavity_temp",
    "WarmBoxTemp": "warm_box_temp",
    "DasTemp": "das_temp",
    "OutletValve": "outlet_valve",
}
G2301_LABELS: dict[str, str] = {k: v for k, v in G2401_LABELS.items() if k != "CO"}

DEFAULT_COLUMNS = ["CO2", "CO2_dry", "CH4", "CH4_dry", "CO", "H2O", "CavityPressure", "CavityTemp"]

# Units the analyzer reports in (Picarro: CO2, CH4 and CO all in ppm; H2O in %).
DEFAULT_WIRE_UNITS: dict[str, str] = {"co2": "ppm", "ch4": "ppm", "co": "ppm", "h2o": "%"}

# factor[(wire unit, ghgnet unit)]: multiply a wire value by it to get the ghgnet value.
UNIT_FACTORS: dict[tuple[str, str], float] = {
    ("ppm", "ppm"): 1.0,
    ("ppm", "ppb"): 1000.0,
    ("ppb", "ppb"): 1.0,
    ("ppb", "ppm"): 0.001,
    ("%", "%"): 1.0,
    ("Torr", "Torr"): 1.0,
    ("degC", "degC"): 1.0,
    ("DN", "DN"): 1.0,
}

# ERR codes whose meaning is known (from Picarro's command-interface code and guide).
ERROR_MEANINGS: dict[int, str] = {3002: "measurement buffer empty"}
BUFFER_EMPTY = 3002

TIME_FORMAT = "%y/%m/%d %H:%M:%S.%f"


def parse_analyzer_time(stamp: str) -> datetime:
    """`yy/mm/dd HH:MM:SS.mmm` (naive, analyzer zone). By slicing: strptime cost more than the
    rest of a record's parsing, and the shape is already checked by _TIME_RE. Years as %y reads
    them (69-99 -> 19xx)."""
    frac = stamp[18:]
    yy = int(stamp[0:2])
    return datetime(yy + (2000 if yy < 69 else 1900), int(stamp[3:5]), int(stamp[6:8]), int(stamp[9:11]),
                    int(stamp[12:14]), int(stamp[15:17]), int((frac + "000000")[:6]) if frac else 0)
_TIME_RE = re.compile(r"\d\d/\d\d/\d\d \d\d:\d\d:\d\d\.\d{3}")
_ERR_RE = re.compile(r"^ERR:\s*(\d+)(.*)$", re.DOTALL)
# Bounded digit runs: a longer one is noise, not a number (int() refuses over 4300 digits).
_COUNT_RE = re.compile(r"^(\d{1,6});?$")
_INT_RE = re.compile(r"^\d{1,10}$")

# Never read more than this many noise or error lines in one reply: a babbling line is a fault.
MAX_EXTRA_LINES = 32


class PicarroError(DriverError):
    """The analyzer answered `ERR:####`: `code` is the number, `meaning` its name where known."""

    def __init__(self, code: int, raw: str, command: str) -> None:
        self.code = code
        self.raw = raw
        self.command = command
        self.meaning = ERROR_MEANINGS.get(code, "unknown error code")
        super().__init__(f"{command}: ERR:{code} ({self.meaning}): {raw!r}")


# --------------------------------------------------------------------------- status word


@dataclass(frozen=True)
class PicarroStatus:
    """The `_Instr_GetStatus` word, decoded. 963 (bits 0, 1, 6, 7, 8, 9) is normal operation.

    `ok` is true when every bit that should be set is set and no fault bit is set; `flags` names
    each abnormal condition (a missing good bit or a present fault bit).
    """

    word: int

    # bit -> name when set
    BITS: ClassVar[dict[int, str]] = {
        0: "ready",
        1: "measuring",
        2: "error_in_buffer",
        6: "gas_flowing",
        7: "pressure_locked",
        8: "cavity_temp_locked",
        9: "warm_box_temp_locked",
        13: "warming_up",
        14: "system_error",
    }
    # bits that must be set in normal operation -> name of the condition when they are clear
    MUST_BE_SET: ClassVar[dict[int, str]] = {
        0: "not_ready",
        1: "not_measuring",
        6: "gas_not_flowing",
        7: "pressure_unlocked",
        8: "cavity_temp_unlocked",
        9: "warm_box_temp_unlocked",
    }
    # bits that must be clear -> name of the condition when set
    MUST_BE_CLEAR: ClassVar[dict[int, str]] = {
        2: "error_in_buffer",
        13: "warming_up",
        14: "system_error",
    }
    NORMAL: ClassVar[int] = 963

    @property
    def bits(self) -> tuple[str, ...]:
        """Names of the known bits that are set."""
        return tuple(name for bit, name in self.BITS.items() if self.word >> bit & 1)

    @property
    def flags(self) -> tuple[str, ...]:
        missing = [name for bit, name in self.MUST_BE_SET.items() if not self.word >> bit & 1]
        present = [name for bit, name in self.MUST_BE_CLEAR.items() if self.word >> bit & 1]
        return tuple(missing + present)

    @property
    def ok(self) -> bool:
        return not self.flags


# --------------------------------------------------------------------------- configuration


class _PicarroConfig(DeviceConfig):
    """Fields shared by the G2401 and G2301; each model narrows `driver` and the known labels."""

    KNOWN_LABELS: ClassVar[dict[str, str]] = G2401_LABELS

    baudrate: int = 19200
    poll_interval_s: float = Field(default=5.0, gt=0, description="seconds between polls")
    columns: list[str] = Field(
        default_factory=lambda: list(DEFAULT_COLUMNS),
        min_length=1,
        description="the analyzer's meas_label, in its order (set on the analyzer)",
    )
    wire_units: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "unit the analyzer reports each quantity in, by ghgnet name (co2, ch4, co, h2o, ...);"
            " unlisted species use Picarro's: ppm for co2/ch4/co, % for h2o; a _dry quantity"
            " follows its species unless listed"
        ),
    )
    analyzer_timezone: TimeZoneName = Field(
        default="UTC", description="IANA zone of the analyzer clock (its times carry no zone)"
    )
    water_correction: dict[str, tuple[float, float]] = water_correction_field("picarro.g2401")

    @field_validator("columns")
    @classmethod
    def _known_columns(cls, columns: list[str]) -> list[str]:
        unknown = [c for c in columns if c not in cls.KNOWN_LABELS]
        if unknown:
            raise ValueError(
                f"unknown column(s) {', '.join(map(repr, unknown))}; known labels: "
                + ", ".join(cls.KNOWN_LABELS)
            )
        dupes = sorted({c for c in columns if columns.count(c) > 1})
        if dupes:
            raise ValueError(f"column(s) listed twice: {', '.join(dupes)}")
        return columns

    @model_validator(mode="after")
    def _units_convertible(self) -> "_PicarroConfig":
        quantities = set(self.KNOWN_LABELS.values())
        for name, unit in self.wire_units.items():
            if name not in quantities:
                raise ValueError(
                    f"wire_units: unknown quantity {name!r}; known: {', '.join(sorted(quantities))}"
                )
            if (unit, unit_of(name)) not in UNIT_FACTORS:
                raise ValueError(f"wire_units: cannot convert {name} from {unit!r} to {unit_of(name)}")
        return self

    def wire_unit(self, quantity: str) -> str:
        """The unit `quantity` arrives in on the wire."""
        if quantity in self.wire_units:
            return self.wire_units[quantity]
        base = quantity.removesuffix("_dry")
        if base in self.wire_units:
            return self.wire_units[base]
        return DEFAULT_WIRE_UNITS.get(base, unit_of(quantity))


class G2401Config(_PicarroConfig):
    """A Picarro G2401: `[[analyzers]]` entry with driver = "picarro.g2401"."""

    driver: Literal["picarro.g2401"] = "picarro.g2401"


class G2301Config(_PicarroConfig):
    """A Picarro G2301 (no CO): `[[analyzers]]` entry with driver = "picarro.g2301"."""

    KNOWN_LABELS: ClassVar[dict[str, str]] = G2301_LABELS

    driver: Literal["picarro.g2301"] = "picarro.g2301"
    columns: list[str] = Field(
        default_factory=lambda: [c for c in DEFAULT_COLUMNS if c != "CO"],
        min_length=1,
        description="the analyzer's meas_label, in its order (set on the analyzer)",
    )
    water_correction: dict[str, tuple[float, float]] = water_correction_field("picarro.g2301")


# --------------------------------------------------------------------------- record parsing


class _Malformed(ValueError):
    """A record line that does not parse; the message says why."""


@dataclass(frozen=True)
class _Column:
    label: str
    quantity: str
    factor: float  # wire value * factor = value in the quantity's ghgnet unit


def _is_tcp(url: str) -> bool:
    return url.startswith(("socket://", "tcp://"))


# --------------------------------------------------------------------------- the driver


class G2401(AnalyzerDriver):
    """Picarro G2401: CO2, CH4, CO and H2O by cavity ring-down, over the command interface."""

    name = "picarro.g2401"
    Config = G2401Config
    simulator = "simulators.picarro.g2401:PicarroSimulator"

    config: _PicarroConfig

    REPLY_END = b"\r"

    def __init__(self, config: DeviceConfig, transport: Any) -> None:
        super().__init__(config, transport)
        self._zone = ZoneInfo(config.analyzer_timezone)
        self._columns = [
            _Column(
                label,
                config.KNOWN_LABELS[label],
                UNIT_FACTORS[
                    (config.wire_unit(config.KNOWN_LABELS[label]), unit_of(config.KNOWN_LABELS[label]))
                ],
            )
            for label in config.columns
        ]
        self.command_end = b"\r\n" if _is_tcp(config.url) else b"\r"

    # ---- wire helpers

    def _send(self, command: str) -> None:
        self.transport.write(command.encode("ascii") + self.command_end)

    def _line(self) -> str:
        """One reply line without its terminator (LF from CR LF/LF CR set-ups is stripped too)."""
        raw = self.transport.read_until(self.REPLY_END)
        return raw.decode("ascii", errors="replace").strip("\r\n\x00 ")

    def _discard_after(self, exc: TransportError) -> None:
        """Drop stale input after a failed exchange, so the next reply is not out of step."""
        if isinstance(exc, TransportTimeout):
            try:
                self.transport.discard_input()
            except TransportError:
                pass

    @staticmethod
    def _error(line: str, command: str) -> PicarroError | None:
        m = _ERR_RE.match(line)
        return PicarroError(int(m.group(1)), line, command) if m else None

    def _reply(self, command: str, accept: re.Pattern[str], problems: list[str]) -> str:
        """Send `command` and return the first reply line matching `accept`.

        Lines of noise in front of the reply are named in `problems` and skipped; an ERR reply
        raises PicarroError.
        """
        self._send(command)
        try:
            for _ in range(MAX_EXTRA_LINES):
                line = self._line()
                err = self._error(line, command)
                if err is not None:
                    raise err
                if accept.match(line):
                    return line
                problems.append(f"{command}: unexpected reply line skipped: {line!r}")
        except TransportError as exc:
            self._discard_after(exc)
            raise
        self.transport.discard_input()
        raise DriverError(f"{command}: no valid reply in {MAX_EXTRA_LINES} lines")

    # ---- commands

    def read_status(self, problems: list[str] | None = None) -> PicarroStatus:
        """`_Instr_GetStatus`, decoded."""
        line = self._reply("_Instr_GetStatus", _INT_RE, problems if problems is not None else [])
        return PicarroStatus(int(line))

    def poll(self) -> PollResult:
        """Status, then every buffered record (oldest first), stamped with that status."""
        result = PollResult()
        self.transport.discard_input()  # a late reply to an earlier, timed-out command
        status = self.read_status(result.problems)
        self._read_buffer(status, result)
        return result

    def _read_buffer(self, status: PicarroStatus, result: PollResult) -> None:
        command = "_Meas_GetBuffer"
        # Lines still waiting answer no command of ours: read as this reply, a stale ERR or count
        # would leave the records the analyzer pops for it to the next poll's discard.
        self.transport.discard_input()
        try:
            first = self._reply(command, _COUNT_RE, result.problems)
        except PicarroError as err:
            if err.code == BUFFER_EMPTY:
                return
            raise
        expected = int(_COUNT_RE.match(first).group(1))  # type: ignore[union-attr]
        seen = 0
        extra = 0
        try:
            while seen < expected:
                line = self._line()
                if not _TIME_RE.match(line):
                    # not a record: an ERR line (a label ran dry mid-record) or line noise
                    extra += 1
                    result.problems.append(f"{command}: non-record line skipped: {line!r}")
                    if extra > MAX_EXTRA_LINES:
                        self.transport.discard_input()
                        result.problems.append(f"{command}: too many bad lines; rest discarded")
                        return
                    continue
                seen += 1
                try:
                    result.readings.append(self._parse_record(line, status, result.problems))
                except _Malformed as why:
                    result.problems.append(f"{command}: malformed record skipped ({why}): {line!r}")
        except TransportError as exc:
            self._discard_after(exc)
            if not result.readings:
                raise
            partial = exc.partial if isinstance(exc, TransportTimeout) else b""
            result.problems.append(
                f"{command}: reply cut after {seen} of {expected} records ({exc});"
                f" partial line: {partial!r}"
            )

    def _parse_record(self, line: str, status: PicarroStatus, problems: list[str]) -> Reading:
        fields = line.split(";")
        if fields and fields[-1] == "":
            fields.pop()
        n = len(self._columns)
        if len(fields) == 2 * n and all(_TIME_RE.fullmatch(f) for f in fields[0::2]):
            stamp, texts = fields[0], fields[1::2]
        elif len(fields) == n + 1 and _TIME_RE.fullmatch(fields[0]):
            stamp, texts = fields[0], fields[1:]
        else:
            raise _Malformed(f"{len(fields)} fields for {n} columns")
        try:
            local = parse_analyzer_time(stamp)
        except ValueError:
            raise _Malformed(f"bad time {stamp!r}") from None
        values: dict[str, float] = {}
        for col, text in zip(self._columns, texts, strict=True):
            try:
                value = float(text)
            except ValueError:
                raise _Malformed(f"{col.label}: not a number: {text!r}") from None
            if not math.isfinite(value):
                problems.append(f"{col.label}: non-finite value {text!r} left out at {stamp}")
                continue
            values[col.quantity] = round(value * col.factor, 9)  # no float dust from the unit factor
        return Reading(
            time=local.replace(tzinfo=self._zone).astimezone(UTC),
            device=self.device_id,
            values=values,
            status=status.word,
            status_ok=status.ok,
            status_flags=status.flags,
        )

    def latest(self) -> dict[str, Any]:
        """`_Meas_GetConcEx`: the analyzer's newest values (does not touch the buffer)."""
        line = self._reply("_Meas_GetConcEx", _TIME_RE, [])
        fields = line.split(";")
        if fields and fields[-1] == "":
            fields.pop()
        stamp, texts = fields[0], fields[1:]
        try:
            local = datetime.strptime(stamp, TIME_FORMAT)
        except ValueError:
            raise DriverError(f"_Meas_GetConcEx: bad time {stamp!r} in {line!r}") from None
        out: dict[str, Any] = {"time": local.replace(tzinfo=self._zone).astimezone(UTC).isoformat()}
        for col, text in zip(self._columns, texts, strict=False):
            try:
                out[col.quantity] = float(text) * col.factor
            except ValueError:
                out[col.quantity] = text
        return out

    def identify(self) -> dict[str, Any]:
        """What `probe` shows: link, status word and its meaning, and the newest values."""
        info = super().identify()
        status = self.read_status()
        info.update(
            status=status.word,
            status_ok=status.ok,
            status_bits=list(status.bits),
            status_flags=list(status.flags),
            columns=list(self.config.columns),
            latest=self.latest(),
        )
        return info


class G2301(G2401):
    """Picarro G2301: CO2, CH4 and H2O (no CO); same command interface as the G2401."""

    name = "picarro.g2301"
    Config = G2301Config
    simulator = "simulators.picarro.g2401:PicarroSimulator"
