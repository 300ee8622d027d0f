"""The ingest daemon: MQTT in, store, acks out (`central-receiver run`).

Threads and their jobs:

- paho's network thread only moves messages into a bounded queue. The queue's size is also
  announced to the broker as the MQTT 5 Receive Maximum, so the broker never has more
  unacknowledged messages out to us than the queue holds, and the network thread never waits.
- a decode thread takes groups of messages from that queue and has them validated against the
  wire models and their rows built, by a child process (central/decoder.py: it has a GIL of its
  own, so it decodes while this process stores) or, while there is none, itself; a storage
  thread writes each group in one transaction, and only then publishes each station's ack and
  gives the broker its PUBACK (manual acks). A message that was not committed is never
  acknowledged, so the broker redelivers it to our persistent session (clean_start False,
  explicit session expiry) after a crash. The two threads form a pipeline (one decoded group
  waits at most): while one group is stored, the next one is decoded.

A retained message on a data topic (stations never retain data) would be handed to every new
subscription again; after storing it, the receiver clears it (an empty retained publish) and
logs `retained_data_cleared`. Data is subscribed with Retain As Published, so a retained message
is known as one however it arrives; an empty retained one is such a clearing and is skipped.

Nothing a station sends can stop the receiver: every payload is stored, found duplicate or
dead-lettered (central/ingest.py). Storage outages are retried with backoff while messages stay
unacknowledged. SIGTERM: stop taking messages, store and acknowledge what is queued, disconnect.
"""

from __future__ import annotations

import gc
import queue
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from ghgnet.clock import make_clock
from ghgnet.mqttlink import connect_properties, make_client
from ghgnet.sdnotify import SdNotifier
from ghgnet.watchdog import ProgressWatchdog
from ghgnet.wire import BATCH_KINDS, parse_topic, raw_subscription_filter, subscription_filters

from .aggregation.worker import Aggregator
from .alarms.evaluator import AlarmThread
from .archive.archiver import RawArchiver
from .config import CentralConfig
from .decoder import DecodeProcess
from .hj212.listener import Hj212Listener
from .ingest import Decoded, Ingestor, Message, group_acks
from .medium_precision.worker import Refitter, scheduled
from .metrics import serve_metrics
from .service import receiver_probes
from .store import BatchOutcome, CentralStore, DeadLetterOutcome, open_configured_store, transient_errors

log = structlog.get_logger(component="receiver")  # lazy: picks up configure_logging done later


@dataclass(frozen=True, slots=True)
class _Received:
    topic: str
    payload: bytes
    mid: int
    qos: int
    generation: int
    retain: bool = False
    content_type: str | None = None


def _is_clearing(r: _Received) -> bool:
    """An empty retained message: a retained message being deleted (ours or anyone's), no data."""
    return r.retain and not r.payload


def _retained_data(r: _Received) -> bool:
    """A retained message on a data topic, to clear once stored (statuses stay retained)."""
    return r.retain and bool(r.payload) and r.topic.rpartition("/")[2] in BATCH_KINDS


GROUP_MAX_BYTES = 1_000_000
"""Payload bytes per stored group at most (besides `commit_max_messages`): about 2,000 minute
records. Small enough that the decode and storage threads take turns instead of waiting on each
other for one huge group; big enough that the sync at each commit is shared by many records."""
LEAN_WEIGHT = 8
"""A lean payload (one with a content type: ghgnet.wire.lean) counts this many times its bytes in a
group: about the JSON it inflates to (5x a backlog of full-precision floats, 20x a repetitive one),
or a group of lean batches would hold so many records that decoding and storing no longer overlap."""


def _group_bytes(r: _Received) -> int:
    return len(r.payload) * LEAN_WEIGHT if r.content_type else len(r.payload)


SWITCH_INTERVAL_S = 0.0002
"""How long a thread may hold the GIL while another waits for it (Python's default: 5 ms)."""


