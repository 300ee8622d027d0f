"""Store-and-forward to central over MQTT v5: nothing lost, nothing counted twice.

A record leaves the outbox only when central's ack on `ghg/v1/<station>/ack` covers its seq: a
broker's PUBACK is not a guarantee (mosquitto acknowledges QoS 1 to an offline persistent
subscriber and loses it on SIGKILL). Central stores idempotently by (station, store, seq), so
sending a record again is always safe; losing one never is.

The forwarder thread reads the outbox through its own read-only connection and never writes:
acks go to the store writer. Sending order: records that arrive while we are connected ("live")
go first; the backlog that was waiting when the link came back is replayed in seq order behind
them, at a configurable rate. A bounded window limits records sent but not yet acknowledged.
PUBACK reason codes are checked: a denied publish (ACL) is a fault event, and its records simply
stay in the outbox. Timing of the link (ack timeout, replay rate, status interval) is in real
seconds: the network does not run faster with --speed.

Every batch names the database it comes from (`store`, StationStore.store_id), and an ack that
names another store is ignored: a replaced database starts again at seq 1, and an old ack must not
take its new records out of the outbox.

Messages are bounded in bytes (`max_message_bytes`, and the broker's Maximum Packet Size when its
CONNACK gives one). No record may stop the ones behind it ("poison"): a record too big for any
message is set aside before it is sent; a message the broker refuses for what it holds (a PUBACK
failure other than a denial such as an ACL's) is split in halves down to the record, which is then
set aside; messages in flight when the connection drops are sent again one at a time, halved each
time the connection drops with one of them alone in flight, and a record alone in flight at
`set_aside_after_drops` drops is set aside. Set aside means moved from the outbox to the
set-aside table by the store writer, with an alarm event, in one transaction: kept, never deleted,
and back in the outbox with `station-agent set-aside retry` (`rewind` here).
"""

from __future__ import annotations

import json
import math
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import Field, model_validator

from ghgnet import __version__
from ghgnet.clock import Clock
from ghgnet.config import RelPath, StrictModel
from ghgnet.mqttlink import MqttConfig, connect_properties, make_client
from ghgnet.records import Event
from ghgnet.timeutil import iso_utc, parse_utc
from ghgnet.wire import (
    BATCH_KINDS,
    ENCODINGS,
    MAX_SEQ,
    SCHEMA_VERSION,
    BatchEncoder,
    LeanEncoder,
    WireError,
    parse_ack,
    topic_for,
)
from station_agent.faults import FaultTracker
from station_agent.storage.store import StationStore, StoreError

DEFAULT_MAX_MESSAGE_BYTES = 786_432
"""768 KiB: below mosquitto's shipped message_size_limit (1 MiB, configs/mosquitto/mosquitto.conf)."""
RECORD_OVERHEAD = 27
"""Bytes a stored record gains in a batch: `{"seq":` with up to 19 digits, a comma, a separator."""
ENVELOPE_OVERHEAD = 64
"""Bytes of a batch beyond its per-kind head and its records: the sent time and the closing."""
SYSTEMIC_REFUSALS = frozenset({0x87, 0x90, 0x91, 0x97})
"""PUBACK reasons that refuse the sender or the topic, not the message (not authorized, topic name
invalid, packet id in use, quota exceeded): its records wait in the outbox, none is set aside."""
DROP_EVIDENCE_S = 10.0
"""A drop counts against a message alone in flight only this soon (real s) after it went out: a
broker drops an oversized packet at once, a failing link is noticed only after a keepalive."""


def mqtt_packet_overhead(topic: str, content_type: str | None = None) -> int:
    """Bytes of an MQTT 5 QoS 1 PUBLISH beyond its payload: fixed header and remaining length (up
    to 5), the topic with its length (2), the packet id (2), properties length (1), and the Content
    Type property when there is one (identifier 1, length 2, the text)."""
    return 10 + len(topic.encode()) + (0 if content_type is None else 3 + len(content_type.encode()))


