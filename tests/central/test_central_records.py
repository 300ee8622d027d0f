"""`central-receiver records` on SQLite and PostgreSQL: a station database written through the
station's store (tests/support/records.py) is handed to central's ingest as the forwarder's
batches; the command then lists, seq by seq, the records `station-agent records` lists for that
database, with each calibration's fit RMSE and each target's bias, and the redeliveries central
absorbed."""

from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path
from typing import Any

from support.records import CALIBRATION, TARGET, fill_station, forward_outbox
from typer.testing import CliRunner

from central.cli import app
from central.store import open_store
from simulators.network import identities
from station_agent.storage.store import StationStore

STATION = "st-records"


def config_for(tmp: Path, location: dict[str, Any]) -> Path:
    """A central config naming the store at `location` (the store_location fixture's)."""
    if location["backend"] == "sqlite":
        storage = f'backend = "sqlite"\npath = "{location["path"]}"\n'
    else:
        storage = f'backend = "postgresql"\ndsn = "{location["dsn"]}"\nschema = "{location["schema"]}"\n'
    path = tmp / "central.toml"
    path.write_text(f'[mqtt]\nhost = "127.0.0.1"\nport = 1883\n\n[storage]\n{storage}')
    return path


def records(config: Path, station: str = STATION, *args: str):
    return CliRunner().invoke(app, ["records", "--config", str(config), "--station", station, *args])


def test_central_records_match_the_stations_seq_by_seq_with_rmse_and_bias(tmp_path, store_location):
    db = tmp_path / "station.sqlite"
    seqs = fill_station(db)
    with closing(open_store(**store_location)) as central:
        forward_outbox(db, central, STATION)
        forward_outbox(db, central, STATION)  # redelivered whole (a lost ack): stored once
        forward_outbox(db, central, "st-other")  # another station's copy stays its own
    with closing(StationStore(db, read_only=True)) as station:
        produced, identity = station.record_identities(), station.store_id()

    out = records(config_for(tmp_path, store_location), STATION, "--json")
    assert out.exit_code == 0, out.output
    info = json.loads(out.stdout)
    held = info["records"]
    assert info["station"] == STATION
    assert info["duplicates"] == sum(len(v) for v in seqs.values())  # every record of the second delivery
    assert {r["store"] for rows in held.values() for r in rows} == {identity}
    assert identities(held) == identities(produced)  # the station's records, each once, the same ones
    assert [r["seq"] for r in held["minute"]] == seqs["minute"]
    assert held["minute"][0] | {"store": None} == produced["minute"][0] | {"store": None}
    (cal,) = held["calibration"]
    assert (cal["seq"], cal["time_end"]) == (seqs["calibration"][0], CALIBRATION["time_end"])
    assert cal["rmse"] == {sp: f["rmse"] for sp, f in CALIBRATION["fits"].items()}
    assert list(cal["rmse"]) == ["ch4", "co2"]  # species in order
    (tgt,) = held["target"]
    assert (tgt["seq"], tgt["cylinder"], tgt["time"]) == (seqs["target"][0], "TGT-1", TARGET["time"])
    assert tgt["bias"] == {"ch4": {"bias": 2.9, "within_goal": False}, "co2": {"bias": 0.05, "within_goal": True}}

    text = records(config_for(tmp_path, store_location))
    assert text.exit_code == 0, text.output
    assert f"{STATION}: {info['duplicates']} redelivered record(s) absorbed" in text.stdout
    assert f"minute             6 seqs {seqs['minute'][0]}..{seqs['minute'][-1]} from {identity}" in text.stdout


def test_central_records_of_a_station_it_never_heard_from_are_empty(tmp_path, store_location):
    with closing(open_store(**store_location)):
        pass  # central has run: its store exists
    out = records(config_for(tmp_path, store_location), "st-unknown", "--json")
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout) == {"station": "st-unknown", "duplicates": 0,
                                      "records": {"minute": [], "event": [], "calibration": [], "target": [],
                                                                  "emission": [], "flux": []}}


def test_central_records_without_a_sqlite_database_says_so_and_makes_none(tmp_path):
    missing = tmp_path / "nowhere" / "central.sqlite"
    out = records(config_for(tmp_path, {"backend": "sqlite", "path": missing}), STATION, "--json")
    assert out.exit_code == 2 and out.stdout == ""
    assert f"error: no central database at {missing} (central-receiver has not run yet)" in out.stderr
    assert not missing.parent.exists()
