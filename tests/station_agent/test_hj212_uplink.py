"""The HJ 212 uplink against the simulated platform, over real TCP, with a real station store and
its one writer: acks, lost acks, history, split packets, a platform that goes and comes back, a
restart with unacknowledged packets, malformed frames, time and timeout requests, the 2025 edition."""

from __future__ import annotations

import time
from contextlib import closing
from datetime import UTC, datetime, timedelta

import pytest
from support.wait import wait_until

from ghgnet.clock import ScaledClock
from ghgnet.hj212 import codes, make_flag
from ghgnet.logs import get_logger
from ghgnet.records import MinuteRecord, SpeciesMinute
from simulators.hj212_platform import PlatformSimulator
from station_agent.forwarding.hj212_config import FactorConfig, UplinkConfig
from station_agent.forwarding.hj212_uplink import Hj212Uplinks
from station_agent.processing.minute_bins import MinuteAssembler
from station_agent.storage.hj212_queue import Hj212Queue
from station_agent.storage.store import StationStore
from station_agent.storage.writer import StoreWriter

T0 = datetime(2026, 3, 1, tzinfo=UTC)  # 08:00 in Beijing
MN = "010000A8900016F000169DC0"
PW = "123456"
CO2_MG_M3 = 44.01 / 22.414  # mg/m3 per ppm at 273.15 K, 101.325 kPa


def minute(i: int, stream: str = "inlet:top", flag: str = "U", reasons: tuple[str, ...] = ()) -> MinuteRecord:
    return MinuteRecord(
        time=T0 + timedelta(minutes=i), device="picarro-1", stream=stream,
        species={"co2": SpeciesMinute(420.0 + i, 0.05, 55, 419.7 + i, 420.0 + i),
                 "ch4": SpeciesMinute(2000.0 + i, 1.0, 55, 1999.0 + i, 2000.0 + i)},
        h2o=1.0, flag=flag, reasons=reasons, n_total=60)


def store_minutes(db, records) -> None:
    with closing(StationStore(db)) as store:
        store.insert_minutes(records, T0)


def uplink(port: int, **kw) -> UplinkConfig:
    base = dict(name="national", host="127.0.0.1", port=port, mn=MN, pw=PW, data=[2051], since=T0, settle_s=0,
                overtime_s=2.0, recount=2, reconnect_min_s=0.05, reconnect_max_s=0.3, connect_timeout_s=2,
                stop_drain_s=0.3)
    return UplinkConfig(**(base | kw))


class Station:
    """The station's writer and uplinks on a real store (what the agent wires), on a clock from `now`
    (two hours after T0) at real speed."""

    def __init__(self, db, configs: list[UplinkConfig], set_system_time=None,
                 now: datetime = T0 + timedelta(hours=2)) -> None:
        self.db = db
        self.clock = ScaledClock(1.0, start=now)
        log = get_logger(component="test")
        self.writer = StoreWriter(db, self.clock, MinuteAssembler(20.0), lambda b: None, log, dict,
                                  timedelta(days=30), tick_s=0.1)
        self.uplinks = Hj212Uplinks(configs, db, self.clock, self.writer.submit_call, log,
                                    set_system_time=set_system_time)
        self.writer.on_tick = self.uplinks.pack

    @property
    def link(self):
        return self.uplinks.links[0]

    def __enter__(self) -> "Station":
        self.writer.start()
        self.uplinks.start()
        return self

    def __exit__(self, *exc) -> None:
        self.uplinks.stop()
        self.writer.stop()

    def backlog(self, name: str = "national") -> int:
        with closing(StationStore(self.db, read_only=True)) as store:
            return Hj212Queue(store).backlog(name)


@pytest.fixture
def platform():
    with PlatformSimulator(mn=MN, pw=PW) as p:
        yield p


def test_minutes_go_once_each_and_leave_the_queue_when_acknowledged(tmp_path, platform):
    db = tmp_path / "station.sqlite"
    store_minutes(db, [minute(i) for i in range(10)] + [minute(10, stream="cal:CAL-1")])
    with Station(db, [uplink(platform.port)]) as station:
        platform.wait(lambda: len(platform.acked) == 10, what="10 acknowledged packets")
        wait_until(lambda: station.backlog() == 0, message="an empty queue")
        wait_until(lambda: station.link.status()["backlog"] == 0, message="the status's backlog")
        assert station.link.status()["acked"] == 10 and station.link.status()["connected"]
    assert sorted(platform.qn_counts().values()) == [1] * 10
    points = platform.points("2051")
    # DataTime is the minute's start in Beijing time; the calibration minute is not ambient data
    assert sorted(t for _, t in points) == [f"2026030108{i:02d}00" for i in range(10)]
    first = points[("2051", "20260301080000")]
    assert first.flag == 5 and first.st == "22" and first.mn == MN and first.pw == PW
    assert first.factors() == {"a05001": {"Avg": f"{420.0 * CO2_MG_M3:.3f}", "Flag": "N"},
                               "a05002": {"Avg": f"{2000.0 * 16.04 / 22.414 * 1e3:.1f}", "Flag": "N"}}