class ForwardingConfig(StrictModel):
    enabled: bool = True
    batch_size: int = Field(default=500, ge=1, le=5000, description="records per MQTT message")
    max_inflight_messages: int = Field(default=32, ge=1, le=1000, description="messages awaiting PUBACK")
    window_records: int = Field(
        default=40000, ge=1, description="records sent and not yet acknowledged by central"
    )
    ack_timeout_s: float = Field(
        default=60.0, gt=0, description="real seconds before an unacknowledged record is sent again"
    )
    replay_rate: float = Field(
        default=5000.0, ge=0, description="backlog records per real second; 0 = no limit"
    )
    status_interval_s: float = Field(
        default=30.0, gt=0, description="real seconds between retained status messages"
    )
    denied_backoff_s: float = Field(default=30.0, gt=0, description="pause after a denied publish")
    stop_drain_s: float = Field(
        default=10.0, ge=0,
        description="real seconds a stop waits for central to acknowledge what is queued (0: do not wait)",
    )
    max_message_bytes: int = Field(
        default=DEFAULT_MAX_MESSAGE_BYTES, ge=4096, le=268_435_455,
        description="largest MQTT message payload (bytes), at or below the broker's message_size_limit; a "
        "record that cannot fit one is set aside",
    )
    broker_config: RelPath | None = Field(
        default=None,
        description="central's broker config (mosquitto.conf, or a copy): `config check` refuses a "
        "max_message_bytes above its message_size_limit or max_packet_size",
    )
    set_aside_after_drops: int = Field(
        default=3, ge=1,
        description="a record alone in flight when the broker dropped the connection this many times is set aside",
    )
    encoding: Literal["json", "lean"] = Field(
        default="json",
        description="batch payloads: json, or lean for metered links (compact, announced by the MQTT v5 "
        "content type; central reads both)",
    )


    @model_validator(mode="after")
    def _within_the_broker(self) -> "ForwardingConfig":
        if self.broker_config is not None:
            limit, why = broker_payload_limit(Path(self.broker_config))
            if limit is not None and self.max_message_bytes > limit:
                raise ValueError(f"max_message_bytes {self.max_message_bytes} is above what the broker takes: {why}")
        return self


def broker_payload_limit(path: Path) -> tuple[int | None, str]:
    """The largest payload a mosquitto config lets through, and why: the smallest of its
    message_size_limit (payload bytes) and max_packet_size (whole packet, less the largest data
    topic's overhead), in the file and the `include_dir` folders it names; (None, why) when it sets
    neither (mosquitto's own limit, 256 MiB, is then the MQTT maximum)."""
    try:
        files = [path]
        limits: list[tuple[int, str]] = []
        while files:
            f = files.pop(0)
            for n, line in enumerate(f.read_text().splitlines(), 1):
                words = line.split("#", 1)[0].split()
                if len(words) != 2:
                    continue
                key, value = words
                if key == "include_dir":
                    files += sorted((f.parent / value).glob("*.conf"))
                elif key in ("message_size_limit", "max_packet_size") and value.isdigit() and int(value) > 0:
                    overhead = 0 if key == "message_size_limit" else mqtt_packet_overhead(
                        "ghg/v1/" + "x" * 32 + "/calibration")
                    limits.append((int(value) - overhead, f"{key} {value} ({f}:{n})"))
    except OSError as exc:
        raise ValueError(f"broker_config: cannot read {exc.filename}: {exc.strerror}") from None
    if not limits:
        return None, f"{path} sets no message_size_limit or max_packet_size"
    return min(limits)


