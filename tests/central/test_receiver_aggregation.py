"""The receiver's aggregation thread: minutes published over a real mosquitto become hourly data,
and a late backlog replayed afterwards changes the hour already aggregated."""

from __future__ import annotations

from datetime import timedelta

import pytest
from support.central import central_config
from support.mqtt import T0, TestStation, minute
from support.wait import wait_until

from central.store import open_store
from ghgnet.wire import encode_batch


def test_late_backlog_through_the_receiver_changes_the_hour(tmp_path, mosquitto, start_receiver):
    db = tmp_path / "central.sqlite"
    start_receiver(central_config(mosquitto, db, aggregate={"interval_s": 0.1, "min_minutes_per_hour": 3}))
    station = TestStation(mosquitto, "st-a")
    reader = open_store("sqlite", path=db)
    try:
        # minutes 1..10 of the hour from T0 (support.mqtt.minute: minute seq after T0, co2 cal_mean 420)
        station.publish("minute", encode_batch("st-a", "minute", [minute(s) for s in range(1, 11)], T0))
        station.wait_acked(range(1, 11))

        def hour():
            rows = reader.hourly("st-a", T0, T0 + timedelta(hours=1), "inlet:100m", "co2")
            return rows[0] if rows else None

        first = wait_until(hour, 10, 0.05, "hourly row")
        assert (first.n, first.mean, first.flag) == (10, pytest.approx(420.0), "U")
        late = [minute(s, co2=430.0) for s in range(11, 21)]  # the backlog, replayed after an outage
        station.publish("minute", encode_batch("st-a", "minute", late, T0 + timedelta(days=1)))
        station.wait_acked(range(11, 21))
        second = wait_until(lambda: (h := hour()) is not None and h.n == 20 and h, 10, 0.05, "re-aggregated hour")
        assert second.mean == pytest.approx(425.0)
    finally:
        reader.close()
        station.close()