def test_a_lost_ack_means_one_resend_after_overtime_and_nothing_after_the_ack(tmp_path, platform):
    db = tmp_path / "station.sqlite"
    store_minutes(db, [minute(i) for i in range(5)])
    platform.lose_acks(2)
    with Station(db, [uplink(platform.port, window=1, overtime_s=0.8)]) as station:
        platform.wait(lambda: len(platform.acked) == 5, what="every packet acknowledged")
        wait_until(lambda: station.backlog() == 0, message="an empty queue")
        time.sleep(2.0)  # over two OverTimes: an acknowledged packet would have gone again by now
        counts = platform.qn_counts()
    # the first packet's answer is lost twice: sent 1 + 2 times (ReCount 2), then answered
    first = platform.lost_acks[0]
    assert platform.lost_acks == [first, first] and len(counts) == 5
    assert counts[first] == 3 and sum(counts.values()) == 7
    assert platform.sent_after_ack() == []
    assert station.link.stats["resent"] == 2


def test_a_packet_never_acknowledged_is_sent_recount_times_then_the_link_is_redialled(tmp_path, platform):
    db = tmp_path / "station.sqlite"
    store_minutes(db, [minute(0)])
    platform.acking = False
    with Station(db, [uplink(platform.port, recount=2, overtime_s=0.3)]) as station:
        platform.wait(lambda: platform.connections >= 2, timeout=10, what="a redial")
        assert station.backlog() == 1
        platform.acking = True
        platform.wait(lambda: platform.acked, what="the ack on the new connection")
        wait_until(lambda: station.backlog() == 0, message="an empty queue")
    qn = platform.acked[0]
    assert platform.qn_counts()[qn] >= 4  # 1 + ReCount on the first connection, then again after the redial


def test_history_request_is_answered_from_the_store_9011_packets_9012(tmp_path, platform):
    db = tmp_path / "station.sqlite"
    bad = [minute(i, flag="N", reasons=("maintenance",)) for i in range(60, 63)]
    store_minutes(db, [minute(i) for i in range(10)] + bad + [minute(i) for i in range(63, 70)])
    with Station(db, [uplink(platform.port, data=[2031], since=T0 + timedelta(days=1))]):
        platform.wait(lambda: platform.connections, what="the station")
        qn = platform.request_history("2051", "20260301080000", "20260301080400")
        platform.wait(lambda: [p for p in platform.answers[qn] if p.cn == "9012"], what="9012")
        hour_qn = platform.request_history("2061", "20260301080000", "20260301090000")
        platform.wait(lambda: [p for p in platform.answers[hour_qn] if p.cn == "9012"], what="9012")
        none_qn = platform.request_history("2051", "20260302080000", "20260302090000")
        platform.wait(lambda: [p for p in platform.answers[none_qn] if p.cn == "9012"], what="9012")
    answers = platform.answers[qn]
    assert [p.cn for p in answers] == ["9011", "2051", "2051", "2051", "2051", "2051", "9012"]
    assert answers[0].cp_value("QnRtn") == "1" and answers[-1].cp_value("ExeRtn") == "1"
    assert [p.cp_value("DataTime") for p in answers[1:-1]] == [f"2026030108{i:02d}00" for i in range(5)]
    assert all(p.qn == qn and not p.ack_wanted for p in answers)
    hours = [p for p in platform.answers[hour_qn] if p.cn == "2061"]
    assert [p.cp_value("DataTime") for p in hours] == ["20260301080000", "20260301090000"]
    assert hours[0].factors()["a05001"] == {
        "Min": f"{420.0 * CO2_MG_M3:.3f}", "Avg": f"{424.5 * CO2_MG_M3:.3f}", "Max": f"{429.0 * CO2_MG_M3:.3f}",
        "Flag": "N"}
    assert hours[1].factors()["a05001"]["Min"] == f"{483.0 * CO2_MG_M3:.3f}"  # the maintenance minutes left out
    assert [(p.cn, p.cp_value("ExeRtn")) for p in platform.answers[none_qn]] == [("9011", None), ("9012", "100")]
    assert platform.received == []  # only the day is configured, and it is not over


