"""A simulated Senseair K30 or S8: a real pymodbus server (simulators/modbus/device.py) holding the
sensor's registers (drivers/senseair/k30.py), on Modbus RTU over a pty, RTU over TCP (a serial
device server) or Modbus TCP.

The sensor measures every `measurement_period_s` (2 s): each measurement is the response (gain,
offset, drift) to the true dry CO2 at that instant, moved by the air the sensor sits in (`weather`
and `sensitivity`: temperature, humidity and pressure, simulators/weather.py), plus seeded noise,
rounded to whole ppm as the register holds it; a read between two measurements returns the last
one. Each measurement read goes into the ledger with its truth (the true dry CO2 and, with a
`weather`, the air: temperature degC, humidity %RH, pressure hPa). It answers its own address and 0xFE ("any sensor"), and
refuses addresses outside its map (exception 2), as the base simulator does.

Faults (`inject(fault, count, duration_s, **params)` through the bench control port; `count`
requests or `duration_s` simulated seconds, until `clear_faults()` with neither):
    silent      requests are received and never answered
    exception   input-register reads answer a Modbus exception `code` (default 4, device failure)
    status      MeterStatus reads `word` (default 0x0001, fatal error) instead of 0
    power_off   the server stops (connections dropped) until clear_faults
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import Field

from drivers.modbus.registermap import Point
from drivers.senseair.k30 import ABC_PERIOD_HOLDING, ANY_SENSOR, FACTORY_ADDRESS, S8
from ghgnet.clock import Clock
from simulators.bench import DiurnalGas
from simulators.config import AnalyzerResponseConfig, DiurnalGasConfig, InstrumentConfig
from simulators.faults import FaultSet
from simulators.gas import analyzer_reading, knot, stream_key
from simulators.modbus.device import ModbusDeviceSimulator, _RefusedRequest, _request_of
from simulators.picarro.g2401 import GasFn, LedgerEntry
from simulators.weather import SensitivityConfig, Weather, WeatherConfig

FAULTS = ("silent", "exception", "status", "power_off")
FAULT_STATUS_WORD = 0x0001
S8_IDENTITY = {"type_id_high": 0x0000, "type_id_low": 0x0008, "memory_map_version": 3, "firmware": 0x0216,
               "sensor_id_high": 0x0120, "sensor_id_low": 0x3456}
"""What the simulated S8 reports in its identity registers (made-up serial numbers)."""


def register_map(model: str) -> list[Point]:
    """The registers the simulated sensor holds (input registers read-only, holding writable)."""
    points = [
        Point(name="meter_status", kind="input", address=0, type="uint16"),
        Point(name="alarm_status", kind="input", address=1, type="uint16"),
        Point(name="output_status", kind="input", address=2, type="uint16"),
        Point(name="co2", kind="input", address=3, type="int16"),
        Point(name="ack", kind="holding", address=0, type="uint16", writable=True),
        Point(name="special_command", kind="holding", address=1, type="uint16", writable=True),
        Point(name="abc_period", kind="holding", address=ABC_PERIOD_HOLDING, type="uint16", writable=True),
    ]
    if model == "senseair.s8":
        points += [Point(name=name, kind="input", address=addr, type="uint16")
                   for name, addr in S8.IDENTITY_REGISTERS.items()]
    return points


class SenseairInstrument(InstrumentConfig):
    """One simulated Senseair sensor (`[[instruments]]` with model = "senseair.k30" | "senseair.s8").
    `port` serves mode tcp and rtu+tcp; mode rtu makes a pty line, `pty_link` its client end."""

    model: Literal["senseair.k30", "senseair.s8"] = Field(description="driver name the station uses")
    mode: Literal["tcp", "rtu+tcp", "rtu"] = "rtu+tcp"
    unit_id: int = Field(default=FACTORY_ADDRESS, ge=1, le=247)
    measurement_period_s: float = Field(default=2.0, gt=0)
    noise_ppm: float = Field(default=2.0, ge=0, description="std of the CO2 noise, ppm")
    abc_period_h: int = Field(default=180, ge=0, le=65535)
    response: AnalyzerResponseConfig = Field(default_factory=AnalyzerResponseConfig)
    gas: DiurnalGasConfig = Field(default_factory=DiurnalGasConfig, description="the gas it measures (no valve)")
    weather: WeatherConfig | None = Field(
        default=None, description="the air around the sensor (give its met sensor the same table); none: "
        "the sensitivity's reference conditions")
    sensitivity: SensitivityConfig = Field(default_factory=SensitivityConfig,
                                           description="its response to temperature, humidity and pressure")


class SenseairSimulator(ModbusDeviceSimulator):
    """A Senseair sensor behind a real pymodbus server, measuring `gas`."""

    def __init__(self, clock: Clock, config: SenseairInstrument, gas: GasFn | None = None) -> None:
        self.config = config
        self.gas: GasFn = gas or DiurnalGas.from_config(config.gas)
        self._epoch = clock.now()
        self._key = stream_key(config.seed, "senseair-co2")
        self.weather = Weather(config.weather) if config.weather is not None else None
        self.faults = FaultSet(FAULTS, clock.monotonic, lasting=FAULTS)
        self._ledger: list[LedgerEntry] = []
        self._last_k: int | None = None
        self._last_co2 = 0
        super().__init__(register_map(config.model), self._values, unit_id=config.unit_id, mode=config.mode,
                         host=config.host, port=config.port, clock=clock, link=config.pty_link, name=config.id)
        self.set_value("abc_period", config.abc_period_h)

    # ----- what the sensor measures -----

    def air(self, t: datetime) -> dict[str, float]:
        """The temperature, humidity and pressure around the sensor at `t`."""
        return self.weather(t) if self.weather is not None else self.config.sensitivity.reference_air()

    def response(self, true_co2: float, t: datetime) -> float:
        """The noise-free reading of `true_co2` at `t`: gain, offset and drift, then the air's effect."""
        days = (t - self._epoch).total_seconds() / 86400.0
        return self.config.sensitivity.apply(analyzer_reading(self.config.response, "co2", true_co2, days), self.air(t))

    def _measurement(self, t: datetime) -> int:
        """The CO2 register at `t`: the measurement of its 2-s period (made once, then held)."""
        period = self.config.measurement_period_s
        k = math.floor((t - self._epoch).total_seconds() / period)
        if k != self._last_k:
            when = self._epoch + timedelta(seconds=k * period)
            truth = self.gas(when)
            co2 = round(self.response(truth.get("co2", 0.0), when) + self.config.noise_ppm * knot(self._key, k))
            self._last_k, self._last_co2 = k, co2
            truth = {**truth, **(self.weather(when) if self.weather is not None else {})}
            self._ledger.append(LedgerEntry(len(self._ledger), when, {"co2": float(co2)}, connected=True,
                                            fate="delivered", truth=truth))
        return self._last_co2

    def _values(self, t: datetime) -> dict[str, float]:
        faulty = self.faults.active("status")
        status = self.faults.param("status", "word", FAULT_STATUS_WORD) if faulty else 0
        values = {"meter_status": float(status), "alarm_status": 0.0, "output_status": 0.0,
                  "co2": float(self._measurement(t))}
        if self.config.model == "senseair.s8":
            values.update({k: float(v) for k, v in S8_IDENTITY.items()})
        return values

    # ----- the bus: its own address and "any sensor" -----

    @property
    def addresses(self) -> tuple[int, ...]:
        return (self.unit_id, ANY_SENSOR)

    def _sim_device(self) -> Any:
        own = super()._sim_device()
        if self.unit_id == ANY_SENSOR:
            return own
        unit, self.unit_id = self.unit_id, ANY_SENSOR
        try:
            anyone = super()._sim_device()
        finally:
            self.unit_id = unit
        return [own, anyone]

    def _trace_pdu(self, sending: bool, pdu: Any) -> Any:
        if sending:
            return pdu
        request = _request_of(pdu)
        with self._lock:
            self._requests.append(request)
        if request.unit_id not in self.addresses:
            return None
        now = self.clock.monotonic()
        if self.faults.active("silent", now, consume=True):
            return None
        if request.function_code == 4 and self.faults.active("exception", now, consume=True):
            return _RefusedRequest(pdu, int(self.faults.param("exception", "code", 4)))
        code = self._refusal_for(request)
        return _RefusedRequest(pdu, code) if code else pdu

    # ----- faults -----

    def inject(self, fault: str, count: int | None = None, duration_s: float | None = None, **params: Any) -> None:
        if fault == "power_off":
            self.power_off()
        else:
            self.faults.inject(fault, count, duration_s, **params)

    def clear_faults(self) -> None:
        self.faults.clear()
        self.clear()
        if not self.running:
            self.power_on()

    # ----- what tests count -----

    @property
    def ledger(self) -> list[LedgerEntry]:
        with self._lock:
            return list(self._ledger)

    def ledger_rows(self, since_seq: int = 0) -> list[dict[str, Any]]:
        return [{"seq": e.seq, "time": e.time.isoformat().replace("+00:00", "Z"), "values": dict(e.values),
                 "truth": dict(e.truth)} for e in self.ledger[since_seq:]]

    def stats(self) -> dict[str, Any]:
        return {"running": self.running, "requests": len(self.requests), "measurements_read": len(self._ledger)}


class SenseairBench:
    """The bench model of the Senseair sensors (entry points senseair.k30, senseair.s8)."""

    kind = "analyzer"
    Config = SenseairInstrument

    @staticmethod
    def build(config: SenseairInstrument, clock: Clock, gas: GasFn | None = None) -> SenseairSimulator:
        return SenseairSimulator(clock, config, gas)
