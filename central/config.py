"""Central's configuration (TOML), validated by pydantic; see configs/central.example.toml."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from ghgnet import species
from ghgnet.config import RelPath, StrictModel, load_model
from ghgnet.mqttlink import MqttConfig as StationMqttConfig
from ghgnet.wire import DEFAULT_MAX_PAYLOAD_BYTES

from .alarms.config import AlarmsConfig
from .fleet.fleet_config import FleetConfig
from .hj212.config import Hj212Config
from .medium_precision.config import MediumPrecisionSite


class CentralInfo(StrictModel):
    name: str = Field(default="ghgnet", description="network name, shown by status and the dashboard")


class MqttConfig(StationMqttConfig):
    """The shared broker settings (ghgnet.mqttlink), with central's own client id default:
    the user name, which is the client id the shipped broker config gives it anyway
    (use_username_as_clientid in configs/mosquitto/mosquitto.conf)."""

    client_id: str = Field(default="ghgnet-central", min_length=1, max_length=64,
                           description="default: the user name, else ghgnet-central")

    @model_validator(mode="before")
    @classmethod
    def _client_id_is_username(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("client_id") is None and data.get("username"):
            return {**data, "client_id": data["username"]}
        return data


class StorageConfig(StrictModel):
    backend: Literal["sqlite", "postgresql"] = "sqlite"
    path: RelPath = Field(default=Path("data/central.sqlite"), description="SQLite file (backend sqlite)")
    dsn: str | None = Field(default=None, description="libpq connection string (backend postgresql)")
    schema_name: str = Field(default="public", alias="schema", description="PostgreSQL schema")
    dead_letter_keep_bytes: int = Field(default=65_536, ge=0, description="bytes of a refused payload kept")

    @model_validator(mode="after")
    def _dsn_for_pg(self) -> StorageConfig:
        if self.backend == "postgresql" and not self.dsn:
            raise ValueError("backend postgresql needs dsn")
        return self


class IngestConfig(StrictModel):
    shared_group: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="subscribe through $share/<group>/ so several receivers split the load",
    )
    max_payload_bytes: int = Field(default=DEFAULT_MAX_PAYLOAD_BYTES, ge=1024)
    queue_size: int = Field(
        default=256, ge=1, le=65535,
        description="messages between the MQTT thread and the storage thread; also the MQTT receive "
        "maximum, so the broker never sends more unacknowledged messages than fit",
    )
    commit_max_messages: int = Field(default=64, ge=1, description="messages stored per transaction at most")
    commit_max_wait_ms: float = Field(
        default=5.0, ge=0, description="how long to wait for more messages before committing"
    )
    decode_process: bool = Field(
        default=True,
        description="validate messages and build their rows in a child process, beside storage "
        "(central/decoder.py); false: in a thread of the receiver's own process",
    )
    future_tolerance_s: float = Field(
        default=3600.0, gt=0,
        description="how far beyond central's clock a record or status may be stamped; later ones are "
        "dead-lettered (time_in_future): a record acknowledged, a status whole",
    )
    retry_initial_s: float = Field(default=0.2, gt=0, description="first wait after a storage error")
    retry_max_s: float = Field(default=10.0, gt=0)


class LoggingConfig(StrictModel):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class StationMeta(StrictModel):
    """What central knows of a station beyond its data (ObsPack/ICOS metadata, QC roles)."""

    name: str | None = None
    timezone: str = Field(default="UTC", description="IANA zone of the station's local time (afternoon means)")
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    altitude_m: float | None = Field(default=None, description="ground elevation above sea level (m)")
    role: Literal["background", "urban", "other"] = Field(
        default="other", description="background stations are compared with each other")
    inlet_heights_m: dict[str, float] = Field(
        default_factory=dict,
        description="intake height per inlet name (without 'inlet:'); unset: read from the name, e.g. 100m")
    long_term_targets: list[str] = Field(
        default_factory=list,
        description="cylinders that are the long-term target; unset: a target run within 2 h after a "
        "calibration counts as long-term")
    instrument_id: str | None = Field(default=None, description="InstrumentId column of ICOS-like exports")

    @model_validator(mode="after")
    def _zone(self) -> StationMeta:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {self.timezone!r}") from None
        return self


class AggregateConfig(StrictModel):
    enabled: bool = Field(
        default=True,
        description="run the aggregation thread inside `central-receiver run` (with several receivers "
        "on one PostgreSQL they serialise through an advisory lock)")
    interval_s: float = Field(default=10.0, gt=0, description="how often dirty hours are recomputed")
    min_minutes_per_hour: int = Field(default=10, ge=1, le=60, description="fewer valid minutes: hour flag N")
    afternoon_start_h: int = Field(default=12, ge=0, le=23, description="local hour, inclusive")
    afternoon_end_h: int = Field(default=16, ge=1, le=24, description="local hour, exclusive")
    afternoon_min_hours: int = Field(default=2, ge=1, le=24)
    max_hours_per_pass: int = Field(default=48, ge=1, description="dirty hours recomputed per transaction")

    @model_validator(mode="after")
    def _window(self) -> AggregateConfig:
        if self.afternoon_end_h <= self.afternoon_start_h:
            raise ValueError("afternoon_end_h must be after afternoon_start_h")
        return self


class SpikeConfig(StrictModel):
    enabled: bool = True
    alpha: float = Field(default=2.5, gt=0, description="threshold in local standard deviations")
    beta: dict[str, float] = Field(
        default_factory=lambda: {"co2": 0.1, "ch4": 1.0, "co": 2.0, "n2o": 0.1},
        description="threshold floor per species (its unit); species not listed: 0")
    half_window_min: int = Field(default=30, ge=2, le=720)
    max_iterations: int = Field(default=10, ge=1, le=100)
    min_neighbours: int = Field(default=10, ge=2)
    positive_only: bool = Field(default=False, description="flag only upward spikes (local sources)")


class QcConfig(StrictModel):
    goals: dict[str, float] = Field(
        default_factory=species.goals,
        description="compatibility goals (CO2 ppm; CH4, CO, N2O ppb): target bias, drift, residuals, "
        "cross-station offsets are judged against them")
    drift_reference: dict[str, float] = Field(
        default_factory=species.references,
        description="level at which successive calibration fits are compared")
    spikes: SpikeConfig = Field(default_factory=SpikeConfig)


class HealthConfig(StrictModel):
    down_after_intervals: float = Field(default=2.0, gt=0, description="missed status intervals before down")
    default_interval_s: float = Field(default=60.0, gt=0, description="for a status without interval_s")


class ServeConfig(StrictModel):
    """The operations center (`central-receiver serve`, central/web/)."""

    host: str = Field(default="127.0.0.1", description="listen address; loopback unless told otherwise")
    port: int = Field(default=8087, ge=0, le=65535)
    certfile: RelPath | None = Field(default=None, description="TLS certificate chain (PEM); with keyfile: HTTPS")
    keyfile: RelPath | None = Field(default=None, description="TLS private key (PEM)")
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30, description="a browser login lasts this long")

    @model_validator(mode="after")
    def _tls_pair(self) -> ServeConfig:
        if (self.certfile is None) != (self.keyfile is None):
            raise ValueError("certfile and keyfile go together")
        return self


class MetricsConfig(StrictModel):
    enabled: bool = Field(default=False, description="serve Prometheus metrics from `central-receiver run`")
    host: str = "127.0.0.1"
    port: int = Field(default=9108, ge=0, le=65535, description="0: any free port")


class ArchiveConfig(StrictModel):
    """`[archive]`: the raw readings (L0) central keeps for reprocessing (central/archive/)."""

    enabled: bool = Field(
        default=True,
        description="take the stations' raw-reading chunks (ghg/v1/<station>/raw) into the raw_chunk table")
    raw_retention_days: float = Field(
        default=400.0, gt=0,
        description="days of raw readings kept, counted from a chunk's end (a year and a margin: a "
        "cylinder revised months later can still be reprocessed from L0)")
    prune_interval_s: float = Field(default=3600.0, gt=0, description="real seconds between retention passes")
    max_inflated_bytes: int = Field(
        default=64 << 20, ge=65_536,
        description="the most a chunk's body may inflate to; a larger one is dead-lettered (oversize)")


class CentralConfig(StrictModel):
    central: CentralInfo = Field(default_factory=CentralInfo)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    stations: dict[str, StationMeta] = Field(default_factory=dict, description="per station id")
    aggregate: AggregateConfig = Field(default_factory=AggregateConfig)
    qc: QcConfig = Field(default_factory=QcConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    hj212: Hj212Config | None = Field(default=None, description="listen for HJ 212 data loggers (central/hj212/)")
    alarms: AlarmsConfig = Field(default_factory=AlarmsConfig, description="alarm rules and notifications")
    metrics: MetricsConfig = Field(default_factory=MetricsConfig, description="Prometheus metrics of the receiver")
    fleet: FleetConfig = Field(default_factory=FleetConfig, description="signed station configs (central/fleet/)")
    medium_precision: list[MediumPrecisionSite] = Field(
        default_factory=list, description="medium-precision sensors calibrated against the high-precision "
        "network (central/medium_precision/)")

    @model_validator(mode="after")
    def _medium_precision_once(self) -> CentralConfig:
        keys = [(m.site, m.device, m.species) for m in self.medium_precision]
        twice = sorted({k for k in keys if keys.count(k) > 1})
        if twice:
            raise ValueError(f"medium_precision: site/device/species given twice: {twice}")
        return self
    archive: ArchiveConfig = Field(default_factory=ArchiveConfig,
                                   description="the stations' raw readings (L0) kept for reprocessing")

    def station(self, station: str) -> StationMeta:
        """The station's metadata; defaults for a station not in the config."""
        return self.stations.get(station) or StationMeta()


def load_central_config(path: str | Path) -> CentralConfig:
    """Raises ghgnet.config.ConfigError with `FILE: field.path: message` lines."""
    return load_model(CentralConfig, path)
