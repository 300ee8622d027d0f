"""MQTT connection settings and the paho client built from them, for both sides of the link.

MQTT v5 with a persistent session (clean_start False, an explicit session expiry), TLS and
credentials from configuration; TLS is on by default for any broker that is not on loopback.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import Field, model_validator

from ghgnet.config import RelPath, StrictModel


class TlsConfig(StrictModel):
    """TLS to the broker. `enabled` unset means: on for any broker that is not on loopback."""

    enabled: bool | None = Field(
        default=None, description="default: on unless the broker host is on loopback"
    )
    ca: RelPath | None = Field(default=None, description="CA certificate (PEM); default: system CAs")
    cert: RelPath | None = Field(default=None, description="client certificate (PEM), for cert auth")
    key: RelPath | None = Field(default=None, description="client key (PEM)")
    insecure: bool = Field(default=False, description="skip hostname verification (tests only)")

    @model_validator(mode="after")
    def _pair(self) -> "TlsConfig":
        if (self.cert is None) != (self.key is None):
            raise ValueError("cert and key go together: give both or neither")
        return self


class MqttConfig(StrictModel):
    """A broker connection, the same for a station and for central (`[mqtt]` in both configs)."""

    host: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=1, le=65535, description="unset: 8883 with TLS, else 1883")
    client_id: str | None = Field(default=None, max_length=64,
                                  description="default: the station id, or central's user name (the broker binds client ids to user names)")
    username: str | None = None
    password: str | None = None
    password_file: RelPath | None = Field(default=None, description="file holding the password")
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    session_expiry_s: int = Field(
        default=7 * 86400, ge=0, le=0xFFFFFFFF,
        description="how long the broker keeps the session (and queued messages) while we are away",
    )
    tls: TlsConfig = Field(default_factory=TlsConfig)

    @model_validator(mode="after")
    def _one_password(self) -> "MqttConfig":
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
            return Path(self.password_file).read_text().strip()
        return self.password


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_client(cfg: MqttConfig, client_id: str, **options) -> mqtt.Client:
    """A paho client for MQTT v5 with the configured credentials and TLS (not yet connected).
    `options` go to paho's constructor (e.g. manual_ack=True)."""
    client = mqtt.Client(
        callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
        client_id=cfg.client_id or client_id,
        protocol=mqtt.MQTTv5,
        **options,
    )
    client.on_socket_open = _no_delay
    if cfg.username is not None:
        client.username_pw_set(cfg.username, cfg.effective_password())
    if cfg.tls_enabled:
        client.tls_set(
            ca_certs=str(cfg.tls.ca) if cfg.tls.ca else None,
            certfile=str(cfg.tls.cert) if cfg.tls.cert else None,
            keyfile=str(cfg.tls.key) if cfg.tls.key else None,
            cert_reqs=ssl.CERT_REQUIRED,
        )
        if cfg.tls.insecure:
            client.tls_insecure_set(True)
    return client


def _no_delay(client: mqtt.Client, userdata: object, sock: socket.socket) -> None:
    """Small packets (acks, PUBACKs) leave at once. With Nagle's algorithm on (paho leaves it on),
    the kernel holds a small packet back while an earlier one is unacknowledged, and the peer's
    delayed ACK makes that up to 40 ms: central's acks reached the station in bunches, tens of ms
    late (tests/benchmarks/replay.py). The broker's config sets the same (set_tcp_nodelay)."""
    if hasattr(sock, "setsockopt"):  # a TCP socket, plain or TLS
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def connect_properties(cfg: MqttConfig, receive_maximum: int | None = None) -> Properties:
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = cfg.session_expiry_s
    if receive_maximum is not None:
        props.ReceiveMaximum = receive_maximum
    return props
