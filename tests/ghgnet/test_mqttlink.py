"""ghgnet.mqttlink: the paho client both sides build, on a real mosquitto."""

from __future__ import annotations

import socket

from support.wait import wait_until

from ghgnet.mqttlink import MqttConfig, TlsConfig, make_client


def _connected_socket_nodelay(cfg: MqttConfig) -> int:
    client = make_client(cfg, "nodelay-test")
    connected = []
    client.on_connect = lambda *a: connected.append(True)
    client.connect(cfg.host, cfg.effective_port, 10)
    client.loop_start()
    try:
        wait_until(lambda: connected, 10)
        return client.socket().getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        client.disconnect()
        client.loop_stop()


def test_small_packets_leave_at_once_plain_and_over_tls(mosquitto_tls, tls_files):
    # acks and PUBACKs must not wait for the peer's delayed ACK (Nagle): TCP_NODELAY on the socket
    plain = MqttConfig(host=mosquitto_tls.host, port=mosquitto_tls.port)
    assert _connected_socket_nodelay(plain) != 0
    tls = MqttConfig(host=mosquitto_tls.host, port=mosquitto_tls.tls_port, tls=TlsConfig(
        enabled=True, ca=tls_files.ca, cert=tls_files.client_cert, key=tls_files.client_key))
    assert _connected_socket_nodelay(tls) != 0
