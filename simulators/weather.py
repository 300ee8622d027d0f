"""The air a medium-precision sensor sits in, and how the sensor responds to it.

`Weather` is a site's simulated temperature (degC), relative humidity (%RH) and pressure (hPa): a
daily cycle (humidity in anti-phase with temperature, as on a fair day) plus slow seeded
"synoptic" wanderings of each, independent of each other and of the gas, deterministic in absolute
time. Two simulators given the same `[weather]` table (the same seed) see the same air: the CO2
sensor that responds to it and the met sensor that reports it to the station.

`Sensitivity` is how a low-cost NDIR sensor's CO2 reading depends on that air, the model central's
medium-precision calibration (central/medium_precision/) fits:

    reading = response(true) * (1 + pressure_per_hpa * (P - P0))
              + temperature_ppm_per_c * (T - T0) + humidity_ppm_per_pct * (RH - RH0)

with `response` the analyzer's gain, offset and drift (simulators.gas.analyzer_reading). Pressure
acts on the number density the optics see, so it scales the reading (an NDIR cell reads about
+0.15 % per hPa uncompensated: simulators/vaisala/gmp343.py); temperature and humidity move the
zero (the temperature-dependent zero offset of Delaria et al. 2021, AMT 14, 5487; the humidity
dependence of the LP8 sensors of Müller et al. 2020, AMT 13, 3815). All coefficients default to 0.

simulators/vaisala/ptu300.py serves a `Weather` as a T/RH/P transmitter on a serial line.
"""

from __future__ import annotations

import math
from datetime import datetime

from pydantic import Field

from ghgnet.config import StrictModel
from simulators.gas import stream_key, value_noise

WEATHER_QUANTITIES = ("temperature", "humidity", "pressure")


class WeatherConfig(StrictModel):
    """A site's air: base values, a daily cycle and slow random wanderings (units degC, %RH, hPa)."""

    temperature_c: float = 20.0
    temperature_diurnal_c: float = Field(default=5.0, ge=0, description="half peak-to-peak of the daily cycle")
    temperature_synoptic_c: float = Field(default=3.0, ge=0, description="std of the slow wandering")
    humidity_pct: float = Field(default=60.0, ge=0, le=100)
    humidity_diurnal_pct: float = Field(default=12.0, ge=0, description="in anti-phase with temperature")
    humidity_synoptic_pct: float = Field(default=10.0, ge=0)
    pressure_hpa: float = Field(default=1005.0, gt=0)
    pressure_synoptic_hpa: float = Field(default=4.0, ge=0)
    synoptic_timescale_h: float = Field(default=20.0, gt=0, description="spacing of the wandering's knots")
    peak_hour_utc: float = Field(default=14.0, ge=0, lt=24, description="hour of the daily temperature maximum")
    seed: int = 0


class Weather:
    """`weather(t) -> {"temperature": degC, "humidity": %RH, "pressure": hPa}` (see the module)."""

    def __init__(self, config: WeatherConfig) -> None:
        self.config = config
        self._keys = {q: stream_key(config.seed, "weather", q) for q in WEATHER_QUANTITIES}

    def __call__(self, t: datetime) -> dict[str, float]:
        c = self.config
        s = t.timestamp()
        spacing = c.synoptic_timescale_h * 3600.0
        hours = (s / 3600.0) % 24.0
        phase = math.cos(2 * math.pi * (hours - c.peak_hour_utc) / 24.0)
        wander = {q: value_noise(self._keys[q], s, spacing) for q in WEATHER_QUANTITIES}
        humidity = c.humidity_pct - c.humidity_diurnal_pct * phase + c.humidity_synoptic_pct * wander["humidity"]
        return {
            "temperature": c.temperature_c + c.temperature_diurnal_c * phase + c.temperature_synoptic_c * wander["temperature"],
            "humidity": min(100.0, max(0.0, humidity)),
            "pressure": c.pressure_hpa + c.pressure_synoptic_hpa * wander["pressure"],
        }


class SensitivityConfig(StrictModel):
    """A CO2 sensor's response to the air it sits in (see the module docstring), about the
    reference conditions (T0, RH0, P0) at which it reads its `response` exactly."""

    temperature_ppm_per_c: float = Field(default=0.0, description="zero shift, ppm per degC")
    humidity_ppm_per_pct: float = Field(default=0.0, description="zero shift, ppm per %RH")
    pressure_per_hpa: float = Field(default=0.0, description="relative change of the reading per hPa")
    reference_temperature_c: float = 20.0
    reference_humidity_pct: float = Field(default=50.0, ge=0, le=100)
    reference_pressure_hpa: float = Field(default=1013.25, gt=0)

    def apply(self, co2: float, air: dict[str, float]) -> float:
        """The reading of a sensor whose response to the true CO2 is `co2`, in `air`."""
        return (co2 * (1.0 + self.pressure_per_hpa * (air["pressure"] - self.reference_pressure_hpa))
                + self.temperature_ppm_per_c * (air["temperature"] - self.reference_temperature_c)
                + self.humidity_ppm_per_pct * (air["humidity"] - self.reference_humidity_pct))

    def reference_air(self) -> dict[str, float]:
        return {"temperature": self.reference_temperature_c, "humidity": self.reference_humidity_pct,
                "pressure": self.reference_pressure_hpa}
