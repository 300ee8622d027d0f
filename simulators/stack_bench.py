"""The simulated stack on the bench: a power-plant unit's CEMS devices (CO2/O2 analyzer, pitot flow
monitor with its temperature, pressure and moisture, the unit's state) as real Modbus servers whose
registers follow `simulators.stack.simulate_stack` on the bench's simulated clock.

The physics is computed a UTC day at a time (one vectorised call, cached), so a device answers any
minute without recomputing; every value is the value of the minute the clock is in. The bench
config's `[stack]` table names the unit (any `UnitSpec` field), the seed, the outages and the
scheduled faults (simulators/stack.py's FAULT_KINDS, with ISO start and end); the control port
injects faults live on one device (`{"device": ID, "fault": "blocked_pitot", "duration_s": 3600}`:
that device's pitot reads ~0 Pa; `co2_over_range`: its CO2 reads full scale; `device_lost`: it
answers nothing but exception 4), each device's held in a `simulators.faults.FaultSet` on the
bench's clock. A lost device (`device_lost`, or any of its values missing that minute) answers
every request with Modbus exception 4 (device failure).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from drivers.modbus.registermap import Point, check_register_map
from ghgnet.clock import Clock
from ghgnet.config import StrictModel
from simulators.faults import FaultSet
from simulators.modbus.device import ModbusDeviceSimulator
from simulators.stack import FAULT_KINDS, StackFault, StackMinutes, UnitSpec, simulate_stack

STACK_QUANTITIES = ("co2_pct", "o2_pct", "differential_pressure_pa", "temperature_c", "static_pa",
                    "barometric_pa", "moisture_pct", "running", "load_mw", "check_zero_pct", "check_span_pct")
"""What a stack device's read-only points may follow: the names simulate_stack gives, and the
analyzer's last daily check (its zero and span gas readings, % CO2), held from the check's end."""
LIVE_FAULTS = ("blocked_pitot", "co2_over_range", "device_lost")


class StackFaultConfig(StrictModel):
    kind: Literal["blocked_pitot", "co2_over_range", "device_lost", "analyzer_drift"]
    start: datetime
    end: datetime
    device: str = Field(default="all", description="device_lost: analyzer, flow or all")
    span_error: float = Field(default=0.1, description="analyzer_drift: relative span error")

    @model_validator(mode="after")
    def _ordered(self) -> "StackFaultConfig":
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self

    def fault(self) -> StackFault:
        params: dict[str, float | str] = {"device": self.device, "span_error": self.span_error}
        return StackFault(self.kind, _dt64(self.start), _dt64(self.end), params)


class OutageConfig(StrictModel):
    start: datetime
    end: datetime


class StackDeviceConfig(StrictModel):
    """One Modbus device of the stack; its read-only points follow STACK_QUANTITIES by name."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    role: Literal["analyzer", "flow", "unit"] = Field(description="which simulated device it is (device_lost)")
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535, description="Modbus TCP port; 0 = any free port")
    unit_id: int = Field(default=1, ge=1, le=247)
    points: list[Point] = Field(min_length=1)

    @model_validator(mode="after")
    def _map(self) -> "StackDeviceConfig":
        check_register_map(self.points)
        unknown = [p.name for p in self.points if not p.writable and p.name not in STACK_QUANTITIES]
        if unknown:
            raise ValueError(f"point(s) {unknown} follow nothing on the stack; known: {', '.join(STACK_QUANTITIES)}")
        return self


class StackConfig(StrictModel):
    """`[stack]` of a bench file: the unit, its outages and scheduled faults, its Modbus devices."""

    seed: int = 0
    unit: dict[str, float | bool | int] = Field(default_factory=dict, description="UnitSpec fields to change")
    outages: list[OutageConfig] = Field(default_factory=list)
    faults: list[StackFaultConfig] = Field(default_factory=list)
    devices: list[StackDeviceConfig] = Field(min_length=1)

    @field_validator("unit")
    @classmethod
    def _unit_fields(cls, unit: dict[str, Any]) -> dict[str, Any]:
        known = set(UnitSpec.__dataclass_fields__)
        unknown = sorted(set(unit) - known)
        if unknown:
            raise ValueError(f"unknown unit field(s) {unknown}; known: {', '.join(sorted(known))}")
        return unit

    def spec(self) -> UnitSpec:
        return UnitSpec(**self.unit)  # type: ignore[arg-type]


