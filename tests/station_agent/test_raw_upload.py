"""The raw readings (L0) archived at central, with real parts: a real mosquitto, `station-sim` with
the example bench, `station-agent run` with `[forwarding.raw]` on and `central-receiver run`
(simulators.network.Network), on one simulated clock.

- what central archives is the station's raw table, row for row (up to each device's cursor,
  which moves only on central's ack), under the bandwidth cap measured on the broker;
- a backlog of minutes drains before the first chunk goes: L0 never delays a minute;
- central down and back: nothing archived twice, nothing missing;
- retention keeps the rows central does not hold yet; the disk policy does not, and says so.
"""

from __future__ import annotations

import io
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from support.wait import wait_until

from central.archive import archive_status, raw_readings
from central.store import open_store
from drivers.reading import Reading
from ghgnet.clock import ScaledClock
from ghgnet.logs import configure_logging, get_logger
from ghgnet.mqttlink import MqttConfig
from ghgnet.records import MinuteRecord, SpeciesMinute
from ghgnet.timeutil import iso_utc
from ghgnet.wire.raw import RAW_CONTENT_TYPE
from simulators.broker import find_mosquitto
from simulators.network import Network
from station_agent.forwarding.forwarder import Forwarder, ForwardingConfig, mqtt_packet_overhead
from station_agent.forwarding.raw_upload import RawUploadConfig, RawUploader
from station_agent.processing.minute_bins import MinuteAssembler
from station_agent.storage.store import StationStore
from station_agent.storage.writer import StoreWriter

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SPEED = 720.0


@pytest.fixture
def network() -> Iterator:
    """network(raw={...}, **kwargs) -> a Network whose station uploads its raw readings; every part
    stopped and the folder removed after the test."""
    if find_mosquitto() is None:
        pytest.fail("mosquitto is needed for these tests (apt-get install mosquitto)")
    made: list[Network] = []

    def make(raw: dict | None = None, forwarding: dict | None = None, **kwargs) -> Network:
        kwargs.setdefault("speed", SPEED)
        settings = {"forwarding": {"stop_drain_s": 30.0, **(forwarding or {})},
                    "forwarding.raw": {"enabled": True, "settle_s": 30.0, **(raw or {})},
                    "logging": {"format": "json"}}
        net = Network(Path(tempfile.mkdtemp(prefix="ghgraw-")), station_settings=settings, **kwargs)
        made.append(net)
        return net

    yield make
    for net in made:
        net.close()
        shutil.rmtree(net.run_dir, ignore_errors=True)


