"""A simulated Vaisala GMP343 CO2 probe speaking its serial command set (see
drivers/vaisala/gmp343.py for the sources): commands end in CR LF, each reply ends with the prompt
`>`, the command is echoed until `echo off`.

Commands: `send` (one record in the `form` set), `form <params>` (CO2RAWUC, CO2RAW, CO2, T and
quoted text), `errs`, `echo on|off`, `p|rh|o2 [value]` (compensation values; without a value the
current one is shown), `pc|rhc|oc|tc on|off` (compensation switches), `vers`, `r`/`s`.

The probe measures the air it sits in (the gas it is given: dry co2 ppm and h2o %; the CO2 in its
optics is the wet mole fraction) at the real ambient pressure `pressure_hpa`, which the probe
cannot sense. Uncompensated, an NDIR reading grows with pressure: the User's Guide gives
+0.15 % of reading per hPa (PRESSURE_EFFECT_PER_HPA). With `pc on`, the probe divides that effect
out for the pressure it was told (`p`, default 1013.25 hPa), so its CO2 is right only when the
station pushes the real pressure. Every compensation value received is kept in `pushes` (time,
command, value), and `stats()` shows the values in force.

With a `weather` table (simulators/weather.py) the probe sits in that air: its temperature (what
`T` reports) and the real pressure follow it, and `sensitivity` moves its CO2 with temperature,
humidity and pressure beyond what its compensation removes (a medium-precision probe's residual
temperature-dependent zero offset, Delaria et al. 2021, AMT 14, 5487); drift is the response's
`drift_per_day`. The ledger's truth then holds the air too (temperature, humidity, pressure).

Faults (bench control port, besides garbage, silent and disconnect):
    errs    `errs` reports an error line (param `message`; the text is a stand-in, the real
            probe's error texts are not public)
"""

from __future__ import annotations

import shlex
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from ghgnet.clock import Clock
from ghgnet.timeutil import iso_utc
from simulators.bench import DiurnalGas
from simulators.config import AnalyzerResponseConfig, DiurnalGasConfig, InstrumentConfig, NoiseConfig
from simulators.picarro.g2401 import GasFn
from simulators.polled import COMMON_FAULTS, PolledSimulator, Response
from simulators.weather import SensitivityConfig, Weather, WeatherConfig

FAULTS = (*COMMON_FAULTS, "errs")
PRESSURE_EFFECT_PER_HPA = 0.0015
REFERENCE_PRESSURE_HPA = 1013.25
VERSION = "GMP343 - Version STD 2.0"
ERRS_OK = "OK: No errors detected."
DEFAULT_ERROR = "Error: IR source intensity too low"
FORM_PARAMS = ("CO2RAWUC", "CO2RAW", "CO2", "T")
COMPENSATION = {"p": "pressure", "rh": "humidity", "o2": "oxygen"}
SWITCHES = {"pc": "pressure", "rhc": "humidity", "oc": "oxygen", "tc": "temperature"}