def test_a_packet_over_1024_bytes_goes_as_split_parts_each_acknowledged(tmp_path, platform):
    db = tmp_path / "station.sqlite"
    store_minutes(db, [minute(0), minute(1)])
    factors = [FactorConfig(species="co2", code=f"xco2{i:02d}", unit="ug/m3", decimals=9) for i in range(40)]
    with Station(db, [uplink(platform.port, factors=factors)]) as station:
        wait_until(lambda: station.backlog() == 0 and platform.acked, message="an empty queue")
    parts = platform.received
    assert len(parts) >= 4 and all(p.flag == 7 and p.pnum == parts[0].pnum for p in parts)
    assert len({p.qn for p in parts}) == len(parts)  # each part answered on its own
    whole = platform.points("2051")
    assert sorted(whole) == [("2051", "20260301080000"), ("2051", "20260301080100")]
    assert len(whole[("2051", "20260301080000")].factors()) == 40


def test_a_platform_that_goes_away_and_comes_back_gets_everything_once_acknowledged(tmp_path, platform):
    db = tmp_path / "station.sqlite"
    store_minutes(db, [minute(i) for i in range(10)])
    platform.lose_acks(3)
    with Station(db, [uplink(platform.port, window=4, overtime_s=5.0)]) as station:
        platform.wait(lambda: len(platform.received) >= 4, what="the first window")
        platform.stop()
        time.sleep(0.5)  # the station redials in vain meanwhile
        platform.start()
        platform.wait(lambda: len(set(platform.acked)) == 10, timeout=15, what="every packet acknowledged")
        wait_until(lambda: station.backlog() == 0, message="an empty queue")
        assert station.link.stats["connects"] >= 2
    assert platform.sent_after_ack() == []
    assert len(platform.points("2051")) == 10


def test_a_restart_sends_the_unacknowledged_packets_with_their_qn_and_packs_nothing_twice(tmp_path, platform):
    db = tmp_path / "station.sqlite"
    store_minutes(db, [minute(i) for i in range(6)])
    platform.acking = False
    cfg = uplink(platform.port, data=[2051, 2061], overtime_s=30)
    with Station(db, [cfg]) as station:
        platform.wait(lambda: len(platform.received) >= 4, what="a first window")
        wait_until(lambda: station.backlog() == 7, message="6 minutes and their hour queued")
    first_run = {p.qn for p in platform.received}
    platform.disconnect()
    platform.acking = True
    with Station(db, [cfg]) as station:
        platform.wait(lambda: len(set(platform.acked)) == 7, what="every packet acknowledged")
        wait_until(lambda: station.backlog() == 0, message="an empty queue")
        time.sleep(0.5)  # ticks of the new writer: nothing is packed again
        assert station.backlog() == 0
    assert first_run <= set(platform.acked)
    assert len(platform.points("2051")) == 6 and len(platform.points("2061")) == 1
    assert sorted(platform.qn_counts()[qn] for qn in set(platform.acked) - first_run) == [1] * (7 - len(first_run))
    assert platform.sent_after_ack() == []


def test_malformed_frames_are_ignored_and_the_connection_kept(tmp_path, platform):
    db = tmp_path / "station.sqlite"
    store_minutes(db, [minute(0)])
    with Station(db, [uplink(platform.port)]) as station:
        platform.wait(lambda: platform.acked, what="the first packet acknowledged")
        platform.send_raw(b"garbage\r\n##0010QN=1;ST=21FFFF\r\n")
        platform.send_raw(b"##0025QN=1;ST=91;CN=9014;&&AAAA\r\n")  # a bad CRC
        qn = platform.request_time()
        platform.wait(lambda: len(platform.answers[qn]) == 3, what="the time answered")
        assert station.link.stats["bad_frames"] >= 2
    assert platform.connections == 1


