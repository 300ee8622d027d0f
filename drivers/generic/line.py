"""A declarative ASCII analyzer (`generic.line`): an analyzer that writes one record per line,
described entirely in the station config, so that a site connects one of the many domestic
analyzers (NDIR, CEAS, CRDS) without writing Python.

The description (in the `[[analyzers]]` table, or in a TOML file named by `definition` whose keys
the table may override; configs/analyzers/ holds examples):

* framing: `terminator` (default CR LF) ends a record; `start`, when set, is the character a record
  begins with (text in front of it is line noise and is dropped);
* parsing: either `delimiter` (`" "` splits on any run of whitespace) with `fields`, the field names
  by position (`""` skips a position), or `regex` with named groups (the whole line must match);
* `quantities`: field -> ghgnet quantity, its wire `unit`, `scale` and `offset`
  (physical = wire * scale + offset, in `unit`), converted to the quantity's ghgnet unit
  (drivers/generic/units.py; drivers.reading.UNITS);
* `timestamp`: the field holding the record's time, its strptime `format` (or `epoch`) and IANA
  `zone`; without it a record is stamped with the station's clock when it is read;
* `status`: the field holding the analyzer's status, read as text `values` (text -> flag name;
  the `ok` texts are healthy) or as an integer whose `bits` (bit -> flag name) are faults; a
  record with any flag is not ok;
* `mode`: `stream` (the analyzer talks on its own: each poll reads every complete line waiting) or
  `poll` (each poll writes `poll_command`, with escapes such as `\\r`, `\\n`, `\\x05`, and reads one
  record line; lines of noise in front of it are skipped and named).

A line that does not parse (wrong field count, no regex match, a value that is not a number, a time
that does not read, noise without the start character) is skipped and named in
`PollResult.problems`; the records around it are kept. A stream mode poll reads lines until none
is waiting, for `timeout_s` at most (a pause as long ends it sooner); an unfinished last line is kept
for the next poll.
"""

from __future__ import annotations

import math
import re
import time
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, ValidationInfo, model_validator

from drivers.base import AnalyzerDriver, DeviceConfig, PollResult, TimeZoneName
from drivers.generic.units import conversion
from drivers.reading import Reading, unit_of
from drivers.transport import TransportTimeout
from drivers.water import water_correction_field
from ghgnet.config import StrictModel

# Never read more lines than this in one stream poll: a babbling line is a fault, not data.
MAX_LINES_PER_POLL = 10_000
# Poll mode: lines of noise read in front of the reply before giving up on this poll.
MAX_REPLY_LINES = 8
_ESCAPE = re.compile(r"\\(x[0-9A-Fa-f]{2}|[rnt0\\])")
_SIMPLE = {"r": "\r", "n": "\n", "t": "\t", "0": "\0", "\\": "\\"}


def unescape(text: str) -> bytes:
    """`READ\\r\\n`, `\\x05` ... -> bytes (TOML basic strings already turn \\r into CR; literal
    strings keep the backslash, and both work)."""
    out = _ESCAPE.sub(lambda m: chr(int(m.group(1)[1:], 16)) if m.group(1)[0] == "x" else _SIMPLE[m.group(1)],
                      text)
    return out.encode("latin-1")


class QuantityMap(StrictModel):
    """One field -> one ghgnet quantity: value = (wire * scale + offset) in `unit`, then converted."""

    quantity: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="ghgnet quantity, e.g. co2_dry, h2o")
    unit: str = Field(description="the unit the field is in after scale/offset (ppm, ppb, %, kPa, degC ...)")
    scale: float = 1.0
    offset: float = 0.0


class TimestampMap(StrictModel):
    field: str
    format: str = Field(description="strptime format, or `epoch` (seconds since 1970, UTC)")
    zone: TimeZoneName = Field(default="UTC", description="IANA zone of the analyzer clock")


class StatusMap(StrictModel):
    field: str
    ok: list[str] = Field(default_factory=lambda: ["0"], description="status texts that mean healthy")
    values: dict[str, str] = Field(default_factory=dict, description="status text -> flag name")
    bits: dict[int, str] = Field(default_factory=dict, description="bit -> flag name (the field as an integer)")
    base: Literal[10, 16] = 10

    def flags(self, text: str) -> tuple[int | None, tuple[str, ...]]:
        """(the status as an integer where it reads as one, the flags it raises)."""
        try:
            word: int | None = int(text, self.base)
        except ValueError:
            word = None
        if self.bits:
            if word is None:
                return None, (f"status_unreadable:{text}",)
            return word, tuple(name for bit, name in sorted(self.bits.items()) if word >> bit & 1)
        if text in self.ok:
            return word, ()
        return word, (self.values.get(text, f"status:{text}"),)