def _dt64(t: datetime) -> np.datetime64:
    """A config time (naive: UTC) as a numpy minute."""
    t = t if t.tzinfo is not None else t.replace(tzinfo=UTC)
    return np.datetime64(int(t.timestamp()), "s").astype("datetime64[m]")


class StackPlant:
    """The simulated unit and its devices: `devices[ID]` are ModbusDeviceSimulators (not started),
    `minute(t)` the simulated values at t, `true_mass_t(start, end)` the true CO2 emitted."""

    def __init__(self, config: StackConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self.spec = config.spec()
        self.outages = [(_dt64(o.start), _dt64(o.end)) for o in config.outages]
        self.faults = [f.fault() for f in config.faults]
        self.live = {d.id: FaultSet(LIVE_FAULTS, clock.monotonic, lasting=LIVE_FAULTS) for d in config.devices}
        self._days: dict[int, StackMinutes] = {}
        self._lock = threading.Lock()
        self.roles = {d.id: d.role for d in config.devices}
        self.points = {d.id: [p.name for p in d.points if not p.writable] for d in config.devices}
        self.devices: dict[str, ModbusDeviceSimulator] = {
            d.id: ModbusDeviceSimulator(d.points, self._values_for(d.id), unit_id=d.unit_id, mode="tcp",
                                        host=d.host, port=d.port, clock=clock, name=d.id)
            for d in config.devices
        }

    def day(self, day: int) -> StackMinutes:
        """The whole UTC day `day` (days since 1970), computed once."""
        with self._lock:
            got = self._days.get(day)
            if got is None:
                start = np.datetime64(day * 1440, "m")
                got = simulate_stack(self.spec, start + np.arange(1440), self.config.seed, self.outages, self.faults)
                self._days = {k: v for k, v in self._days.items() if abs(k - day) <= 2}
                self._days[day] = got
            return got

    def minute(self, t: datetime) -> tuple[dict[str, float], bool]:
        """Every quantity at the minute of `t` (NaN: the device has no value), and whether lost."""
        m = int(t.timestamp() // 60)
        day = self.day(m // 1440)
        i = m % 1440
        values = {k: float(v[i]) for k, v in day.values.items()}
        values["running"] = float(day.running[i])
        values["load_mw"] = float(day.load_mw[i])
        done = i >= self.spec.check_minute_of_day + self.spec.check_minutes
        checks = (day if done else self.day(m // 1440 - 1)).checks
        values["check_zero_pct"] = checks[-1].zero_reading if checks else float("nan")
        values["check_span_pct"] = checks[-1].span_reading if checks else float("nan")
        return values, bool(day.lost[i])

    def _values_for(self, device: str):
        live = self.live[device]

        def values(t: datetime) -> dict[str, float | bool]:
            current, _ = self.minute(t)
            if live.active("device_lost") is not None:
                raise RuntimeError(f"{device}: device lost (injected)")
            if live.active("blocked_pitot") is not None:
                current["differential_pressure_pa"] = 0.2
            if live.active("co2_over_range") is not None:
                current["co2_pct"] = self.spec.co2_full_scale_pct
            mine = {name: current[name] for name in self.points[device]}
            if any(v != v for k, v in mine.items() if not k.startswith("check_")):
                raise RuntimeError(f"{device}: no value this minute (device lost, scheduled)")
            out: dict[str, float | bool] = {k: v for k, v in mine.items() if v == v}
            if "running" in out:
                out["running"] = bool(out["running"])
            return out

        return values

    def inject(self, device: str, fault: str, duration_s: float | None, **params: Any) -> None:
        """A live fault of `device` (what it answers), for `duration_s` simulated seconds or until
        `clear(device)`."""
        self.live[device].inject(fault, None, duration_s, **params)

    def clear(self, device: str) -> None:
        self.live[device].clear()

    def true_mass_t(self, start: datetime, end: datetime) -> float:
        """True CO2 (t) emitted over the minutes start <= minute < end (scheduled faults do not
        change it: they change what the devices report)."""
        a, b = int(start.timestamp() // 60), int(end.timestamp() // 60)
        total = 0.0
        for day in range(a // 1440, (b - 1) // 1440 + 1):
            d = self.day(day)
            lo, hi = max(a - day * 1440, 0), min(b - day * 1440, 1440)
            total += float(d.true_co2_kg_h[lo:hi].sum()) / 60.0 / 1000.0
        return total


__all__ = ["FAULT_KINDS", "LIVE_FAULTS", "STACK_QUANTITIES", "StackConfig", "StackPlant"]
