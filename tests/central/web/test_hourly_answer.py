"""/api/hourly's own reader (central/web/hourly.py) answers exactly what central.views.hourly_series
builds, on SQLite and PostgreSQL, for every filter."""

from __future__ import annotations

from datetime import timedelta

import pytest
from support.network import START, fill_network, station_config
from support.webapp import served  # noqa: F401 (a fixture)

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


def test_daily_means_are_the_valid_hours_averaged_per_utc_day(store):
    """The long-window reader (central/web/daily.py) against the hours it averages, computed here."""
    import statistics

    from central.web.daily import daily_series

    start, end = START, START + timedelta(days=2)
    hours = views.hourly_series(store, "bg-north", start, end)
    days = daily_series(store, "bg-north", start, end)
    assert [(g["stream"], g["species"]) for g in days] == [(g["stream"], g["species"]) for g in hours]
    for h, d in zip(hours, days):
        assert d["time"] == ["2026-03-01T00:00:00.000Z", "2026-03-02T00:00:00.000Z"]
        for k, day in enumerate(d["time"]):
            rows = [i for i, t in enumerate(h["time"]) if t[:10] == day[:10] and h["mean"][i] is not None]
            valid = [h["mean"][i] for i in rows if h["flag"][i] in ("U", "O")]
            assert d["n"][k] == len(valid) and d["n_all"][k] == len(rows)
            assert d["mean"][k] == pytest.approx(statistics.fmean(valid), abs=1e-9)
            assert d["std"][k] == pytest.approx(statistics.stdev(valid), abs=1e-6)
            assert d["mean_all"][k] == pytest.approx(statistics.fmean(h["mean"][i] for i in rows), abs=1e-9)
            assert d["flag"][k] == "U"
    assert daily_series(store, "bg-north", start, end, "inlet:10m", "co2")[0]["n"][0] > 0
    assert daily_series(store, "bg-north", start, end, "x") == []


def test_a_day_without_a_valid_hour_is_flagged_n(store):
    from central.web.daily import daily_series

    start, end = START, START + timedelta(days=1)
    with store._transaction():
        store._execute("UPDATE hourly SET flag = 'K' WHERE station = {p} AND hour < {p}".format(p=store.PARAM), ["bg-north", store._t(end)])
    (d,) = daily_series(store, "bg-north", start, end, "inlet:10m", "co2")
    assert (d["flag"], d["n"], d["std"]) == (["N"], [0], [None]) and d["n_all"][0] > 20
    assert d["mean"] == d["mean_all"] and d["mean"][0] is not None


def test_the_api_says_its_resolution_and_the_description_documents_it(served):  # noqa: F811
    vera = served.client("vera")
    status, short = vera.request("GET", "/api/hourly?station=bg-north&species=co2&days=7")
    assert status == 200 and short["resolution"] == "hour" and len(short["series"][0]["time"]) == 72
    status, long = vera.request("GET", "/api/hourly?station=bg-north&species=co2&days=61")
    assert status == 200 and long["resolution"] == "day", long
    assert long["series"][0]["time"] == ["2026-03-01T00:00:00.000Z", "2026-03-02T00:00:00.000Z",
                                         "2026-03-03T00:00:00.000Z"]
    assert set(long["series"][0]) == {"stream", "species", "time", "mean", "std", "n", "mean_all", "n_all", "flag"}
    status, doc = vera.request("GET", "/api/hourly?station=bg-north&species=co2&from=2025-12-31T00:00:00Z"
                                      "&to=2026-03-02T00:00:00Z")
    assert status == 200 and doc["resolution"] == "day" and doc["series"][0]["time"] == ["2026-03-01T00:00:00.000Z"]
    status, api = vera.request("GET", "/openapi.json")
    described = api["paths"]["/api/hourly"]["get"]["description"]
    assert "longer than 60 days" in described and '`resolution` "day"' in described