class GenericLineConfig(DeviceConfig):
    """An analyzer described by configuration: `[[analyzers]]` entry with driver = "generic.line"."""

    driver: Literal["generic.line"] = "generic.line"
    definition: Path | None = Field(default=None, description="TOML file with the description (keys here override)")
    model: str = Field(default="", description="what the analyzer is (shown by probe)")
    mode: Literal["stream", "poll"]
    poll_command: str = Field(default="", description="poll mode: bytes to send, escapes allowed")
    terminator: str = "\r\n"
    start: str = Field(default="", max_length=1, description="the character a record starts with, if any")
    encoding: str = "ascii"
    delimiter: str | None = None
    fields: list[str] = Field(default_factory=list, description="with delimiter: field names by position")
    regex: str | None = None
    template: str | None = Field(default=None, description="a record as a format string (the simulator writes it)")
    quantities: dict[str, QuantityMap] = Field(min_length=1)
    timestamp: TimestampMap | None = None
    status: StatusMap | None = None
    water_correction: dict[str, tuple[float, float]] = water_correction_field(
        when="needed for a species the analyzer reports wet only")

    @model_validator(mode="before")
    @classmethod
    def _merge_definition(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict) or not data.get("definition"):
            return data
        path = Path(str(data["definition"])).expanduser()
        base = (info.context or {}).get("base_dir")
        if not path.is_absolute() and base is not None:
            path = Path(base) / path
        try:
            defined = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ValueError(f"definition {path}: {exc}") from None
        return {**defined, **data, "definition": path}

    @model_validator(mode="after")
    def _consistent(self) -> "GenericLineConfig":
        if (self.delimiter is None) == (self.regex is None):
            raise ValueError("give either `delimiter` (with `fields`) or `regex`, not both or neither")
        if self.delimiter is not None and not self.fields:
            raise ValueError("`delimiter` needs `fields` (the field names by position)")
        names = set(self.fields) - {""}
        if self.regex is not None:
            try:
                names = set(re.compile(self.regex).groupindex)
            except re.error as exc:
                raise ValueError(f"regex: {exc}") from None
        used = [*self.quantities, *([self.timestamp.field] if self.timestamp else []),
                *([self.status.field] if self.status else [])]
        missing = [f for f in used if f not in names]
        if missing:
            raise ValueError(f"field(s) {missing} are not among the record's fields {sorted(names)}")
        for name, q in self.quantities.items():
            try:
                conversion(q.unit, unit_of(q.quantity))
            except ValueError as exc:
                raise ValueError(f"quantities.{name} ({q.quantity}): {exc}") from None
        if self.mode == "poll" and not self.poll_command:
            raise ValueError("poll mode needs `poll_command`")
        if not self.terminator:
            raise ValueError("`terminator` may not be empty")
        return self


@dataclass(frozen=True)
class _Quantity:
    field: str
    quantity: str
    factor: float  # ghgnet value = wire * factor + offset
    offset: float


class _Malformed(ValueError):
    pass


