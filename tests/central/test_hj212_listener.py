"""Central's HJ 212 listener over real TCP, on both store backends: packets stored once (a resend is
a duplicate), 9014 only after the commit and only when Flag asks, every bad kind refused and counted
and never stored, and the records visible through central's minute export and hourly aggregation."""

from __future__ import annotations

import asyncio
import csv
import io
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support.central import central_config
from support.wait import wait_until
from typer.testing import CliRunner

from central.cli import app
from central.config import CentralConfig
from central.hj212.listener import Hj212Listener, ack_frame
from central.hj212.records import logger_store, period_seq
from central.store import open_store
from ghgnet.hj212 import FrameReader, Packet, codes, encode_frame, encode_packet, parse_segment, reply_9014
from ghgnet.hj212.packet import make_flag
from simulators.hj212_logger import SimulatedLogger, faulty_frame, minute_packet, run_loggers

MN = "GHG00000000001"
PW = "123456"
START = datetime(2026, 3, 1, 8, 0)  # logger-local (Beijing) time: 00:00 UTC
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def hj_config(location: dict[str, Any], **hj212: Any) -> CentralConfig:
    storage = {k: (str(v) if k == "path" else v) for k, v in location.items()}
    section = {"listen": "127.0.0.1:0", "timezone": "Asia/Shanghai",
               "loggers": [{"mn": MN, "pw": PW, "station": "bj-tower", "stream": "inlet:100m"}], **hj212}
    return CentralConfig.model_validate({"storage": storage, "hj212": section})


@pytest.fixture
def listener(store_location):
    started: list[Hj212Listener] = []

    def start(**hj212: Any) -> Hj212Listener:
        lst = Hj212Listener(hj_config(store_location, **hj212), now=lambda: NOW).start()
        started.append(lst)
        return lst

    yield start
    for lst in started:
        lst.stop()


