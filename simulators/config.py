"""The simulator bench's configuration (TOML): which simulated instruments to serve, and where.

Loaded through ghgnet.config: unknown keys are errors, every error reads
`FILE: field.path: message`, relative paths resolve against the config file's folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SerializeAsAny, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from drivers.base import TimeZoneName
from drivers.modbus.registermap import Point, check_register_map
from drivers.registry import UnknownSimulatorError, load_simulator
from ghgnet.config import RelPath, StrictModel, load_model
from simulators.stack_bench import StackConfig
from simulators.vici.multiposition import ViciValveSimConfig

Species = Literal["co2", "ch4", "co", "n2o"]
Quantity = Literal["co2", "ch4", "co", "n2o", "h2o"]

DEFAULT_COLUMNS = ["CO2", "CO2_dry", "CH4", "CH4_dry", "CO", "H2O", "CavityPressure", "CavityTemp"]


class DiurnalGasConfig(StrictModel):
    """True dry mole fractions at the inlet: a base value plus an optional daily cosine.

    Units: co2 ppm, ch4/co/n2o ppb, h2o %. `diurnal_amplitude` is per quantity (same units);
    the cycle peaks at `peak_hour_utc`.
    """

    co2: float = Field(default=420.0, ge=0, description="dry CO2, ppm")
    ch4: float = Field(default=2000.0, ge=0, description="dry CH4, ppb")
    co: float = Field(default=150.0, ge=0, description="dry CO, ppb")
    n2o: float = Field(default=337.0, ge=0, description="dry N2O, ppb")
    h2o: float = Field(default=1.2, ge=0, description="water vapour, %")
    diurnal_amplitude: dict[Quantity, float] = Field(
        default_factory=dict, description="half peak-to-peak of the daily cycle, per quantity"
    )
    peak_hour_utc: float = Field(default=6.0, ge=0, lt=24, description="hour of the daily maximum")


class NoiseConfig(StrictModel):
    """Standard deviation of the simulated measurement noise (co2 ppm, ch4/co/n2o ppb, h2o %)."""

    co2: float = Field(default=0.05, ge=0)
    ch4: float = Field(default=0.5, ge=0)
    co: float = Field(default=5.0, ge=0)
    n2o: float = Field(default=0.3, ge=0)
    h2o: float = Field(default=0.002, ge=0)


class AnalyzerResponseConfig(StrictModel):
    """The analyzer's own calibration error on the dry values, per species (co2 ppm, ch4/co/n2o ppb):
    measured = gain * true + offset + drift_per_day * days since the bench started, before noise.
    A species left out has gain 1, offset 0, drift 0."""

    gain: dict[Species, float] = Field(default_factory=dict)
    offset: dict[Species, float] = Field(default_factory=dict)
    drift_per_day: dict[Species, float] = Field(default_factory=dict)


def registered_model(name: str, kind: str) -> str:
    """`name` if a simulator of `kind` is registered under it (entry points `ghgnet.simulators`)."""
    try:
        model = load_simulator(name)
    except UnknownSimulatorError as exc:
        raise ValueError(str(exc)) from None
    if model.kind != kind:
        raise ValueError(f"{name!r} is a {model.kind} simulator, not a {kind}")
    return name


class InstrumentConfig(StrictModel):
    """What every simulated analyzer of `[[instruments]]` has; a simulator's own `Config` extends it
    (with `model` a Literal of the driver names it serves) and adds its fields."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    model: str = Field(description="driver name the station uses for it (a registered simulator)")
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535, description="TCP port; 0 = any free port")
    pty_link: RelPath | None = Field(
        default=None, description="symlink to the simulator's pty (a stable serial device path)"
    )
    seed: int = 0


def instrument_config(item: Any, context: dict[str, Any] | None) -> InstrumentConfig:
    """One `[[instruments]]` table validated by the Config of the simulator its `model` names."""
    if isinstance(item, InstrumentConfig) or not isinstance(item, dict) or "model" not in item:
        return InstrumentConfig.model_validate(item, context=context)
    name = item["model"]
    if not isinstance(name, str):
        return InstrumentConfig.model_validate(item, context=context)
    try:
        model = load_simulator(name)
    except UnknownSimulatorError as exc:
        raise _located(("model",), name, str(exc)) from None
    if model.kind != "analyzer":
        raise _located(("model",), name, f"{name!r} is a {model.kind} simulator, not an analyzer")
    return model.Config.model_validate(item, context=context)