def tune_for_ingest() -> None:
    """Make the interpreter suit a process that ingests (the daemon calls this).

    - The cyclic garbage collector: decoding a group of batches allocates hundreds of thousands
      of short-lived objects; with the default thresholds the collector runs often and each full
      pass walks every object the process imported (its cost: tests/benchmarks/README.md).
      Freezing what exists after start-up takes it out of the collector's walks; a larger first
      threshold runs the young collections less often. Memory is still reclaimed by reference
      counting.
    - The GIL's switch interval: the storage thread lets go of the GIL inside every SQLite call
      (an insert, a commit's sync) and needs it back after; while the decode thread runs Python,
      the default interval makes it wait up to 5 ms each time, so the two threads barely
      overlapped. At `SWITCH_INTERVAL_S` they do."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    sys.setswitchinterval(SWITCH_INTERVAL_S)


class Receiver:
    """One receiver process's ingest. `start()` returns once the threads run; `stop()` drains.

    `store`: an open store to use (the receiver closes it on stop); default: open the configured one.
    """

    def __init__(
        self,
        config: CentralConfig,
        store: CentralStore | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self._store = store
        self._now = now
        self._queue: queue.Queue[_Received] = queue.Queue(maxsize=config.ingest.queue_size * 2)
        # decoded groups on their way from the decode thread to the storage thread; None ends it
        self._decoded: queue.Queue[tuple[list[_Received], Decoded | None] | None] = queue.Queue(maxsize=1)
        self._stopping = threading.Event()
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.stats: Counter[str] = Counter()
        self._stats_lock = threading.Lock()
        self._generation = 0
        self._sub_mid: int | None = None
        self._pending_acks: set[int] = set()
        self._clearing: dict[int, str] = {}  # mid -> topic of an empty retained publish in flight
        self._acks_lock = threading.Lock()
        self._acks_idle = threading.Condition(self._acks_lock)
        self._client: mqtt.Client | None = None
        self._thread: threading.Thread | None = None
        self._decode_thread: threading.Thread | None = None
        self.ingestor: Ingestor | None = None
        self.decoder: DecodeProcess | None = None  # decoding beside storage (config ingest.decode_process)
        self.aggregator = None  # the hourly aggregation thread (central/aggregation/worker.py), own connection
        self.refitter: Refitter | None = None  # scheduled medium-precision refits (refit_every_h), own connection
        self.hj212: Hj212Listener | None = None  # the HJ 212 logger listener ([hj212]), own connection
        self.alarms: AlarmThread | None = None  # the alarm rules ([alarms]), own connection
        self.notifier = SdNotifier()  # systemd's notify socket when run as a Type=notify service
        self.watchdog: ProgressWatchdog | None = None
        self.metrics_server = None  # /metrics ([metrics]), prometheus_client's server and thread
        self.archive: RawArchiver | None = None  # raw chunks ([archive]), own thread and connection
        self._raw_sub_mid: int | None = None
        self.raw_subscribed = threading.Event()

    # -- life cycle ------------------------------------------------------------------------------

    def start(self) -> Receiver:
        if self._store is None:
            self._store = open_configured_store(self.config)
        cfg = self.config.ingest
        if cfg.decode_process:
            self.decoder = DecodeProcess(self._store.backend, cfg.max_payload_bytes, self.config.logging.level,
                                         self.config.logging.format,
                                         future_tolerance_s=cfg.future_tolerance_s).start()
        self.ingestor = Ingestor(self._store, cfg.max_payload_bytes, self._now, self.decoder, cfg.future_tolerance_s)
        self._client = self._make_client()
        if self.config.archive.enabled:
            self.archive = RawArchiver(self.config, self._publish_ack, self._release, self._now).start()
        m = self.config.mqtt
        props = connect_properties(m, receive_maximum=self.config.ingest.queue_size)
        self._client.connect_async(m.host, m.effective_port, keepalive=m.keepalive_s, clean_start=False,
                                   properties=props)
        self._decode_thread = threading.Thread(target=self._decode_loop, name="central-decode", daemon=True)
        self._thread = threading.Thread(target=self._storage_loop, name="central-storage", daemon=True)
        self._decode_thread.start()
        self._thread.start()
        if self.config.aggregate.enabled:
            self.aggregator = Aggregator(self.config, self._now).start()
        if scheduled(self.config):
            self.refitter = Refitter(self.config, self._now).start()
        if self.config.hj212 is not None:  # its own store connection and thread (central/hj212/listener.py)
            self.hj212 = Hj212Listener(self.config, now=self._now).start()
        if self.config.alarms.enabled and self.config.alarms.rules:
            self.alarms = AlarmThread(self.config, self._now).start()
        self._client.loop_start()
        # fed only while ingest, aggregation and alarms progress (central/service.py)
        self.watchdog = ProgressWatchdog(self.notifier, make_clock(), receiver_probes(self), log,
                                         status_ok="receiving")
        self.watchdog.start()
        if self.config.metrics.enabled:
            self.metrics_server = serve_metrics(self, self.config.metrics.host, self.config.metrics.port,
                                                self.watchdog)
        log.info("receiver_started", host=m.host, port=m.effective_port, client_id=m.client_id,
                 backend=self._store.backend, shared_group=self.config.ingest.shared_group)
        if m.username is not None and m.client_id != m.username:
            # the shipped broker config names the session after the user name whatever we send
            log.warning("client_id_is_not_username", client_id=m.client_id, username=m.username)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop taking messages, store and acknowledge the queued ones, disconnect, close."""
        self.notifier.stopping("draining")
        self._stopping.set()
        if self.watchdog is not None:
            self.watchdog.stop()
        if self.metrics_server is not None:
            server, thread = self.metrics_server
            server.shutdown()
            server.server_close()
            thread.join(timeout_s)
        if self._decode_thread is not None:
            self._decode_thread.join(timeout_s)
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self.decoder is not None:
            self.decoder.stop()
        if self.archive is not None:
            self.archive.stop(timeout_s)
        if self._client is not None:
            with self._acks_lock:
                self._acks_idle.wait_for(lambda: not self._pending_acks or not self.connected.is_set(),
                                         timeout=min(timeout_s, 5.0))
            self._client.disconnect()
            self._client.loop_stop()
        if self.aggregator is not None:
            self.aggregator.stop(timeout_s)
        if self.refitter is not None:
            self.refitter.stop(timeout_s)
        if self.hj212 is not None:
            self.hj212.stop(timeout_s)
        if self.alarms is not None:
            self.alarms.stop(timeout_s)
        if self._store is not None:
            self._store.close()
        self.notifier.close()
        log.info("receiver_stopped", **dict(self.stats))

    def run(self, stop: threading.Event) -> None:
        """Run until `stop` is set (the CLI sets it on SIGTERM/SIGINT): the daemon."""
        tune_for_ingest()
        # read systemd's variables, then hide them from the decoding process started next
        self.notifier = SdNotifier(unset_environment=True)
        self.start()
        self.notifier.ready("receiving")
        try:
            stop.wait()
        finally:
            self.stop()

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _count(self, key: str, n: int = 1) -> None:
        with self._stats_lock:
            self.stats[key] += n

    # -- MQTT ------------------------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        m = self.config.mqtt
        client = make_client(m, m.client_id, manual_ack=True)
        client.reconnect_delay_set(min_delay=0.25, max_delay=10)  # type: ignore[arg-type]
        client.max_inflight_messages_set(max(20, self.config.ingest.queue_size))
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        return client

    def _on_connect(self, client, userdata, flags, reason_code: ReasonCode, properties) -> None:
        if reason_code.is_failure:
            log.error("connect_refused", reason=str(reason_code))
            self._count("connect_refused")
            return
        self._generation += 1
        self.connected.set()
        self._count("connects")
        log.info("connected", session_present=flags.session_present, generation=self._generation)
        filters = subscription_filters(self.config.ingest.shared_group)
        # Retain As Published on data: a retained message keeps its flag when it arrives live
        result, mid = client.subscribe([(f, SubscribeOptions(qos=1, retainAsPublished=kind != "status"))
                                        for kind, f in filters.items()])
        if result != MQTTErrorCode.MQTT_ERR_SUCCESS:
            log.error("subscribe_failed", result=str(result))
        self._sub_mid = mid
        if self.archive is not None:  # on its own: an ACL without raw must not stop the records
            self._raw_sub_mid = client.subscribe(raw_subscription_filter(self.config.ingest.shared_group), qos=1)[1]

    def _on_connect_fail(self, client, userdata) -> None:
        self._count("connect_failures")
        log.warning("broker_unreachable", host=self.config.mqtt.host, port=self.config.mqtt.effective_port)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        self.subscribed.clear()
        self.raw_subscribed.clear()
        with self._acks_lock:
            self._acks_idle.notify_all()
        if not self._stopping.is_set():
            log.warning("disconnected", reason=str(reason_code))
            self._count("disconnects")

    def _on_subscribe(self, client, userdata, mid, reason_codes: list[ReasonCode], properties) -> None:
        failed = [str(rc) for rc in reason_codes if rc.is_failure]
        if mid == self._raw_sub_mid and self._raw_sub_mid is not None:
            if failed:  # e.g. an ACL from before the raw archive: records still flow
                log.error("raw_subscription_refused", reasons=failed)
            else:
                self.raw_subscribed.set()
                log.info("raw_subscribed", filter=raw_subscription_filter(self.config.ingest.shared_group))
            return
        if failed:
            # an ACL that does not let central read: nothing will arrive, say so loudly
            log.error("subscription_refused", reasons=failed)
            self._count("subscriptions_refused")
            return
        if mid == self._sub_mid:
            self.subscribed.set()
            log.info("subscribed", filters=sorted(subscription_filters(self.config.ingest.shared_group).values()))

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        if self._stopping.is_set():
            return  # not acknowledged: the broker redelivers it to our next session
        item = _Received(msg.topic, bytes(msg.payload), msg.mid, msg.qos, self._generation, bool(msg.retain),
                         getattr(msg.properties, "ContentType", None))
        self._count("received")
        if self.archive is not None and msg.topic.endswith("/raw"):
            self.archive.submit(item)  # the raw archive's own path (central/archive/archiver.py)
            return
        while True:
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                if self._stopping.is_set():
                    return
                log.warning("ingest_queue_full", size=self._queue.qsize())

    def _on_publish(self, client, userdata, mid, reason_code: ReasonCode, properties) -> None:
        with self._acks_lock:
            self._pending_acks.discard(mid)
            clearing = self._clearing.pop(mid, None)
            self._acks_idle.notify_all()
        if clearing is not None:
            if reason_code.is_failure:  # e.g. an ACL without central's write on data topics
                log.error("retained_clear_refused_by_broker", topic=clearing, reason=str(reason_code))
                self._count("retained_clears_refused")
        elif reason_code.is_failure:
            # e.g. the broker's ACL denies central writing this station's ack topic
            log.error("ack_refused_by_broker", mid=mid, reason=str(reason_code))
            self._count("acks_refused")
        else:
            self._count("acks_confirmed")

    # -- storage thread --------------------------------------------------------------------------

    def _next_group(self) -> list[_Received]:
        try:
            first = self._queue.get(timeout=0.1)
        except queue.Empty:
            return []
        group = [first]
        size = _group_bytes(first)
        cfg = self.config.ingest
        deadline = time.monotonic() + cfg.commit_max_wait_ms / 1000.0
        while len(group) < cfg.commit_max_messages and size < GROUP_MAX_BYTES:
            try:
                group.append(self._queue.get_nowait())
                size += _group_bytes(group[-1])
                continue
            except queue.Empty:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                group.append(self._queue.get(timeout=remaining))
                size += _group_bytes(group[-1])
            except queue.Empty:
                break
        return group

    def _decode_loop(self) -> None:
        assert self.ingestor is not None
        try:
            while True:
                group = self._next_group()
                if not group:
                    if self._stopping.is_set():
                        return
                    continue
                messages = [Message(r.topic, r.payload, r.content_type) for r in group if not _is_clearing(r)]
                decoded = self.ingestor.decode_all(messages) if messages else None
                if not self._hand_over((group, decoded)):
                    return  # the storage thread is gone: not acknowledged, redelivered later
        except Exception:
            log.exception("decode_thread_failed")
            raise
        finally:
            self._hand_over(None)

    def _hand_over(self, item) -> bool:
        """Queue a decoded group (or the end mark) for the storage thread while it runs."""
        while True:
            try:
                self._decoded.put(item, timeout=0.2)
                return True
            except queue.Full:
                if self._thread is None or not self._thread.is_alive():
                    return False

    def _storage_loop(self) -> None:
        try:
            while True:
                item = self._decoded.get()
                if item is None or not self._store_and_ack(*item):
                    return
        except Exception:
            log.exception("storage_thread_failed")
            raise

    def _store_and_ack(self, group: list[_Received], decoded: Decoded | None) -> bool:
        """Store one decoded group (None: nothing to store), then ack it and clear the retained
        data messages it held; False when stopped before it could be stored."""
        assert self.ingestor is not None and self._client is not None
        delay = self.config.ingest.retry_initial_s
        transient = transient_errors()
        while True:
            try:
                results = self.ingestor.store_decoded(decoded) if decoded is not None else []
                break
            except transient as exc:
                self._count("store_retries")
                log.warning("store_unavailable", error=str(exc), retry_in_s=delay)
                reconnect = getattr(self._store, "reconnect", None)
                if self._stopping.wait(delay):
                    return False  # not acknowledged: redelivered to the next session
                if reconnect is not None:
                    try:
                        reconnect()
                    except Exception as rexc:  # the server is still away; keep waiting
                        log.warning("store_reconnect_failed", error=str(rexc))
                delay = min(delay * 2, self.config.ingest.retry_max_s)
        for handled in results:
            o = handled.outcome
            if isinstance(o, BatchOutcome):
                self._count("records_new", o.new)
                self._count("records_duplicate", o.duplicate)
                self._count("records_dead_lettered", o.dead_lettered)
            elif isinstance(o, DeadLetterOutcome):
                self._count("messages_dead_lettered")
        for topic, payload in group_acks(results):  # one per station: after the commit, before the PUBACKs
            info = self._client.publish(topic, payload, qos=1)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS and info.rc != MQTTErrorCode.MQTT_ERR_NO_CONN:
                log.error("ack_publish_failed", topic=topic, rc=str(info.rc))
            with self._acks_lock:
                self._pending_acks.add(info.mid)
            self._count("acks_sent")
        for r in group:
            if r.retain:
                if _retained_data(r):
                    self._clear_retained(r.topic)
                elif _is_clearing(r):
                    self._count("retained_clears_seen")
            if r.qos > 0 and r.generation == self._generation:
                # The broker resends an unacknowledged message on reconnect; that copy gets its own
                # PUBACK, so a PUBACK for an older connection is not sent.
                self._client.ack(r.mid, r.qos)
            self._count("messages_handled")
        return True

    def _publish_ack(self, topic: str, payload: bytes) -> None:
        """Publish an ack (QoS 1); a stop waits for its PUBACK (the raw archive's acks too)."""
        assert self._client is not None
        info = self._client.publish(topic, payload, qos=1)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS and info.rc != MQTTErrorCode.MQTT_ERR_NO_CONN:
            log.error("ack_publish_failed", topic=topic, rc=str(info.rc))
        with self._acks_lock:
            self._pending_acks.add(info.mid)
        self._count("acks_sent")

    def _release(self, r: _Received) -> None:
        """The broker's PUBACK for a message handled (stored, found stored or dead-lettered)."""
        assert self._client is not None
        if r.qos > 0 and r.generation == self._generation:
            self._client.ack(r.mid, r.qos)
        self._count("messages_handled")

    def _clear_retained(self, topic: str) -> None:
        """Delete the retained message on `topic` (stored by now), so that no later subscription
        is handed it again."""
        assert self._client is not None
        info = self._client.publish(topic, b"", qos=1, retain=True)
        with self._acks_lock:
            self._pending_acks.add(info.mid)
            self._clearing[info.mid] = topic
        self._count("retained_cleared")
        log.warning("retained_data_cleared", station=parse_topic(topic)[0], topic=topic)

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    @property
    def decoded_depth(self) -> int:
        return self._decoded.qsize()

    def ingest_alive(self) -> bool:
        """The decode and storage threads run (the watchdog's ingest probe)."""
        return all(t is not None and t.is_alive() for t in (self._decode_thread, self._thread))
