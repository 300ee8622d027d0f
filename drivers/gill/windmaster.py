"""Gill WindMaster / WindMaster Pro / R3 3-D sonic anemometers on their ASCII UVW output.

The anemometer only talks: at its output rate (10 or 20 Hz for eddy covariance) it sends one record
a line, `<STX><node>,+UUU.UUU,+VVV.VVV,+WWW.WWW,<units>,+CCC.CC,+TTT.TT,<status>,<ETX><checksum><CR><LF>`:
the node letter (Q by default), the three wind components (m/s with units M), speed of sound (m/s),
sonic temperature (degC), a two-digit status (00: all good; any other: a failed path or a
configuration error), then the exclusive-or of every byte between STX and ETX as two hex digits
(field layout: Gill's WindMaster UVW ASCII message as decoded by Makani's avionics gill_ascii.c;
checksum as documented for Gill's ASCII messages, e.g. the WindSonic's). Optional analogue input
fields between the status and ETX are ignored.

Records carry no time: the driver stamps them on the station's clock by counting them at the
configured `output_rate_hz` from the stream's start as the least delayed poll shows it
(drivers/record_clock.py), which keeps their spacing exact and lines two instruments up. A line with a bad
checksum or form is skipped and named in `PollResult.problems`; a record whose status is not 00 is
kept with status_ok False (the flux processing drops it: diagnostics filtering).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from drivers.base import AnalyzerDriver, DeviceConfig, PollResult
from drivers.reading import Reading
from drivers.record_clock import RecordClock
from drivers.transport import TransportTimeout

STX, ETX = b"\x02", b"\x03"
MAX_LINE = 512


class MalformedLine(ValueError):
    """A line that is not a WindMaster UVW record; the message says why."""


@dataclass(frozen=True, slots=True)
class WindMasterRecord:
    """One UVW record: wind (m/s), speed of sound (m/s), sonic temperature (degC), status code."""

    node: str
    u: float
    v: float
    w: float
    speed_of_sound: float
    sonic_temp: float
    status: int


def checksum(body: bytes) -> int:
    """Exclusive-or of the bytes between STX and ETX."""
    c = 0
    for b in body:
        c ^= b
    return c


def parse_line(line: bytes) -> WindMasterRecord:
    """A record from one line (with or without its CR LF); MalformedLine when it is not one."""
    line = line.strip(b"\r\n ")
    if not line.startswith(STX) or ETX not in line:
        raise MalformedLine("no STX ... ETX frame")
    body, _, tail = line[1:].partition(ETX)
    try:
        sent = int(tail[:2], 16)
    except ValueError:
        raise MalformedLine(f"checksum {tail[:2]!r} is not two hex digits") from None
    if sent != checksum(body):
        raise MalformedLine(f"checksum {sent:02X}, the bytes give {checksum(body):02X}")
    fields = body.decode("ascii", errors="replace").rstrip(",").split(",")
    if len(fields) < 8:
        raise MalformedLine(f"{len(fields)} fields, a UVW record has at least 8")
    if fields[4] != "M":
        raise MalformedLine(f"units {fields[4]!r}: only M (m/s) is read")
    try:
        return WindMasterRecord(fields[0], float(fields[1]), float(fields[2]), float(fields[3]),
                                float(fields[5]), float(fields[6]), int(fields[7], 16))
    except ValueError as exc:
        raise MalformedLine(f"a field is not a number ({exc})") from None


def format_line(rec: WindMasterRecord) -> bytes:
    """The line the anemometer sends for `rec` (used by the simulator and the tests)."""
    body = (f"{rec.node},{rec.u:+08.3f},{rec.v:+08.3f},{rec.w:+08.3f},M,{rec.speed_of_sound:+07.2f},"
            f"{rec.sonic_temp:+07.2f},{rec.status:02X},").encode("ascii")
    return STX + body + ETX + f"{checksum(body):02X}".encode("ascii") + b"\r\n"


class WindMasterConfig(DeviceConfig):
    """A Gill WindMaster: `[[analyzers]]` entry with driver = "gill.windmaster"."""

    driver: Literal["gill.windmaster"] = "gill.windmaster"
    baudrate: int = 19200
    output_rate_hz: float = Field(default=20.0, gt=0, le=100, description="records a second the anemometer sends")
    poll_interval_s: float = Field(default=1.0, gt=0, description="seconds between polls")
    silent_s: float = Field(default=10.0, gt=0, description="seconds without a byte before a timeout")
    clock_window_s: float = Field(default=600.0, gt=0, description="seconds of polls the record clock takes its "
                                  "stream start from (drivers/record_clock.py): longer is steadier, shorter "
                                  "follows an instrument clock running slow")


class WindMaster(AnalyzerDriver):
    """Gill WindMaster: u, v, w, speed of sound and sonic temperature streamed in ASCII."""

    name = "gill.windmaster"
    Config = WindMasterConfig
    simulator = "simulators.gill.windmaster:WindMasterStream"

    config: WindMasterConfig
    max_record_age_s = float("inf")  # records wait in the serial line: no bound

    def __init__(self, config: DeviceConfig, transport: Any) -> None:
        super().__init__(config, transport)
        self._pending = b""
        self._silent_since = None
        self._clock = RecordClock(self.config.output_rate_hz, self.config.clock_window_s)

    def open(self) -> None:
        super().open()
        self._pending = b""
        self._silent_since = None
        self._clock.restart()

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
                raise TransportTimeout(f"{self.device_id}: nothing from {self.transport.url} for "
                                       f"{self.config.silent_s:g} s")
            return result
        self._silent_since = None
        *lines, self._pending = (self._pending + data).split(b"\n")
        if len(self._pending) > MAX_LINE:
            result.problems.append(f"{len(self._pending)} bytes without a line end dropped: {self._pending[:80]!r}")
            self._pending = b""
        records = []
        for raw in lines:
            if not raw.strip(b"\r\x00 "):
                continue
            try:
                records.append(parse_line(raw))
            except MalformedLine as why:
                result.problems.append(f"malformed line skipped ({why}): {raw[:120]!r}")
        for rec, when in zip(records, self._clock.stamps(now, [1] * len(records))):
            ok = rec.status == 0
            result.readings.append(Reading(
                time=when, device=self.device_id,
                values={"u": rec.u, "v": rec.v, "w": rec.w, "speed_of_sound": rec.speed_of_sound,
                        "sonic_temp": rec.sonic_temp},
                status=rec.status, status_ok=ok, status_flags=() if ok else (f"status_{rec.status:02X}",)))
        return result
