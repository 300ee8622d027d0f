"""Senseair K30 and S8: low-cost NDIR CO2 sensors, Modbus RTU (9600 8N1) on pymodbus.

Register map, as public sources give it (Senseair's "Modbus on S8" TDE2067 and "CO2 Engine K30"
documents, through the code that follows them: s8_lp_reg.h (Adam Lucas, 2021), ESPEasy's plugin
P052 for S8/K30/tSENSE, cemis-iceland's K30_MB.h, SFeli/ESP32_S8's frame walk-through, the cycbox.io
S8 debugging guide):

* Function 04 reads input registers; addresses count from 0, so Senseair's "IR1" is address 0.
  IR1 MeterStatus, IR2 AlarmStatus, IR3 OutputStatus, IR4 space CO2 in ppm: one request of four
  registers from address 0 gives all of it (`FE 04 00 00 00 04 ..`).
* Address 0xFE is "any sensor" (a single sensor on its line answers it, and answers with FE);
  0x68 is the factory address. The unit id is configuration, default 0xFE.
* MeterStatus bits (METER_STATUS_BITS): 0 fatal error, 1 offset regulation error, 2 algorithm
  error, 3 output error, 4 self-diagnostics error, 5 out of range, 6 memory error. Any of them set
  makes the reading invalid (status_ok False, the bits named in status_flags). OutputStatus bit 0 is
  the alarm output, bit 1 the PWM output (information, not health).
* S8 only: IR26-IR31 (addresses 25-30) sensor type id (high, low), memory map version, firmware
  version, sensor id (high, low), read by `identify()`. No public K30 document here confirms those
  registers, so the K30 does not read them (IDENTITY_REGISTERS). Holding register 31 (HR32) is the
  ABC period in hours on both.
* The S8 measures every 2 s (cycbox); polling faster returns the same value.

AlarmStatus has no public bit table: it is shown raw by `identify()`. DOMAIN.md lists a
temperature at address 4; no public K30/S8 map confirms one, so none is read.

The sensor has no clock: a reading is stamped with the engine's clock (`Driver.now`). It reports the
CO2 of the gas in its cell: with the sample dried before it (`sample_dried`, the default) that is
the dry mole fraction `co2_dry`; otherwise the wet `co2`, which a station can only use with water
coefficients and an h2o reading from elsewhere.

Errors as drivers/modbus/device.py types them: a Modbus exception is a ModbusDeviceError (naming
the request and the exception's meaning), no reply a TransportTimeout, a broken link a TransportError.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import Field

from drivers.base import AnalyzerDriver, DeviceConfig, DriverError, PollResult
from drivers.modbus.device import _ModbusConfig, _ModbusDriverMixin, make_modbus_client
from drivers.reading import Reading

ANY_SENSOR = 0xFE
FACTORY_ADDRESS = 0x68

STATUS_ADDRESS = 0
"""IR1 MeterStatus; IR2 AlarmStatus, IR3 OutputStatus and IR4 CO2 follow."""
STATUS_COUNT = 4
ABC_PERIOD_HOLDING = 31
"""HR32: automatic baseline correction period, hours (0: off)."""


@dataclass(frozen=True)
class MeterStatus:
    """IR1 MeterStatus, decoded: every known bit is a fault, 0 is healthy."""

    word: int

    BITS: ClassVar[dict[int, str]] = {
        0: "fatal_error",
        1: "offset_regulation_error",
        2: "algorithm_error",
        3: "output_error",
        4: "self_diagnostics_error",
        5: "out_of_range",
        6: "memory_error",
    }

    @property
    def flags(self) -> tuple[str, ...]:
        named = tuple(name for bit, name in self.BITS.items() if self.word >> bit & 1)
        unknown = self.word & ~sum(1 << b for b in self.BITS)
        return named + ((f"unknown_status_bits_0x{unknown:04x}",) if unknown else ())

    @property
    def ok(self) -> bool:
        return self.word == 0


OUTPUT_STATUS_BITS = {0: "alarm_output", 1: "pwm_output"}


class ModbusLink:
    """A pymodbus client as the engine handles an analyzer's transport: it asks `is_open` (pymodbus
    says `connected`) and `url`; everything else is the client's."""

    def __init__(self, client: Any, url: str) -> None:
        self.client = client
        self.url = url

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    @property
    def is_open(self) -> bool:
        return bool(self.client.connected)


class _SenseairConfig(_ModbusConfig):
    url: str = Field(
        description="a serial device path (Modbus RTU), rtu+tcp://host:port (RTU through a serial "
        "device server) or tcp://host:port (Modbus TCP gateway)"
    )
    unit_id: int = Field(default=ANY_SENSOR, ge=1, le=255,
                         description="Modbus address: 254 (0xFE) any sensor, 104 (0x68) the factory one")
    baudrate: int = 9600
    poll_interval_s: float = Field(default=5.0, gt=0, description="seconds between polls (it measures every 2 s)")
    sample_dried: bool = Field(
        default=True, description="the sample is dried before the sensor: its CO2 is co2_dry (else co2, wet)"
    )


