"""Identities bound at the broker, and retained data cleared, against a real mosquitto.

The broker runs the shipped ACL (configs/mosquitto/acl.template) and binds every client id to its
user name (use_username_as_clientid, as configs/mosquitto/mosquitto.conf does): a station's
credentials cannot take central's session or another station's, two receivers each have their
own, and a retained message on a data topic is stored once, then cleared by central.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from structlog.testing import capture_logs
from support.broker import ACL_TEMPLATE, REPO, TEST_USERS
from support.mqtt import TestStation, event, minute
from support.wait import wait_until

from central.config import CentralConfig
from central.receiver import Receiver
from central.store import open_store
from ghgnet.wire import SeqRanges, StatusMessage, encode_batch, parse_ack, topic_for
from simulators.broker import MosquittoBroker, TlsFiles, find_mosquitto, user_lines

SENT = datetime(2026, 3, 2, tzinfo=UTC)
USERS = {**TEST_USERS, "ghgnet-central-2": "central-2-secret"}
SHIPPED_CONF = REPO / "configs" / "mosquitto" / "mosquitto.conf"


def batch(seqs, station: str = "st-a", kind: str = "minute") -> bytes:
    make = minute if kind == "minute" else event
    return encode_batch(station, kind, [make(s) for s in seqs], SENT)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """Passwords for two receivers and two stations, the shipped ACL, client ids bound to users."""
    if find_mosquitto() is None:
        pytest.fail("mosquitto is needed for these tests (apt-get install mosquitto)")
    b = MosquittoBroker(tmp_path / "mosquitto", users=USERS, acl=ACL_TEMPLATE.read_text()).start()
    try:
        yield b
    finally:
        b.kill()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "central.sqlite"


@pytest.fixture
def reader(db: Path):
    s = open_store("sqlite", path=db)
    yield s
    s.close()


def receiver_config(broker: MosquittoBroker, db: Path, user: str = "ghgnet-central", **sections) -> CentralConfig:
    """A receiver logging in as `user`; its client id follows the user name (no client_id given)."""
    data = {
        "mqtt": {"host": broker.host, "port": broker.port, "username": user, "password": USERS[user]},
        "storage": {"backend": "sqlite", "path": str(db)},
        "ingest": {"max_payload_bytes": 65536, "queue_size": 64},
        "aggregate": {"enabled": False},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return CentralConfig.model_validate(data)


def station(broker: MosquittoBroker, name: str = "st-a") -> TestStation:
    return TestStation(broker, name, username=name, password=USERS[name])


class Login:
    """One MQTT v5 connection as `user` asking for `client_id`, with a persistent session when
    `expiry_s` > 0; records its CONNACK, its disconnections and the acks it reads."""

    def __init__(self, broker: MosquittoBroker, user: str, client_id: str, *, clean_start: bool,
                 expiry_s: int = 0, ack_of: str | None = None, tls: TlsFiles | None = None) -> None:
        self.connacks: list[tuple[int, bool]] = []  # (reason code, session present)
        self.disconnects: list[int] = []
        self.acked: set[int] = set()
        self._subscribed = threading.Event()
        self.ack_of = ack_of
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.username_pw_set(user, USERS[user])
        if tls is not None:
            self.client.tls_set(ca_certs=str(tls.ca))
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda c, u, f, rc, p: self.disconnects.append(rc.value)
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = expiry_s
        self.client.connect(broker.host, broker.tls_port if tls else broker.port, keepalive=30,
                            clean_start=clean_start, properties=props)
        self.client.loop_start()
        wait_until(lambda: self.connacks, 10, message=f"CONNACK for {user} as {client_id}")
        if ack_of is not None:
            assert self._subscribed.wait(10), "no SUBACK"

    def _on_connect(self, client, userdata, flags, rc, props) -> None:
        self.connacks.append((rc.value, flags.session_present))
        if self.ack_of is not None:
            client.subscribe(topic_for(self.ack_of, "ack"), qos=1)

    def _on_message(self, client, userdata, msg) -> None:
        self.acked.update(SeqRanges(parse_ack(msg.topic, msg.payload).acked))

    def publish(self, kind: str, payload: bytes) -> None:
        assert self.ack_of is not None
        self.client.publish(topic_for(self.ack_of, kind), payload, qos=1).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def retained_on(broker: MosquittoBroker, topics: list[str], marker: str) -> dict[str, bytes]:
    """The retained messages the broker holds on `topics`. `marker` is a topic known to hold one:
    subscribed last, its message arrives after any retained message of the topics before it."""
    got: dict[str, bytes] = {}
    subacks: list[int] = []
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="retained-check", protocol=mqtt.MQTTv5)
    c.username_pw_set("ghgnet-central-2", USERS["ghgnet-central-2"])
    c.on_message = lambda cl, ud, msg: got.setdefault(msg.topic, bytes(msg.payload))
    c.on_subscribe = lambda cl, ud, mid, rcs, props: subacks.append(mid)
    c.connect(broker.host, broker.port)
    c.loop_start()
    try:
        for n, t in enumerate([*topics, marker], 1):  # one at a time: each SUBACK before the next
            c.subscribe(t, qos=1)
            wait_until(lambda: len(subacks) == n, 10, message=f"SUBACK for {t}")
        wait_until(lambda: marker in got, 10, message=f"the retained message on {marker}")
    finally:
        c.disconnect()
        c.loop_stop()
    return {t: p for t, p in got.items() if t != marker}


# -- the shipped config binds, and the test broker binds the same way ------------------------------

def listener_sections(conf: str) -> tuple[list[str], list[list[str]]]:
    """(lines before the first listener, the lines of each listener section), comments dropped."""
    head: list[str] = []
    sections: list[list[str]] = []
    for line in conf.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("listener "):
            sections.append([])
        (sections[-1] if sections else head).append(line)
    return head, sections


@pytest.mark.parametrize("source", ["shipped", "test broker"])
def test_every_listener_binds_client_ids_to_user_names(source, tmp_path, tls_files):
    if source == "shipped":
        conf = SHIPPED_CONF.read_text()
    else:
        b = MosquittoBroker(tmp_path / "b", users=USERS, acl=ACL_TEMPLATE.read_text(), tls=tls_files)
        conf = b.write_config().read_text()
    head, sections = listener_sections(conf)
    assert "per_listener_settings true" in head
    # above the first listener it would configure (and open) a default listener on 1883
    assert not [line for line in head if line.startswith("use_username_as_clientid")]
    assert len(sections) == 2
    for section in sections:
        assert {"allow_anonymous false", "use_username_as_clientid true"} <= set(section), section


def round_trip(login: Login) -> bool:
    """A QoS 1 publish answered by the broker on the connection as it is now (no reconnection)."""
    try:
        login.client.publish("ghg/v1/unused/ping", b"", qos=1).wait_for_publish(10)
    except RuntimeError:  # not connected
        return False
    return True


class ShippedBroker(MosquittoBroker):
    """mosquitto on configs/mosquitto/mosquitto.conf itself, with only its ports, paths and log
    destination changed for a test (both listeners: loopback plain, TLS for the stations)."""

    def write_config(self) -> Path:
        assert self.tls is not None
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "persistence").mkdir(exist_ok=True)
        self._auth_lines()  # writes `passwords` and `acl`
        conf = SHIPPED_CONF.read_text()
        for old, new in {
            "listener 1883 127.0.0.1": f"listener {self.port} 127.0.0.1",
            "listener 8883": f"listener {self.tls_port} 127.0.0.1",
            "/var/lib/mosquitto/": f"{self.data_dir / 'persistence'}/",
            "/etc/mosquitto/ghgnet.passwd": str(self.data_dir / "passwords"),
            "/etc/mosquitto/ghgnet.acl": str(self.data_dir / "acl"),
            "/etc/mosquitto/certs/ca.crt": str(self.tls.ca),
            "/etc/mosquitto/certs/server.crt": str(self.tls.server_cert),
            "/etc/mosquitto/certs/server.key": str(self.tls.server_key),
            # information: the "running" line MosquittoBroker waits for
            "log_dest syslog": "\n".join(["log_dest stderr", "log_type information", *user_lines()]),
        }.items():
            assert conf.count(old) >= 1, f"the shipped config no longer has {old!r}"
            conf = conf.replace(old, new)
        self.config_path.write_text(conf)
        return self.config_path


def test_the_shipped_config_binds_identities_on_both_listeners(tmp_path, tls_files):
    if find_mosquitto() is None:
        pytest.fail("mosquitto is needed for these tests (apt-get install mosquitto)")
    broker = ShippedBroker(tmp_path / "shipped", users=USERS, acl=ACL_TEMPLATE.read_text(), tls=tls_files).start()
    logins: list[Login] = []
    try:
        # central on the loopback listener, stations over TLS, each with a persistent session
        central = Login(broker, "ghgnet-central", "ghgnet-central", clean_start=True, expiry_s=3600)
        a = Login(broker, "st-a", "st-a", clean_start=True, expiry_s=3600, tls=tls_files)
        logins += [central, a]
        for user, asked, tls in (("st-b", "ghgnet-central", tls_files), ("st-b", "st-a", tls_files),
                                 ("st-b", "ghgnet-central", None), ("st-b", "st-a", None)):
            intruder = Login(broker, user, asked, clean_start=True, tls=tls)
            intruder.close()
            assert intruder.connacks == [(0, False)]  # let in, as itself
        # a round trip of each victim's after the intruders' logins: a disconnection they caused
        # would have come before its PUBACK
        assert [round_trip(victim) for victim in (central, a)] == [True, True]
        assert (central.disconnects, a.disconnects) == ([], [])
    finally:
        for login in logins:
            login.close()
        broker.kill()


# -- a station cannot take central's session ---------------------------------------------------------

def test_a_station_logging_in_with_centrals_client_id_does_not_disconnect_the_receiver(broker, db, reader):
    cfg = receiver_config(broker, db)
    assert cfg.mqtt.client_id == "ghgnet-central"
    a = station(broker, "st-a")
    try:
        with Receiver(cfg) as receiver:
            assert receiver.subscribed.wait(10)
            a.publish("minute", batch([1, 2]))
            a.wait_acked([1, 2])
            intruder = Login(broker, "st-b", "ghgnet-central", clean_start=True)
            intruder.close()
            assert intruder.connacks == [(0, False)]  # logged in: as st-b, in a session of its own
            a.publish("minute", batch([3]))
            a.wait_acked([3])  # after the intruder: a takeover would have disconnected us by now
            assert (receiver.stats["connects"], receiver.stats["disconnects"]) == (1, 0)
    finally:
        a.close()


def test_a_station_logging_in_with_centrals_client_id_leaves_its_queued_messages(broker, db, reader):
    cfg = receiver_config(broker, db)
    a = station(broker, "st-a")
    try:
        with Receiver(cfg) as first:
            assert first.subscribed.wait(10)
        a.publish("minute", batch([1, 2]))  # central is away: queued for its session
        a.publish("minute", batch([3]))
        # a clean start with central's id would end central's session and drop what it queued
        Login(broker, "st-b", "ghgnet-central", clean_start=True).close()
        with Receiver(cfg) as second:
            assert second.subscribed.wait(10)
            a.wait_acked([1, 2, 3])
            assert second.stats["disconnects"] == 0
        assert reader.held_seqs("st-a") == [1, 2, 3]
    finally:
        a.close()


# -- a station cannot take another station's session -----------------------------------------------

def test_a_station_logging_in_with_another_stations_client_id_does_not_take_its_session(broker, db, reader):
    # st-a as its forwarder logs in (client id = its station id), with a persistent session
    cfg = receiver_config(broker, db)
    a = Login(broker, "st-a", "st-a", clean_start=True, expiry_s=3600, ack_of="st-a")
    try:
        with Receiver(cfg) as receiver:
            assert receiver.subscribed.wait(10)
            a.publish("minute", batch([1]))
            wait_until(lambda: a.acked == {1}, 10, message="ack 1")
            Login(broker, "st-b", "st-a", clean_start=True).close()  # st-b asks for st-a's id
            a.publish("minute", batch([2]))
            wait_until(lambda: a.acked == {1, 2}, 10, message="ack 2")
            assert a.disconnects == []
        # st-a away, central acks while it is: the acks wait in st-a's session, which st-b's clean
        # start with st-a's id does not end
        a.publish("minute", batch([3]))
        a.close()
        Login(broker, "st-b", "st-a", clean_start=True).close()
        with Receiver(cfg) as receiver:
            assert receiver.subscribed.wait(10)
            wait_until(lambda: 3 in reader.held_seqs("st-a"), 10, message="seq 3 stored")
        a = Login(broker, "st-a", "st-a", clean_start=False, expiry_s=3600, ack_of="st-a")
        assert a.connacks == [(0, True)]  # its own session, kept
        wait_until(lambda: 3 in a.acked, 10, message="the ack queued while st-a was away")
    finally:
        a.close()


# -- several receivers, one identity each --------------------------------------------------------

def test_two_receivers_with_their_own_identities_share_a_subscription_and_store_everything_once(
        broker, pg_dsn, pg_schema, tmp_path):
    receivers = [
        Receiver(receiver_config(broker, tmp_path / "unused.sqlite", user,
                                 storage={"backend": "postgresql", "dsn": pg_dsn, "schema": pg_schema},
                                 ingest={"shared_group": "central"})).start()
        for user in ("ghgnet-central", "ghgnet-central-2")
    ]
    a = station(broker, "st-a")
    try:
        assert all(r.subscribed.wait(10) for r in receivers)
        batches = [list(range(s, s + 5)) for s in range(1, 201, 5)]
        for seqs in batches + batches[:10]:  # the first ten twice, as after a lost ack
            a.publish("minute", batch(seqs))
        a.wait_acked(range(1, 201), timeout_s=20)
        wait_until(lambda: sum(r.stats["messages_handled"] for r in receivers) == 50, message="all handled")
        assert all(r.stats["messages_handled"] > 0 for r in receivers)  # the broker split the load
        assert [(r.stats["connects"], r.stats["disconnects"]) for r in receivers] == [(1, 0), (1, 0)]
    finally:
        a.close()
        for r in receivers:
            r.stop()
    reader = open_store("postgresql", dsn=pg_dsn, schema=pg_schema)
    try:
        assert reader.held_seqs("st-a") == list(range(1, 201))
        s = reader.stations()[0]
        assert (s.minutes, s.duplicates) == (200, 50)
    finally:
        reader.close()


def test_two_receivers_with_one_user_name_take_each_others_session(broker, db):
    # why each receiver needs a user of its own: the broker names the session after the user
    cfg = receiver_config(broker, db)
    with Receiver(cfg) as first:
        assert first.subscribed.wait(10)
        with Receiver(cfg) as second:
            assert second.connected.wait(10)
            wait_until(lambda: first.stats["disconnects"] >= 1, 10, message="the first one thrown out")


# -- retained data is ingested once, then cleared -------------------------------------------------

def test_a_retained_data_message_is_stored_once_cleared_and_logged_across_restarts(broker, db, reader):
    cfg = receiver_config(broker, db)
    minute_topic, event_topic = topic_for("st-a", "minute"), topic_for("st-a", "event")
    a = station(broker, "st-a")
    try:
        status = StatusMessage(station="st-a", state="up", time=SENT, backlog=0, agent_version="0.1.0")
        a.publish("status", status.to_json(), retain=True)  # statuses stay retained
        # before any receiver: "no matching subscribers", kept only as the retained message
        assert a.publish("minute", batch([1, 2]), retain=True).value == 0x10
        with capture_logs() as logs:
            with Receiver(cfg) as first:  # handed the retained batch at its subscription
                assert first.subscribed.wait(10)
                a.wait_acked([1, 2])
                # its own clearing comes back (empty, retained): skipped, not dead-lettered
                wait_until(lambda: first.stats["retained_clears_seen"] == 1, 10, message="the clearing seen")
                assert first.stats["retained_cleared"] == 1
            with Receiver(cfg) as second:  # a restart: nothing retained is handed out again
                assert second.subscribed.wait(10)
                assert a.publish("event", batch([3], kind="event"), retain=True).value == 0  # live
                a.wait_acked([3])
                wait_until(lambda: second.stats["retained_cleared"] == 1, 10, message="the event cleared")
                assert second.stats["records_duplicate"] == 0
            with Receiver(cfg) as third:  # a second restart
                assert third.subscribed.wait(10)
                a.publish("minute", batch([4]))
                a.wait_acked([4])  # anything retained would have come before it
                assert (third.stats["records_new"], third.stats["records_duplicate"]) == (1, 0)
                assert third.stats["retained_cleared"] == 0
        assert reader.held_seqs("st-a") == [1, 2, 3, 4]
        summary = reader.stations()[0]
        assert (summary.minutes, summary.duplicates) == (3, 0)
        assert reader.dead_letters() == []
        cleared = [(e["station"], e["topic"]) for e in logs if e["event"] == "retained_data_cleared"]
        assert cleared == [("st-a", minute_topic), ("st-a", event_topic)]
        assert retained_on(broker, [minute_topic, event_topic], marker=topic_for("st-a", "status")) == {}
    finally:
        a.close()


def test_an_empty_data_message_not_retained_is_still_dead_lettered(broker, db, reader):
    # only an empty *retained* message is a clearing; an empty batch from a station is bad input
    a = station(broker, "st-a")
    try:
        with Receiver(receiver_config(broker, db)) as receiver:
            assert receiver.subscribed.wait(10)
            a.publish("minute", b"")
            a.publish("minute", batch([1]))
            a.wait_acked([1])  # handled after the empty one
            assert receiver.stats["retained_clears_seen"] == 0
        assert [letter.topic for letter in reader.dead_letters()] == [topic_for("st-a", "minute")]
    finally:
        a.close()