def test_time_request_answered_time_set_refused_unless_configured(tmp_path, platform):
    db = tmp_path / "station.sqlite"
    store_minutes(db, [])
    applied: list[datetime] = []
    with Station(db, [uplink(platform.port)], set_system_time=applied.append) as station:
        platform.wait(lambda: platform.connections, what="the station")
        qn = platform.request_time("a05001")
        platform.wait(lambda: len(platform.answers[qn]) == 3, what="the time")
        refused = platform.set_time("20260301120000")
        platform.wait(lambda: platform.answers[refused], what="the refusal")
        local = station.clock.now() + timedelta(hours=8)
    got = platform.answers[qn]
    assert [p.cn for p in got] == ["9011", "1011", "9012"]
    assert got[1].cp_value("PolId") == "a05001"
    station_time = datetime.strptime(got[1].cp_value("SystemTime"), "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    assert abs((local - station_time).total_seconds()) < 30
    assert [(p.cn, p.cp_value("QnRtn")) for p in platform.answers[refused]] == [("9011", "2")]
    assert applied == []
    with Station(db, [uplink(platform.port, allow_time_set=True)], set_system_time=applied.append):
        platform.wait(lambda: platform.connections >= 2, what="the station again")
        qn = platform.set_time("20260301120000")
        platform.wait(lambda: len(platform.answers[qn]) == 2, what="the time set")
    assert [(p.cn, p.cp_value("QnRtn") or p.cp_value("ExeRtn")) for p in platform.answers[qn]] == [
        ("9011", "1"), ("9012", "1")]
    assert applied == [datetime(2026, 3, 1, 4, tzinfo=UTC)]


def test_cn1000_sets_overtime_and_recount_and_they_outlive_a_restart(tmp_path, platform):
    db = tmp_path / "station.sqlite"
    store_minutes(db, [])
    with Station(db, [uplink(platform.port)]) as station:
        platform.wait(lambda: platform.connections, what="the station")
        qn = platform.set_timeouts(7, 5)
        platform.wait(lambda: len(platform.answers[qn]) == 2, what="the answer")
        bad = platform.set_timeouts(0, 5)
        platform.wait(lambda: len(platform.answers[bad]) == 2, what="the answer")
        assert (station.link.overtime_s, station.link.recount) == (7.0, 5)
    assert [p.cp_value("ExeRtn") for p in platform.answers[qn]] == [None, "1"]
    assert [p.cp_value("ExeRtn") for p in platform.answers[bad]] == [None, "3"]
    with Station(db, [uplink(platform.port)]) as station:
        assert (station.link.overtime_s, station.link.recount) == (7.0, 5)


def test_requests_with_another_mn_or_pw_are_refused(tmp_path):
    db = tmp_path / "station.sqlite"
    store_minutes(db, [])
    with PlatformSimulator(mn="OTHER000000000000000001", pw=PW) as other, Station(db, [uplink(other.port)]):
        other.wait(lambda: other.connections, what="the station")
        qn = other.request_time()
        other.wait(lambda: other.answers[qn], what="the refusal")
        other.mn, other.pw = MN, "999999"
        qn2 = other.request_time()
        other.wait(lambda: other.answers[qn2], what="the refusal")
    assert [p.cp_value("QnRtn") for p in other.answers[qn]] == [str(codes.QNRTN_MN)]
    assert [p.cp_value("QnRtn") for p in other.answers[qn2]] == [str(codes.QNRTN_PW)]


def test_the_2025_edition_sets_its_version_in_flag_and_sends_heartbeats(tmp_path, platform):
    db = tmp_path / "station.sqlite"
    store_minutes(db, [minute(0)])
    with Station(db, [uplink(platform.port, edition=2025, heartbeat_s=0.2)]):
        platform.wait(lambda: platform.acked, what="the packet acknowledged")
        platform.wait(lambda: [p for p in platform.other if p.cn == codes.CN_HEARTBEAT], what="a heartbeat")
    assert platform.received[0].flag == make_flag("2025", ack=True)
    assert platform.received[0].edition == "2025"


def test_two_uplinks_each_get_everything_and_one_silent_platform_holds_up_nothing_of_the_other(tmp_path, platform):
    db = tmp_path / "station.sqlite"
    store_minutes(db, [minute(i) for i in range(6)])
    with PlatformSimulator(mn="PROVINCE1", pw="654321") as province:
        province.acking = False
        configs = [uplink(platform.port), uplink(province.port, name="provincial", mn="PROVINCE1", pw="654321",
                                                 data=[2051, 2061], overtime_s=0.3)]
        with Station(db, configs) as station:
            platform.wait(lambda: len(platform.acked) == 6, what="the national platform's 6 acks")
            wait_until(lambda: station.backlog("national") == 0, message="the national queue empty")
            province.wait(lambda: len(province.received) >= 4, what="packets at the provincial platform")
            assert station.backlog("provincial") == 7
            province.acking = True
            province.wait(lambda: len(set(province.acked)) == 7, what="the provincial platform's 7 acks")
            wait_until(lambda: station.backlog("provincial") == 0, message="the provincial queue empty")
    assert {p.mn for p in province.received} == {"PROVINCE1"} and {p.pw for p in province.received} == {"654321"}
    assert len(province.points("2051")) == 6 and len(province.points("2061")) == 1
    assert province.sent_after_ack() == [] and platform.sent_after_ack() == []
