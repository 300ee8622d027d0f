"""ABB / Los Gatos Research GGA, UGGA and MGGA (CH4/CO2/H2O by OA-ICOS) on their RS-232 output.

The analyzer only talks: 115200 8N1 through a null-modem cable, one comma-separated record per
line (CR LF), in the columns of its header line (drivers/lgr/columns.py; sources there and
patricktokeeffe/daqfactory-drivers LGR_UGGA: serial settings, CR LF, Fit_Flag 3). Nothing is ever
written to it. Each poll reads what has arrived since the last one (the transport's
`read_available`) and keeps an unfinished last line for the next poll.

The columns are learned from the stream: an identity line (`VC:... BD:... SN:...`) is kept for
`identify()`, a header line replaces the layout the records are read by (a firmware update
changes the order; the simulator resends its header after a reconnect). Until a header has been
seen, the configured `columns` are used: the model's default layout unless the site lists its own.
Whether a real analyzer writes its header on the serial port, and when, is not in public sources:
the driver takes one whenever it comes and needs none.

Records are stamped by their own `Time` (the analyzer's zone, `analyzer_timezone`; date order
`date_order`). Fit_Flag is the status: a record whose Fit_Flag is not 3 is kept with status_ok
False and the flag `fit_flag_<n>`, so the minute excludes it and says why. A line that is neither
identity, header nor a record of the current layout (noise, a cut line, a record with the wrong
number of fields) is skipped and named in `PollResult.problems`; the records around it are kept.
A silent line is not an error for one poll (records may be slower than polls): once no byte has
come for `silent_s` seconds of the engine's clock (`Driver.now`), `poll` raises TransportTimeout so
the engine reports it and reopens the link.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator

from drivers.base import AnalyzerDriver, DeviceConfig, PollResult, TimeZoneName
from drivers.lgr.columns import (
    DATE_ORDERS,
    DEFAULT_DATE_ORDER,
    LAYOUT_2014,
    LAYOUT_2019,
    VALID_FIT_FLAG,
    Layout,
    LayoutError,
    MalformedRecord,
    is_header,
    is_identity,
    parse_identity,
)
from drivers.reading import Reading
from drivers.transport import TransportTimeout
from drivers.water import water_correction_field

MAX_LINE = 4096
"""Bytes without a line end after which the pending text is noise, not an unfinished record."""

IDENTIFY_LINES = 8
"""Lines `identify()` reads looking for a record."""


class _LgrConfig(DeviceConfig):
    """Fields shared by the LGR models; each narrows `driver` and its default columns."""

    DEFAULT_COLUMNS: ClassVar[tuple[str, ...]] = LAYOUT_2014

    baudrate: int = 115200
    poll_interval_s: float = Field(default=5.0, gt=0, description="seconds between polls")
    columns: list[str] = Field(
        default_factory=list,
        description="the analyzer's header columns, in order, used until it sends its header; "
        "empty: the model's default layout",
    )
    date_order: Literal["mdy", "dmy", "ymd"] = Field(
        default=DEFAULT_DATE_ORDER, description=f"date order of the analyzer's time stamps: {DATE_ORDERS}"
    )
    analyzer_timezone: TimeZoneName = Field(default="UTC", description="IANA zone of the analyzer clock")
    silent_s: float = Field(default=60.0, gt=0, description="seconds without a byte before a timeout")
    water_correction: dict[str, tuple[float, float]] = water_correction_field(when="for firmware without dry columns")

    @field_validator("columns")
    @classmethod
    def _readable(cls, columns: list[str]) -> list[str]:
        if columns:
            Layout.from_names(columns)  # LayoutError is a ValueError: pydantic names the field
        return columns

    def column_names(self) -> tuple[str, ...]:
        return tuple(self.columns) or self.DEFAULT_COLUMNS


class GGAConfig(_LgrConfig):
    """An LGR GGA (benchtop): `[[analyzers]]` entry with driver = "lgr.gga"."""

    driver: Literal["lgr.gga"] = "lgr.gga"


class UGGAConfig(_LgrConfig):
    """An LGR/ABB UGGA (GLA132): `[[analyzers]]` entry with driver = "lgr.ugga"."""

    DEFAULT_COLUMNS: ClassVar[tuple[str, ...]] = LAYOUT_2019
    driver: Literal["lgr.ugga"] = "lgr.ugga"


class MGGAConfig(_LgrConfig):
    """An LGR/ABB micro-GGA (GLA131): `[[analyzers]]` entry with driver = "lgr.mgga"."""

    driver: Literal["lgr.mgga"] = "lgr.mgga"


class GGA(AnalyzerDriver):
    """LGR GGA: CH4, CO2 and H2O records streamed on RS-232, read by the analyzer's header."""

    name = "lgr.gga"
    Config = GGAConfig
    simulator = "simulators.lgr.ugga:LgrSimulator"

    config: _LgrConfig
    max_record_age_s = float("inf")  # records wait in the serial line or device server: no bound

    def __init__(self, config: DeviceConfig, transport: Any) -> None:
        super().__init__(config, transport)
        self.layout = Layout.from_names(config.column_names())
        self.header_seen = False
        self.identity: dict[str, str] = {}
        self._zone = ZoneInfo(config.analyzer_timezone)
        self._pending = b""
        self._last_data: datetime | None = None

    def open(self) -> None:
        super().open()
        self._pending = b""  # the line was cut where the link broke
        self._last_data = None

    def poll(self) -> PollResult:
        """Every complete line that arrived since the last poll, in order."""
        result = PollResult()
        data = self.transport.read_available()
        now = self.now()
        if not data:
            if self._last_data is None:
                self._last_data = now
            elif (now - self._last_data).total_seconds() >= self.config.silent_s:
                self._last_data = now
                raise TransportTimeout(f"{self.device_id}: nothing from {self.transport.url} for "
                                       f"{self.config.silent_s:g} s")
            return result
        self._last_data = now
        *lines, self._pending = (self._pending + data).split(b"\n")
        if len(self._pending) > MAX_LINE:
            result.problems.append(f"{len(self._pending)} bytes without a line end dropped: {self._pending[:80]!r}")
            self._pending = b""
        for raw in lines:
            self._take(raw.decode("ascii", errors="replace").strip("\r\x00 "), result)
        return result

    def _take(self, line: str, result: PollResult) -> Reading | None:
        if not line:
            return None
        if is_identity(line):
            self.identity = parse_identity(line)
            return None
        if is_header(line):
            try:
                self.layout = Layout.from_header(line)
            except LayoutError as why:
                result.problems.append(f"header not usable ({why}); records still read by the old one: {line!r}")
                return None
            self.header_seen = True
            return None
        try:
            rec = self.layout.parse(line, self.config.date_order, self._zone)
        except MalformedRecord as why:
            result.problems.append(f"malformed record skipped ({why}): {line[:200]!r}")
            return None
        ok = rec.fit_flag == VALID_FIT_FLAG
        reading = Reading(
            time=rec.time, device=self.device_id, values=rec.values, status=rec.fit_flag, status_ok=ok,
            status_flags=() if ok else (f"fit_flag_{rec.fit_flag}",),
        )
        result.readings.append(reading)
        return reading

    def identify(self) -> dict[str, Any]:
        """What `probe` shows: the identity and header seen, and the first record that arrives."""
        info = super().identify()
        latest: Reading | None = None
        seen = PollResult()
        try:
            for _ in range(IDENTIFY_LINES):
                line = self.transport.read_until(b"\n").decode("ascii", errors="replace").strip("\r\n\x00 ")
                latest = self._take(line, seen)
                if latest is not None:
                    break
        except TransportTimeout:
            if latest is None and not (seen.problems or self.identity or self.header_seen):
                raise  # not a byte of sense: the technician sees the timeout
        info.update(
            identity=dict(self.identity),
            header_seen=self.header_seen,
            columns=list(self.layout.names),
            problems=seen.problems,
            latest=None if latest is None else {
                "time": latest.time.isoformat(), "fit_flag": latest.status, "valid": latest.status_ok,
                **latest.values,
            },
        )
        return info


class UGGA(GGA):
    """ABB/LGR Ultraportable GGA (GLA132): same stream; the 2019 firmware layout by default."""

    name = "lgr.ugga"
    Config = UGGAConfig


class MGGA(GGA):
    """ABB/LGR Microportable GGA (GLA131): same stream and default layout as the GGA."""

    name = "lgr.mgga"
    Config = MGGAConfig