class K30Config(_SenseairConfig):
    """A Senseair K30: `[[analyzers]]` entry with driver = "senseair.k30"."""

    driver: Literal["senseair.k30"] = "senseair.k30"


class S8Config(_SenseairConfig):
    """A Senseair S8: `[[analyzers]]` entry with driver = "senseair.s8"."""

    driver: Literal["senseair.s8"] = "senseair.s8"


class K30(_ModbusDriverMixin, AnalyzerDriver):
    """Senseair K30: CO2 and its status in one Modbus request per poll."""

    name = "senseair.k30"
    Config = K30Config
    simulator = "simulators.senseair.k30:SenseairSimulator"
    IDENTITY_REGISTERS: ClassVar[dict[str, int] | None] = None
    """Input registers `identify()` reads beyond the status ones (name -> address)."""

    config: _SenseairConfig

    def __init__(self, config: DeviceConfig, transport: Any) -> None:
        super().__init__(config, transport)

    @classmethod
    def make_transport(cls, config: DeviceConfig) -> ModbusLink:
        return ModbusLink(make_modbus_client(config), config.url)  # type: ignore[arg-type]

    def read_status(self) -> tuple[MeterStatus, int, int, int]:
        """(meter status, alarm status, output status, CO2 ppm) from IR1-IR4."""
        regs = self._read_registers("input", STATUS_ADDRESS, STATUS_COUNT, ("meter_status", "alarm_status",
                                    "output_status", "co2"), "read of input registers 0..3 (status, CO2)")
        co2 = regs[3] - 0x10000 if regs[3] & 0x8000 else regs[3]
        return MeterStatus(regs[0]), regs[1], regs[2], co2

    def poll(self) -> PollResult:
        """One reading: the CO2 now, stamped with the engine's clock, judged by MeterStatus."""
        at = self.now()
        status, _alarm, _output, co2 = self.read_status()
        result = PollResult()
        if co2 < 0:
            result.problems.append(f"{self.device_id}: negative CO2 {co2} ppm skipped (status 0x{status.word:04x})")
            return result
        quantity = "co2_dry" if self.config.sample_dried else "co2"
        result.readings.append(Reading(time=at, device=self.device_id, values={quantity: float(co2)},
                                       status=status.word, status_ok=status.ok, status_flags=status.flags))
        return result

    def identify(self) -> dict[str, Any]:
        status, alarm, output, co2 = self.read_status()
        info: dict[str, Any] = {
            "device": self.device_id, "driver": self.name, "url": self.config.url, "unit_id": self.config.unit_id,
            "co2_ppm": co2, "meter_status": status.word, "status_ok": status.ok, "status_flags": list(status.flags),
            "alarm_status": alarm,
            "output_status": [name for bit, name in OUTPUT_STATUS_BITS.items() if output >> bit & 1],
        }
        try:
            info["abc_period_h"] = self._read_registers("holding", ABC_PERIOD_HOLDING, 1, ("abc_period",),
                                                        "read of holding register 31 (ABC period)")[0]
        except DriverError as exc:  # an older firmware without it: say so, the sensor still answered
            info["abc_period_h"] = f"unreadable: {exc}"
        if self.IDENTITY_REGISTERS:
            first = min(self.IDENTITY_REGISTERS.values())
            count = max(self.IDENTITY_REGISTERS.values()) - first + 1
            regs = self._read_registers("input", first, count, tuple(self.IDENTITY_REGISTERS),
                                        f"read of input registers {first}..{first + count - 1} (identity)")
            raw = {name: regs[addr - first] for name, addr in self.IDENTITY_REGISTERS.items()}
            info.update(sensor_type=f"0x{raw['type_id_high'] << 16 | raw['type_id_low']:06x}",
                        memory_map_version=raw["memory_map_version"], firmware=f"0x{raw['firmware']:04x}",
                        sensor_id=f"0x{raw['sensor_id_high'] << 16 | raw['sensor_id_low']:08x}")
        return info


class S8(K30):
    """Senseair S8: the K30's registers plus its identity registers (IR26-IR31)."""

    name = "senseair.s8"
    Config = S8Config
    IDENTITY_REGISTERS: ClassVar[dict[str, int] | None] = {
        "type_id_high": 25, "type_id_low": 26, "memory_map_version": 27, "firmware": 28,
        "sensor_id_high": 29, "sensor_id_low": 30,
    }
