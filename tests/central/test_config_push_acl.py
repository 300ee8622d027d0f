"""The shipped ACL and the config topic: only the admin user publishes a station's config, and only
that station reads it (a real mosquitto with configs/mosquitto/acl.template)."""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from support.broker import ACL_TEMPLATE, _require_mosquitto

from central.fleet.config_push import publish_retained
from ghgnet.mqttlink import MqttConfig
from simulators.broker import MosquittoBroker

USERS = {"ghgnet-admin": "admin-secret", "ghgnet-central": "central-secret", "st-a": "secret-a", "st-b": "secret-b"}


@pytest.fixture
def broker(tmp_path):
    _require_mosquitto()
    b = MosquittoBroker(tmp_path / "mosquitto", users=USERS, acl=ACL_TEMPLATE.read_text()).start()
    try:
        yield b
    finally:
        b.kill()


def _as(broker: MosquittoBroker, user: str) -> MqttConfig:
    return MqttConfig(host=broker.host, port=broker.port, username=user, password=USERS[user])


def _received(broker: MosquittoBroker, user: str, topic: str, wait_s: float) -> list[bytes]:
    """What `user` receives on `topic` (retained included) within `wait_s`."""
    got: list[bytes] = []
    subscribed = threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=user, protocol=mqtt.MQTTv5)
    c.username_pw_set(user, USERS[user])
    c.on_connect = lambda cl, *a: cl.subscribe(topic, qos=1)
    c.on_subscribe = lambda *a: subscribed.set()
    c.on_message = lambda cl, u, msg: got.append(bytes(msg.payload))
    c.connect(broker.host, broker.port)
    c.loop_start()
    try:
        assert subscribed.wait(10)
        threading.Event().wait(wait_s)
    finally:
        c.disconnect()
        c.loop_stop()
    return got


def test_only_the_admin_publishes_and_only_the_station_reads_its_config(broker):
    publish_retained(_as(broker, "ghgnet-admin"), "ghgnet-admin", "ghg/v1/st-a/config", b"signed config for st-a")
    for user in ("ghgnet-central", "st-b", "st-a"):  # a receiver's user, another station, the station itself
        with pytest.raises(RuntimeError, match="refused"):
            publish_retained(_as(broker, user), user, "ghg/v1/st-a/config", b"forged")
    assert _received(broker, "st-a", "ghg/v1/st-a/config", 0.5) == [b"signed config for st-a"]
    assert _received(broker, "st-b", "ghg/v1/st-a/config", 1.0) == []
