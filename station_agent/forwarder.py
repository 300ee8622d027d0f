"""Store-and-forward to central over MQTT v5: nothing lost, nothing counted twice.

A record leaves the outbox only when central's ack on `ghg/v1/<station>/ack` covers its seq: a
broker's PUBACK is not a guarantee (mosquitto acknowledges QoS 1 to an offline persistent
subscriber and loses it on SIGKILL). Central stores idempotently by (station, seq), so sending a
record again is always safe; losing one never is.

The forwarder thread reads the outbox through its own read-only connection and never writes:
acks go to the store writer. Sending order: records that arrive while we are connected ("live")
go first; the backlog that was waiting when the link came back is replayed in seq order behind
them, at a configurable rate. A bounded window limits records sent but not yet acknowledged.
PUBACK reason codes are checked: a denied publish (ACL) is a fault event, and its records simply
stay in the outbox. Timing of the link (ack timeout, replay rate, status interval) is in real
seconds: the network does not run faster with --speed.
"""

from __future__ import annotations

import json
import math
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from pydantic import Field

from station_agent import __version__
from station_agent.clock import Clock
from station_agent.configbase import StrictModel
from station_agent.faults import FaultTracker
from station_agent.mqttlink import MqttConfig, connect_properties, make_client
from station_agent.records import Event
from station_agent.store import StationStore
from station_agent.timeutil import iso_utc, parse_utc
from station_agent.wire import SCHEMA_VERSION, WireError, parse_ack, topic_for


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
    ) -> None:
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
        self.stats = {"published_records": 0, "published_messages": 0, "acked": 0, "denied": 0, "resent": 0}
        self.ack_topic = topic_for(station, "ack")
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
        self._inbox.put(("connect", (reason_code, getattr(flags, "session_present", False))))
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

    def start(self) -> None:
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
                    if not self._awaiting and not store.conn.execute("SELECT 1 FROM outbox LIMIT 1").fetchone():
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
                self._mids.clear()
            elif kind == "puback":
                self._puback(*payload)
            elif kind == "message":
                self._message(*payload)
            elif kind == "suback":
                self._suback(*payload)

    def _connected_now(self, store: StationStore, reason_code, session_present: bool) -> None:
        if reason_code.is_failure:
            self._connected = False
            self.faults.report("broker", f"connection refused: {reason_code}", self.clock.now())
            return
        self._connected = True
        self.faults.clear(self.clock.now(), ("broker",))
        self._subscribe_acks()
        # Whatever was in flight may or may not have reached central: forget it and let the
        # backlog pass send it again (central deduplicates). Live data goes first from here on.
        self._awaiting.clear()
        self._mids.clear()
        top = store.conn.execute("SELECT COALESCE(MAX(seq), 0) FROM outbox").fetchone()[0]
        self._live_from = self._live_cursor = int(top)
        self._backlog_cursor = 0
        # The status is due now, and goes out right after this pass's first records: counting the
        # outbox for it scans the table (~10 ms for a month of minutes), which a replay need not wait for.
        self._last_status = -math.inf
        self.log.info("broker_connected", session_present=session_present, backlog_top_seq=top)

    def _subscribe_acks(self) -> None:
        self._resubscribe_at = None
        self._ack_subscribed = False
        result, self._ack_sub_mid = self.client.subscribe(self.ack_topic, qos=1)
        if result != mqtt.MQTT_ERR_SUCCESS:
            self._resubscribe_at = time.monotonic() + self.cfg.denied_backoff_s

    def _suback(self, mid: int, reason_codes) -> None:
        if mid != self._ack_sub_mid:
            return
        failed = [str(rc) for rc in reason_codes if rc.is_failure]
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
            return
        if reason_code.is_failure:
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
            self.faults.clear(self.clock.now(), ("publish_denied",))

    def _message(self, topic: str, payload: bytes) -> None:
        if topic != self.ack_topic:
            return
        try:
            ack = parse_ack(topic, payload)
        except WireError as exc:
            self.faults.report("bad_ack", f"{exc.code}: {exc.message}", self.clock.now())
            return
        n = 0
        for lo, hi in ack.acked:
            if hi - lo < 100_000:
                for s in range(lo, hi + 1):
                    n += self._awaiting.pop(s, None) is not None
            else:
                for s in [s for s in self._awaiting if lo <= s <= hi]:
                    del self._awaiting[s]
                    n += 1
        self.stats["acked"] += n
        self.acknowledge([(int(lo), int(hi)) for lo, hi in ack.acked])

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
        if len(self._mids) >= self.cfg.max_inflight_messages:
            return 0
        return max(0, self.cfg.window_records - len(self._awaiting))

    def _send(self, store: StationStore) -> None:
        room = self._room()
        if room <= 0:
            return
        # Live records first.
        rows = self._rows(store, "seq > ?", (self._live_cursor,), min(room, self.cfg.batch_size * 8))
        if rows:
            sent, done = self._publish_rows(rows)
            self._live_cursor = done
            room -= sent
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
        rows = self._rows(
            store, "seq > ? AND seq <= ?", (self._backlog_cursor, self._live_from), min(room, self.cfg.batch_size * 8)
        )
        if not rows:
            self._backlog_cursor = self._live_from
            self.log.info("backlog_replayed", up_to_seq=self._live_from)
            return
        sent, done = self._publish_rows(rows)
        self._backlog_cursor = done
        if self.cfg.replay_rate > 0:
            self._tokens -= sent

    @staticmethod
    def _rows(store: StationStore, where: str, args: tuple, limit: int) -> list[tuple[int, str, str]]:
        return store.conn.execute(
            f"SELECT seq, kind, payload FROM outbox WHERE {where} ORDER BY seq LIMIT ?", (*args, limit)
        ).fetchall()

    def _publish_rows(self, rows: list[tuple[int, str, str]]) -> tuple[int, int]:
        """Publish rows in order as batches of one kind each, skipping records still awaiting
        their ack. Returns (records sent, the seq up to which the rows are dealt with)."""
        sent = 0
        done = rows[0][0] - 1
        batch: list[tuple[int, str, str]] = []
        for row in rows:
            if batch and (row[1] != batch[0][1] or len(batch) >= self.cfg.batch_size):
                if len(self._mids) >= self.cfg.max_inflight_messages:
                    return sent, done
                n = self._publish_batch(batch)
                if n == 0:
                    return sent, done
                sent, done, batch = sent + n, batch[-1][0], []
            if row[0] in self._awaiting:
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

    def _publish_batch(self, batch: list[tuple[int, str, str]]) -> int:
        kind = batch[0][1]
        # The stored payload is the record's JSON object without its seq: splice the seq in front
        # rather than decoding and encoding every record again.
        records = ",".join(f'{{"seq":{seq},{payload[1:]}' if payload != "{}" else f'{{"seq":{seq}}}'
                           for seq, _, payload in batch)
        body = (
            f'{{"schema":{SCHEMA_VERSION},"station":"{self.station}","kind":"{kind}",'
            f'"sent":"{iso_utc(self.clock.now())}","records":[{records}]}}'
        ).encode()
        info = self.client.publish(topic_for(self.station, kind), body, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            # Not sent (e.g. the link dropped this instant): the caller leaves its cursor before
            # this batch, so the records go with a later pass.
            return 0
        now = time.monotonic()
        seqs = [row[0] for row in batch]
        self._mids[info.mid] = seqs
        for s in seqs:
            self._awaiting[s] = now
        self.stats["published_records"] += len(seqs)
        self.stats["published_messages"] += 1
        return len(seqs)

    def _status_payload(self, state: str, store: StationStore | None) -> bytes:
        backlog, oldest_age, last_seq = 0, None, None
        if store is not None:
            stats = store.outbox_stats()
            backlog = stats["backlog"]
            if stats["oldest_unacked"]:
                oldest_age = max(0.0, (self.clock.now() - parse_utc(stats["oldest_unacked"])).total_seconds())
            last_seq = store.conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
            last_seq = int(last_seq[0]) if last_seq else 0
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
            "details": self.details() if state == "up" else {},
        }
        return json.dumps(body, separators=(",", ":"), allow_nan=False, default=str).encode()

    def _publish_status(self, store: StationStore) -> None:
        self._last_status = time.monotonic()
        try:
            payload = self._status_payload("up", store)
        except ValueError as exc:
            self.log.warning("status_not_serialisable", error=str(exc))
            return
        self.client.publish(topic_for(self.station, "status"), payload, qos=1, retain=True)
