"""A simulated Vaisala PTU300 combined pressure, humidity and temperature transmitter on its serial
line, in STOP mode: `send` answers one reading in the transmitter's default output form, e.g.
`P= 1013.2 hPa T= 31.1 'C RH= 38.3 %RH`, then the prompt `>` (the PTU300 User's Guide M210796EN,
SEND and FORM: its examples show exactly this line). Commands end in CR; echo is off. Anything else
answers `Unknown command`.

It reports the air of its `weather` table (simulators/weather.py) with a little seeded noise: give
the CO2 sensor beside it the same table and the station measures the air that sensor responds to.
The station reads it with the `generic.line` driver and configs/analyzers/vaisala-ptu300.toml, so
its minutes carry the mean temperature, humidity and pressure as diagnostics to central.

Faults (bench control port): garbage, silent, disconnect (simulators/polled.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from ghgnet.clock import Clock
from simulators.config import InstrumentConfig
from simulators.picarro.g2401 import GasFn
from simulators.polled import PolledSimulator
from simulators.weather import Weather, WeatherConfig

NOISE = {"pressure": 0.05, "temperature": 0.05, "humidity": 0.2}
"""Std of the reading noise: hPa, degC, %RH."""


def _no_gas(t: datetime) -> dict[str, float]:
    return {}


class PTU300Simulator(PolledSimulator):
    """A PTU300 in STOP mode answering `send`; faults via `inject`."""

    TERMINATOR = b"\r"
    LINE_END = "\r\n"

    def __init__(self, clock: Clock, weather: Weather, seed: int = 0) -> None:
        super().__init__(clock, _no_gas, None, seed)
        self.weather = weather

    def reading(self, t: datetime) -> tuple[dict[str, float], dict[str, float]]:
        """(the reported values rounded as sent, the true air) at `t`."""
        air = self.weather(t)
        values = {q: round(v + self._noise_rng.gauss(0.0, NOISE[q]), 1) for q, v in air.items()}
        return values, air

    def _answer(self, line: str) -> bytes:
        if line.strip().lower() != "send":
            return b"Unknown command\r\n>"
        t = self.clock.now()
        values, air = self.reading(t)
        self.record(t, values, air)
        text = f"P= {values['pressure']:6.1f} hPa T= {values['temperature']:5.1f} 'C RH= {values['humidity']:5.1f} %RH"
        return (text + self.LINE_END + ">").encode("ascii")


class PTU300Instrument(InstrumentConfig):
    """One simulated PTU300 of `[[instruments]]` (model = "vaisala.ptu300"), served on TCP and
    optionally a pty; the station's driver is generic.line with configs/analyzers/vaisala-ptu300.toml."""

    model: Literal["vaisala.ptu300"] = Field(description="the bench model (the station reads it as generic.line)")
    weather: WeatherConfig = Field(default_factory=WeatherConfig, description="the air it measures")


class PTU300Bench:
    """The bench model of the PTU300 (entry point vaisala.ptu300)."""

    kind = "analyzer"
    Config = PTU300Instrument

    @staticmethod
    def build(config: PTU300Instrument, clock: Clock, gas: GasFn | None = None) -> PTU300Simulator:
        return PTU300Simulator(clock, Weather(config.weather), config.seed)
