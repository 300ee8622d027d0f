"""Store-and-forward under faults, with real processes only: a real mosquitto (MosquittoBroker),
`station-sim` with the example bench, `station-agent run` with the example station and
`central-receiver run` with the example central config (simulators.network.Network), on one
simulated clock. Some tests also put a 30-day-style backlog in the station's outbox first
(StationStore.insert_minutes, an older analyzer's archive) so that a fault can hit a replay.

Every test ends the same way: the agent gets SIGTERM (it waits for central's ack of its outbox),
central stops, and central must hold every record the station produced (minutes, events,
calibrations, targets), exactly once, compared seq by seq with the station's own tables.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from support.records import (
    central_minute_count,
    central_records,
    central_status,
    outbox_size,
    station_event_kinds,
    station_records,
)

from central.config import CentralConfig
from central.receiver import Receiver
from ghgnet.records import MinuteRecord, SpeciesMinute
from simulators.broker import find_mosquitto, free_port
from simulators.network import KINDS, DemoError, Network
from station_agent.storage.store import StationStore

ACL_TEMPLATE = (Path(__file__).resolve().parents[2] / "configs" / "mosquitto" / "acl.template").read_text()
SPEED = 720.0
ARCHIVE_DEVICE = "picarro-0"  # the backlog's analyzer: an archive, so it never meets a live minute


@pytest.fixture
def network() -> Iterator:
    """network(**kwargs) -> a Network in a short temporary folder (the agent's control socket
    path must stay under 108 bytes); every part stopped and the folder removed after the test."""
    if find_mosquitto() is None:
        pytest.fail("mosquitto is needed for these tests (apt-get install mosquitto)")
    made: list[Network] = []

    def make(**kwargs) -> Network:
        kwargs.setdefault("speed", SPEED)
        settings = kwargs.pop("forwarding", {})
        station_settings = kwargs.pop("station_settings", {})
        station_settings.setdefault("forwarding", {}).update({"stop_drain_s": 30.0, **settings})
        station_settings.setdefault("logging", {}).update({"format": "json"})
        net = Network(Path(tempfile.mkdtemp(prefix="ghgfw-")), station_settings=station_settings, **kwargs)
        made.append(net)
        return net

    yield make
    for net in made:
        net.close()
        shutil.rmtree(net.run_dir, ignore_errors=True)


def prefill_backlog(db: Path, n: int, before: datetime) -> None:
    """n minute records of an archive analyzer, ending before `before`, into the station's
    database (and so its outbox) before the agent starts."""
    t0 = before - timedelta(minutes=n + 60)
    recs = [
        MinuteRecord(time=t0 + timedelta(minutes=i), device=ARCHIVE_DEVICE, stream="inlet:top",
                     species={"co2": SpeciesMinute(420.0 + i * 1e-4, 0.05, 55, 419.7, 420.0 + i * 1e-4),
                              "ch4": SpeciesMinute(2000.0, 0.8, 55, 1998.0, 2000.0)},
                     h2o=1.1, flag="U", n_total=60, calibration_id="cal-archive",
                     diagnostics={"cavity_pressure": 140.0})
        for i in range(n)
    ]
    store = StationStore(db)
    try:
        for i in range(0, n, 5000):
            store.insert_minutes(recs[i:i + 5000], before)
    finally:
        store.close()


def central_count(net: Network, device: str | None = None) -> int:
    return central_minute_count(net.central_db, net.station_id, device)


def station_events(net: Network) -> list[str]:
    return station_event_kinds(net.station_db)


def finish_and_compare(net: Network, backlog: int = 0) -> dict[str, dict[int, tuple]]:
    """SIGTERM the agent (it waits for central's acks), stop central, then compare the station's
    records with central's, seq by seq. Returns the station's records."""
    if backlog:
        net.wait(lambda: central_count(net, ARCHIVE_DEVICE) == backlog, 90, "the whole backlog at central")
    assert net.stop("station-agent", timeout_s=90) == 0, net.log_tail("station-agent")
    left = outbox_size(net.station_db)
    assert left == 0, f"{left} records never acknowledged by central"
    assert net.stop("central-receiver") == 0, net.log_tail("central-receiver")
    produced, stored = station_records(net.station_db), central_records(net.central_db, net.station_id)
    for kind in KINDS:
        missing = sorted(set(produced[kind]) - set(stored[kind]))
        extra = sorted(set(stored[kind]) - set(produced[kind]))
        assert not missing, f"{kind}: {len(missing)} seqs never reached central, e.g. {missing[:5]}"
        assert not extra, f"{kind}: central holds seqs the station never made, e.g. {extra[:5]}"
        differ = [s for s in produced[kind] if produced[kind][s] != stored[kind][s]]
        assert not differ, f"{kind}: records differ at central, e.g. seq {differ[:3]}"
    minutes = list(stored["minute"].values())
    assert len(minutes) == len(set(minutes)), "a minute is stored twice at central under two seqs"
    assert len(produced["minute"]) >= backlog + 10
    assert len(produced["event"]) >= 2  # at least agent.start and agent.stop
    return produced


def started(net: Network, backlog: int = 0) -> Network:
    net.start_broker()
    if backlog:
        prefill_backlog(net.station_db, backlog, net.start)
    net.start_sim()
    net.start_central()
    net.start_agent()
    return net


def test_central_refused_by_the_broker_fails_its_start_at_once(network):
    # Network.start_central waits for the receiver's subscription; a refusal must not wait it out
    net = network(broker_users={"ghgnet-central": "central-secret"},
                  central_settings={"mqtt": {"username": "ghgnet-central", "password": "not-the-secret"}})
    net.start_broker()
    t0 = time.monotonic()
    with pytest.raises(DemoError, match="refused central-receiver"):
        net.start_central()
    assert time.monotonic() - t0 < 30, "the refusal was waited out"


def test_broker_sigkilled_during_a_replay_loses_and_duplicates_nothing(network):
    n = 12_000
    net = started(network(forwarding={"replay_rate": 4000, "batch_size": 100}), backlog=n)
    net.wait(lambda: central_count(net, ARCHIVE_DEVICE) >= 1500, 60, "the replay to be under way")
    net.broker.kill()  # SIGKILL: whatever mosquitto PUBACKed but had not delivered is gone
    at_kill = central_count(net, ARCHIVE_DEVICE)
    assert at_kill < n, "the replay finished before the broker was killed: nothing was tested"
    net.broker.start()  # same port: the agent and central reconnect by themselves
    finish_and_compare(net, backlog=n)


def test_central_down_for_two_simulated_hours_then_back_gets_everything_once(network):
    net = started(network())
    net.wait(lambda: central_count(net) >= 5, 60, "minutes flowing to central")
    assert net.stop("central-receiver", kill=True) == -9
    down_at = net.sim_now()
    net.wait(lambda: net.sim_now() >= down_at + timedelta(hours=2), 30, "two simulated hours")
    # The broker PUBACKed all of it, but only central's ack lets the station forget a record.
    assert outbox_size(net.station_db) >= 100
    net.start_central()
    net.wait(lambda: outbox_size(net.station_db) < 20, 60, "central to acknowledge the two hours")
    finish_and_compare(net)


def test_agent_sigkilled_mid_batch_and_restarted_resends_without_duplicates(network):
    n = 12_000
    net = started(network(forwarding={"replay_rate": 4000, "batch_size": 100}), backlog=n)
    net.wait(lambda: central_count(net, ARCHIVE_DEVICE) >= 1500, 60, "the replay to be under way")
    net.stop("station-agent", kill=True)
    assert central_count(net, ARCHIVE_DEVICE) < n, "the replay finished before the kill: nothing was tested"
    assert outbox_size(net.station_db) > 0
    net.start_agent()  # same clock (--start/--anchor), same database
    finish_and_compare(net, backlog=n)


def test_acl_denied_publishes_are_reported_and_kept_then_delivered_once_the_acl_is_fixed(network):
    # The operator's ACL lets the station publish its status and read its acks, but forgot its
    # data topics: every data publish is refused with a PUBACK reason code (MQTT v5).
    broken_acl = "\n".join(line for line in ACL_TEMPLATE.splitlines()
                           if not line.startswith(("pattern write ghg/v1/%u/minute", "pattern write ghg/v1/%u/event",
                                                   "pattern write ghg/v1/%u/calibration")))
    users = {"ghgnet-central": "central-secret", "demo-tower": "tower-secret"}
    net = network(broker_users=users, broker_acl=broken_acl,
                  forwarding={"denied_backoff_s": 0.5, "ack_timeout_s": 5},
                  station_settings={"mqtt": {"username": "demo-tower", "password": "tower-secret"}},
                  central_settings={"mqtt": {"username": "ghgnet-central", "password": "central-secret"}})
    started(net)
    net.wait(lambda: "fault.publish_denied" in station_events(net), 60, "the denial to be reported as an event")
    net.wait(lambda: len(station_records(net.station_db)["minute"]) >= 20, 60, "minutes produced while denied")
    produced = station_records(net.station_db)
    queued = outbox_size(net.station_db)
    assert queued >= sum(len(v) for v in produced.values()), "a denied record left the outbox"
    assert central_count(net) == 0
    net.broker.reload(acl=ACL_TEMPLATE)  # SIGHUP: the shipped ACL, nothing restarted
    net.wait(lambda: central_count(net) >= len(produced["minute"]), 60, "the kept records at central")
    held = finish_and_compare(net)
    assert "fault.publish_denied" in [ident[0] for ident in held["event"].values()]
    assert "recovered.publish_denied" in station_events(net)


class CuttingProxy:
    """A TCP relay in front of the broker whose connections can be reset at once (RST both ways),
    as a dropped link does: far inside the 30 s keepalive, so only the socket error tells."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.accepted = 0
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._server.settimeout(0.1)
        self._stop = threading.Event()
        self._spawn(self._accept)

    def _spawn(self, target, *args) -> None:
        t = threading.Thread(target=target, args=args, daemon=True, name="cutting-proxy")
        t.start()
        self._threads.append(t)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._pairs.append((client, upstream))
                self.accepted += 1
            self._spawn(self._relay, client, upstream)
            self._spawn(self._relay, upstream, client)

    @staticmethod
    def _relay(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for s in pair:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def close(self) -> None:
        self._stop.set()
        self.cut()
        for t in self._threads:
            t.join(5)
        self._server.close()


def test_link_cut_three_times_inside_the_keepalive_window_loses_and_duplicates_nothing(network):
    n = 8000
    net = network(forwarding={"replay_rate": 2000, "batch_size": 100})
    net.start_broker()
    proxy = CuttingProxy(net.broker.port)
    try:
        net.station_settings["mqtt"] = {"port": proxy.port, "keepalive_s": 30}
        prefill_backlog(net.station_db, n, net.start)
        net.start_sim()
        net.start_central()
        net.start_agent()
        for cut in range(1, 4):
            seen = central_count(net, ARCHIVE_DEVICE)
            net.wait(lambda: central_count(net, ARCHIVE_DEVICE) >= seen + 800, 60, f"replay before cut {cut}")
            net.wait(lambda: proxy.accepted >= cut, 30, "the agent's connection through the proxy")
            proxy.cut()
            net.wait(lambda: proxy.accepted > cut, 30, f"the agent to reconnect after cut {cut}")
        assert central_count(net, ARCHIVE_DEVICE) < n, "the replay finished before the last cut"
        finish_and_compare(net, backlog=n)
    finally:
        proxy.close()


def test_retained_status_and_last_will_tell_central_the_station_is_up_then_down(network):
    net = started(network(forwarding={"status_interval_s": 1.0}))

    def state() -> tuple | None:
        return central_status(net.central_db, net.station_id)

    up = net.wait(lambda: (s := state()) and s[0] == "up" and s, 60, "the station's 'up' status at central")
    assert up[2] == 1.0 and up[1] >= 0
    net.stop("station-agent", kill=True)  # no DISCONNECT: the broker publishes the last will
    net.wait(lambda: (s := state()) and s[0] == "down", 30, "the last will ('down') at central")
    # The will is retained too: a receiver that subscribes only now still learns the station is down
    # (on the network's simulated clock, as central: a will stamped beyond its clock is refused).
    late_db = net.run_dir / "late-central.sqlite"
    late = Receiver(CentralConfig.model_validate({
        "mqtt": {"host": "127.0.0.1", "port": net.broker.port, "client_id": "late-central"},
        "storage": {"backend": "sqlite", "path": str(late_db)},
    }), now=net.sim_now).start()
    try:
        assert late.subscribed.wait(10)
        net.wait(lambda: late.stats["messages_handled"] >= 1, 10, "the retained status")
    finally:
        late.stop()
    assert central_status(late_db, net.station_id)[0] == "down"
