"""A simulated VICI multiposition valve on a universal electric actuator, speaking its protocol.

Serve it with simulators.serve (TcpServer / PtyServer): `receive(bytes) -> bytes`. Commands end in
CR (LF and CRLF are accepted too, as the actuator's DEL setting allows); replies end in CR. With a
device ID set, the actuator obeys only commands that start with that ID (or `*`, the broadcast) and
puts the ID in front of every reply line. See drivers/vici/multiposition.py for the formats.

Moves take time: the rotor steps one position at a time, `move_time_s_per_step` each (default
0.15 s, seeded jitter on top), along the shortest route for GO and HM, forward for CW, backward
for CC. During a move CP reports the port the rotor is passing. Time comes from the
injected clock only (ScaledClock at any speed, or ManualClock), read when a command arrives: no
threads, no sleeping.

Faults on demand: `inject("stuck")` (moves are accepted but the rotor stays put),
`inject("wrong_port", port=k)` (every move lands on k), `inject("silent")` (commands are obeyed,
nothing is answered: a dead transmit line), `clear()`. Every commanded move is logged in `moves`.
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import Field, model_validator

from ghgnet.clock import Clock
from ghgnet.config import StrictModel

FAULTS = ("stuck", "wrong_port", "silent")
DEFAULT_FIRMWARE = ("Jan 07 2020", "10:41:02", "UA_MAIN_EQ")
ID_CHARS = re.compile(r"[0-9A-Z]")


@dataclass(frozen=True)
class ValveMove:
    """One commanded move: when, from where, where to, where the rotor actually ends up."""

    time: datetime
    from_position: int
    to_position: int
    landed: int
    duration_s: float
    fault: str | None = None


class SharedLine:
    """Several actuators on one RS-485 / daisy-chained line: every command reaches all of them.

    Only the addressed one answers (the others stay quiet), so serve a SharedLine where a single
    device would go to test ID prefixes.
    """

    def __init__(self, *devices: "ViciValveSimulator") -> None:
        self.devices = devices

    def receive(self, data: bytes) -> bytes:
        return b"".join(device.receive(data) for device in self.devices)


class ViciValveSimConfig(StrictModel):
    """Plain settings of one simulated valve, for a bench config entry (see ViciValveSimulator)."""

    positions: int = Field(default=10, ge=2, le=96)
    device_id: str | None = Field(default=None, pattern=r"^[0-9A-Z]$")
    move_time_s_per_step: float = Field(default=0.15, ge=0)
    move_time_jitter: float = Field(default=0.05, ge=0, lt=1)
    legacy_replies: bool = False
    position: int = Field(default=1, ge=1, description="the port the rotor starts on")
    seed: int = 0

    @model_validator(mode="after")
    def _start_exists(self) -> "ViciValveSimConfig":
        if self.position > self.positions:
            raise ValueError(f"position {self.position} is beyond the {self.positions} positions")
        return self


class ViciValveSimulator:
    """The actuator's state machine. Thread-safe: a server may call `receive` from its threads."""

    Config = ViciValveSimConfig

    def __init__(
        self,
        clock: Clock,
        positions: int = 10,
        device_id: str | None = None,
        move_time_s_per_step: float = 0.15,
        seed: int = 0,
        *,
        move_time_jitter: float = 0.05,
        legacy_replies: bool = False,
        position: int = 1,
        firmware: tuple[str, ...] = DEFAULT_FIRMWARE,
    ) -> None:
        if not 2 <= positions <= 96:
            raise ValueError(f"positions must be 2..96, got {positions}")
        if not 1 <= position <= positions:
            raise ValueError(f"start position {position} is outside 1..{positions}")
        if device_id is not None and not ID_CHARS.fullmatch(device_id):
            raise ValueError(f"device_id must be one of 0-9, A-Z, got {device_id!r}")
        self.clock = clock
        self.positions = positions
        self.device_id = device_id
        self.move_time_s_per_step = move_time_s_per_step
        self.move_time_jitter = move_time_jitter
        self.legacy_replies = legacy_replies
        self.firmware = tuple(firmware)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._buffer = b""
        self._faults: dict[str, dict[str, Any]] = {}
        self._moves: list[ValveMove] = []
        self._steps_moved = 0
        # the current (or last) motion: from `_from`, `_steps` steps in `_direction`, from `_t0`
        self._from = position
        self._direction = 1
        self._steps = 0
        self._t0 = clock.monotonic()
        self._duration = 0.0

    @classmethod
    def from_config(
        cls, clock: Clock, config: ViciValveSimConfig | dict[str, Any]
    ) -> "ViciValveSimulator":
        """Build from a bench config entry (a ViciValveSimConfig or its plain dict)."""
        cfg = ViciValveSimConfig.model_validate(config)
        return cls(clock, **cfg.model_dump())

    # --- what the bench and the tests look at ---------------------------------------------------

    @property
    def moves(self) -> list[ValveMove]:
        with self._lock:
            return list(self._moves)

    def current_position(self) -> int:
        """The port the rotor is at now (mid-move: the port it is passing)."""
        with self._lock:
            return self._position_now()

    def is_moving(self) -> bool:
        with self._lock:
            return self.clock.monotonic() - self._t0 < self._duration

    def inject(self, fault: str, **params: Any) -> None:
        """Start a fault: "stuck", "wrong_port" (port=k) or "silent". It lasts until `clear()`."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
        if fault == "wrong_port":
            port = params.get("port")
            if not isinstance(port, int) or not 1 <= port <= self.positions:
                raise ValueError(f"wrong_port needs port=1..{self.positions}, got {port!r}")
            params = {"port": port}
        elif params:
            raise ValueError(f"fault {fault!r} takes no parameters, got {sorted(params)}")
        with self._lock:
            self._faults[fault] = params

    def clear(self, fault: str | None = None) -> None:
        """End one fault, or all of them."""
        with self._lock:
            if fault is None:
                self._faults.clear()
            else:
                self._faults.pop(fault, None)

    # --- the wire -------------------------------------------------------------------------------

    def receive(self, data: bytes) -> bytes:
        with self._lock:
            self._buffer += data
            lines = re.split(rb"[\r\n]", self._buffer)
            self._buffer = lines.pop()
            replies = [self._command(line) for line in lines if line.strip()]
            if "silent" in self._faults:
                return b""
            return b"".join(replies)

    def _command(self, raw: bytes) -> bytes:
        text = raw.decode("ascii", errors="replace").strip().upper()
        if text.startswith("*"):
            body = text[1:]
        elif self.device_id is not None:
            if not text.startswith(self.device_id):
                return b""  # addressed to another actuator on the line
            body = text[1:]
        else:
            body = text
        body = body.strip()
        lines = self._execute(body)
        prefix = self.device_id or ""
        return b"".join(f"{prefix}{line}\r".encode("ascii") for line in lines)

    def _execute(self, body: str) -> list[str]:
        """Obey one command; the reply lines (without ID prefix and CR)."""
        legacy = self.legacy_replies
        match = re.fullmatch(r"(GO|CW|CC)(\d{0,2})", body)
        if match:
            verb, arg = match.groups()
            if not arg:
                step = -1 if verb == "CC" else 1
                target = self._wrap(self._position_now() + step)
            else:
                target = int(arg)
                if not 1 <= target <= self.positions:
                    return [f"E2 {verb} Invalid"]
            self._move(target, {"GO": 0, "CW": 1, "CC": -1}[verb])
            return []
        if body == "HM":
            self._move(1, 0)
            return []
        if body == "CP":
            pos = self._position_now()
            return [f"Position is = {pos}" if legacy else f"CP{pos:02d}"]
        if body == "NP":
            return [f"NP = {self.positions}" if legacy else f"NP{self.positions:02d}"]
        match = re.fullmatch(r"NP(\d{1,2})", body)
        if match:
            count = int(match.group(1))
            if not 2 <= count <= 96:
                return ["E2 NP Invalid"]
            self.positions = count
            return []
        if body == "ID":
            shown = self.device_id or ("not used" if legacy else "*")
            return [f"ID = {shown}" if legacy else f"ID{shown}"]
        match = re.fullmatch(r"ID([0-9A-Z*])", body)
        if match:
            self.device_id = None if match.group(1) == "*" else match.group(1)
            return []
        if body == "VR":
            return list(self.firmware)
        if body == "VR2":
            return [self.firmware[-1] + "_IF"]
        if body == "LG":
            return [f"LG = {int(legacy)}" if legacy else f"LG{int(legacy)}"]
        match = re.fullmatch(r"LG([01])", body)
        if match:
            self.legacy_replies = match.group(1) == "1"
            return []
        if body == "AM":
            return ["AM = 3" if legacy else "AM3"]
        if body == "CNT":
            return [f"CNT = {self._steps_moved}" if legacy else f"CNT{self._steps_moved}"]
        return [f"E2 {body[:3]} Invalid"]

    # --- motion ---------------------------------------------------------------------------------

    def _wrap(self, position: int) -> int:
        return (position - 1) % self.positions + 1

    def _position_now(self) -> int:
        elapsed = self.clock.monotonic() - self._t0
        if self._steps == 0 or elapsed >= self._duration:
            return self._wrap(self._from + self._direction * self._steps)
        done = int(elapsed / (self._duration / self._steps))
        return self._wrap(self._from + self._direction * done)

    def _route(self, start: int, target: int, direction: int) -> tuple[int, int]:
        forward = (target - start) % self.positions
        backward = (start - target) % self.positions
        if direction > 0 or (direction == 0 and forward <= backward):
            return 1, forward
        return -1, backward

    def _move(self, target: int, direction: int) -> None:
        """Start a move to `target` (direction 0: shortest route), from wherever the rotor is."""
        start = self._position_now()
        fault = None
        landed = target
        if "stuck" in self._faults:
            fault, landed = "stuck", start
        elif "wrong_port" in self._faults:
            fault, landed = "wrong_port", self._faults["wrong_port"]["port"]
        step_dir, steps = self._route(start, landed, direction)
        jitter = 1.0 + self._rng.uniform(-self.move_time_jitter, self.move_time_jitter)
        duration = steps * self.move_time_s_per_step * jitter
        self._from, self._direction, self._steps = start, step_dir, steps
        self._t0, self._duration = self.clock.monotonic(), duration
        self._steps_moved += steps
        self._moves.append(
            ValveMove(
                time=self.clock.now(),
                from_position=start,
                to_position=target,
                landed=landed,
                duration_s=duration,
                fault=fault,
            )
        )