class Client:
    """A blocking TCP client that reads 9014s with a FrameReader."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=10)
        self.frames = FrameReader()
        self.replies: list[Packet] = []

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_replies(self, n: int, timeout_s: float = 10.0) -> list[Packet]:
        self.sock.settimeout(timeout_s)
        while len(self.replies) < n:
            chunk = self.sock.recv(65536)
            assert chunk, "the listener closed the connection"
            self.replies += [parse_segment(s) for s in self.frames.feed(chunk) if isinstance(s, str)]
        return self.replies

    def quiet(self, wait_s: float = 0.5) -> bool:
        """True when nothing more arrives within `wait_s`."""
        self.sock.settimeout(wait_s)
        try:
            return self.sock.recv(65536) == b""
        except TimeoutError:
            return True

    def close(self) -> None:
        self.sock.close()


def packet(i: int, co2_ppm: float = 420.0, flag: str = "N", ack: bool = True) -> Packet:
    values = {"a05001": (codes.to_wire_value(co2_ppm + i, "co2", "mg/m3"), flag),
              "a05002": (codes.to_wire_value(2000.0 + i, "ch4", "ng/m3"), flag)}
    return minute_packet(MN, PW, START + timedelta(minutes=i), values, ack=ack)


def test_minutes_are_stored_once_and_answered_after_the_commit(listener, store_location):
    lst = listener()
    reader = open_store(**store_location)
    client = Client(lst.address)
    try:
        for i in range(3):
            p = packet(i)
            client.send(encode_packet(p))
            (reply,) = client.read_replies(i + 1)[i:]
            # the 9014 arrives only once the record is committed: another connection sees it already
            assert (reply.cn, reply.qn, reply.st, reply.flag, reply.cp) == ("9014", p.qn, "91", 4, ())
            assert len(list(reader.minutes("bj-tower", NOW - timedelta(days=1), NOW))) == i + 1
        client.send(encode_packet(packet(1)))  # a resent packet: answered, not stored again
        assert client.read_replies(4)[3].qn == packet(1).qn
        wait_until(lambda: lst.stats["records_duplicate"] == 1, 10, message="the duplicate counted")
        client.send(encode_packet(packet(5, ack=False)))  # Flag 4: stored, never answered
        wait_until(lambda: lst.stats["packets_stored"] == 5, 10, message="the unanswered packet stored")
        assert client.quiet()
    finally:
        client.close()
    try:
        rows = list(reader.minutes("bj-tower", NOW - timedelta(days=1), NOW))
        assert [r.time for r in rows] == [datetime(2026, 3, 1, 0, m, tzinfo=UTC) for m in (0, 1, 2, 5)]
        first = rows[0]
        assert first.store == logger_store(MN, "2051") and first.seq == period_seq(first.time, "2051")
        assert (first.device, first.stream, first.flag) == ("hj212", "inlet:100m", "U")
        assert first.species["co2"].cal_mean == pytest.approx(420.0, abs=1e-3)  # 3 decimals of mg/m3 on the wire
        assert first.species["ch4"].cal_mean == pytest.approx(2000.0, abs=1e-3)
        assert reader.minute_count("bj-tower") == 4
    finally:
        reader.close()
    assert lst.stats["records_new"] == 4 and lst.stats["acks_sent"] == 4


def test_every_bad_kind_is_refused_counted_and_never_stored(listener, store_location):
    lst = listener()
    client = Client(lst.address)
    try:
        for i, kind in enumerate(("bad_crc", "bad_length", "oversize", "unknown_mn", "wrong_pw", "missing_crlf",
                                  "truncated")):
            client.send(faulty_frame(kind, packet(10 + i)))
        client.send(b"##0023ST=32;CN=2051;PW=1;MN=x" + b"0000\r\n")  # CRC wrong and segment malformed
        client.send(encode_frame("ST=32;CN=2051;PW=1;MN=x"))  # framing fine, no CP: a bad packet
        bad_segment = "ST=32;CN=2051;PW=123456;MN=" + MN + ";CP=&&DataTime=2026&&"
        client.send(encode_packet(parse_segment(bad_segment)))  # framing fine, DataTime not a time
        good = packet(0)
        client.send(encode_packet(good))
        replies = client.read_replies(1)
        assert [r.qn for r in replies] == [good.qn]  # nothing refused was answered
        assert client.quiet()
    finally:
        client.close()
    wait_until(lambda: lst.stats["packets_stored"] == 1, 10, message="the good packet stored")
    stats = lst.stats
    for key in ("frame_bad_crc", "frame_length_mismatch", "frame_oversize", "unknown_mn", "wrong_pw",
                "frame_missing_crlf", "frame_truncated", "bad_data_time", "bad_packet"):
        assert stats[key] >= 1, (key, dict(stats))
    assert stats["frame_bad_crc"] == 2
    reader = open_store(**store_location)
    try:
        assert reader.minute_count("bj-tower") == 1
        assert reader.dead_letter_count() == 0  # refused packets are dropped and counted, not stored
    finally:
        reader.close()


def test_a_conflicting_resend_is_kept_out_and_answered(listener, store_location):
    lst = listener()
    client = Client(lst.address)
    try:
        client.send(encode_packet(packet(0)))
        client.read_replies(1)
        client.send(encode_packet(packet(0, co2_ppm=300.0)))  # same MN, CN, DataTime; other values
        client.read_replies(2)
    finally:
        client.close()
    reader = open_store(**store_location)
    try:
        (row,) = reader.minutes("bj-tower", NOW - timedelta(days=1), NOW)
        assert row.species["co2"].cal_mean == pytest.approx(420.0, abs=1e-3)
        (letter,) = reader.dead_letters()
        assert letter.reason_code == "seq_conflict"
    finally:
        reader.close()


def test_split_parts_hour_and_realtime_data(listener, store_location):
    lst = listener()
    whole = packet(0)
    parts = [Packet(**{**vars_of(whole), "flag": make_flag(ack=True, split=True), "pnum": 2, "pno": n,
                       "cp": (whole.cp[0], whole.cp[n])}) for n in (1, 2)]
    hour = Packet(qn="20260301090000001", st="22", cn="2061", pw=PW, mn=MN, flag=5,
                  cp=[{"DataTime": "20260301080000"}, {"a05001-Avg": "800.0", "a05001-Min": "790.0",
                                                       "a05001-Max": "810.0", "a05001-Flag": "N"}])
    client = Client(lst.address)
    try:
        for p in (*parts, hour):
            client.send(encode_packet(p))
        assert [r.qn for r in client.read_replies(3)] == [whole.qn, whole.qn, hour.qn]
    finally:
        client.close()
    reader = open_store(**store_location)
    try:
        rows = list(reader.minutes("bj-tower", NOW - timedelta(days=1), NOW))
        assert sorted((r.device, *r.species) for r in rows) == [("hj212-p1", "co2"), ("hj212-p2", "ch4")]
        (event,) = reader.events("bj-tower", NOW - timedelta(days=1), NOW)
        assert event.kind == "hj212_hour" and event.data["values"]["co2"]["value"] == pytest.approx(
            codes.mg_m3_to_ppm(800.0, 44.01))
    finally:
        reader.close()


def vars_of(p: Packet) -> dict[str, Any]:
    return {f: getattr(p, f) for f in ("st", "cn", "pw", "mn", "qn", "flag", "pnum", "pno", "cp")}


def test_simulated_loggers_with_faults(listener, store_location):
    """Three simulated loggers, 20 minutes each, two faults each: 18 minutes each stored and answered."""
    lst = listener(loggers=[{"mn": f"SIM{i:011d}", "pw": PW, "station": f"sim-{i}"} for i in range(3)])
    host, port = lst.address
    loggers = [SimulatedLogger(host, port, f"SIM{i:011d}", PW, START, 20, seed=i, faults={3: "bad_crc", 7: "wrong_pw"},
                               overtime_s=5.0) for i in range(3)]
    stats = asyncio.run(run_loggers(loggers))
    assert (stats.acked, stats.lost, stats.faults) == (54, 0, 6)
    assert lst.stats["frame_bad_crc"] == 3 and lst.stats["wrong_pw"] == 3
    reader = open_store(**store_location)
    try:
        assert [reader.minute_count(f"sim-{i}") for i in range(3)] == [18, 18, 18]
    finally:
        reader.close()


def test_hj212_minutes_through_the_receiver_export_and_aggregation(mosquitto, tmp_path: Path, start_receiver):
    """`central-receiver run`'s Receiver starts the listener from [hj212]; the minutes come out of
    `central-receiver export` and the hourly aggregation like any station's."""
    db = tmp_path / "central.sqlite"
    config = central_config(mosquitto, db, hj212={
        "listen": "127.0.0.1:0", "timezone": "UTC",
        "loggers": [{"mn": MN, "pw": PW, "station": "bj-tower", "stream": "inlet:100m"}]})
    receiver = start_receiver(config)
    assert receiver.hj212 is not None
    t0 = datetime.now(UTC).replace(tzinfo=None, second=0, microsecond=0) - timedelta(hours=3)
    t0 = t0.replace(minute=0)
    client = Client(receiver.hj212.address)
    try:
        for i in range(30):
            values = {"a05001": (codes.to_wire_value(410.0 + i % 3, "co2", "mg/m3"), "N")}
            client.send(encode_packet(minute_packet(MN, PW, t0 + timedelta(minutes=i), values)))
        client.read_replies(30)
    finally:
        client.close()
    toml = tmp_path / "central.toml"
    toml.write_text(f'[storage]\nbackend = "sqlite"\npath = "{db}"\n')
    frm, to = (t0.isoformat() + "Z"), ((t0 + timedelta(hours=1)).isoformat() + "Z")
    out = CliRunner().invoke(app, ["export", "--config", str(toml), "--station", "bj-tower", "--from", frm, "--to", to])
    assert out.exit_code == 0, out.output
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert len(rows) == 30 and {r["stream"] for r in rows} == {"inlet:100m"}
    assert float(rows[1]["co2_cal_mean"]) == pytest.approx(411.0, abs=1e-3)
    agg = CliRunner().invoke(app, ["aggregate", "--config", str(toml)])
    assert agg.exit_code == 0, agg.output
    hourly = CliRunner().invoke(app, ["export", "--config", str(toml), "--station", "bj-tower", "--from", frm,
                                      "--to", to, "--level", "hourly", "--format", "icos-csv"])
    assert hourly.exit_code == 0, hourly.output
    assert "411" in hourly.stdout  # the hour's mean of 410, 411, 412


