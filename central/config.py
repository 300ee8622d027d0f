"""Central's configuration (TOML), validated by pydantic; see configs/central.example.toml."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from station_agent.configbase import RelPath, StrictModel, load_model
from station_agent.wire import DEFAULT_MAX_PAYLOAD_BYTES


class CentralInfo(StrictModel):
    name: str = Field(default="ghgnet", description="network name, shown by status and the dashboard")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class TlsConfig(StrictModel):
    """TLS to the broker. `enabled` unset means: on for any non-loopback host."""

    enabled: bool | None = None
    ca: RelPath | None = Field(default=None, description="CA certificate (PEM); unset: system CAs")
    cert: RelPath | None = Field(default=None, description="client certificate (PEM)")
    key: RelPath | None = Field(default=None, description="client key (PEM)")

    @model_validator(mode="after")
    def _pair(self) -> TlsConfig:
        if (self.cert is None) != (self.key is None):
            raise ValueError("cert and key go together: give both or neither")
        return self


class MqttConfig(StrictModel):
    host: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=1, le=65535, description="unset: 8883 with TLS, else 1883")
    client_id: str = Field(default="ghgnet-central", min_length=1, max_length=64)
    username: str | None = None
    password: str | None = None
    password_file: RelPath | None = Field(default=None, description="file holding the password")
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    session_expiry_s: int = Field(
        default=7 * 86400, ge=0, le=0xFFFFFFFF,
        description="how long the broker keeps central's session (queued messages) while it is away",
    )
    tls: TlsConfig = Field(default_factory=TlsConfig)

    @model_validator(mode="after")
    def _one_password(self) -> MqttConfig:
        if self.password is not None and self.password_file is not None:
            raise ValueError("give password or password_file, not both")
        return self

    @property
    def tls_enabled(self) -> bool:
        return self.tls.enabled if self.tls.enabled is not None else not is_loopback(self.host)

    @property
    def effective_port(self) -> int:
        return self.port or (8883 if self.tls_enabled else 1883)

    def effective_password(self) -> str | None:
        if self.password_file is not None:
            return self.password_file.read_text().strip()
        return self.password


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
    retry_initial_s: float = Field(default=0.2, gt=0, description="first wait after a storage error")
    retry_max_s: float = Field(default=10.0, gt=0)


class LoggingConfig(StrictModel):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class CentralConfig(StrictModel):
    central: CentralInfo = Field(default_factory=CentralInfo)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)


def load_central_config(path: str | Path) -> CentralConfig:
    """Raises station_agent.configbase.ConfigError with `FILE: field.path: message` lines."""
    return load_model(CentralConfig, path)
