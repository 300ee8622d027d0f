"""simulators.broker.MosquittoBroker: a real mosquitto, its life cycle, ACL, passwords and TLS."""

from __future__ import annotations

import ssl

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from support.broker import TEST_USERS

from simulators.broker import BrokerError, MosquittoBroker


def _connect(broker: MosquittoBroker, *, user=None, password=None, port=None, tls=None) -> int:
    """Connect once; returns the CONNACK reason code value (0 = accepted)."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    if user:
        c.username_pw_set(user, password)
    if tls:
        c.tls_set(**tls)
    result = {}
    c.on_connect = lambda cl, ud, fl, rc, pr: result.setdefault("rc", rc.value)
    try:
        c.connect(broker.host, port or broker.port, 10)
        for _ in range(200):
            c.loop(0.05)
            if "rc" in result:
                break
    finally:
        c.disconnect()
    return result.get("rc", -1)


def test_config_has_nodelay_persistence_and_a_loopback_listener(mosquitto):
    conf = mosquitto.config_path.read_text()
    assert "set_tcp_nodelay true" in conf and "persistence true" in conf
    assert f"listener {mosquitto.port} 127.0.0.1" in conf and mosquitto.port != 1883


def test_stop_restart_and_kill_keep_the_port(mosquitto):
    port, pid = mosquitto.port, mosquitto.pid
    mosquitto.restart()
    assert (mosquitto.port, mosquitto.running) == (port, True) and mosquitto.pid != pid
    assert _connect(mosquitto) == 0
    assert mosquitto.kill() == -9
    assert not mosquitto.running
    mosquitto.start()
    assert _connect(mosquitto) == 0
    assert mosquitto.stop() == 0


def test_retained_message_survives_a_sigterm_restart(mosquitto):
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.connect(mosquitto.host, mosquitto.port)
    c.loop_start()
    c.publish("ghg/v1/st-a/status", b"up", qos=1, retain=True).wait_for_publish(5)
    c.disconnect()
    c.loop_stop()
    mosquitto.restart()
    got = []
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.on_message = lambda cl, ud, msg: got.append(msg.payload)
    c.connect(mosquitto.host, mosquitto.port)
    c.subscribe("ghg/v1/+/status", qos=1)
    for _ in range(100):
        c.loop(0.05)
        if got:
            break
    c.disconnect()
    assert got == [b"up"]


def test_passwords_are_checked(mosquitto_acl):
    assert _connect(mosquitto_acl, user="st-a", password=TEST_USERS["st-a"]) == 0
    assert _connect(mosquitto_acl, user="st-a", password="wrong") != 0
    assert _connect(mosquitto_acl) != 0  # anonymous refused


def test_tls_listener_wants_a_client_certificate(mosquitto_tls, tls_files):
    with_cert = {"ca_certs": str(tls_files.ca), "certfile": str(tls_files.client_cert),
                 "keyfile": str(tls_files.client_key)}
    assert _connect(mosquitto_tls, port=mosquitto_tls.tls_port, tls=with_cert) == 0
    try:  # TLS 1.2 fails in the handshake; TLS 1.3 only at the first read, so no CONNACK ever comes
        rc = _connect(mosquitto_tls, port=mosquitto_tls.tls_port, tls={"ca_certs": str(tls_files.ca)})
    except (ssl.SSLError, OSError) as exc:
        rc = f"refused: {exc}"
    assert rc != 0


def test_a_broker_that_cannot_start_says_why(tmp_path, mosquitto):
    clash = MosquittoBroker(tmp_path / "clash", port=mosquitto.port)
    with pytest.raises(BrokerError, match="mosquitto"):
        clash.start(timeout_s=3)
    assert not clash.running
