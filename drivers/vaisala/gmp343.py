"""Vaisala GMP343 CARBOCAP CO2 probe (medium precision), polled over its RS-232/RS-485 serial line.

The protocol, from Vaisala's GMP343 User's Guide (M210514EN, chapter "Operation": serial commands
SEND, R/S, FORM, ERRS, ECHO, SMODE; "Effects of temperature, pressure, relative humidity and
oxygen": the probe compensates with P, RH and O2 values the user gives it, because it has no
pressure or humidity sensor of its own) and from public code driving it in urban networks
(tum-esm hermes/ACROPOLIS `co2_sensor.py`: `echo off`, `form CO2RAWUC CO2RAW CO2 T " (R C C+F T)"`,
`pc`/`rhc` on, `p <hPa>` and `rh <%>` before each `send`, `errs` answering
`OK: No errors detected.`):

* Serial 19200 8N1; commands end in CR LF; after each reply the probe writes its prompt `>`.
* Set-up when the link opens: `echo off`, the output format above (raw uncompensated CO2, CO2
  compensated but unfiltered, CO2 compensated and filtered, probe temperature), then pressure and
  humidity compensation on or off (`pc on|off`, `rhc on|off`) as compensation sources are
  configured. The probe is left in its STOP mode and polled with `send` (POLL mode with addresses
  is for multidrop RS-485 lines; not used).
* `send` answers one line `  421.3   420.9   421.0  25.3 (R C C+F T)`; `errs` answers
  `OK: No errors detected.` or one line per active error.
* `p <hPa>` and `rh <%RH>` set the compensation values. `set_environment` pushes the station's own
  pressure and humidity (names `pressure` in hPa, `humidity` in %RH, as the station config's
  `compensation` table maps them to other devices' readings). A value is sent only when it moved
  by more than its deadband since the last one sent, so the probe is not rewritten every poll.

Reported: `co2` (the compensated, filtered CO2 of the probe's cell: ambient air, wet), `co2_uncompensated`
and `probe_temp`; and `h2o` (%) when the station gave pressure, humidity and temperature, from the
Magnus formula over water of WMO-No. 8 (CIMO guide, annex 4.B): e_s = 6.112 exp(17.62 t / (243.12 + t))
hPa, so that the station can correct CO2 for dilution (`water_correction`, plain dilution).

Not fixed by a public source, kept here: the text of the probe's error lines (each line of `errs`
other than the OK line is one error, flagged `probe_error`, its text kept in `last_errors`), and
the prompt ending every reply (PROMPT). The probe's records carry no time: they are stamped with
the station's clock (`Driver.now`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, field_validator

from drivers.base import AnalyzerDriver, DeviceConfig, DriverError, PollResult
from drivers.reading import Reading
from drivers.transport import TransportError, TransportTimeout
from drivers.water import water_correction_field

PROMPT = b">"
COMMAND_END = "\r\n"
FORM = 'form CO2RAWUC CO2RAW CO2 T " (R C C+F T)"'
ERRS_OK = "OK: No errors detected."

# compensation input -> the probe command that sets its value, and the switch that turns it on
COMPENSATION_COMMANDS: dict[str, str] = {"pressure": "p", "humidity": "rh"}
SWITCHES: dict[str, str] = {"pressure": "pc", "humidity": "rhc"}
ENVIRONMENT = ("pressure", "humidity", "temperature")

_NUMBER = r"[-+]?\d+(?:\.\d*)?"
_SEND_RE = re.compile(rf"^\s*({_NUMBER})\s+({_NUMBER})\s+({_NUMBER})\s+({_NUMBER})\s*(?:\(R C C\+F T\))?\s*$")
_SOURCE_RE = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}:[a-z][a-z0-9_]{0,63}$"

MAX_REPLY_BYTES = 4096


def h2o_percent(pressure_hpa: float, humidity_pct: float, temperature_c: float) -> float:
    """Water vapour mole fraction (%) of air at this pressure, relative humidity and temperature."""
    saturation = 6.112 * math.exp(17.62 * temperature_c / (243.12 + temperature_c))
    return 100.0 * (humidity_pct / 100.0) * saturation / pressure_hpa


class GMP343Config(DeviceConfig):
    """A Vaisala GMP343: `[[analyzers]]` entry with driver = "vaisala.gmp343"."""

    driver: Literal["vaisala.gmp343"] = "vaisala.gmp343"
    baudrate: int = 19200
    poll_interval_s: float = Field(default=5.0, gt=0, description="seconds between polls")
    compensation: dict[Literal["pressure", "humidity", "temperature"], str] = Field(
        default_factory=dict,
        description=(
            'where the station reads the probe\'s environment, "device:quantity" of a [[devices]] entry:'
            " pressure (hPa) and humidity (%RH) are pushed to the probe, temperature (degC) with them gives h2o"
        ),
    )
    pressure_deadband_hpa: float = Field(default=0.5, ge=0, description="push a new pressure only past this change")
    humidity_deadband_pct: float = Field(default=2.0, ge=0, description="push a new humidity only past this change")
    water_correction: dict[str, tuple[float, float]] = water_correction_field("vaisala.gmp343")

    @field_validator("compensation")
    @classmethod
    def _sources(cls, sources: dict[str, str]) -> dict[str, str]:
        bad = [f"{k} = {v!r}" for k, v in sources.items() if not re.match(_SOURCE_RE, v)]
        if bad:
            raise ValueError(f"compensation sources are 'device:quantity', got {', '.join(bad)}")
        return sources


class GMP343(AnalyzerDriver):
    """Vaisala GMP343 CO2 probe, polled with `send`, health from `errs`, compensated by the station."""

    name = "vaisala.gmp343"
    Config = GMP343Config
    simulator = "simulators.vaisala.gmp343:GMP343Simulator"

    config: GMP343Config

    def __init__(self, config: DeviceConfig, transport: Any) -> None:
        super().__init__(config, transport)
        self.environment: dict[str, float] = {}
        self.sent: dict[str, float] = {}  # compensation values the probe holds (sent since open)
        self.last_errors: list[str] = []

    # ---- wire helpers

    def _ask(self, command: str) -> list[str]:
        """Send `command`; the reply's non-empty lines up to the prompt (an echo of the command
        itself is dropped)."""
        self.transport.write((command + COMMAND_END).encode("ascii"))
        try:
            raw = self.transport.read_until(PROMPT, MAX_REPLY_BYTES)
        except TransportTimeout:
            self.transport.discard_input()
            raise
        text = raw[: -len(PROMPT)].decode("ascii", errors="replace")
        lines = [ln.strip("\x00 \t") for ln in text.replace("\r", "\n").split("\n")]
        return [ln for ln in lines if ln and ln.lower() != command.lower()]

    # ---- link

    def open(self) -> None:
        """Open the link and set the probe up: no echo, our output format, compensation switches."""
        self.transport.open()
        self.sent = {}
        try:
            self.transport.discard_input()
            self._ask("echo off")
            self._ask(FORM)
            for name, switch in SWITCHES.items():
                self._ask(f"{switch} {'on' if name in self.config.compensation else 'off'}")
        except (TransportError, DriverError):
            self.transport.close()
            raise

    # ---- compensation

    def set_environment(self, values: Mapping[str, float]) -> None:
        """The station's latest pressure (hPa), humidity (%RH) and temperature (degC): pressure
        and humidity are pushed to the probe when they moved past their deadbands."""
        deadband = {"pressure": self.config.pressure_deadband_hpa, "humidity": self.config.humidity_deadband_pct}
        for name in ENVIRONMENT:
            value = values.get(name)
            if value is None or not math.isfinite(value):
                continue
            self.environment[name] = float(value)
            if name not in COMPENSATION_COMMANDS or name not in self.config.compensation:
                continue
            last = self.sent.get(name)
            if last is not None and abs(value - last) <= deadband[name]:
                continue
            self._ask(f"{COMPENSATION_COMMANDS[name]} {value:.1f}")
            self.sent[name] = round(float(value), 1)

    # ---- measurement

    def read_errors(self, problems: list[str] | None = None) -> list[str]:
        """`errs`: the active error lines (empty when the probe reports none). A line that is not
        printable text is line noise, not an error: it is named in `problems`."""
        errors = []
        for ln in self._ask("errs"):
            if ln == ERRS_OK:
                continue
            if not (ln.isascii() and ln.isprintable()):
                if problems is not None:
                    problems.append(f"errs: line noise skipped: {ln!r}")
                continue
            errors.append(ln)
        return errors

    def poll(self) -> PollResult:
        """`errs`, then `send`: one record, stamped now, with the probe's errors as flags."""
        result = PollResult()
        self.transport.discard_input()
        self.last_errors = self.read_errors(result.problems)
        lines = self._ask("send")
        at = self.now()
        record = None
        for line in lines:
            m = _SEND_RE.match(line)
            if m is None:
                result.problems.append(f"send: line skipped (not 'raw comp filtered T'): {line!r}")
                continue
            record = m
        if record is None:
            if not result.problems:
                result.problems.append("send: no record in the reply")
            return result
        raw_uc, _raw, co2, temp = (float(g) for g in record.groups())
        values = {"co2": co2, "co2_uncompensated": raw_uc, "probe_temp": temp}
        env = self.environment
        if all(k in env and k in self.config.compensation for k in ENVIRONMENT):
            values["h2o"] = round(h2o_percent(env["pressure"], env["humidity"], env["temperature"]), 6)
        flags = ("probe_error",) if self.last_errors else ()
        result.readings.append(
            Reading(time=at, device=self.device_id, values=values, status_ok=not flags, status_flags=flags)
        )
        return result

    def identify(self) -> dict[str, Any]:
        """What `probe` shows: version, active errors, the compensation it holds, one record."""
        info = super().identify()
        version = self._ask("vers")
        result = self.poll()
        info.update(
            version=version[0] if version else "",
            errors=self.last_errors,
            compensation_sources=dict(self.config.compensation),
            compensation_sent=dict(self.sent),
            latest=dict(result.readings[-1].values) if result.readings else None,
            problems=result.problems,
        )
        return info
