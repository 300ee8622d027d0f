"""The record clock of rate-streaming instruments: records counted from the stream's start as the
least delayed poll shows it, so late polls do not shift them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from drivers.record_clock import RecordClock

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
S = timedelta(seconds=0.1)


def test_a_late_poll_does_not_shift_its_records():
    clock = RecordClock(10.0)
    # 10 records made at T0 .. T0 + 0.9 s, seen at once: stamped backwards from the poll
    assert clock.stamps(T0 + 9 * S, [1] * 10) == [T0 + i * S for i in range(10)]
    # the next 10 (T0 + 1.0 .. 1.9 s) seen 0.5 s late keep their places
    assert clock.stamps(T0 + 24 * S, [1] * 10) == [T0 + (10 + i) * S for i in range(10)]


def test_the_least_delayed_poll_sets_the_start_and_lost_records_keep_their_place():
    clock = RecordClock(10.0)
    assert clock.stamps(T0 + 14 * S, [1] * 10)[0] == T0 + 5 * S  # seen 0.5 s late: anchored late
    stamps = clock.stamps(T0 + 19 * S, [1, 3, 1])  # on time; two records lost before the 2nd
    assert stamps == [T0 + 15 * S, T0 + 18 * S, T0 + 19 * S]  # the start moved back to the truth


def test_an_old_bound_leaves_the_window_so_a_slow_clock_is_followed_and_restart_forgets():
    clock = RecordClock(10.0, window_s=5.0)
    clock.stamps(T0, [1])
    late = T0 + timedelta(seconds=10) + 3 * S  # the instrument runs slow: record 100 comes 0.3 s late
    assert clock.stamps(late, [1] * 100)[-1] == late
    clock.restart()
    assert clock.stamps(T0, [1, 1]) == [T0 - S, T0]