class Forwarder:
    def __init__(
        self,
        station: str,
        mqtt_cfg: MqttConfig,
        cfg: ForwardingConfig,
        store_path,
        clock: Clock,
        acknowledge: Callable[[list[tuple[int, int]]], None],
        emit: Callable[[Event], None],
        log,
        details: Callable[[], dict[str, Any]] = dict,
        set_aside: Callable[[dict[int, str], Callable[[list[int]], None]], None] | None = None,
    ) -> None:
        """`acknowledge(ranges)` and `set_aside({seq: why}, then)` hand work to the store writer
        (which calls `then(seqs)` once they are out of the outbox)."""
        self.station = station
        self.mqtt_cfg = mqtt_cfg
        self.cfg = cfg
        self.store_path = store_path
        self.clock = clock
        self.acknowledge = acknowledge
        self.log = log.bind(component="forwarder")
        self.details = details
        self.faults = FaultTracker("mqtt", self.log, emit)
        self._inbox: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=100_000)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._connected = False
        self._awaiting: dict[int, float] = {}  # seq -> real time sent, until central acks it
        self._mids: dict[int, list[int]] = {}  # mid -> seqs, until the broker PUBACKs
        self._live_from = 0
        self._live_cursor = 0
        self._backlog_cursor = 0
        self._tokens = 0.0
        self._last_refill = time.monotonic()
        self._hold_until = 0.0
        self._denied_backoff = cfg.denied_backoff_s
        self._last_status = 0.0
        self._ack_sub_mid: int | None = None
        self._ack_subscribed = False
        self._resubscribe_at: float | None = None
        self._drain = threading.Event()
        self._drained = threading.Event()
        self.set_aside = set_aside
        self.store_id: str | None = None  # read from the database at start
        self._encoder: BatchEncoder | None = None  # built at start, once the store id is known
        self._lean: LeanEncoder | None = None  # the same, for encoding "lean"
        self._content_type = ENCODINGS[cfg.encoding]
        self._publish_props: Properties | None = None
        if self._content_type is not None:
            self._publish_props = Properties(PacketTypes.PUBLISH)
            self._publish_props.ContentType = self._content_type
        self._topics = {kind: topic_for(station, kind) for kind in BATCH_KINDS}
        self._payload_limit = cfg.max_message_bytes
        self._limit_why = f"forwarding.max_message_bytes {cfg.max_message_bytes}"
        self._room_bytes = 0  # bytes of records a batch may hold (set with the heads)
        self._setting_aside: set[int] = set()  # handed to the writer, until it has moved them
        self._suspects: dict[int, int] = {}  # seq -> most records in a message with it, until PUBACKed
        self._strikes: dict[int, int] = {}  # seq -> drops while it was alone in flight
        self._probe: tuple[int, float] | None = None  # (mid, real time sent) of a suspect message alone
        self.stats = {"published_records": 0, "published_messages": 0, "acked": 0, "denied": 0, "resent": 0,
                      "set_aside": 0, "foreign_acks": 0}
        self.ack_topic = topic_for(station, "ack")
        self.config_topic = topic_for(station, "config")
        self.on_config: Callable[[bytes], None] | None = None
        """Set before start to receive central's signed configs (station_agent/fleet); unset: not subscribed."""
        self.on_connected: Callable[[], None] | None = None
        self.on_other_puback: Callable[[int, Any], None] | None = None
        self.on_other_suback: Callable[[int, Any], None] | None = None
        """Hooks for another sender sharing this client (station_agent/forwarding/raw_upload.py), called
        on the forwarder thread: each (re)connection, and PUBACKs and SUBACKs of packets not the forwarder's."""
        self.client = make_client(mqtt_cfg, station)  # the user name: the broker binds ids to users
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.max_inflight_messages_set(cfg.max_inflight_messages)
        self.client.will_set(topic_for(station, "status"), self._status_payload("down", None), qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.thread = threading.Thread(target=self._run, name="forwarder", daemon=True)

    # -- paho network thread: only enqueue ------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if not reason_code.is_failure:
            # paho would send again what was in flight, a poison message too, on every reconnect:
            # the forwarder sends from the outbox itself, so paho's copies go.
            client.drop_out_messages()
        max_packet = getattr(properties, "MaximumPacketSize", None)
        self._inbox.put(("connect", (reason_code, getattr(flags, "session_present", False), max_packet)))
        self._wake.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._inbox.put(("disconnect", reason_code))
        self._wake.set()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self._inbox.put(("puback", (mid, reason_code)))
        self._wake.set()  # a PUBACK may open the in-flight window

    def _on_message(self, client, userdata, message) -> None:
        self._inbox.put(("message", (message.topic, message.payload)))
        self._wake.set()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        self._inbox.put(("suback", (mid, reason_codes)))
        self._wake.set()

    # -- lifecycle --------------------------------------------------------------------------
    def notify(self) -> None:
        """New records are in the outbox (called by the writer)."""
        self._wake.set()

    def rewind(self, seqs: list[int]) -> None:
        """Set-aside records are back in the outbox under these seqs: send them again."""
        if seqs:
            self._inbox.put(("rewind", list(seqs)))
            self._wake.set()

    def start(self) -> None:
        store = StationStore(self.store_path, read_only=True)
        try:
            self.store_id = store.store_id()
        finally:
            store.close()
        if self.store_id is None:
            raise StoreError(f"{self.store_path} has no store identity yet (the store writer migrates it first)")
        self._encoder = BatchEncoder(self.station, self.store_id)
        if self._content_type is not None:
            self._lean = LeanEncoder(self.station, self.store_id)
        self._set_payload_limit(None)
        self.client.connect_async(
            self.mqtt_cfg.host,
            self.mqtt_cfg.effective_port,
            keepalive=self.mqtt_cfg.keepalive_s,
            clean_start=False,
            properties=connect_properties(self.mqtt_cfg),
        )
        self.client.loop_start()
        self.thread.start()

    def stop(self) -> None:
        """Stop; first, while connected, wait up to `stop_drain_s` for central to acknowledge
        everything in the outbox (what is left stays there for the next start)."""
        if self.cfg.stop_drain_s > 0 and self._connected and self.thread.is_alive():
            self._drain.set()
            self._wake.set()
            if not self._drained.wait(self.cfg.stop_drain_s):
                self.log.warning("stop_with_unacknowledged_records", waited_s=self.cfg.stop_drain_s)
        self._stop.set()
        self._wake.set()
        self.thread.join(30)
        try:
            if self._connected:
                info = self.client.publish(
                    topic_for(self.station, "status"), self._status_payload("down", None), qos=1, retain=True
                )
                deadline = time.monotonic() + 2
                while not info.is_published() and time.monotonic() < deadline and self._connected:
                    time.sleep(0.01)
            self.client.disconnect()
        finally:
            self.client.loop_stop()

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def awaiting(self) -> int:
        return len(self._awaiting)

    @property
    def payload_limit(self) -> int:
        """The largest payload a message may carry now (max_message_bytes, or the broker's less)."""
        return self._payload_limit

    # -- forwarder thread -------------------------------------------------------------------
    def _run(self) -> None:
        store = StationStore(self.store_path, read_only=True)
        empty_since: float | None = None
        try:
            while not self._stop.is_set():
                self._wake.wait(0.1)
                self._wake.clear()
                self._drain_inbox(store)
                if self._connected and time.monotonic() >= self._hold_until:
                    self._expire()
                    self._send(store)
                if self._connected and self._resubscribe_at is not None and time.monotonic() >= self._resubscribe_at:
                    self._subscribe_acks()
                if self._connected and time.monotonic() - self._last_status >= self.cfg.status_interval_s:
                    self._publish_status(store)
                if self._drain.is_set():
                    # Drained once the outbox has stayed empty for a moment: records queued in the
                    # writer just before the stop (e.g. the agent's stop event) get their chance.
                    if not self._awaiting and store.outbox_empty():
                        empty_since = empty_since or time.monotonic()
                        if time.monotonic() - empty_since >= 0.5:
                            self._drained.set()
                    else:
                        empty_since = None
        except Exception as exc:  # pragma: no cover - logged and surfaced through the agent
            self.log.exception("forwarder_failed", error=repr(exc))
            raise
        finally:
            store.close()

    def _drain_inbox(self, store: StationStore) -> None:
        while True:
            try:
                kind, payload = self._inbox.get_nowait()
            except queue.Empty:
                return
            if kind == "connect":
                self._connected_now(store, *payload)
            elif kind == "disconnect":
                if self._connected:
                    self.faults.report("broker", f"disconnected: {payload}", self.clock.now())
                self._connected = False
                self._suspect_in_flight()
                self._mids.clear()
                self._probe = None
            elif kind == "rewind":
                self._rewound(payload)
            elif kind == "set_aside_done":
                self._setting_aside.difference_update(payload)
            elif kind == "puback":
                self._puback(*payload)
            elif kind == "message":
                self._message(*payload)
            elif kind == "suback":
                self._suback(*payload)

    def _connected_now(self, store: StationStore, reason_code, session_present: bool, max_packet: int | None) -> None:
        if reason_code.is_failure:
            self._connected = False
            self.faults.report("broker", f"connection refused: {reason_code}", self.clock.now())
            return
        self._connected = True
        self._set_payload_limit(max_packet)
        self.faults.clear(self.clock.now(), ("broker",))
        self._subscribe_acks()
        # Whatever was in flight may or may not have reached central: forget it and let the
        # backlog pass send it again (central deduplicates). Live data goes first from here on.
        self._awaiting.clear()
        self._mids.clear()
        self._probe = None
        top = store.outbox_top_seq()
        self._live_from = self._live_cursor = top
        self._backlog_cursor = 0
        # The status is due now, and goes out right after this pass's first records: a replay
        # need not wait for the status's outbox queries.
        self._last_status = -math.inf
        self.log.info("broker_connected", session_present=session_present, backlog_top_seq=top,
                      max_payload_bytes=self._payload_limit)
        if self.on_connected is not None:
            self.on_connected()

    def _set_payload_limit(self, max_packet: int | None) -> None:
        """The largest payload: max_message_bytes, or less when the broker's CONNACK says so."""
        self._payload_limit = self.cfg.max_message_bytes
        self._limit_why = f"forwarding.max_message_bytes {self.cfg.max_message_bytes}"
        if max_packet is not None:
            broker = max_packet - max(mqtt_packet_overhead(t, self._content_type) for t in self._topics.values())
            if broker < self._payload_limit:
                self._payload_limit = broker
                self._limit_why = f"the broker's Maximum Packet Size {max_packet} (CONNACK)"
        self._room_bytes = self._payload_limit - (self._encoder.head_bytes if self._encoder else 0) - ENVELOPE_OVERHEAD

    def _rewound(self, seqs: list[int]) -> None:
        for s in seqs:
            self._setting_aside.discard(s)
            self._suspects.pop(s, None)
            self._strikes.pop(s, None)
        self._live_from = self._live_cursor
        self._backlog_cursor = min(self._backlog_cursor, min(seqs) - 1)

    def _put_aside(self, reasons: dict[int, str]) -> None:
        """Hand records to the writer to be set aside; from now on they are not sent."""
        for seq, why in reasons.items():
            self._setting_aside.add(seq)
            self._suspects.pop(seq, None)
            self._strikes.pop(seq, None)
            self._awaiting.pop(seq, None)
            self.log.error("record_set_aside", seq=seq, reason=why)
        self.stats["set_aside"] += len(reasons)
        if self.set_aside is not None:
            self.set_aside(reasons, self._set_aside_done)

    def _set_aside_done(self, seqs: list[int]) -> None:
        """The writer has moved these out of the outbox (any thread)."""
        self._inbox.put(("set_aside_done", seqs))
        self._wake.set()

    def _suspect_in_flight(self) -> None:
        """The connection dropped: what was in flight may be why. Several messages in flight are
        each sent again alone; a message alone in flight, and dropped at once, is halved, and a
        record alone dropped `set_aside_after_drops` times is set aside."""
        batches = list(self._mids.values())
        alone = len(batches) == 1 and self._probe is not None \
            and time.monotonic() - self._probe[1] <= DROP_EVIDENCE_S
        if alone and len(batches[0]) == 1:
            seq = batches[0][0]
            strikes = self._strikes[seq] = self._strikes.get(seq, 0) + 1
            self._suspects[seq] = 1
            if strikes >= self.cfg.set_aside_after_drops:
                self._put_aside({seq: f"the broker dropped the connection each time it was sent alone ({strikes} times)"})
        elif alone:
            half = (len(batches[0]) + 1) // 2
            for seq in batches[0]:
                self._suspects[seq] = min(self._suspects.get(seq, half), half)
        else:
            for seqs in batches:
                for seq in seqs:
                    self._suspects.setdefault(seq, len(seqs))

    def _subscribe_acks(self) -> None:
        self._resubscribe_at = None
        self._ack_subscribed = False
        topics = [(self.ack_topic, 1)] + ([(self.config_topic, 1)] if self.on_config is not None else [])
        result, self._ack_sub_mid = self.client.subscribe(topics)
        if result != mqtt.MQTT_ERR_SUCCESS:
            self._resubscribe_at = time.monotonic() + self.cfg.denied_backoff_s

    def _suback(self, mid: int, reason_codes) -> None:
        if mid != self._ack_sub_mid:
            if self.on_other_suback is not None:
                self.on_other_suback(mid, reason_codes)
            return
        failed = [str(rc) for rc in reason_codes[:1] if rc.is_failure]  # [1]: the config topic, if asked
        if len(reason_codes) > 1 and reason_codes[1].is_failure:
            self.log.warning("config_subscription_denied", topic=self.config_topic, reason=str(reason_codes[1]))
        if failed:
            # Without our ack topic nothing ever leaves the outbox: say so, and ask again later
            # (an operator may fix the broker's ACL without restarting anything).
            self.faults.report("ack_subscription_denied",
                               f"broker refused the subscription to {self.ack_topic}: {', '.join(failed)}",
                               self.clock.now())
            self._resubscribe_at = time.monotonic() + self.cfg.denied_backoff_s
        else:
            self._ack_subscribed = True
            self.faults.clear(self.clock.now(), ("ack_subscription_denied",))

    def _puback(self, mid: int, reason_code) -> None:
        seqs = self._mids.pop(mid, None)
        if seqs is None:
            if self.on_other_puback is not None:
                self.on_other_puback(mid, reason_code)
            return
        if self._probe is not None and self._probe[0] == mid:
            self._probe = None
        if reason_code.is_failure and reason_code.value not in SYSTEMIC_REFUSALS:
            # The broker refused what this message holds: halve it down to the record, set that aside.
            for s in seqs:
                self._awaiting.pop(s, None)
            self.faults.report("publish_refused", f"broker refused {len(seqs)} record(s) "
                               f"(seq {seqs[0]}..{seqs[-1]}): {reason_code}", self.clock.now())
            if len(seqs) == 1:
                self._put_aside({seqs[0]: f"the broker refused it: {reason_code}"})
            else:
                half = (len(seqs) + 1) // 2
                for s in seqs:
                    self._suspects[s] = min(self._suspects.get(s, half), half)
            self._live_from = self._live_cursor
            self._backlog_cursor = min(self._backlog_cursor, seqs[0] - 1)
        elif reason_code.is_failure:
            # The broker refused the message (e.g. ACL): the records stay in the outbox.
            for s in seqs:
                self._awaiting.pop(s, None)
            self.stats["denied"] += len(seqs)
            self.faults.report(
                "publish_denied",
                f"broker refused {len(seqs)} record(s) (seq {seqs[0]}..{seqs[-1]}): {reason_code}",
                self.clock.now(),
            )
            self._hold_until = time.monotonic() + self._denied_backoff
            self._denied_backoff = min(self._denied_backoff * 2, 600.0)
            self._live_from = self._live_cursor
            self._backlog_cursor = min(self._backlog_cursor, seqs[0] - 1)
        else:
            self._denied_backoff = self.cfg.denied_backoff_s
            self.faults.clear(self.clock.now(), ("publish_denied", "publish_refused"))
            if self._suspects:  # the broker took it: nothing in it is poison
                for s in seqs:
                    self._suspects.pop(s, None)
                    self._strikes.pop(s, None)

    def _message(self, topic: str, payload: bytes) -> None:
        if topic == self.config_topic and self.on_config is not None and payload:
            self.on_config(payload)
            return
        if topic != self.ack_topic:
            return
        try:
            ack = parse_ack(topic, payload)
        except WireError as exc:
            self.faults.report("bad_ack", f"{exc.code}: {exc.message}", self.clock.now())
            return
        if ack.store is not None and ack.store != self.store_id:
            # Central acknowledges another database's seqs (one this station's replaced, say):
            # applying it would take this database's own records of those seqs out of the outbox.
            self.stats["foreign_acks"] += 1
            self.log.warning("ack_for_another_store_ignored", ack_store=ack.store, own_store=self.store_id,
                             ranges=len(ack.acked))
            return
        n = 0
        if self._suspects:  # central holds them: nothing left to find out about them
            self._forget_suspects(ack.acked)
        pop = self._awaiting.pop
        for lo, hi in ack.acked:
            if hi - lo < 100_000:
                for s in range(lo, hi + 1):
                    n += pop(s, None) is not None
            else:
                for s in [s for s in self._awaiting if lo <= s <= hi]:
                    del self._awaiting[s]
                    n += 1
        self.stats["acked"] += n
        self.acknowledge([(int(lo), int(hi)) for lo, hi in ack.acked])

    def _forget_suspects(self, ranges: list[tuple[int, int]]) -> None:
        for lo, hi in ranges:
            for s in [s for s in self._suspects if lo <= s <= hi]:
                del self._suspects[s]
                self._strikes.pop(s, None)

    def _expire(self) -> None:
        if not self._awaiting:
            return
        cutoff = time.monotonic() - self.cfg.ack_timeout_s
        # Insertion order is send order (a resent seq is popped first), so the first entry is
        # the oldest: no scan of the whole window on every pass.
        if next(iter(self._awaiting.values())) >= cutoff:
            return
        expired = [s for s, t in self._awaiting.items() if t < cutoff]
        if not expired:
            return
        for s in expired:
            del self._awaiting[s]
        self.stats["resent"] += len(expired)
        self.log.warning("ack_timeout", records=len(expired), first_seq=min(expired))
        self._live_from = self._live_cursor
        self._backlog_cursor = min(self._backlog_cursor, min(expired) - 1)

    def _room(self) -> int:
        if len(self._mids) >= self.cfg.max_inflight_messages or self._probe is not None:
            return 0
        return max(0, self.cfg.window_records - len(self._awaiting))

    def _send(self, store: StationStore) -> None:
        if self._suspects and self._probe_due():
            self._send_probe(store)
            return
        room = self._room()
        if room <= 0:
            return
        # Live records first.
        rows = store.outbox_after(self._live_cursor, min(room, self.cfg.batch_size * 8), as_bytes=True)
        if rows:
            sent, done = self._publish_rows(rows)
            self._live_cursor = done
            room -= sent
            if self._probe is not None:
                return  # a suspect message goes alone
        # Then the backlog, rate-limited.
        if room <= 0 or self._backlog_cursor >= self._live_from:
            return
        now = time.monotonic()
        if self.cfg.replay_rate > 0:
            self._tokens = min(self.cfg.replay_rate, self._tokens + (now - self._last_refill) * self.cfg.replay_rate)
            self._last_refill = now
            room = min(room, int(self._tokens))
            if room <= 0:
                return
        rows = store.outbox_between(self._backlog_cursor, self._live_from, min(room, self.cfg.batch_size * 8),
                                    as_bytes=True)
        if not rows:
            self._backlog_cursor = self._live_from
            self.log.info("backlog_replayed", up_to_seq=self._live_from)
            return
        sent, done = self._publish_rows(rows)
        self._backlog_cursor = done
        if self.cfg.replay_rate > 0:
            self._tokens -= sent

    def _probe_due(self) -> bool:
        """Whether a suspect waits to be sent: one not in flight and not being set aside."""
        return any(s not in self._awaiting and s not in self._setting_aside for s in self._suspects)

    def _send_probe(self, store: StationStore) -> None:
        """Send the first waiting suspects alone, before anything else: live records wait until
        what is in flight is PUBACKed, or a steady stream of them would keep something in flight
        and a suspect would never get its turn (the backlog never drained after an outage)."""
        if self._mids:
            return
        first = min(s for s in self._suspects if s not in self._awaiting and s not in self._setting_aside)
        rows = store.outbox_between(first - 1, MAX_SEQ, self.cfg.batch_size, as_bytes=True)
        if not rows or rows[0][0] != first:  # no longer in the outbox: central has acknowledged it
            self._suspects.pop(first, None)
            self._strikes.pop(first, None)
            return
        self._publish_batch(self._suspect_batch(rows, 0), probe=True)

    def _publish_rows(self, rows: list[tuple[int, str, bytes]]) -> tuple[int, int]:
        """Publish rows in order as batches of one kind each, skipping records still awaiting
        their ack. Returns (records sent, the seq up to which the rows are dealt with). A batch
        over the payload limit is cut by bytes as it is published (`_publish_batch`)."""
        if self._suspects or self._setting_aside:
            return self._publish_rows_carefully(rows)
        sent = 0
        done = rows[0][0] - 1
        batch: list[tuple[int, str, bytes]] = []
        awaiting, cap = self._awaiting, self.cfg.batch_size  # looked up once: this loop runs per record
        for row in rows:
            if batch and (row[1] != batch[0][1] or len(batch) >= cap):
                if len(self._mids) >= self.cfg.max_inflight_messages:
                    return sent, done
                n = self._publish_batch(batch)
                if n == 0:
                    return sent, done
                sent, done, batch = sent + n, batch[-1][0], []
            if row[0] in awaiting:
                if not batch:
                    done = row[0]
                continue
            batch.append(row)
        if batch and len(self._mids) < self.cfg.max_inflight_messages:
            n = self._publish_batch(batch)
            if n:
                sent, done = sent + n, batch[-1][0]
        elif not batch:
            done = rows[-1][0]
        return sent, done

    def _publish_rows_carefully(self, rows: list[tuple[int, str, bytes]]) -> tuple[int, int]:
        """`_publish_rows` while records are suspect or being set aside: those being set aside
        are skipped, and so are suspects (`_send_probe` sends them alone, and any other record
        stops in front of them, so no message mixes the two)."""
        sent = 0
        done = rows[0][0] - 1
        batch: list[tuple[int, str, bytes]] = []
        size = 0
        cap, room = self.cfg.batch_size, self._room_bytes
        awaiting, skip, suspects = self._awaiting, self._setting_aside, self._suspects
        for i, row in enumerate(rows):
            seq = row[0]
            if seq in awaiting or seq in skip:
                if not batch:
                    done = seq
                continue
            need = len(row[2]) + RECORD_OVERHEAD
            suspect = seq in suspects
            if batch and (suspect or row[1] != batch[0][1] or len(batch) >= cap or size + need > room):
                if len(self._mids) >= self.cfg.max_inflight_messages:
                    return sent, done
                n = self._publish_batch(batch)
                if n == 0:
                    return sent, done
                sent, done, batch, size = sent + n, batch[-1][0], [], 0
            if suspect:
                return sent, done  # sent alone by _send_probe; what follows it waits behind it
            batch.append(row)
            size += need
        if batch and len(self._mids) < self.cfg.max_inflight_messages:
            n = self._publish_batch(batch)
            if n:
                sent, done = sent + n, batch[-1][0]
        elif not batch:
            done = rows[-1][0]
        return sent, done

    def _suspect_batch(self, rows: list[tuple[int, str, bytes]], first: int) -> list[tuple[int, str, bytes]]:
        """The suspects from rows[first] on, as many as their caps and the bytes allow."""
        head = rows[first]
        out, cap, size = [head], self._suspects[head[0]], len(head[2]) + RECORD_OVERHEAD
        for row in rows[first + 1:]:
            seq = row[0]
            cap = min(cap, self._suspects.get(seq, 0))
            size += len(row[2]) + RECORD_OVERHEAD
            if (len(out) >= cap or row[1] != head[1] or seq in self._awaiting or seq in self._setting_aside
                    or size > self._room_bytes):
                break
            out.append(row)
        return out

    def _publish_batch(self, batch: list[tuple[int, str, bytes]], probe: bool = False) -> int:
        """Publish one batch; returns how many of its records went (0: none, try later)."""
        kind = batch[0][1]
        # the outbox keeps each record's JSON object without its seq (read as bytes): the encoder splices it in
        sent = self.clock.now()
        body = self._encoder.encode_rows(kind, sent, batch)
        if len(body) > self._payload_limit:  # lean too: central bounds what it inflates to by its payload limit
            return self._publish_cut(batch)
        if self._lean is not None:
            body = self._lean.encode_rows(kind, sent, batch, body)
            if len(body) > self._payload_limit:  # never seen (lean is the smaller), but must not loop
                return self._publish_halves(batch, len(body))
        info = self.client.publish(self._topics[kind], body, qos=1, properties=self._publish_props)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            # Not sent (e.g. the link dropped this instant): the caller leaves its cursor before
            # this batch, so the records go with a later pass.
            return 0
        now = time.monotonic()
        seqs = [row[0] for row in batch]
        self._mids[info.mid] = seqs
        if probe:
            self._probe = (info.mid, now)
        self._awaiting.update(dict.fromkeys(seqs, now))  # in send order, as a loop would
        self.stats["published_records"] += len(seqs)
        self.stats["published_messages"] += 1
        return len(seqs)

    def _publish_halves(self, batch: list[tuple[int, str, bytes]], size: int) -> int:
        """A batch whose lean form is over the payload limit though its JSON is not: its halves,
        down to a record, which is set aside. Returns the records published."""
        if len(batch) == 1:
            self._put_aside({batch[0][0]: f"{size} bytes in its lean form, more than a message may hold "
                                          f"({self._limit_why})"})
            return 0
        half = (len(batch) + 1) // 2
        first = self._publish_batch(batch[:half])
        if first == 0 and batch[0][0] not in self._setting_aside:
            return 0
        return first + self._publish_batch(batch[half:])

    def _publish_cut(self, batch: list[tuple[int, str, bytes]]) -> int:
        """A batch over the payload limit, published as pieces that fit; a record too big for
        any message is set aside instead. Returns the records published (0 when none could be,
        e.g. the link dropped: the caller then tries the whole batch again later)."""
        pieces: list[list[tuple[int, str, bytes]]] = [[]]
        size = 0
        for row in batch:
            need = len(row[2]) + RECORD_OVERHEAD
            if need > self._room_bytes:
                self._put_aside({row[0]: f"{need - RECORD_OVERHEAD} bytes, more than a message may hold "
                                         f"({self._limit_why})"})
                continue
            if pieces[-1] and size + need > self._room_bytes:
                pieces.append([])
                size = 0
            pieces[-1].append(row)
            size += need
        sent = 0
        for piece in pieces:
            n = self._publish_batch(piece) if piece else 0
            if piece and n == 0:
                return sent
            sent += n
        return sent

    def _status_payload(self, state: str, store: StationStore | None, details: bool = True) -> bytes:
        backlog, oldest_age, last_seq = 0, None, None
        if store is not None:
            stats = store.outbox_stats()
            backlog = stats["backlog"]
            if stats["oldest_unacked"]:
                oldest_age = max(0.0, (self.clock.now() - parse_utc(stats["oldest_unacked"])).total_seconds())
            last_seq = store.last_seq()
        body = {
            "schema": SCHEMA_VERSION,
            "station": self.station,
            "state": state,
            "time": iso_utc(self.clock.now()),
            "backlog": backlog,
            "oldest_unacked_age_s": oldest_age,
            "agent_version": __version__,
            "interval_s": self.cfg.status_interval_s,
            "last_seq": last_seq,
            "details": self.details() if state == "up" and details else {},
        }
        return json.dumps(body, separators=(",", ":"), allow_nan=False, default=str).encode()

    def _publish_status(self, store: StationStore) -> None:
        self._last_status = time.monotonic()
        try:
            payload = self._status_payload("up", store)
            if len(payload) > self._payload_limit:  # a status must never be what drops the link
                self.log.warning("status_details_omitted", bytes=len(payload), limit=self._payload_limit)
                payload = self._status_payload("up", store, details=False)
        except ValueError as exc:
            self.log.warning("status_not_serialisable", error=str(exc))
            return
        self.client.publish(topic_for(self.station, "status"), payload, qos=1, retain=True)