@pytest.mark.parametrize("change,words", [
    ({"listen": "nowhere"}, "host:port"),
    ({"loggers": [{"mn": MN, "pw": PW, "station": "a"}, {"mn": MN, "pw": PW, "station": "b"}]}, "twice"),
    ({"loggers": [{"mn": MN, "pw": PW, "station": "a", "factors": {"a05001": {"species": "xx", "unit": "mg/m3"}}}]},
     "unknown species"),
    ({"loggers": [{"mn": MN, "pw": PW, "station": "a", "factors": {"a05001": {"species": "co2", "unit": "kg"}}}]},
     "unit"),
    ({"timezone": "Mars/Olympus"}, "time zone"),
    ({"loggers": [{"mn": MN, "pw": "a;b", "station": "a"}]}, "pw"),
])
def test_config_errors_name_the_field(change, words, tmp_path):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=words):
        hj_config({"backend": "sqlite", "path": tmp_path / "c.sqlite"}, **change)


def _sqlite_listener(tmp_path: Path, **hj212: Any) -> Hj212Listener:
    location = {"backend": "sqlite", "path": tmp_path / "central.sqlite"}
    return Hj212Listener(hj_config(location, **hj212), now=lambda: NOW).start()


def test_connection_limit_and_idle_connections_are_closed(tmp_path):
    lst = _sqlite_listener(tmp_path, max_connections=1, idle_timeout_s=0.4)
    try:
        first = Client(lst.address)
        wait_until(lambda: lst.stats["connections"] == 1, 10, message="the first connection")
        second = Client(lst.address)
        second.sock.settimeout(10)
        assert second.sock.recv(100) == b""  # closed at once: one connection allowed
        assert lst.stats["connections_refused"] == 1
        first.sock.settimeout(10)
        assert first.sock.recv(100) == b""  # silent for longer than idle_timeout_s: closed
        assert lst.stats["connections_idle_closed"] == 1
        first.close()
        second.close()
    finally:
        lst.stop()


