"""Topic names of the contract: `ghg/v1/<station>/<kind>`, and the filters central subscribes to."""

from __future__ import annotations

import re

from .errors import BadTopic

TOPIC_ROOT = "ghg/v1"
BATCH_KINDS: tuple[str, ...] = ("minute", "calibration", "event", "emission", "flux")
UPLINK_KINDS: tuple[str, ...] = (*BATCH_KINDS, "status")
RAW_KINDS: tuple[str, ...] = ("raw", "raw_ack")
"""Raw readings (L0) archived at central (ghgnet/wire/raw.py): chunks up, their acks down. Not among
UPLINK_KINDS: central takes them on a path of their own (central/archive/), beside the records."""
ALL_KINDS: tuple[str, ...] = (*UPLINK_KINDS, "ack", "config", *RAW_KINDS)  # ack, config, raw_ack: central -> station
STATION_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"
_STATION_RE = re.compile(STATION_ID_PATTERN)


def check_station_id(station: str) -> str:
    if not isinstance(station, str) or not _STATION_RE.match(station):
        raise BadTopic(f"station id {station!r} is not lower case letters, digits, - and _ (max 32)")
    return station


def topic_for(station: str, kind: str) -> str:
    """`ghg/v1/<station>/<kind>` for kind in minute, calibration, event, emission, status, ack, config,
    raw, raw_ack."""
    check_station_id(station)
    if kind not in ALL_KINDS:
        raise BadTopic(f"unknown topic kind {kind!r}; known: {', '.join(ALL_KINDS)}")
    return f"{TOPIC_ROOT}/{station}/{kind}"


def parse_topic(topic: str) -> tuple[str, str]:
    """(station, kind) of a ghgnet topic; BadTopic names what is wrong with any other."""
    parts = topic.split("/")
    if len(parts) != 4 or f"{parts[0]}/{parts[1]}" != TOPIC_ROOT:
        raise BadTopic(f"topic {topic[:120]!r} is not {TOPIC_ROOT}/<station>/<kind>")
    station, kind = parts[2], parts[3]
    check_station_id(station)
    if kind not in ALL_KINDS:
        raise BadTopic(f"topic {topic[:120]!r}: unknown kind {kind!r}")
    return station, kind


def subscription_filters(shared_group: str | None = None) -> dict[str, str]:
    """The filters central subscribes to, by kind. Batch kinds go through `$share/<group>/` when a
    group is given; status never does, because MQTT 5 sends no retained messages to shared
    subscriptions and every receiver should know every station's state."""
    out = {}
    for kind in UPLINK_KINDS:
        f = f"{TOPIC_ROOT}/+/{kind}"
        if shared_group and kind != "status":
            f = f"$share/{shared_group}/{f}"
        out[kind] = f
    return out


def raw_subscription_filter(shared_group: str | None = None) -> str:
    """The filter central's raw archive subscribes to (through `$share/<group>/` when given)."""
    f = f"{TOPIC_ROOT}/+/raw"
    return f"$share/{shared_group}/{f}" if shared_group else f
