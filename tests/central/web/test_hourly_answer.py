"""/api/hourly's own reader (central/web/hourly.py) answers exactly what central.views.hourly_series
builds, on SQLite and PostgreSQL, for every filter."""

from __future__ import annotations

from datetime import timedelta

import pytest
from support.network import START, fill_network, station_config

from central import views
from central.aggregation.worker import aggregate_all
from central.config import CentralConfig
from central.store import open_store
from central.web.hourly import hourly_series


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        s = open_store("sqlite", path=tmp_path / "c.sqlite")
    else:
        s = open_store("postgresql", dsn=request.getfixturevalue("pg_dsn"), schema=request.getfixturevalue("pg_schema"))
    config = CentralConfig.model_validate({"stations": station_config()})
    fill_network(s, days=2)
    aggregate_all(s, config, lambda: START + timedelta(days=2, minutes=1))
    yield s
    s.close()


def test_the_web_reader_answers_as_views(store):
    start, end = START, START + timedelta(days=2)
    for stream, species in ((None, None), ("inlet:100m", None), (None, "co2"), ("inlet:10m", "co2"), ("x", None)):
        expected = views.hourly_series(store, "bg-north", start, end, stream, species)
        assert hourly_series(store, "bg-north", start, end, stream, species) == expected
    assert sum(len(g["time"]) for g in views.hourly_series(store, "bg-north", start, end)) > 100