class RawTap:
    """A subscriber on the broker that sees every raw chunk message go by: when, and how big
    (payload and MQTT overhead, as the station's bucket counts them)."""

    def __init__(self, net: Network) -> None:
        self.seen: list[tuple[float, int]] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        overhead = mqtt_packet_overhead(f"ghg/v1/{net.station_id}/raw", RAW_CONTENT_TYPE)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="raw-tap", protocol=mqtt.MQTTv5)
        self.client.on_subscribe = lambda *a: subscribed.set()

        def on_message(client, userdata, msg) -> None:
            with self._lock:
                self.seen.append((time.monotonic(), len(msg.payload) + overhead))

        self.client.on_message = on_message
        self.client.connect(net.broker.host, net.broker.port)
        self.client.loop_start()
        self.client.subscribe("ghg/v1/+/raw", qos=0)
        assert subscribed.wait(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def cursors(net: Network) -> dict[str, str]:
    if not net.station_db.exists():
        return {}
    with closing(StationStore(net.station_db, read_only=True)) as store:
        return store.raw_upload_cursors()


def archived_rows(net: Network) -> int:
    """Rows central holds in its raw archive (0 before the table exists)."""
    if not net.central_db.exists():
        return 0
    with closing(open_store("sqlite", path=net.central_db)) as store:
        return sum(r["rows"] for r in store.raw_archive_summary())


def compare_archive(net: Network) -> dict[str, int]:
    """Central's archive against the station's raw table, device by device, up to each device's
    cursor: the same rows, key for key, in the same order. Returns the rows compared per device."""
    done = cursors(net)
    assert done, "no device's cursor moved: nothing was acknowledged"
    out = {}
    with closing(StationStore(net.station_db, read_only=True)) as station, \
            closing(open_store("sqlite", path=net.central_db)) as central:
        for device, until in done.items():
            end = datetime.fromisoformat(until.replace("Z", "+00:00"))
            mine = list(station.raw_rows(EPOCH, end, device))
            held = list(raw_readings(central, net.station_id, EPOCH, end, device))
            assert len(held) == len(mine), f"{device}: central holds {len(held)} rows, the station {len(mine)}"
            assert held == mine, f"{device}: rows differ"
            out[device] = len(mine)
            # and nothing of the device beyond the cursor that the station does not have
            later = list(raw_readings(central, net.station_id, end, end + timedelta(days=1), device))
            assert later == list(station.raw_rows(end, end + timedelta(days=1), device))[:len(later)]
    return out


def prefill(db: Path, minutes: int, raw_hours: float, before: datetime) -> None:
    """A backlog of `minutes` minute records of an archive analyzer (so, in the outbox) and
    `raw_hours` of its 1 Hz raw readings, all before `before`, in the station's database before
    the agent starts: the raw windows are closed at once."""
    t0 = before - timedelta(minutes=minutes + 60)
    recs = [MinuteRecord(time=t0 + timedelta(minutes=i), device="picarro-0", stream="inlet:top",
                         species={"co2": SpeciesMinute(420.0, 0.05, 55, 419.7, 420.0)}, h2o=1.1, flag="U",
                         n_total=60, calibration_id="cal-archive", diagnostics={})
            for i in range(minutes)]
    r0 = before - timedelta(hours=raw_hours + 1)
    readings = [Reading(r0 + timedelta(seconds=i, milliseconds=137), "picarro-0",
                        {"co2": 420.0 + (i % 17) * 0.01, "ch4": 2000.0 + (i % 5) * 0.1, "h2o": 1.1},
                        stream="inlet:top") for i in range(int(raw_hours * 3600))]
    store = StationStore(db)
    try:
        for i in range(0, minutes, 5000):
            store.insert_minutes(recs[i:i + 5000], before)
        store.insert_raw(readings)
    finally:
        store.close()


@pytest.mark.slow
def test_the_archive_is_the_stations_raw_table_under_the_bandwidth_cap(network):
    """Three hours of an archive analyzer's raw readings wait at the start, so the upload runs
    against its cap from the first second; the bytes that went by the broker never pass the cap
    times the time since the agent started."""
    cap = 2000.0
    net = network(raw={"max_bytes_per_s": cap})
    prefill(net.station_db, 0, 3.0, net.start)
    net.start_broker()
    tap = RawTap(net)
    try:
        net.start_sim()
        net.start_central()
        began = time.monotonic()  # before the agent (and its bucket) starts: the bound is loose, never tight
        net.start_agent()
        net.wait_agent_started()
        net.wait(lambda: len(tap.seen) >= 20, 120, "twenty raw chunks on the broker")
        net.wait(lambda: archived_rows(net) > 0, 30, "chunks stored at central")
        assert net.stop("station-agent", timeout_s=90) == 0, net.log_tail("station-agent")
    finally:
        tap.close()
    sent = sum(size for _, size in tap.seen)
    last = tap.seen[-1][0]
    rate = sent / (last - began)
    print(f"raw upload: {len(tap.seen)} chunks, {sent} bytes in {last - began:.1f} s: {rate:.0f} B/s (cap {cap:g})")
    assert sent <= cap * (last - began), f"{sent} bytes by {last - began:.1f} s is above the cap of {cap:g} B/s"
    compared = compare_archive(net)
    assert compared.get("picarro-0", 0) >= 3600, compared
    assert net.stop("central-receiver") == 0, net.log_tail("central-receiver")


@pytest.mark.slow
def test_a_backlog_of_minutes_drains_before_the_first_raw_chunk(network):
    """4000 minutes wait in the outbox and two hours of raw readings are ready to go: the backlog
    is replayed at 500 records/s (8 s), and not one chunk reaches central before the last of it."""
    net = network(raw={"max_bytes_per_s": 1e6}, forwarding={"replay_rate": 500.0})
    prefill(net.station_db, 4000, 2.0, net.start)
    net.start_all()
    net.wait_agent_started()
    done = iso_utc(net.start - timedelta(hours=1))
    net.wait(lambda: cursors(net).get("picarro-0", "") >= done, 120, "the prefilled raw readings archived")
    with closing(open_store("sqlite", path=net.central_db)) as central:
        backlog = [m.received_at for m in central.minutes(net.station_id, EPOCH, net.start) if m.device == "picarro-0"]
        (first_chunk,) = [d["first_received"] for d in archive_status(central) if d["device"] == "picarro-0"]
    assert len(backlog) == 4000
    print(f"last backlog minute stored {max(backlog).isoformat()}, first raw chunk {first_chunk}")
    assert first_chunk >= iso_utc(max(backlog)), "a raw chunk reached central before the minute backlog drained"
    assert net.stop("station-agent", timeout_s=90) == 0, net.log_tail("station-agent")
    compared = compare_archive(net)
    assert compared["picarro-0"] == 7200


@pytest.mark.slow
def test_central_down_and_back(network):
    """Central stops while the station uploads; the station's cursor stands still (no ack), its
    raw windows go on closing; central comes back and the upload catches up: the archive is the
    station's raw table again, nothing twice, nothing missing, nothing dead-lettered."""
    net = network(raw={"max_bytes_per_s": 1e6})
    net.start_all()
    net.wait_agent_started()
    net.wait(lambda: archived_rows(net) > 0 and "picarro-1" in cursors(net), 120, "the first chunks at central")
    assert net.stop("central-receiver") == 0, net.log_tail("central-receiver")
    stopped = net.sim_now()
    net.wait(lambda: net.sim_now() > stopped + timedelta(minutes=10), 60, "ten simulated minutes")
    down = cursors(net)  # acks sent before central's stop have landed by now
    net.wait(lambda: net.sim_now() > stopped + timedelta(minutes=50), 60, "forty more simulated minutes")
    assert cursors(net) == down, "a cursor moved while central was down"
    net.start_central()
    net.wait(lambda: cursors(net)["picarro-1"] >= iso_utc(stopped + timedelta(minutes=40)), 120,
             "the upload to catch up after central came back")
    assert net.stop("station-agent", timeout_s=90) == 0, net.log_tail("station-agent")
    compared = compare_archive(net)
    assert compared["picarro-1"] >= 100, compared
    with closing(open_store("sqlite", path=net.central_db)) as central:
        assert central.dead_letter_count() == 0


T0 = datetime(2026, 3, 1, tzinfo=UTC)


def test_retention_keeps_the_raw_readings_central_does_not_hold(tmp_path):
    path = tmp_path / "s.sqlite"
    store = StationStore(path)
    try:
        store.insert_raw([Reading(T0 + timedelta(minutes=i), dev, {"co2": 420.0}) for i in range(600)
                          for dev in ("picarro-1", "flow-1")])
        store.advance_raw_cursor("picarro-1", iso_utc(T0 + timedelta(minutes=100)), T0)
        assert store.advance_raw_cursor("picarro-1", iso_utc(T0), T0) == iso_utc(T0 + timedelta(minutes=100))
        doomed = store.unarchived_raw(T0 + timedelta(minutes=300), 10_000)
        assert doomed == [
            {"device": "flow-1", "rows": 300, "first": iso_utc(T0), "last": iso_utc(T0 + timedelta(minutes=299))},
            {"device": "picarro-1", "rows": 200, "first": iso_utc(T0 + timedelta(minutes=100)),
             "last": iso_utc(T0 + timedelta(minutes=299))}]
        assert store.purge_raw(T0 + timedelta(minutes=300), keep_unarchived=True) == 100
        assert len(list(store.raw_rows(T0, T0 + timedelta(days=1), "picarro-1"))) == 500
        assert len(list(store.raw_rows(T0, T0 + timedelta(days=1), "flow-1"))) == 600
        assert store.purge_raw(T0 + timedelta(minutes=300)) == 500  # the upload off: retention as before
    finally:
        store.close()


def test_the_disk_policy_deletes_unarchived_raw_readings_and_says_what_the_archive_lost(tmp_path):
    path = tmp_path / "s.sqlite"
    store = StationStore(path)
    try:
        store.insert_raw([Reading(T0 + timedelta(seconds=2 * i), "picarro-1", {"co2": 420.0 + i % 7, "ch4": 2000.0})
                          for i in range(20_000)])
        store.advance_raw_cursor("picarro-1", iso_utc(T0 + timedelta(seconds=10_000)), T0)  # the first 5000 held
    finally:
        store.close()
    configure_logging("t", fmt="json", stream=io.StringIO())
    w = StoreWriter(path, ScaledClock(start=T0 + timedelta(days=2)), MinuteAssembler(20), make_minute=None,
                    log=get_logger(), state=dict, raw_retention=timedelta(days=3650), quota_bytes=0.02e6)
    w.keep_unarchived_raw = True
    w.start()
    try:
        wait_until(lambda: w.disk_deleted["raw"] == 20_000, 30, message="the disk policy's pass")
    finally:
        w.stop()
    with closing(StationStore(path, read_only=True)) as after:
        (lost,) = [e for e in after.event_rows(50) if e["kind"] == "raw.archive_lost"]
    assert lost["severity"] == "error" and sum(x["rows"] for x in lost["data"]["lost"]) == 15_000
    assert lost["data"]["lost"][0]["first"] == iso_utc(T0 + timedelta(seconds=10_000))
    assert "15000 raw readings central does not hold yet" in lost["message"]


def test_chunks_cover_every_row_once_in_grid_windows_cut_to_the_byte_bound(tmp_path):
    """The uploader's chunks, acknowledged one after the other: windows on the 10-minute grid,
    empty stretches passed over, a window too big for two seconds of a small cap cut at a row's
    time, every message within the bound, and together exactly the station's rows."""
    path = tmp_path / "s.sqlite"
    store = StationStore(path)
    noisy = [Reading(T0 + timedelta(seconds=i, milliseconds=(i * 7919) % 1000), "picarro-1",
                     {"co2": 420.0 + ((i * 7919) % 1000) / 997.0, "ch4": 2000.0 + ((i * 104729) % 1000) / 991.0},
                     stream="inlet:top") for i in range(3600)]
    later = [Reading(T0 + timedelta(hours=5, seconds=10 * i), "flow-1", {"flow": 1.0}, stream="aux") for i in range(30)]
    store.insert_raw(noisy + later)
    store.close()
    configure_logging("t", fmt="json", stream=io.StringIO())
    clock = ScaledClock(start=T0 + timedelta(days=1))
    forwarder = Forwarder("st-a", MqttConfig(), ForwardingConfig(), path, clock, lambda ranges: None,
                          lambda event: None, get_logger())
    uploader = RawUploader("st-a", RawUploadConfig(enabled=True, max_bytes_per_s=2048.0), forwarder, path, clock,
                           lambda device, until: None, lambda event: None, get_logger(), devices=["picarro-1"])
    uploader.store_id = "0" * 32
    limit = uploader._limit()
    assert limit == 4096  # two seconds of a 2048 B/s cap, below MIN_CHUNK_BYTES: the minimum
    got: dict[str, list[dict]] = {"picarro-1": [], "flow-1": []}
    windows = []
    with closing(StationStore(path, read_only=True)) as reader:
        uploader.positions["flow-1"] = None
        while (c := uploader._next_chunk(reader)) is not None:
            assert len(c.frame) + uploader.overhead <= limit
            h = c.header
            assert (h.start - EPOCH) % timedelta(minutes=10) == timedelta(0) or windows[-1][2] == h.start
            windows.append((h.device, h.start, h.end))
            got[h.device] += c.rows()
            uploader.positions[h.device] = h.end  # as central's ack does
        assert got["picarro-1"] == list(reader.raw_rows(EPOCH, T0 + timedelta(days=1), "picarro-1"))
        assert got["flow-1"] == list(reader.raw_rows(EPOCH, T0 + timedelta(days=1), "flow-1"))
    cut = [w for w in windows if w[0] == "picarro-1" and (w[2] - EPOCH) % timedelta(minutes=10)]
    assert cut, "no window was cut: the test would not see the cutting"
    assert [w[1] for w in windows if w[0] == "flow-1"] == [T0 + timedelta(hours=5)]  # the empty hours passed over
    assert uploader.stats["cut"] >= len(cut)
