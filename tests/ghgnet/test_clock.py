import threading
from datetime import UTC, datetime, timedelta

import pytest

from ghgnet.clock import ManualClock, ScaledClock
from ghgnet.timeutil import iso_utc, minute_start, parse_utc


def test_scaled_clock_runs_speed_times_faster():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    clock = ScaledClock(speed=1000, start=start)
    clock.sleep(50)  # 0.05 s of real time
    elapsed = (clock.now() - start).total_seconds()
    assert 50 <= elapsed < 50 + 1000 * 0.5  # generous: a loaded CI core may be slow


def test_scaled_clock_wait_returns_early_when_event_set():
    clock = ScaledClock(speed=10)
    ev = threading.Event()
    ev.set()
    assert clock.wait(ev, 3600) is True


def test_real_clock_is_wall_time():
    clock = ScaledClock()
    assert abs((clock.now() - datetime.now(UTC)).total_seconds()) < 1


def test_clock_refuses_non_positive_speed():
    with pytest.raises(ValueError, match="speed"):
        ScaledClock(speed=0)


def test_manual_clock_moves_only_when_told():
    clock = ManualClock(datetime(2026, 5, 1, tzinfo=UTC))
    t0 = clock.now()
    assert clock.now() == t0
    clock.sleep(90)
    assert clock.now() - t0 == timedelta(seconds=90)
    assert clock.monotonic() == 90
    ev = threading.Event()
    assert clock.wait(ev, 10) is False
    assert clock.monotonic() == 100
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_iso_utc_round_trip_and_refuses_naive():
    t = datetime(2026, 11, 22, 2, 53, 12, 345000, tzinfo=UTC)
    assert iso_utc(t) == "2026-11-22T02:53:12.345Z"
    assert parse_utc("2026-11-22T02:53:12.345Z") == t
    assert parse_utc("2026-11-22T10:53:12.345+08:00") == t
    assert parse_utc("2026-11-22") == datetime(2026, 11, 22, tzinfo=UTC)
    with pytest.raises(ValueError, match="naive"):
        iso_utc(datetime(2026, 1, 1))


def test_minute_start_stamps_the_start_of_the_interval():
    assert minute_start(datetime(2026, 1, 1, 0, 0, 59, 999000, tzinfo=UTC)) == datetime(2026, 1, 1, tzinfo=UTC)
