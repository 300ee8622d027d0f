"""An MQTT test station: publishes raw payloads, checks PUBACK reason codes, collects central's acks."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from ghgnet.wire import (
    EventWire,
    MinuteWire,
    SeqRanges,
    SpeciesStats,
    parse_ack,
    topic_for,
)
from simulators.broker import MosquittoBroker

from .wait import wait_until

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def minute(seq: int, *, t0: datetime = T0, co2: float = 420.0, flag: str = "U") -> MinuteWire:
    """A plausible minute record; minute `seq` after t0."""
    return MinuteWire(
        seq=seq, time=t0 + timedelta(minutes=seq), device="g2401", stream="inlet:100m",
        species={
            "co2": SpeciesStats(mean=co2 + seq * 0.001, std=0.05, n=55, raw_mean=co2 - 0.3, cal_mean=co2),
            "ch4": SpeciesStats(mean=2000.0, std=0.8, n=55, raw_mean=1999.0, cal_mean=2000.0),
        },
        h2o=1.2, flag=flag, reasons=[] if flag == "U" else ["flush"], n_total=60,
        calibration_id="cal-1", diagnostics={"cavity_pressure": 140.0},
    )


def event(seq: int, *, t0: datetime = T0) -> EventWire:
    return EventWire(seq=seq, time=t0 + timedelta(minutes=seq), kind="valve", severity="info",
                     message="valve moved", device="valve", data={"port": 3})


class TestStation:
    """A station's MQTT side, as small as a test needs. `acked` collects every seq central acked."""

    __test__ = False  # not a pytest class

    def __init__(self, broker: MosquittoBroker, station: str = "st-a", *, username: str | None = None,
                 password: str | None = None) -> None:
        self.station = station
        self.acked: set[int] = set()
        self.ack_messages: list[bytes] = []
        self.publish_results: dict[int, ReasonCode] = {}
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-{station}",
                                  protocol=mqtt.MQTTv5)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.connect(broker.host, broker.port, keepalive=30)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            self.close()
            raise AssertionError("test station did not get its SUBACK")

    def _on_connect(self, client, userdata, flags, rc, props) -> None:
        client.subscribe(topic_for(self.station, "ack"), qos=1)

    def _on_message(self, client, userdata, msg) -> None:
        ack = parse_ack(msg.topic, msg.payload)
        with self._lock:
            self.ack_messages.append(bytes(msg.payload))
            self.acked.update(SeqRanges(ack.acked))

    def _on_publish(self, client, userdata, mid, rc, props) -> None:
        with self._lock:
            self.publish_results[mid] = rc

    def publish(self, kind: str, payload: bytes, *, station: str | None = None,
                retain: bool = False) -> ReasonCode:
        """Publish on `ghg/v1/<station>/<kind>` at QoS 1; returns the broker's PUBACK reason code."""
        info = self.client.publish(topic_for(station or self.station, kind), payload, qos=1, retain=retain)
        return wait_until(lambda: self.publish_results.get(info.mid), 10, message="PUBACK")

    def publish_raw(self, topic: str, payload: bytes) -> ReasonCode:
        info = self.client.publish(topic, payload, qos=1)
        return wait_until(lambda: self.publish_results.get(info.mid), 10, message="PUBACK")

    def wait_acked(self, seqs, timeout_s: float = 10.0) -> None:
        want = set(seqs)
        wait_until(lambda: want <= self.acked, timeout_s, message=f"acks for {sorted(want)[:10]}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
