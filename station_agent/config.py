"""The station's configuration (TOML), validated by pydantic.

Device tables are validated by the config model of the driver they name, so a driver brings its own
fields; an unknown driver name is an error that lists the known ones.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, Field, field_validator, model_validator

from drivers.registry import all_drivers
from ghgnet.config import ConfigError, RelPath, StrictModel, long_texts, read_toml, validate_model
from ghgnet.mqttlink import MqttConfig
from ghgnet.processing import scales
from ghgnet.processing.uncertainty import WATER_RELATIVE_U
from station_agent.acquisition.flux_recorder import FluxStationConfig
from station_agent.emission.config import CemsConfig
from station_agent.fleet.fleet_config import FleetConfig
from station_agent.forwarding.forwarder import ForwardingConfig
from station_agent.forwarding.hj212_config import UplinkConfig, check_uplinks
from station_agent.forwarding.raw_upload import RawUploadConfig
from station_agent.sequencing.sampling_config import CylinderConfig, SamplingConfig

STATION_ID = r"^[a-z0-9][a-z0-9_-]{0,31}$"
MAX_CONFIG_TEXT = 1024
"""Characters of any text in a station config (fields with their own limit have a smaller one)."""


class StationInfo(StrictModel):
    id: str = Field(pattern=STATION_ID, description="station id: lower case, digits, - and _")
    name: str = Field(default="", max_length=200, description="the station's name, for people")
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    altitude_m: float | None = Field(default=None, description="ground altitude above sea level, m")
    timezone: str = Field(default="UTC", description="local zone, for local-time reports only")


class StorageConfig(StrictModel):
    path: RelPath = Field(default=Path("data/station.sqlite"), description="SQLite database file")
    raw_retention_days: float = Field(default=30.0, gt=0, description="days of raw (L0) readings kept")
    disk_floor_mb: float = Field(
        default=500.0, ge=0,
        description="free space to keep on the data disk; below it raw readings, then acknowledged "
        "records, are deleted oldest first (never unacknowledged ones), with an event and an alarm",
    )
    quota_mb: float | None = Field(
        default=None, gt=0, description="largest database size; the same policy applies above it"
    )


class StationForwardingConfig(ForwardingConfig):
    """`[forwarding]`, with `[forwarding.raw]`: the raw readings archived at central."""

    raw: RawUploadConfig = Field(default_factory=RawUploadConfig,
                                 description="upload of the raw readings (L0) to central, after the minute data")


Window = tuple[float, float]
AUX_SOURCE = r"^[A-Za-z0-9][A-Za-z0-9_.-]*:[A-Za-z0-9_]+$"


class ProcessingConfig(StrictModel):
    """Limits for turning raw readings into flagged minute records."""

    min_samples: int = Field(default=10, ge=1, description="fewer valid samples -> too_few_samples")
    max_std: dict[str, float] = Field(
        default_factory=lambda: {"co2": 0.5, "ch4": 5.0, "co": 15.0, "n2o": 1.0},
        description="per species, minute std above this -> std_too_high (species units)",
    )
    ranges: dict[str, Window] = Field(
        default_factory=lambda: {
            "co2": (300.0, 1500.0),
            "ch4": (1500.0, 20000.0),
            "co": (0.0, 20000.0),
            "n2o": (250.0, 500.0),
            "h2o": (0.0, 8.0),
        },
        description="per quantity, plausible range; samples outside -> out_of_range",
    )
    cavity_pressure_torr: Window = (139.5, 140.5)
    cavity_temp_c: Window = (44.8, 45.2)
    close_after_s: float = Field(
        default=20.0,
        gt=0,
        description="a minute is closed once its end is this many seconds past with no newer data",
    )
    water_u_relative: float = Field(
        default=WATER_RELATIVE_U, ge=0, le=1,
        description="standard uncertainty of the water correction, fraction of the correction applied "
                    "(default from Rella et al. 2013; ghgnet.processing.uncertainty)",
    )
    auxiliary: list[Annotated[str, Field(pattern=AUX_SOURCE, max_length=64)]] = Field(
        default_factory=list,
        description='"device:quantity" of [[devices]] entries whose minute means every analyzer\'s minute '
                    'carries as the diagnostic of that name (e.g. "met-1:humidity"; for central\'s '
                    '[[medium_precision]] environment); no valid reading in the minute: absent',
    )

    @field_validator("ranges", "cavity_pressure_torr", "cavity_temp_c")
    @classmethod
    def _ordered(cls, v: Any) -> Any:
        windows = v.values() if isinstance(v, dict) else [v]
        for lo, hi in windows:
            if lo >= hi:
                raise ValueError(f"window ({lo}, {hi}) must have low < high")
        return v


class LoggingConfig(StrictModel):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = Field(
        default="auto", description="auto: JSON lines unless stdout is a terminal"
    )


class ControlConfig(StrictModel):
    socket: RelPath | None = Field(
        default=None, description="control socket for the CLI; default: agent.sock beside the database"
    )


class MetricsConfig(StrictModel):
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=9464, ge=0, le=65535, description="Prometheus endpoint port (0 = any free)")


def _known_scales(cylinder: CylinderConfig) -> CylinderConfig:
    """Each assigned value's scale must be one the fits can use: a known scale of its species, the
    current one or one with a checked conversion to it (ghgnet.processing.scales)."""
    for sp, name in cylinder.scales().items():
        try:
            scales.check(sp, name)
        except ValueError as exc:
            raise ValueError(f"scale.{sp}: {exc}") from None
    return cylinder


class StationConfigBase(StrictModel):
    station: StationInfo
    storage: StorageConfig = Field(default_factory=StorageConfig)
    processing: ProcessingConfig = Field(default_factory=ProcessingConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    mqtt: MqttConfig | None = Field(default=None, description="central's broker; none = no forwarding")
    forwarding: StationForwardingConfig = Field(default_factory=StationForwardingConfig)
    uplinks: list[UplinkConfig] = Field(
        default_factory=list, description="HJ 212 links to environmental monitoring platforms (national, provincial)")
    control: ControlConfig = Field(default_factory=ControlConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    fleet: FleetConfig = Field(default_factory=FleetConfig, description="remote configuration signed by central")
    sampling: SamplingConfig | None = Field(default=None, description="valve sequence; none = one inlet")
    cylinders: list[Annotated[CylinderConfig, AfterValidator(_known_scales)]] = Field(
        default_factory=list, description="cylinders declared here are added to the registry at start"
    )
    cems: CemsConfig | None = Field(default=None, description="a stack CEMS: emission minutes and hours")
    flux: FluxStationConfig | None = Field(default=None, description="eddy-covariance site: sonic + fast analyzer")

    def control_socket(self) -> Path:
        return Path(self.control.socket) if self.control.socket else Path(self.storage.path).parent / "agent.sock"

    def all_devices(self) -> list:
        return [*getattr(self, "analyzers", []), *getattr(self, "valves", []), *getattr(self, "devices", [])]

    @model_validator(mode="after")
    def _consistent(self) -> "StationConfigBase":
        seen: set[str] = set()
        for dev in self.all_devices():
            if dev.id in seen:
                raise ValueError(f"device id {dev.id!r} is used twice")
            seen.add(dev.id)
        if self.flux is not None:
            analyzers = {a.id for a in getattr(self, "analyzers", [])}
            for field in ("sonic", "analyzer"):
                if getattr(self.flux, field) not in analyzers:
                    raise ValueError(f"flux.{field} {getattr(self.flux, field)!r} is not one of the [[analyzers]]: "
                                     f"{sorted(analyzers)}")
        if self.sampling is not None:
            valves = {v.id for v in getattr(self, "valves", [])}
            missing = [v for v in self.sampling.valve_ids() if v not in valves]
            if missing:
                raise ValueError(
                    f"sampling.valve {', '.join(map(repr, missing))} is not one of the [[valves]]: "
                    f"{sorted(valves) or '(none)'}"
                )
            analyzers = {a.id for a in getattr(self, "analyzers", [])}
            fed = set(self.sampling.analyzers) if self.sampling.analyzers is not None else analyzers
            unknown = sorted((fed | set(self.sampling.own_lines)) - analyzers)
            if unknown:
                raise ValueError(f"sampling: analyzer(s) {unknown} are not [[analyzers]]: {sorted(analyzers)}")
            both = sorted(fed & set(self.sampling.own_lines))
            if both:
                raise ValueError(f"sampling: analyzer(s) {both} are on the valve's manifold and on an own line")
            devices = {d.id for d in getattr(self, "devices", [])}
            for il in self.sampling.interlocks:
                if il.device not in devices:
                    raise ValueError(f"interlock device {il.device!r} is not one of the [[devices]]")
        devices = {d.id for d in getattr(self, "devices", [])}
        for a in getattr(self, "analyzers", []):
            sources = dict(getattr(a, "compensation", None) or {})
            unknown = sorted({src.partition(":")[0] for src in sources.values()} - devices)
            if unknown:
                raise ValueError(f"analyzer {a.id}: compensation source device(s) {unknown} are not "
                                 f"[[devices]]: {sorted(devices) or '(none)'}")
        self._check_auxiliary()
        check_uplinks(self.uplinks)
        if self.cems is not None:
            unknown = sorted(self.cems.devices() - devices)
            if unknown:
                raise ValueError(f"cems.inputs: device(s) {unknown} are not [[devices]]: {sorted(devices) or '(none)'}")
        ids = [c.id for c in self.cylinders]
        if len(set(ids)) != len(ids):
            raise ValueError("a cylinder id is declared twice")
        return self

    def _check_auxiliary(self) -> None:
        """Each `processing.auxiliary` entry names a [[devices]] entry and, where the device lists
        its quantities (a register map's points), one of them."""
        devices = {d.id: d for d in getattr(self, "devices", [])}
        for i, source in enumerate(self.processing.auxiliary):
            device, _, quantity = source.partition(":")
            dev = devices.get(device)
            if dev is None:
                raise ValueError(f"processing.auxiliary[{i}] {source!r}: device {device!r} is not one of the "
                                 f"[[devices]]: {sorted(devices) or '(none)'}")
            points = [p.name for p in getattr(dev, "points", None) or []]
            if points and quantity not in points:
                raise ValueError(f"processing.auxiliary[{i}] {source!r}: device {device} has no quantity "
                                 f"{quantity!r}; its points: {points}")


def _union(kind: str):
    configs = []
    for cls in all_drivers().values():
        if cls.kind == kind and cls.Config not in configs:
            configs.append(cls.Config)
    if not configs:
        return None
    if len(configs) == 1:
        return configs[0]
    return Annotated[Union[tuple(configs)], Field(discriminator="driver")]  # noqa: UP007


@cache
def station_model() -> type[StationConfigBase]:
    """The StationConfig class, with device tables typed by the registered drivers' configs:
    `[[analyzers]]`, `[[valves]]` and `[[devices]]` (Modbus and other auxiliary devices)."""
    annotations: dict = {}
    namespace: dict = {"__module__": __name__}
    for table, kind, what in (("analyzers", "analyzer", "gas analyzers"), ("valves", "valve", "stream selectors"),
                              ("devices", "modbus", "auxiliary devices (flow, pressure, relays)")):
        union = _union(kind)
        if union is None:
            continue
        annotations[table] = list[union]  # type: ignore[valid-type]
        namespace[table] = Field(default_factory=list, description=what)
    if "analyzers" not in annotations:
        raise RuntimeError("no analyzer drivers are registered (is ghgnet installed?)")
    namespace["__annotations__"] = annotations
    return type("StationConfig", (StationConfigBase,), namespace)


def driver_tags() -> frozenset[str]:
    return frozenset(all_drivers())


def load_station_config(path: str | Path) -> StationConfigBase:
    """Load and validate a station config file; raises ConfigError naming each problem. Every
    text in it (a value or a key) is at most MAX_CONFIG_TEXT characters, whatever its field."""
    path = Path(path)
    data = read_toml(path)
    too_long = long_texts(data, MAX_CONFIG_TEXT)
    if too_long:
        raise ConfigError([f"{path}: {line}" for line in too_long])
    return validate_model(station_model(), data, str(path), path.resolve().parent, drop_tags=driver_tags())


def station_schema() -> dict[str, Any]:
    return station_model().model_json_schema()
