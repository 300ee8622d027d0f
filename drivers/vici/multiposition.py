"""VICI (Valco) multiposition stream selector on a universal electric actuator (EUH/EUD/EUT).

The wire, as VICI's universal-actuator manual describes it (serial commands and command reference):
ASCII at 9600 8N1, every command ends in CR (the factory `DEL1` delimiter), every reply line ends in
CR. On a multidrop line each command starts with the actuator's one-character ID (0-9, A-Z) and the
actuator echoes that ID in front of every reply line (flowchem's notes: `0CNT10254`, `0ID0`).

    GOn    move to position n by the shortest route; no reply (read it back with CP)
    HM     move to position 1; no reply
    CP     current position:   `CP05`              legacy (LG1): `Position is = 5`
    NP     number of positions: `NP10`             legacy:       `NP = 10`
    ID     the actuator's ID:   `ID1`              legacy:       `ID = 1`
           (the reply of an actuator without an ID is not documented: anything other than one
           character 0-9/A-Z reads as "no ID"; the simulator answers `ID*`)
    VR     firmware: several lines (build date, time, firmware name), no count and no end marker
    LG1    answer in the long format of the older microelectric actuators; no reply

A refused command is answered `E<digit> <command> Invalid` (flowchem's notes: `0E2 NP Invalid`).
Replies are parsed in both formats whatever `legacy_replies` says, because the factory default of
LG differs between actuator generations; `legacy_replies` only makes `open()` send `LG1`.

The driver translates and nothing else: `goto` returns as soon as the command is written (a move
takes time in proportion to the positions stepped), and the engine reads the position back, waits
and retries.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, model_validator

from drivers.base import DeviceConfig, DriverError, ValveDriver
from drivers.transport import TransportTimeout

CR = b"\r"
MAX_VERSION_LINES = 8
"""VR answers a few lines (flowchem reads 5); more than this is not a version reply."""

# Reply patterns per query, after the ID prefix is taken off: modern (LG0) and legacy (LG1) forms.
REPLY_PATTERNS: dict[str, tuple[re.Pattern[str], ...]] = {
    "CP": (
        re.compile(r"CP\s*(\d{1,2})"),
        re.compile(r"CP\s*=\s*(\d{1,2})"),
        re.compile(r"Position\s+is\s*=\s*(\d{1,2})", re.IGNORECASE),
    ),
    "NP": (
        re.compile(r"NP\s*(\d{1,2})"),
        re.compile(r"NP\s*=\s*(\d{1,2})"),
    ),
    "ID": (
        re.compile(r"ID\s*=?\s*(.*)"),
    ),
}
TWO_POSITION_CP = re.compile(r"(?:CP\s*=?\s*|Position\s+is\s*=?\s*)\"?([AB])\"?", re.IGNORECASE)
REFUSED = re.compile(r"E\d+\b.*")


class ViciMultipositionConfig(DeviceConfig):
    """A VICI multiposition actuator: `[[valves]]` entry with driver = "vici.multiposition"."""

    driver: Literal["vici.multiposition"] = "vici.multiposition"
    baudrate: int = 9600
    device_id_prefix: str | None = Field(
        default=None,
        pattern=r"^[0-9A-Z]$",
        description="the actuator's ID on a multidrop line (0-9 or A-Z); none when alone",
    )
    positions: int = Field(
        ge=2, le=96, description="number of positions the valve has; checked against NP"
    )
    legacy_replies: bool = Field(
        default=False,
        description="send LG1 on open: the actuator answers in the microelectric long format",
    )
    safe_position: int = Field(
        default=1, ge=1, description="the port the valve is parked on (shutdown, faults)"
    )

    @model_validator(mode="after")
    def _safe_position_exists(self) -> "ViciMultipositionConfig":
        if self.safe_position > self.positions:
            raise ValueError(
                f"safe_position {self.safe_position} is beyond the valve's "
                f"{self.positions} positions"
            )
        return self


class ViciMultiposition(ValveDriver):
    """One multiposition valve, addressed by its ID prefix when it shares a line with others."""

    name = "vici.multiposition"
    Config = ViciMultipositionConfig
    simulator = "simulators.vici.multiposition:ViciValveSimulator"

    config: ViciMultipositionConfig

    # --- commands -------------------------------------------------------------------------------

    def open(self) -> None:
        super().open()
        if self.config.legacy_replies:
            self._send("LG1")

    def goto(self, position: int) -> None:
        """Command a move to `position` (1..positions). Returns before the valve has arrived."""
        self._check_position(position)
        self._send(f"GO{position}")

    def park(self) -> None:
        """Command the move to the configured safe port."""
        self.goto(self.config.safe_position)

    def home(self) -> None:
        """Command the move to position 1 (HM)."""
        self._send("HM")

    def position(self) -> int:
        """The position the actuator reports now (CP); mid-move this is the port in transit."""
        raw, body = self._query("CP")
        if TWO_POSITION_CP.fullmatch(body):
            raise DriverError(
                f"{self.device_id}: CP answered {raw!r}, a two-position reply: "
                "the actuator is not in multiposition mode (AM3)"
            )
        value = self._parse_number("CP", raw, body)
        if not 1 <= value <= self.config.positions:
            raise DriverError(
                f"{self.device_id}: CP answered {raw!r}: position {value} is outside "
                f"1..{self.config.positions}"
            )
        return value

    def positions(self) -> int:
        """The number of positions the actuator is set to index (NP)."""
        raw, body = self._query("NP")
        return self._parse_number("NP", raw, body)

    def valve_id(self) -> str | None:
        """The ID the actuator reports (ID); None when it has none."""
        raw, body = self._query("ID")
        match = REPLY_PATTERNS["ID"][0].fullmatch(body)
        if match is None:
            raise DriverError(f"{self.device_id}: ID answered {raw!r}, not an ID reply")
        value = match.group(1).strip()
        return value if re.fullmatch(r"[0-9A-Z]", value) else None

    def version(self) -> list[str]:
        """The firmware lines VR answers (build date, time, firmware name).

        VR gives no line count and no end marker, so the lines are read until the link stays quiet
        for one reply timeout: call this once when identifying, not in the polling loop.
        """
        self.transport.discard_input()
        self._send("VR")
        lines = [self._strip_prefix(self.transport.read_until(CR), "VR")[1]]
        while len(lines) < MAX_VERSION_LINES:
            try:
                line = self.transport.read_until(CR)
            except TransportTimeout as quiet:
                if quiet.partial.strip():
                    lines.append(self._strip_prefix(quiet.partial, "VR")[1])
                break
            lines.append(self._strip_prefix(line, "VR")[1])
        return [line for line in lines if line]

    def identify(self) -> dict[str, Any]:
        """ID, NP (checked against the configured positions) and VR, for a technician's probe."""
        info = super().identify()
        reported_id = self.valve_id()
        if self.config.device_id_prefix is not None and reported_id != self.config.device_id_prefix:
            raise DriverError(
                f"{self.device_id}: addressed as {self.config.device_id_prefix!r} "
                f"but the actuator reports ID {reported_id!r}"
            )
        count = self.positions()
        if count != self.config.positions:
            raise DriverError(
                f"{self.device_id}: the actuator indexes {count} positions (NP), "
                f"the configuration says {self.config.positions}"
            )
        info.update(
            valve_id=reported_id,
            positions=count,
            firmware=self.version(),
            legacy_replies=self.config.legacy_replies,
            safe_position=self.config.safe_position,
        )
        return info

    # --- the wire -------------------------------------------------------------------------------

    def _check_position(self, position: int) -> None:
        if isinstance(position, bool) or not isinstance(position, int):
            raise TypeError(f"a valve position is an int, got {position!r}")
        if not 1 <= position <= self.config.positions:
            raise ValueError(
                f"{self.device_id}: position {position} is outside 1..{self.config.positions}"
            )

    def _send(self, command: str) -> None:
        prefix = self.config.device_id_prefix or ""
        self.transport.write(f"{prefix}{command}".encode("ascii") + CR)

    def _query(self, command: str) -> tuple[bytes, str]:
        """Send a query, read its one reply line; (raw reply, reply text without ID prefix)."""
        self.transport.discard_input()
        self._send(command)
        return self._strip_prefix(self.transport.read_until(CR), command)

    def _strip_prefix(self, raw: bytes, command: str) -> tuple[bytes, str]:
        try:
            text = raw.decode("ascii").strip("\r\n ")
        except UnicodeDecodeError:
            raise DriverError(f"{self.device_id}: {command} answered {raw!r}, not ASCII") from None
        prefix = self.config.device_id_prefix
        if prefix is not None:
            if not text.startswith(prefix):
                raise DriverError(
                    f"{self.device_id}: {command} answered {raw!r}, "
                    f"which does not start with the ID {prefix!r}"
                )
            text = text[len(prefix) :].lstrip()
        if REFUSED.fullmatch(text):
            raise DriverError(f"{self.device_id}: the actuator refused {command}: {raw!r}")
        return raw, text

    def _parse_number(self, command: str, raw: bytes, body: str) -> int:
        for pattern in REPLY_PATTERNS[command]:
            match = pattern.fullmatch(body)
            if match:
                return int(match.group(1))
        raise DriverError(f"{self.device_id}: {command} answered {raw!r}, not a {command} reply")
