"""/api/hourly's own reader (central/web/hourly.py) answers exactly what central.views.hourly_series
builds, on SQLite and PostgreSQL, for every filter."""

from __future__ import annotations

import statistics
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
        store.refresh_daily("bg-north", [start])  # what the aggregator does after replacing hours
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


WINDOWS = [
    (START, START + timedelta(days=2)),  # whole days: the daily table alone
    (START + timedelta(hours=5), START + timedelta(days=1, hours=19)),  # partial days at both ends
    (START + timedelta(hours=5), START + timedelta(hours=9)),  # within one day: the hourly table alone
    (START - timedelta(days=90), START + timedelta(days=1, hours=1)),  # the API's long-window case
]


def test_the_daily_table_answers_as_the_hourly_table_summed(store):
    """The daily table the aggregator keeps (central/store/daily.py) with the partial days at the
    window's ends from the hourly table: the same answer as summing every day from the hours."""
    from central.web.daily import daily_series

    for start, end in WINDOWS:
        for stream, species in ((None, None), ("inlet:10m", "co2"), (None, "ch4")):
            want = daily_series(store, "bg-north", start, end, stream, species, from_table=False)
            got = daily_series(store, "bg-north", start, end, stream, species)
            assert _close(got, want), (start, end, stream, species)
    assert sum(len(g["time"]) for g in daily_series(store, "bg-north", *WINDOWS[1])) > 0
    assert len(store._query("SELECT * FROM daily WHERE station = ?", ["bg-north"])) > 0


def test_a_manual_flag_reaches_the_daily_table_through_the_aggregator(store):
    from central.web.daily import daily_series

    start, end = START, START + timedelta(days=2)
    before = daily_series(store, "bg-north", start, end, "inlet:10m", "co2")
    store.add_manual_flag("bg-north", START + timedelta(hours=3), START + timedelta(hours=15), "K", "test", "otto",
                          START + timedelta(days=2), "inlet:10m", "co2")
    aggregate_all(store, CentralConfig.model_validate({"stations": station_config()}),
                  lambda: START + timedelta(days=2, minutes=5))
    (after,) = daily_series(store, "bg-north", start, end, "inlet:10m", "co2")
    assert after["n"][0] == before[0]["n"][0] - 12 and after["n"][1] == before[0]["n"][1]
    assert _close([after], daily_series(store, "bg-north", start, end, "inlet:10m", "co2", from_table=False))


def test_the_migration_fills_the_daily_table_from_the_hours_stored(tmp_path):
    from support.central import open_at_schema

    from central.store.sql import migrations
    from central.store.sqlite import TYPES
    from central.web.daily import daily_series

    location = {"backend": "sqlite", "path": tmp_path / "old.sqlite"}
    version = next(i for i, m in enumerate(migrations(TYPES)) if any("CREATE TABLE daily" in str(x) for x in m))
    old = open_at_schema(location, version)  # the schema before the daily table
    with old._transaction():
        old._execute("INSERT INTO hourly (station, stream, species, hour, n, mean, std, repeatability, n_all, "
                     "mean_all, std_all, repeatability_all, n_spikes, flag, computed_at) VALUES "
                     + ", ".join(f"('s', 'inlet:a', 'co2', '2026-03-0{1 + h // 24}T{h % 24:02d}:00:00.000Z', 60, "
                                 f"{400 + h}, 0.1, 0.01, 60, {400 + h}, 0.1, 0.01, 0, '{'N' if h == 3 else 'U'}', "
                                 "'2026-03-03T00:00:00.000Z')" for h in range(48)))
    old.close()
    store = open_store(**location)
    try:
        (d,) = daily_series(store, "s", START, START + timedelta(days=2))
        assert d["n"] == [23, 24] and d["n_all"] == [24, 24]
        assert d["mean"][1] == pytest.approx(400 + statistics.fmean(range(24, 48)))
        assert _close([d], daily_series(store, "s", START, START + timedelta(days=2), from_table=False))
    finally:
        store.close()


def _close(a: list[dict], b: list[dict]) -> bool:
    """Two daily answers equal but for rounding in the sums (the backend may add in another order)."""
    if [(g["stream"], g["species"], g["time"], g["n"], g["n_all"], g["flag"]) for g in a] != \
            [(g["stream"], g["species"], g["time"], g["n"], g["n_all"], g["flag"]) for g in b]:
        return False
    for ga, gb in zip(a, b):
        for k in ("mean", "std", "mean_all"):
            for x, y in zip(ga[k], gb[k]):
                if (x is None) != (y is None) or (x is not None and abs(x - y) > 1e-9 * max(1.0, abs(y))):
                    return False
    return True
