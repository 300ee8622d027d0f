"""Vetting a config central pushed: signature, station, version, then the same validation as
`station-agent config check`. Returns the config and its text, or a Refusal naming why."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ghgnet.config import ConfigError
from ghgnet.signed_config import SignatureError, SignedConfig, load_public_key, parse_signed_config, verify_config
from station_agent.config import StationConfigBase, load_station_config
from station_agent.fleet.config_history import ConfigHistory, write_atomically


@dataclass(frozen=True)
class Refusal(Exception):
    step: str  # refused_signature, refused_station, refused_replay, refused_pinned, refused_invalid
    version: int
    message: str


@dataclass(frozen=True)
class Accepted:
    envelope: SignedConfig
    config: StationConfigBase


def candidate_path(config_path: Path) -> Path:
    """Where a pushed config is checked: beside the live one, so its relative paths mean the same."""
    return config_path.with_name(f".{config_path.name}.candidate")


def vet(payload: bytes, station: str, public_key: str, history: ConfigHistory, config_path: Path,
        now: datetime) -> Accepted:
    """The pushed config, verified and validated; Refusal otherwise (nothing is changed)."""
    try:
        env = parse_signed_config(payload)
        verify_config(env, load_public_key(public_key))
    except SignatureError as exc:
        raise Refusal("refused_signature", _version_of(payload), str(exc)) from None
    if env.station != station:
        raise Refusal("refused_station", env.version, f"config version {env.version} is for station "
                      f"{env.station!r}, this is {station!r}")
    seen = history.highest_seen()
    if env.version <= seen:
        raise Refusal("refused_replay", env.version,
                      f"config version {env.version} is not newer than version {seen} already seen (a replay?)")
    pinned = history.pinned()
    if pinned is not None:
        raise Refusal("refused_pinned", env.version,
                      f"config version {env.version} not applied: the technician pinned version {pinned}")
    history.note(now, env.version, "verified", f"signed by central, issued {env.issued.isoformat()}")
    cand = candidate_path(config_path)
    write_atomically(cand, env.config.encode())
    try:
        cfg = load_station_config(cand)
    except ConfigError as exc:
        lines = [line.replace(str(cand), f"v{env.version}") for line in exc.lines]
        raise Refusal("refused_invalid", env.version, "; ".join(lines)) from None
    finally:
        cand.unlink(missing_ok=True)
    if cfg.station.id != station:
        raise Refusal("refused_invalid", env.version,
                      f"v{env.version}: station.id: {cfg.station.id!r} is not this station ({station!r})")
    return Accepted(env, cfg)


def _version_of(payload: bytes) -> int:
    """The version an unverifiable envelope claims, for the event only (0 when it names none)."""
    try:
        v = json.loads(payload).get("version")
    except (ValueError, AttributeError):
        return 0
    return v if isinstance(v, int) else 0