def _located(loc: tuple[Any, ...], value: Any, message: str) -> ValidationError:
    error = InitErrorDetails(type=PydanticCustomError("value_error", message), loc=loc, input=value)
    return ValidationError.from_exception_data("InstrumentConfig", [error])


class PicarroInstrument(InstrumentConfig):
    """One simulated Picarro analyzer, served on TCP and optionally on a pty."""

    model: Literal["picarro.g2401", "picarro.g2301"] = Field(
        description="driver name the station uses for it"
    )
    columns: list[str] = Field(default_factory=lambda: list(DEFAULT_COLUMNS), min_length=1)
    timezone: TimeZoneName = Field(default="UTC", description="zone of the simulated analyzer clock")
    record_interval_s: tuple[float, float] = (1.0, 3.0)
    record_format: Literal["per_label", "single_time"] = Field(
        default="per_label",
        description="per_label: `time;value;` per label (older host software); single_time: time once",
    )
    noise: NoiseConfig = Field(default_factory=NoiseConfig)
    response: AnalyzerResponseConfig = Field(default_factory=AnalyzerResponseConfig)
    gas: DiurnalGasConfig = Field(
        default_factory=DiurnalGasConfig,
        description="the gas it measures when the bench has no valve (with a valve: the [gas] section)",
    )

    @field_validator("columns")
    @classmethod
    def _columns_known(cls, columns: list[str]) -> list[str]:
        from simulators.picarro.g2401 import SUPPORTED_LABELS

        unknown = [c for c in columns if c not in SUPPORTED_LABELS]
        if unknown:
            raise ValueError(f"unknown column(s) {unknown}; known: {', '.join(SUPPORTED_LABELS)}")
        return columns

    @model_validator(mode="after")
    def _no_co_on_g2301(self) -> "PicarroInstrument":
        if self.model == "picarro.g2301" and "CO" in self.columns:
            raise ValueError("a G2301 measures no CO: remove 'CO' from columns")
        return self