class GenericLine(AnalyzerDriver):
    """Any analyzer that writes one ASCII record per line, as its config describes it."""

    name = "generic.line"
    Config = GenericLineConfig
    simulator = "simulators.generic.line:GenericLineSimulator"

    config: GenericLineConfig

    def __init__(self, config: DeviceConfig, transport: Any) -> None:
        super().__init__(config, transport)
        self._terminator = unescape(config.terminator)
        self._command = unescape(config.poll_command)
        self._regex = re.compile(config.regex) if config.regex is not None else None
        self._quantities = []
        for name, q in config.quantities.items():
            factor, offset = conversion(q.unit, unit_of(q.quantity))
            self._quantities.append(_Quantity(name, q.quantity, q.scale * factor, q.offset * factor + offset))
        self._zone = ZoneInfo(config.timestamp.zone) if config.timestamp else UTC
        self._carry = b""

    # ---- parsing

    def fields_of(self, line: str) -> dict[str, str]:
        """The named fields of one record line (without its terminator)."""
        cfg = self.config
        if cfg.start:
            at = line.find(cfg.start)
            if at < 0:
                raise _Malformed(f"no start character {cfg.start!r}")
            line = line[at + 1:]
        if self._regex is not None:
            m = self._regex.fullmatch(line)
            if m is None:
                raise _Malformed("does not match the regex")
            return {k: v for k, v in m.groupdict().items() if v is not None}
        cells = line.split() if cfg.delimiter == " " else [c.strip() for c in line.split(cfg.delimiter)]
        if len(cells) != len(cfg.fields):
            raise _Malformed(f"{len(cells)} fields, expected {len(cfg.fields)}")
        return {name: cell for name, cell in zip(cfg.fields, cells, strict=True) if name}

    def parse(self, line: str, read_at: datetime) -> Reading:
        """One record line -> a Reading; _Malformed names what is wrong."""
        got = self.fields_of(line)
        values: dict[str, float] = {}
        for q in self._quantities:
            text = got.get(q.field, "")
            try:
                wire = float(text)
            except ValueError:
                raise _Malformed(f"{q.field}: not a number: {text!r}") from None
            if not math.isfinite(wire):
                raise _Malformed(f"{q.field}: not finite: {text!r}")
            values[q.quantity] = round(wire * q.factor + q.offset, 9)
        time = read_at
        ts = self.config.timestamp
        if ts is not None:
            text = got.get(ts.field, "")
            try:
                if ts.format == "epoch":
                    time = datetime.fromtimestamp(float(text), UTC)
                else:
                    time = datetime.strptime(text, ts.format).replace(tzinfo=self._zone).astimezone(UTC)
            except (ValueError, OverflowError):
                raise _Malformed(f"{ts.field}: time {text!r} does not read as {ts.format!r}") from None
        word, flags = self.config.status.flags(got.get(self.config.status.field, "")) if self.config.status \
            else (None, ())
        return Reading(time=time, device=self.device_id, values=values, status=word, status_ok=not flags,
                       status_flags=flags)

    def _record(self, raw: bytes, read_at: datetime, result: PollResult) -> None:
        line = raw.decode(self.config.encoding, errors="replace").strip("\r\n\x00 ")
        if not line:
            return
        try:
            result.readings.append(self.parse(line, read_at))
        except _Malformed as exc:
            result.problems.append(f"line skipped ({exc}): {line[:120]!r}")

    # ---- the driver

    def poll(self) -> PollResult:
        """Stream mode: every complete line waiting; poll mode: the command, then one record line."""
        result = PollResult()
        if self.config.mode == "poll":
            self.transport.write(self._command)
            for _ in range(MAX_REPLY_LINES):
                try:
                    raw = self.transport.read_until(self._terminator)
                except TransportTimeout:
                    self.transport.discard_input()
                    if not result.problems:
                        raise
                    result.problems.append("no record after the noise")
                    return result
                self._record(raw, self.now(), result)
                if result.readings:
                    return result
            self.transport.discard_input()
            return result
        # an analyzer that never pauses would keep one read going: a poll reads for timeout_s at most
        deadline = time.monotonic() + self.config.timeout_s
        for n in range(MAX_LINES_PER_POLL):
            if n and time.monotonic() >= deadline:
                break
            try:
                raw = self.transport.read_until(self._terminator)
            except TransportTimeout as exc:
                self._carry += exc.partial
                if n == 0 and not exc.partial:
                    raise TransportTimeout(f"{self.transport.url}: the analyzer sent nothing") from None
                break
            raw, self._carry = self._carry + raw, b""
            self._record(raw, self.now(), result)
        return result

    def identify(self) -> dict[str, Any]:
        """What `probe` shows: the description, and one poll's newest record and problems."""
        info = super().identify()
        result = self.poll()
        newest = result.readings[-1] if result.readings else None
        info.update(model=self.config.model, mode=self.config.mode,
                    definition=str(self.config.definition) if self.config.definition else None,
                    quantities={k: v.quantity for k, v in self.config.quantities.items()},
                    latest=None if newest is None else {"time": newest.time.isoformat(), **newest.values,
                                                        "status_flags": list(newest.status_flags)},
                    problems=result.problems)
        return info
