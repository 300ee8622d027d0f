"""`central-receiver stations show` gives when each cylinder runs empty, from the pressure
readings the station sent as events."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from central.cli import app
from central.store import open_store
from ghgnet.wire import EventWire, ParsedBatch, StatusMessage

NOW = datetime.now(UTC).replace(microsecond=0)


def _fill(tmp_path: Path) -> Path:
    cfg = tmp_path / "central.toml"
    cfg.write_text('[central]\nname = "t"\n[storage]\npath = "central.sqlite"\n')
    store = open_store("sqlite", path=tmp_path / "central.sqlite")
    inv = {"cylinders": {"CAL-A": {"pressure_bar": 90.0, "low_pressure_bar": 30.0},
                         "TGT-1": {"pressure_bar": 100.0, "low_pressure_bar": 20.0}}}
    store.store_status(StatusMessage(station="st-a", state="up", time=NOW, backlog=0, agent_version="t",
                                     interval_s=60.0, details={"inventory": inv}), NOW)
    # CAL-A: 120, 105, 90 bar 30 and 15 days ago and today: 1 bar/day, 30 bar in 60 days
    for seq, (days_ago, bar, kind) in enumerate([(30, 120.0, "inventory.cylinder_installed"),
                                                 (15, 105.0, "inventory.cylinder_pressure"),
                                                 (0, 90.0, "inventory.cylinder_pressure")], start=1):
        at = NOW - timedelta(days=days_ago)
        store.store_batch(ParsedBatch("st-a", "event", at, [EventWire(
            seq=seq, time=at, kind=kind, severity="info", message="m",
            data={"cylinder": "CAL-A", "serial": "D1", "pressure_bar": bar})]), at)
    store.store_batch(ParsedBatch("st-a", "event", NOW, [EventWire(
        seq=9, time=NOW, kind="inventory.cylinder_installed", severity="info", message="m",
        data={"cylinder": "TGT-1", "serial": "T1", "pressure_bar": 100.0})]), NOW)
    store.close()
    return cfg


def test_stations_show_gives_each_cylinders_empty_date(tmp_path):
    cfg = _fill(tmp_path)
    r = CliRunner().invoke(app, ["stations", "show", "st-a", "--config", str(cfg), "--json"])
    assert r.exit_code == 0, r.output
    got = {f["cylinder"]: f for f in json.loads(r.stdout)["cylinder_forecasts"]}
    assert got["CAL-A"]["status"] == "ok" and got["CAL-A"]["low_bar"] == 30.0
    empty = datetime.fromisoformat(got["CAL-A"]["empty_at"])
    assert abs((empty - (NOW + timedelta(days=60))).total_seconds()) < 3600
    assert (got["TGT-1"]["status"], got["TGT-1"]["points"]) == ("not_enough_points", 1)
    text = CliRunner().invoke(app, ["stations", "show", "st-a", "--config", str(cfg)]).stdout
    assert f"cylinder CAL-A: 90.0 bar, -1.00 bar/day, reaches 30 bar on {empty:%Y-%m-%d}" in text
    assert "cylinder TGT-1: 100.0 bar, no empty date: not enough points (1 readings" in text
