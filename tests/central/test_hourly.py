"""Hourly aggregation through the store (SQLite and PostgreSQL), checked against values computed
by hand: which minutes count, the latest seq of a resent minute, a late backlog that changes an
hour already aggregated, and operators' manual flags propagated to the hours."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from central.aggregation.hourly_stats import afternoon_means, hourly_stats, latest_seq_index, monthly_means
from central.aggregation.worker import aggregate_all
from central.config import CentralConfig
from ghgnet.wire import MinuteWire, ParsedBatch, SpeciesStats

H10 = datetime(2026, 3, 1, 10, tzinfo=UTC)
NOW = datetime(2026, 3, 2, tzinfo=UTC)
CONFIG = CentralConfig.model_validate({"aggregate": {"min_minutes_per_hour": 3}})


def m(seq: int, minute: int, cal: float | None, *, std: float = 0.2, n: int = 50, flag: str = "U",
      stream: str = "inlet:100m", hour: datetime = H10) -> MinuteWire:
    return MinuteWire(
        seq=seq, time=hour + timedelta(minutes=minute), device="g2401", stream=stream,
        species={"co2": SpeciesStats(mean=cal if cal is not None else 400.0, std=std, n=n, raw_mean=400.0,
                                     cal_mean=cal)},
        flag=flag, reasons=[] if flag == "U" else ["flush"], n_total=60,
    )


def store_minutes(store, recs) -> None:
    store.store_batch(ParsedBatch("st-a", "minute", NOW, list(recs)), NOW)


def co2_hour(store, hour=H10, stream="inlet:100m"):
    rows = store.hourly("st-a", hour, hour + timedelta(hours=1), stream=stream, species="co2")
    assert len(rows) == 1, rows
    return rows[0]


def test_hourly_values_match_a_hand_computation_and_a_late_backlog_changes_them(store):
    store_minutes(store, [
        m(1, 0, 420.0, std=0.2),
        m(2, 1, 421.0, std=0.4),
        m(3, 2, 999.0, std=0.2),                       # resent below under seq 9: this one is replaced
        m(4, 3, 423.0, std=0.4),
        m(5, 4, 500.0, flag="N"),                       # invalid (flush): left out
        m(6, 5, 410.0, stream="cal:CAL-A"),             # not ambient: left out
        m(7, 6, None),                                  # not calibrated: left out
        m(8, 7, 430.0, stream="inlet:10m"),             # another inlet: its own series
        m(9, 2, 422.0, std=0.2),                        # reprocessed minute 2, new seq: this one counts
    ])
    assert [h for _, h, _ in store.dirty_hours()] == [H10]
    report = aggregate_all(store, CONFIG, lambda: NOW)
    assert report.hours == 1 and store.dirty_hours() == []

    # by hand: minutes 420, 421, 422, 423 (stds 0.2, 0.4, 0.2, 0.4; n = 50 each)
    h = co2_hour(store)
    assert h.hour == H10 and h.n == 4 and h.flag == "U" and h.n_spikes == 0
    assert h.mean == pytest.approx(421.5, abs=1e-12)
    assert h.std == pytest.approx(math.sqrt((1.5**2 + 0.5**2 + 0.5**2 + 1.5**2) / 3), abs=1e-12)
    assert h.repeatability == pytest.approx(math.sqrt((0.04 + 0.16 + 0.04 + 0.16) / 50) / 4, abs=1e-12)
    assert (h.n_all, h.mean_all) == (4, h.mean)
    other = co2_hour(store, stream="inlet:10m")
    assert (other.n, other.mean, other.flag) == (1, 430.0, "N")  # 1 < min_minutes_per_hour
    assert store.hourly_series("st-a") == [("inlet:100m", "co2"), ("inlet:10m", "co2")]

    # a replayed backlog: two more minutes of the same hour arrive a day later
    store_minutes(store, [m(20, 30, 424.0, std=0.2), m(21, 31, 425.0, std=0.4)])
    assert [h for _, h, _ in store.dirty_hours()] == [H10]
    aggregate_all(store, CONFIG, lambda: NOW)
    h = co2_hour(store)
    values = np.array([420.0, 421.0, 422.0, 423.0, 424.0, 425.0])
    assert h.n == 6 and h.mean == pytest.approx(422.5, abs=1e-12)
    assert h.std == pytest.approx(float(np.std(values, ddof=1)), abs=1e-12)
    assert h.repeatability == pytest.approx(math.sqrt(3 * (0.04 + 0.16) / 50) / 6, abs=1e-12)


def test_a_mark_made_during_aggregation_keeps_the_hour_dirty(store):
    store_minutes(store, [m(1, 0, 420.0), m(2, 1, 421.0), m(3, 2, 422.0)])
    (station, hour, version), = store.dirty_hours()
    store_minutes(store, [m(4, 3, 423.0)])  # arrives after the aggregator read the version
    with store.aggregation_transaction():
        cleared = store.replace_hourly("st-a", [hour], [], [(hour, version)])
    assert cleared == 0 and [h for _, h, _ in store.dirty_hours()] == [H10]


def test_manual_flags_reach_the_hours_and_keep_an_audit_trail(store):
    store_minutes(store, [m(i, i, 420.0 + i % 3) for i in range(1, 40)])
    h11 = H10 + timedelta(hours=1)
    store_minutes(store, [m(100 + i, i, 425.0, hour=h11) for i in range(0, 20)])
    aggregate_all(store, CONFIG, lambda: NOW)
    assert co2_hour(store).flag == "U" and co2_hour(store, h11).flag == "U"

    fid = store.add_manual_flag("st-a", H10 + timedelta(minutes=10), H10 + timedelta(minutes=20), "K",
                                "valve leak found on site", "alice", NOW)
    store.add_manual_flag("st-a", h11, h11 + timedelta(hours=1), "O", "checked against the target", "bob",
                          NOW + timedelta(minutes=5))
    aggregate_all(store, CONFIG, lambda: NOW)
    h = co2_hour(store)
    assert h.flag == "K" and h.n == 29  # minutes 10-19 of 1-39 propagated as H: left out
    assert co2_hour(store, h11).flag == "O" and co2_hour(store, h11).n == 20
    trail = store.manual_flags("st-a")
    assert [(f.id, f.flag, f.operator, f.reason) for f in trail] == [
        (fid, "K", "alice", "valve leak found on site"), (fid + 1, "O", "bob", "checked against the target")]
    assert trail[0].created_at == NOW and trail[0].time_to == H10 + timedelta(minutes=20)
    assert store.manual_flags("st-a", start=h11, end=h11 + timedelta(hours=1))[0].operator == "bob"
    with pytest.raises(ValueError, match="K .*or O"):
        store.add_manual_flag("st-a", H10, h11, "X", "why", "eve", NOW)


def test_the_latest_seq_wins_per_minute():
    key = np.array([5, 3, 5, 3, 7])
    seq = np.array([10, 11, 12, 4, 1])
    assert sorted(seq[latest_seq_index(key, seq)].tolist()) == [1, 11, 12]


def test_hourly_stats_keep_values_with_and_without_spikes():
    t = H10.timestamp() + np.arange(5) * 60
    st = hourly_stats(t.astype(np.int64), np.array([1.0, 2.0, 3.0, 10.0, 2.0]), np.full(5, 0.1),
                      np.full(5, 4.0), np.array([False, False, False, True, False]))
    assert (st.n[0], st.n_all[0], st.n_spikes[0]) == (4, 5, 1)
    assert st.mean[0] == pytest.approx(2.0) and st.mean_all[0] == pytest.approx(3.6)


def test_afternoon_means_use_the_station_local_window_and_monthly_means_every_valid_hour():
    # Asia/Shanghai is UTC+8: local 12:00-15:59 are 04:00-07:59 UTC
    day = datetime(2026, 3, 1, tzinfo=UTC)
    hours = np.array([(day + timedelta(hours=h)).timestamp() for h in range(24)], dtype=np.int64)
    values = np.arange(24, dtype=float)
    valid = np.ones(24, dtype=bool)
    valid[5] = False
    pm = afternoon_means(hours, values, valid, "Asia/Shanghai", 12, 16)
    assert len(pm) == 1 and pm.n_hours[0] == 3 and pm.mean[0] == pytest.approx((4 + 6 + 7) / 3)
    utc = afternoon_means(hours, values, valid, "UTC", 12, 16)
    assert utc.mean[0] == pytest.approx((12 + 13 + 14 + 15) / 4)
    mm = monthly_means(hours, values, valid)
    assert mm.n_hours[0] == 23 and mm.mean[0] == pytest.approx((276 - 5) / 23)
    assert mm.period[0] == 2026 * 12 + 2


def test_a_last_will_older_than_the_last_status_still_marks_the_station_down(store):
    from ghgnet.wire import StatusMessage

    armed = datetime(2026, 3, 1, 9, tzinfo=UTC)  # the will is built when the agent connects
    up = StatusMessage(station="st-a", state="up", time=armed + timedelta(hours=1), interval_s=30.0)
    will = StatusMessage(station="st-a", state="down", time=armed)
    assert store.store_status(up, NOW).stored
    assert store.store_status(will, NOW).stored
    assert store.stations()[0].status.state == "down"
    stale_up = StatusMessage(station="st-a", state="up", time=armed - timedelta(hours=1), interval_s=30.0)
    assert not store.store_status(stale_up, NOW).stored


def test_hours_marked_dirty_from_iso_utc_texts_are_those_of_the_times(store):
    """A batch through the lean decoder carries its times' texts (`time_texts`); the hours they
    mark are the ones the datetimes mark, and a duplicate marks nothing new."""
    recs = [m(1, 0, 420.0), m(2, 59, 421.0), m(3, 0, 422.0, hour=H10 + timedelta(hours=2)),
            m(4, 30, 423.0, hour=H10 - timedelta(days=40))]
    texts = [r.time.strftime("%Y-%m-%dT%H:%M:%S.000Z") for r in recs]
    store.store_batch(ParsedBatch("st-a", "minute", NOW, recs[:1] + recs[2:], time_texts=texts[:1] + texts[2:]), NOW)
    store.store_batch(ParsedBatch("st-a", "minute", NOW, recs, time_texts=texts), NOW)  # 1, 3, 4 again
    hours = [h for _, h, _ in store.dirty_hours()]
    assert hours == sorted({r.time.replace(minute=0) for r in recs})
    assert {m.seq: m.time for m in store.minutes("st-a", H10 - timedelta(days=41), NOW)} == {r.seq: r.time for r in recs}


def test_the_hours_uncertainty_is_stored_with_it(store):
    # 3 minutes, std 0.1, n 25 -> repeatability 0.02 each; u = sqrt(0.01^2 + 0.02^2) (systematic 0.01).
    # The hour: systematic rms 0.01, random sqrt(3 * 0.02^2) / 3 -> u = sqrt(1e-4 + 4e-4 / 3) = 0.0152753
    u_min = math.sqrt(0.0005)
    recs = [MinuteWire(seq=k + 1, time=H10 + timedelta(minutes=k), device="g2401", stream="inlet:100m",
                       species={"co2": SpeciesStats(mean=420.0 + k, std=0.1, n=25, raw_mean=420.0, cal_mean=420.0 + k,
                                                    u=u_min)},
                       flag="U", n_total=60) for k in range(3)]
    store_minutes(store, recs)
    aggregate_all(store, CONFIG, lambda: NOW)
    assert co2_hour(store).u == pytest.approx(math.sqrt(1e-4 + 4e-4 / 3), rel=1e-9)
    # an hour with a minute of unknown u (stored before #21): u unknown, not understated
    later = H10 + timedelta(hours=1)
    store_minutes(store, [m(10 + k, k, 420.0, hour=later) for k in range(3)])
    aggregate_all(store, CONFIG, lambda: NOW)
    assert co2_hour(store, later).u is None
