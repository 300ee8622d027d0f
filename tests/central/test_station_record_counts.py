"""Central's station counters count every record kind: emission (stack CEMS) and flux records too,
new ones only (a redelivered batch adds nothing), shown by `status --json` and the station table,
and filled from the records already held when an older database is migrated. Both backends."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from support.central import open_at_schema
from test_cems_emission_store import STORE as CEMS_STORE  # the emission records' helpers
from test_cems_emission_store import hour, minute
from test_central_flux import flux_batch
from typer.testing import CliRunner

from central import views
from central.cli import app
from central.config import CentralConfig
from central.store import open_store
from central.store.base import emission_rows
from central.store.sql import migrations
from central.store.sqlite import TYPES
from ghgnet.wire import encode_batch, parse_batch

NOW = datetime(2026, 6, 1, 13, 0, 5, tzinfo=UTC)


def emission_batch(seqs: list[int]):
    recs = [hour(s, s % 24) if s % 2 else minute(s) for s in seqs]
    return parse_batch("ghg/v1/st-a/emission", encode_batch("st-a", "emission", recs, NOW, store=CEMS_STORE))


def summary(store, station: str = "st-a"):
    return next(s for s in store.stations() if s.station == station)


def test_emission_and_flux_records_are_counted_once(store):
    store.store_batch(emission_batch([1, 2, 3]), NOW)
    store.store_batch(emission_batch([3, 4]), NOW)  # 3 again: a duplicate, not counted twice
    store.store_batch(flux_batch([5, 6]), NOW)
    store.store_batch(flux_batch([6]), NOW)
    s = summary(store)
    assert (s.emissions, s.fluxes, s.duplicates, s.minutes) == (4, 2, 2, 0)
    (row,) = views.station_health(store, CentralConfig(), NOW)
    assert (row["emissions"], row["fluxes"]) == (4, 2)


def test_status_json_and_table_show_the_counts(tmp_path):
    db = tmp_path / "central.sqlite"
    store = open_store("sqlite", path=db)
    store.store_batch(emission_batch([1, 2]), NOW)
    store.store_batch(flux_batch([3]), NOW)
    store.close()
    cfg = tmp_path / "central.toml"
    cfg.write_text(f'[storage]\npath = "{db}"\n')
    out = CliRunner().invoke(app, ["status", "--config", str(cfg), "--json"])
    assert out.exit_code == 0, out.output
    (row,) = json.loads(out.output)["stations"]
    assert (row["emissions"], row["fluxes"]) == (2, 1)
    out = CliRunner().invoke(app, ["status", "--config", str(cfg)], env={"COLUMNS": "250"})
    assert out.exit_code == 0 and "emis" in out.output and "flux" in out.output


def test_an_older_database_gains_the_counts_of_the_records_it_holds(store_location):
    version = next(i for i, m in enumerate(migrations(TYPES)) if any("ADD COLUMN emissions" in str(x) for x in m))
    old = open_at_schema(store_location, version)  # the station table without the new counters
    with old._transaction():
        old._insert("emission", emission_rows("st-a", emission_batch([1, 2, 3]).records, old._t, old._t(NOW)),
                    CEMS_STORE)
        old._execute(old._sql("INSERT INTO station (station, first_seen, last_seen, last_seq, store) "
                              "VALUES (?, ?, ?, 3, ?)"), ("st-a", old._t(NOW), old._t(NOW), CEMS_STORE))
        old._execute(old._sql("INSERT INTO station (station, first_seen, last_seen, store) VALUES (?, ?, ?, '')"),
                     ("st-b", old._t(NOW), old._t(NOW)))
    old.close()
    store = open_store(**store_location)
    try:
        assert (summary(store).emissions, summary(store).fluxes) == (3, 0)
        assert (summary(store, "st-b").emissions, summary(store, "st-b").fluxes) == (0, 0)
        store.store_batch(flux_batch([4]), NOW)
        assert (summary(store).emissions, summary(store).fluxes) == (3, 1)
    finally:
        store.close()