class GMP343Simulator(PolledSimulator):
    """A GMP343 probe; faults via `inject`."""

    TERMINATOR = b"\r"
    LINE_END = "\r\n"
    FAULTS = FAULTS

    def __init__(self, clock: Clock, gas: GasFn, response: Response | None = None, seed: int = 0,
                 pressure_hpa: float = 1000.0, temperature_c: float = 25.0, weather: Weather | None = None,
                 sensitivity: SensitivityConfig | None = None) -> None:
        super().__init__(clock, gas, response, seed)
        self.pressure_hpa = pressure_hpa
        self.temperature_c = temperature_c
        self.weather = weather
        self.sensitivity = sensitivity or SensitivityConfig()
        self.echo = True
        self.form: list[str] | None = None
        self.values = {"pressure": REFERENCE_PRESSURE_HPA, "humidity": 0.0, "oxygen": 20.95}
        self.switches = {"pressure": False, "humidity": False, "oxygen": False, "temperature": True}
        self.pushes: list[tuple[datetime, str, float]] = []

    # ------------------------------------------------------------------ measuring

    def air(self, t: datetime) -> dict[str, float]:
        """Temperature (degC), humidity (%RH) and the real pressure (hPa) around the probe at `t`."""
        if self.weather is not None:
            return self.weather(t)
        return {"temperature": self.temperature_c, "humidity": self.sensitivity.reference_humidity_pct,
                "pressure": self.pressure_hpa}

    def reading(self, t: datetime) -> tuple[dict[str, float], dict[str, float]]:
        """(the form parameters' values, the truth) at `t`."""
        true = self.gas(t)
        air = self.air(t)
        h2o = max(0.0, true.get("h2o", 0.0))
        dry = self.sensitivity.apply(self.response("co2", true.get("co2", 0.0), t), air)
        wet = dry * (1.0 - h2o / 100.0)
        uncompensated = wet * (1.0 + PRESSURE_EFFECT_PER_HPA * (air["pressure"] - REFERENCE_PRESSURE_HPA))
        told = self.values["pressure"] if self.switches["pressure"] else REFERENCE_PRESSURE_HPA
        compensated = uncompensated / (1.0 + PRESSURE_EFFECT_PER_HPA * (told - REFERENCE_PRESSURE_HPA))
        values = {
            "CO2RAWUC": uncompensated + self.noise("co2", 3.0),
            "CO2RAW": compensated + self.noise("co2", 3.0),
            "CO2": compensated + self.noise("co2"),
            "T": air["temperature"] + self._noise_rng.gauss(0.0, 0.05),
        }
        truth = {"co2": true.get("co2", 0.0), "h2o": h2o}
        return values, truth | (air if self.weather is not None else {})

    def _send(self) -> list[str]:
        t = self.clock.now()
        values, truth = self.reading(t)
        if self.form is None:
            line = f"CO2={values['CO2']:7.0f} ppm"
        else:
            parts = []
            for token in self.form:
                parts.append(f"{values[token]:8.1f}" if token in values else token)
            line = " ".join(parts)
        self.record(t, {k: round(v, 1) for k, v in values.items()}, truth)
        return [line]

    # ------------------------------------------------------------------ commands

    def _answer(self, line: str) -> bytes:
        words = line.split(None, 1)
        cmd, arg = words[0].lower(), (words[1].strip() if len(words) > 1 else "")
        echo = [line] if self.echo else []  # the probe echoes as it was set when the command came
        lines = self._lines(cmd, arg)
        return "".join(f"{x}{self.LINE_END}" for x in [*echo, *lines]).encode("ascii", errors="replace") + b">"

    def _lines(self, cmd: str, arg: str) -> list[str]:
        if cmd == "send":
            return self._send()
        if cmd == "errs":
            fault = self.faults.active("errs", consume=True)
            return [str(fault.params.get("message", DEFAULT_ERROR))] if fault else [ERRS_OK]
        if cmd == "echo" and arg.lower() in ("on", "off"):
            self.echo = arg.lower() == "on"
            return [f"ECHO      : {arg.upper()}"]
        if cmd == "form":
            return self._set_form(arg)
        if cmd in COMPENSATION:
            name = COMPENSATION[cmd]
            if not arg:
                return [f"{cmd.upper():<9} : {self.values[name]:g}"]
            try:
                value = float(arg)
            except ValueError:
                return ["Invalid value"]
            self.values[name] = value
            self.pushes.append((self.clock.now(), cmd, value))
            return []
        if cmd in SWITCHES and arg.lower() in ("on", "off"):
            self.switches[SWITCHES[cmd]] = arg.lower() == "on"
            return [f"{cmd.upper():<9} : {arg.upper()}"]
        if cmd == "vers":
            return [VERSION]
        if cmd in ("r", "s"):
            return []
        return ["Unknown command"]

    def _set_form(self, arg: str) -> list[str]:
        try:
            tokens = shlex.split(arg)
        except ValueError:
            return ["Invalid format"]
        unknown = [t for t in tokens if t.upper() not in FORM_PARAMS and not arg.count(f'"{t}"')]
        if unknown or not tokens:
            return ["Invalid format"]
        self.form = [t.upper() if t.upper() in FORM_PARAMS else t for t in tokens]
        return []

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {**super().stats(), "pressure_hpa": self.pressure_hpa, "compensation": dict(self.values),
                    "switches": dict(self.switches), "echo": self.echo,
                    "pushes": [{"time": iso_utc(t), "command": c, "value": v} for t, c, v in self.pushes]}


class GMP343Instrument(InstrumentConfig):
    """One simulated GMP343 of `[[instruments]]`, served on TCP and optionally a pty."""

    model: Literal["vaisala.gmp343"] = Field(description="driver name the station uses for it")
    noise: NoiseConfig = Field(default_factory=lambda: NoiseConfig(co2=0.5, ch4=0.0, co=0.0, h2o=0.0),
                               description="co2 ppm of the filtered output (raw outputs: 3 times)")
    response: AnalyzerResponseConfig = Field(default_factory=AnalyzerResponseConfig)
    gas: DiurnalGasConfig = Field(default_factory=DiurnalGasConfig, description="the air around the probe")
    pressure_hpa: float = Field(default=1000.0, gt=0, description="the real ambient pressure (the station's sensor reads it)")
    temperature_c: float = 25.0
    weather: WeatherConfig | None = Field(
        default=None, description="the air around the probe (its temperature and the real pressure follow it)")
    sensitivity: SensitivityConfig = Field(default_factory=SensitivityConfig,
                                           description="its residual response to temperature, humidity, pressure")


class GMP343Bench:
    """The bench model of the GMP343 (entry point vaisala.gmp343)."""

    kind = "analyzer"
    Config = GMP343Instrument

    @staticmethod
    def build(config: GMP343Instrument, clock: Clock, gas: GasFn | None = None) -> GMP343Simulator:
        response = Response(gain=dict(config.response.gain), offset=dict(config.response.offset),
                            drift_per_day=dict(config.response.drift_per_day), noise={"co2": config.noise.co2})
        return GMP343Simulator(clock, gas or DiurnalGas.from_config(config.gas), response, config.seed,
                               config.pressure_hpa, config.temperature_c,
                               Weather(config.weather) if config.weather is not None else None, config.sensitivity)
