"""Cylinder pressure trends: a robust line through the readings, restarted at a refill or swap,
gives when the cylinder reaches its low-pressure threshold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from central.fleet.cylinders import PressureReading, current_trend, forecast_empty, station_forecasts

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _r(day: float, bar: float, serial: str | None = "D1") -> PressureReading:
    return PressureReading(T0 + timedelta(days=day), bar, serial)


def _ev(seq: int, day: float, kind: str, **data):
    return SimpleNamespace(time=T0 + timedelta(days=day), seq=seq, kind=kind, data=data)


def test_a_steady_fall_forecasts_the_day_it_reaches_the_threshold():
    # 120 bar falling 1 bar/day reaches 20 bar on day 100
    readings = [_r(d, 120 - d) for d in (0, 10, 20, 30)]
    f = forecast_empty("CAL-A", readings, 20.0, T0 + timedelta(days=31))
    assert f.status == "ok" and f.points == 4 and f.rate_bar_per_day == pytest.approx(-1.0)
    assert abs((f.empty_at - (T0 + timedelta(days=100))).total_seconds()) < 60
    assert f.days_left(T0 + timedelta(days=31)) == pytest.approx(69.0, abs=0.01)


def test_one_mistyped_reading_barely_moves_the_forecast():
    readings = [_r(d, 120 - d) for d in (0, 10, 20, 30, 40)]
    readings[2] = _r(20, 12.0)  # a typo: 12 for 100 bar
    f = forecast_empty("CAL-A", readings, 20.0, T0 + timedelta(days=41))
    assert f.status == "ok" and abs((f.empty_at - (T0 + timedelta(days=100))).days) <= 3


def test_a_refill_or_a_new_serial_starts_the_trend_again():
    readings = [_r(0, 120), _r(10, 100), _r(20, 80), _r(25, 150), _r(35, 140)]
    assert current_trend(readings) == readings[3:]
    swapped = [_r(0, 120), _r(10, 100), _r(20, 99.5, serial="D2")]
    assert current_trend(swapped) == swapped[2:]
    f = forecast_empty("CAL-A", readings, 20.0, T0 + timedelta(days=36))
    assert (f.status, f.points, f.latest_bar, f.empty_at) == ("not_enough_points", 2, 140.0, None)
    readings.append(_r(45, 130))
    f = forecast_empty("CAL-A", readings, 20.0, T0 + timedelta(days=46))
    assert f.status == "ok" and abs((f.empty_at - (T0 + timedelta(days=25 + 130))).days) <= 1


def test_too_few_points_a_flat_trend_and_readings_outside_the_window():
    assert forecast_empty("X", [], 20.0, T0).status == "not_enough_points"
    same_time = [_r(0, 120), _r(0, 119), _r(0, 118)]
    assert forecast_empty("X", same_time, 20.0, T0 + timedelta(days=1)).status == "not_enough_points"
    flat = [_r(d, 120) for d in (0, 10, 20)]
    assert forecast_empty("X", flat, 20.0, T0 + timedelta(days=21)).status == "not_falling"
    old = [_r(d, 120 - d) for d in (0, 10, 20)]
    assert forecast_empty("X", old, 20.0, T0 + timedelta(days=300), window_days=180).status == "not_enough_points"


def test_station_forecasts_read_install_pressure_and_removal_events():
    events = [
        _ev(1, 0, "inventory.cylinder_installed", cylinder="CAL-A", serial="D1", pressure_bar=120.0,
            low_pressure_bar=30.0),
        _ev(2, 10, "inventory.cylinder_pressure", cylinder="CAL-A", serial="D1", pressure_bar=110.0),
        _ev(3, 20, "inventory.cylinder_pressure", cylinder="CAL-A", serial="D1", pressure_bar=100.0),
        _ev(4, 0, "inventory.cylinder_installed", cylinder="TGT-1", serial="T1", pressure_bar=100.0),
        _ev(5, 5, "inventory.cylinder_removed", cylinder="TGT-1"),
        _ev(6, 6, "inventory.device_added", driver="picarro.g2401"),
    ]
    a, t = station_forecasts(events, T0 + timedelta(days=21))
    assert a.cylinder == "CAL-A" and a.low_bar == 30.0 and a.status == "ok"
    assert abs((a.empty_at - (T0 + timedelta(days=90))).total_seconds()) < 60
    assert (t.cylinder, t.status) == ("TGT-1", "removed")
    (a,) = station_forecasts(events[:3], T0 + timedelta(days=21), low_bar={"CAL-A": 20.0})
    assert a.low_bar == 20.0
