"""The record clock of rate-streaming instruments: records counted from the stream's start as the
least delayed poll shows it, so late polls do not shift them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

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
    # the instrument runs 50 ppm slow: record 20,000 comes 0.1 s late after 2,000 s
    late = T0 + timedelta(seconds=2000) + S
    assert clock.stamps(late, [1] * 20000)[-1] == late
    clock.restart()
    assert clock.stamps(T0, [1, 1]) == [T0 - S, T0]


def test_a_late_best_poll_in_a_new_window_does_not_put_a_gap_into_the_stream():
    """When the well-timed poll has left the window and the window's best poll is 2 s late (a busy
    machine; under --speed 120 that is 17 ms of real time), the start moves forward by at most
    max_slew a second, not by 2 s: the records stay 0.1 s apart."""
    clock = RecordClock(10.0, window_s=5.0)
    assert clock.stamps(T0 + 9 * S, [1] * 10)[-1] == T0 + 9 * S  # on time
    late = clock.stamps(T0 + timedelta(seconds=8) + 9 * S, [1] * 70)  # records 10..79, seen 2 s late
    assert late[0] == T0 + 10 * S + timedelta(seconds=8) * 2e-4  # not T0 + 3 s: no gap of 20 records
    # a well-timed poll again: the start steps back to the truth (never stamped after arrival)
    assert clock.stamps(T0 + 89 * S, [1] * 10)[-1] == T0 + 89 * S


def test_a_bad_setting_is_refused():
    with pytest.raises(ValueError, match="rate_hz"):
        RecordClock(0.0)
