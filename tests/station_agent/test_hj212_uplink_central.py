"""The station's HJ 212 uplink against central's own HJ 212 listener (central/hj212/), over real TCP:
the two ends of this repository agree on frames, Flag, QN answers, DataTime zone and units, and the
same minutes sent again are stored once."""

from __future__ import annotations

from contextlib import closing
from datetime import UTC, datetime

import pytest
from support.wait import wait_until
from test_hj212_uplink import MN, PW, Station, minute, store_minutes, uplink  # tests/station_agent

from central.config import CentralConfig
from central.hj212.listener import Hj212Listener
from central.store import open_store
from station_agent.forwarding.hj212_config import FactorConfig


def central_listener(db) -> Hj212Listener:
    config = CentralConfig.model_validate({
        "storage": {"backend": "sqlite", "path": str(db)},
        "hj212": {"listen": "127.0.0.1:0", "timezone": "Asia/Shanghai",
                  "loggers": [{"mn": MN, "pw": PW, "station": "bj-tower", "stream": "inlet:top"}]}})
    return Hj212Listener(config, now=lambda: datetime(2026, 3, 1, 12, tzinfo=UTC)).start()


def test_central_stores_what_the_uplink_sends_and_a_second_sending_once(tmp_path):
    station_db, central_db = tmp_path / "station.sqlite", tmp_path / "central.sqlite"
    store_minutes(station_db, [minute(i) for i in range(10)])
    listener = central_listener(central_db)
    try:
        cfg = uplink(listener.address[1], factors=[FactorConfig(species="co2", code="a05001", unit="mg/m3", decimals=4)])
        with Station(station_db, [cfg]) as station:
            wait_until(lambda: station.link.stats["acked"] == 10 and station.backlog() == 0,
                       message="every packet answered by central")
        with closing(open_store("sqlite", path=central_db)) as store:
            assert store.minute_count("bj-tower") == 10
        # the same minutes queued again under another uplink name: central keeps one copy
        with Station(station_db, [cfg.model_copy(update={"name": "again"})]) as station:
            wait_until(lambda: station.link.stats["acked"] == 10 and station.backlog("again") == 0,
                       message="the repeats answered")
    finally:
        listener.stop()
    with closing(open_store("sqlite", path=central_db)) as store:
        assert store.minute_count("bj-tower") == 10
        stored = list(store.minutes("bj-tower", datetime(2026, 2, 28, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC)))
    assert [m.time for m in stored] == [datetime(2026, 3, 1, 0, i, tzinfo=UTC) for i in range(10)]
    assert [m.species["co2"].mean for m in stored] == pytest.approx([420.0 + i for i in range(10)], abs=1e-3)
    assert {m.flag for m in stored} == {"U"} and {m.stream for m in stored} == {"inlet:top"}
