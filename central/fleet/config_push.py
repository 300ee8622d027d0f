"""Signing a station config and publishing it, retained, on `ghg/v1/<station>/config`, with a
log of what was pushed (`<signing key>.pushes.jsonl`) that also numbers the versions."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from ghgnet.mqttlink import MqttConfig, make_client
from ghgnet.signed_config import SignedConfig, load_private_key, sign_config
from ghgnet.timeutil import iso_utc


def push_log_path(signing_key: Path) -> Path:
    return Path(f"{signing_key}.pushes.jsonl")


def pushes(signing_key: Path, station: str | None = None) -> list[dict[str, Any]]:
    path = push_log_path(signing_key)
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if station is None or r["station"] == station]


def next_version(signing_key: Path, station: str) -> int:
    """One above the last version pushed to the station (1 for the first)."""
    return max((r["version"] for r in pushes(signing_key, station)), default=0) + 1


def signed(signing_key: Path, station: str, version: int, text: str, now: datetime) -> SignedConfig:
    return sign_config(load_private_key(signing_key), station, version, now, text)


def publish_retained(mqtt_cfg: MqttConfig, client_id: str, topic: str, payload: bytes, timeout_s: float = 30) -> None:
    """Publish once, retained, QoS 1, and wait for the broker's PUBACK; RuntimeError names a failure."""
    client = make_client(mqtt_cfg, client_id)
    failure: list[str] = []
    answered = threading.Event()  # set by the PUBACK, with its reason code already read

    def on_publish(c, u, mid, rc, props) -> None:
        if rc.is_failure:
            failure.append(str(rc))
        answered.set()

    client.on_publish = on_publish
    client.connect(mqtt_cfg.host, mqtt_cfg.effective_port, keepalive=mqtt_cfg.keepalive_s)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1, retain=True)
        if not answered.wait(timeout_s):
            raise RuntimeError(f"the broker at {mqtt_cfg.host}:{mqtt_cfg.effective_port} did not take "
                               f"{topic} within {timeout_s:g} s")
        if failure:
            raise RuntimeError(f"the broker refused {topic}: {failure[0]} (ACL: the pushing user needs "
                               "`topic write ghg/v1/+/config`)")
    finally:
        client.disconnect()
        client.loop_stop()


def record_push(signing_key: Path, env: SignedConfig, source: Path, now: datetime, user: str) -> dict[str, Any]:
    row = {"time": iso_utc(now), "station": env.station, "version": env.version, "file": str(source),
           "sha256": hashlib.sha256(env.config.encode()).hexdigest(), "user": user}
    with open(push_log_path(signing_key), "a") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return row