class ValveInstrument(ViciValveSimConfig):
    """The bench's VICI multiposition valve: its outlet feeds every analyzer of the bench."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    model: str = Field(description="driver name the station uses for it (a registered valve simulator)")
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535, description="TCP port; 0 = any free port")
    pty_link: RelPath | None = Field(default=None, description="symlink to the valve's pty")

    @field_validator("model")
    @classmethod
    def _registered(cls, name: str) -> str:
        return registered_model(name, "valve")

    def sim_config(self) -> ViciValveSimConfig:
        return ViciValveSimConfig.model_validate(self.model_dump(include=set(ViciValveSimConfig.model_fields)))


class AmbientConfig(StrictModel):
    """The site's air, shared by the inlets (co2 ppm, ch4/co/n2o ppb, h2o %).

    Amplitudes and variability are at `reference_height_m`; an inlet at height h gets them times
    (reference_height_m / h) ** height_exponent, and its variability is slower by the inverse.
    """

    co2: float = Field(default=420.0, ge=0)
    ch4: float = Field(default=2000.0, ge=0)
    co: float = Field(default=150.0, ge=0)
    n2o: float = Field(default=337.0, ge=0)
    h2o: float = Field(default=1.2, ge=0)
    diurnal_amplitude: dict[Quantity, float] = Field(
        default_factory=lambda: {"co2": 10.0, "ch4": 30.0, "co": 30.0, "n2o": 0.3, "h2o": 0.1},
        description="half peak-to-peak of the daily cycle at the reference height",
    )
    peak_hour_utc: float = Field(
        default=21.0, ge=0, lt=24, description="UTC hour of the daily maximum (the site's pre-dawn)"
    )
    synoptic_std: dict[Quantity, float] = Field(
        default_factory=lambda: {"co2": 3.0, "ch4": 15.0, "co": 15.0, "n2o": 0.5, "h2o": 0.2},
        description="size of the slow change over days (the same at every height)",
    )
    synoptic_timescale_h: float = Field(default=36.0, gt=0)
    variability_std: dict[Quantity, float] = Field(
        default_factory=lambda: {"co2": 0.8, "ch4": 4.0, "co": 4.0, "n2o": 0.1, "h2o": 0.02},
        description="short-term atmospheric variability at the reference height",
    )
    variability_timescale_s: float = Field(default=120.0, gt=0)
    reference_height_m: float = Field(default=10.0, gt=0)
    height_exponent: float = Field(default=0.7, ge=0)


class InletConfig(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    port: int = Field(ge=1, description="valve position")
    height_m: float = Field(gt=0)
    flush_tau_s: float | None = Field(default=None, ge=0, description="default: gas.inlet_flush_tau_s")


class HumidifierConfig(StrictModel):
    """The cylinder's gas passed through a humidifier (the water vapour test of an analyzer): the
    dry mole fractions are the cylinder's, the water vapour falls from `h2o_start` to `h2o_end` %
    over each `period_s` (a sawtooth of absolute time, like a drying humidifier refilled each period)."""

    h2o_start: float = Field(default=2.5, ge=0, description="%")
    h2o_end: float = Field(default=0.3, ge=0, description="%")
    period_s: float = Field(default=7200.0, gt=0)


class CylinderConfig(StrictModel):
    """A cylinder's true values (dry; the gas in a cylinder holds almost no water), or with
    `humidifier` its gas humidified."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    port: int = Field(ge=1, description="valve position")
    role: Literal["standard", "target", "zero", "span"] = "standard"
    co2: float = Field(ge=0, description="ppm")
    ch4: float = Field(ge=0, description="ppb")
    co: float = Field(default=0.0, ge=0, description="ppb")
    n2o: float = Field(default=0.0, ge=0, description="ppb")
    h2o: float = Field(default=0.0, ge=0, description="%")
    flush_tau_s: float | None = Field(default=None, ge=0, description="default: gas.cylinder_flush_tau_s")
    humidifier: HumidifierConfig | None = None


class LineConfig(StrictModel):
    """The sample line as the bench's Modbus sensors see it."""

    flow_sccm: float = Field(default=250.0, ge=0, description="sample flow while gas flows")
    flow_noise_sccm: float = Field(default=1.0, ge=0)
    pressure_hpa: float = Field(default=1000.0, ge=0, description="line pressure while gas flows")
    pressure_noise_hpa: float = Field(default=0.5, ge=0)
    no_flow_pressure_hpa: float = Field(default=150.0, ge=0, description="line pressure with no flow (pump side)")
    temperature_c: float = 30.0
    humidity_pct: float = Field(default=40.0, ge=0, le=100, description="relative humidity, %RH")


class GasConfig(StrictModel):
    """What each valve port delivers; ports not named here are closed (no flow: the cell keeps
    its gas)."""

    seed: int = 0
    inlet_flush_tau_s: float = Field(default=30.0, ge=0, description="line time constant after a switch to an inlet")
    cylinder_flush_tau_s: float = Field(default=20.0, ge=0, description="same, to a cylinder")
    ambient: AmbientConfig = Field(default_factory=AmbientConfig)
    inlets: list[InletConfig] = Field(default_factory=list)
    cylinders: list[CylinderConfig] = Field(default_factory=list)
    line: LineConfig = Field(default_factory=LineConfig)

    @model_validator(mode="after")
    def _unique(self) -> "GasConfig":
        names = [i.name for i in self.inlets] + [c.name for c in self.cylinders]
        ports = [i.port for i in self.inlets] + [c.port for c in self.cylinders]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"inlet/cylinder name(s) used twice: {', '.join(dupes)}")
        dup_ports = sorted({p for p in ports if ports.count(p) > 1})
        if dup_ports:
            raise ValueError(f"valve port(s) given twice: {', '.join(map(str, dup_ports))}")
        return self