@pytest.mark.parametrize("event_loop", ["asyncio", "uvloop"])
def test_a_full_queue_pauses_readers_and_loses_nothing(tmp_path, event_loop):
    """queue_size 2 and commits of 3 packets: readers pause and resume, every packet stored and
    answered, each answer only once its packet is committed (the next commit runs while the last
    one's answers are written: another connection must already see every answered record)."""
    if event_loop == "uvloop":
        pytest.importorskip("uvloop")
    lst = _sqlite_listener(tmp_path, queue_size=2, commit_max_packets=3, event_loop=event_loop)
    client = Client(lst.address)
    reader = open_store("sqlite", path=tmp_path / "central.sqlite")
    try:
        client.send(b"".join(encode_packet(packet(i)) for i in range(40)))
        for i in range(40):
            assert client.read_replies(i + 1)[i].qn == packet(i).qn
            assert reader.minute_count("bj-tower") >= i + 1, f"answer {i} came before its commit"
    finally:
        client.close()
        lst.stop()
    assert lst.stats["records_new"] == 40
    try:
        assert reader.minute_count("bj-tower") == 40
    finally:
        reader.close()


@pytest.mark.parametrize("segment", [
    "QN=20160801085857223;ST=22;CN=2051;PW=123456;MN=010000A8900016F000169DC0;Flag=5;CP=&&DataTime=20160801085800&&",
    "QN=20160801085857223;ST=22;CN=2051;PW=\u5bc6\u7801;MN=X1;Flag=9;CP=&&DataTime=20160801085800&&",  # 2025, GBK PW
    "QN=20160801085857223;ST=22;CN=2051;PW=1;MN=X1;CP=&&DataTime=20160801085800&&",  # no Flag
    "ST=22;CN=2051;PW=1;MN=X1;Flag=1;CP=&&DataTime=20160801085800&&",  # no QN
])
def test_the_9014_built_on_arrival_is_the_standards_reply(segment):
    p = parse_segment(segment)
    assert ack_frame(p) == encode_packet(reply_9014(p))


def test_simulated_loggers_report_a_closed_connection_as_lost(tmp_path):
    """One connection allowed: of two simulated loggers, the one refused reports its packets lost
    (and returns) instead of waiting on OverTime; the other is stored and answered."""
    lst = _sqlite_listener(tmp_path, max_connections=1,
                           loggers=[{"mn": f"SIM{i:011d}", "pw": PW, "station": f"sim-{i}"} for i in range(2)])
    try:
        host, port = lst.address
        # paced at 300 simulated minutes a minute: 5 packets hold the first connection for about a second
        loggers = [SimulatedLogger(host, port, f"SIM{i:011d}", PW, START, 5, speed=300.0, seed=i, overtime_s=30.0)
                   for i in range(2)]
        stats = asyncio.run(run_loggers(loggers))
    finally:
        lst.stop()
    assert (stats.acked, stats.lost, stats.resent) == (5, 5, 0)
    assert lst.stats["connections_refused"] == 1 and lst.stats["packets_stored"] == 5
