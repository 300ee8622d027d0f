"""Signing a station config and publishing it, retained, on `ghg/v1/<station>/config`, with a
log of what was pushed (`<signing key>.pushes.jsonl`) that also numbers the versions."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ghgnet.mqttlink import MqttConfig, make_client
from ghgnet.signed_config import SignedConfig, load_private_key, sign_config
from ghgnet.timeutil import iso_utc
from ghgnet.wire.topics import check_station_id, topic_for


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


def record_push(signing_key: Path, env: SignedConfig, source: Path | str, now: datetime, user: str) -> dict[str, Any]:
    row = {"time": iso_utc(now), "station": env.station, "version": env.version, "file": str(source),
           "sha256": hashlib.sha256(env.config.encode()).hexdigest(), "user": user}
    with open(push_log_path(signing_key), "a") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return row


MAX_CONFIG_BYTES = 1_000_000
"""A station config larger than this is refused before signing (the example is under 10 kB)."""

_push_lock = threading.Lock()  # one push at a time in this process: versions are numbered from the log


class PushRefused(ValueError):
    """A config central will not sign: `field` names what was wrong (station, config, station.id)."""

    def __init__(self, field: str, problem: str) -> None:
        self.field, self.problem = field, problem
        super().__init__(f"{field}: {problem}")


class PushFailed(RuntimeError):
    """A config that could not be pushed: the broker did not take it (or NoSigningKey)."""


class NoSigningKey(PushFailed):
    """Central has no signing key ([fleet] signing_key; `central-receiver keys init` makes it)."""


def check_config_text(station: str, text: str) -> dict[str, Any]:
    """What central checks before it signs, for the CLI and the operations pages alike: the station
    id, the size, the TOML itself (line and column of a syntax error) and that `[station] id` is
    the station it goes to. The full validation (`station-agent config check`) is the station's:
    central does not import the station's config model (tests/test_layout.py), and a config the
    station finds invalid comes back as a `config.refused` step naming the field."""
    try:
        check_station_id(station)
    except ValueError as exc:
        raise PushRefused("station", str(exc)) from None
    if len(text.encode()) > MAX_CONFIG_BYTES:
        raise PushRefused("config", f"{len(text.encode())} bytes, more than {MAX_CONFIG_BYTES}")
    if not text.strip():
        raise PushRefused("config", "empty")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PushRefused("config", f"not valid TOML: {exc}") from None
    table = doc.get("station")
    if not isinstance(table, dict):
        raise PushRefused("station", "the config has no [station] table")
    if table.get("id") != station:
        raise PushRefused("station.id", f"{str(table.get('id'))[:64]!r} in the config, but it is pushed to "
                                        f"station {station!r}")
    return doc


def push_config(cfg: Any, station: str, text: str, source: str, user: str, version: int | None = None,
                now: datetime | None = None, timeout_s: float = 30) -> dict[str, Any]:
    """Check, sign (central's key, [fleet] signing_key) and publish a station config, retained, on
    ghg/v1/<station>/config as [fleet] push_username (else [mqtt]'s user); log it and return the
    log's row. `cfg` is central's config (CentralConfig). The one implementation behind
    `central-receiver station config push` and POST /api/registry/{station}/config.
    PushRefused names the field at fault; PushFailed says why nothing was pushed."""
    check_config_text(station, text)
    key = Path(cfg.fleet.signing_key)
    if not key.exists():
        raise NoSigningKey(f"no signing key at {key} (central-receiver keys init)")
    mqtt = cfg.mqtt.model_copy()
    if cfg.fleet.push_username is not None:
        mqtt = mqtt.model_copy(update={"username": cfg.fleet.push_username, "password": None,
                                       "password_file": cfg.fleet.push_password_file, "client_id": None})
    client_id = mqtt.username or "ghgnet-config-push"
    with _push_lock:
        v = version if version is not None else next_version(key, station)
        now = now or datetime.now(UTC)
        env = signed(key, station, v, text, now)
        try:
            publish_retained(mqtt, client_id, topic_for(station, "config"), env.encode(), timeout_s)
        except RuntimeError as exc:
            raise PushFailed(str(exc)) from None
        except OSError as exc:
            raise PushFailed(f"cannot reach the broker at {mqtt.host}:{mqtt.effective_port}: {exc}") from None
        return record_push(key, env, source, now, user)


def config_history(signing_key: Path, station: str, events: list[Any]) -> dict[str, Any]:
    """A station's config versions: each push central logged (time, user, source, sha256) and each
    step the station reported for that version (its `config.*` events: received, applied, healthy,
    failed_health, rolled_back, refused_<why>, ...), oldest first; `steps` is every step in time order.
    A `rolled_back` step belongs to the version rolled back to (its message names the one that failed).
    Each version's `state` is its last step, "pushed" before any (see _state)."""
    steps = []
    for e in events:
        if not e.kind.startswith("config."):
            continue
        step = e.kind.removeprefix("config.")
        if step == "refused" and isinstance(e.data.get("reason"), str):
            step = e.data["reason"]
        v = e.data.get("version")
        steps.append({"time": iso_utc(e.time), "version": v if isinstance(v, int) else None, "step": step,
                      "severity": e.severity, "message": e.message})
    steps.sort(key=lambda s: s["time"])
    versions: dict[int, dict[str, Any]] = {}
    for p in pushes(signing_key, station):
        versions.setdefault(p["version"], {"version": p["version"], "pushes": [], "steps": []})["pushes"].append(
            {"time": p["time"], "user": p["user"], "source": p["file"], "sha256": p["sha256"]})
    for s in steps:
        if s["version"] is not None:
            versions.setdefault(s["version"], {"version": s["version"], "pushes": [], "steps": []})["steps"].append(
                {k: s[k] for k in ("time", "step", "severity", "message")})
    rows = [dict(v, state=_state(v["steps"])) for _, v in sorted(versions.items())]
    return {"station": station, "versions": rows, "steps": steps}


def _state(steps: list[dict[str, Any]]) -> str:
    """A version's last step, leaving out a `refused_replay` after others: a station that restarts
    (to apply the version, or later) is handed the retained copy again and refuses it as a replay,
    which leaves the version as it was (healthy, rolled back, ...)."""
    kept = [s["step"] for s in steps if s["step"] != "refused_replay"] or [s["step"] for s in steps]
    return kept[-1] if kept else "pushed"