class ModbusInstrument(StrictModel):
    """A simulated Modbus sensor on the sample line (a real pymodbus server). Its read-only points
    named `flow` (sccm), `pressure` (hPa) or `temperature` (degC) follow the bench's line."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    model: str = Field(description="driver name the station uses for it (a registered modbus simulator)")
    mode: Literal["tcp", "rtu+tcp", "rtu"] = "tcp"
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535, description="TCP port (tcp, rtu+tcp); 0 = any free port")
    pty_link: RelPath | None = Field(default=None, description="rtu: symlink to the client end of the line")
    unit_id: int = Field(default=1, ge=1, le=247)
    seed: int = 0
    points: list[Point] = Field(min_length=1, description="the register map (as in the station config)")

    @field_validator("model")
    @classmethod
    def _registered(cls, name: str) -> str:
        return registered_model(name, "modbus")

    @model_validator(mode="after")
    def _map(self) -> "ModbusInstrument":
        check_register_map(self.points)
        unknown = [p.name for p in self.points if not p.writable and p.name not in LINE_QUANTITIES]
        if unknown:
            raise ValueError(
                f"read-only point(s) {unknown} follow nothing on the bench; known: {', '.join(LINE_QUANTITIES)}"
            )
        return self


LINE_QUANTITIES = ("flow", "pressure", "temperature", "humidity")


class ControlConfig(StrictModel):
    """The bench's JSON-lines control port (fault injection and ledger counts)."""

    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535, description="0 = any free port")


class BenchConfig(StrictModel):
    """Analyzers (`instruments`), optionally a valve with the gas behind its ports, and Modbus
    sensors. Without a valve each analyzer measures its own `gas` table straight."""

    control: ControlConfig = Field(default_factory=ControlConfig)
    instruments: list[PicarroInstrument | SerializeAsAny[InstrumentConfig]] = Field(
        default_factory=list, description="analyzers, each validated by the simulator its `model` names"
    )
    valve: ValveInstrument | None = None
    gas: GasConfig | None = None
    modbus: list[ModbusInstrument] = Field(default_factory=list)
    stack: StackConfig | None = Field(default=None, description="a simulated power-plant stack's CEMS devices")

    @field_validator("instruments", mode="before")
    @classmethod
    def _by_model(cls, items: Any, info: ValidationInfo) -> Any:
        if not isinstance(items, list):
            return items
        out, errors = [], []
        for i, item in enumerate(items):
            try:
                out.append(instrument_config(item, info.context))
            except ValidationError as exc:
                errors += [InitErrorDetails(type=PydanticCustomError("value_error", e["msg"]) if e["type"] in
                           ("value_error", "assertion_error") else e["type"], loc=(i, *e["loc"]), input=e["input"],
                           ctx=e.get("ctx", {})) for e in exc.errors(include_url=False)]
        if errors:
            raise ValidationError.from_exception_data("instruments", errors)
        return out

    @model_validator(mode="after")
    def _consistent(self) -> "BenchConfig":
        ids = [i.id for i in self.instruments] + [m.id for m in self.modbus]
        ids += [d.id for d in self.stack.devices] if self.stack else []
        ids += [self.valve.id] if self.valve else []
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"instrument id(s) used twice: {', '.join(dupes)}")
        if (self.valve is None) != (self.gas is None):
            raise ValueError("[valve] and [gas] go together: the valve's position picks the gas")
        if self.valve is not None and self.gas is not None:
            beyond = [p for p in (*(i.port for i in self.gas.inlets), *(c.port for c in self.gas.cylinders))
                      if p > self.valve.positions]
            if beyond:
                raise ValueError(f"gas port(s) {beyond} beyond the valve's {self.valve.positions} positions")
            own = [i.id for i in self.instruments if "gas" in i.model_fields_set]
            if own:
                raise ValueError(f"instrument(s) {own} set their own gas table: with a valve the [gas] section decides")
        return self


def load_bench_config(path: str | Path) -> BenchConfig:
    """Load and validate a bench file; raises ghgnet.config.ConfigError."""
    return load_model(BenchConfig, path)
