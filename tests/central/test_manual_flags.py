"""Manual flags: flag an hour and see the hourly export change, remove the flag and see the hour
back; every change audited (who, when, why), on both backends; the CLI's flags add|list|remove."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.mqtt import T0, minute
from typer.testing import CliRunner

from central.aggregation.worker import aggregate_all
from central.cli import app
from central.config import CentralConfig
from central.export import hourly_rows_for_export, write_icos_csv, write_minute_csv
from central.flags.manual import add_flag, flag_doc, list_flags, remove_flag
from central.store import open_store
from ghgnet.wire import ParsedBatch

CFG = CentralConfig()
NOW = datetime(2026, 3, 2, tzinfo=UTC)
H1 = T0 + timedelta(hours=1)


def _three_hours(store) -> None:
    """Minutes 0..179 after T0 (seq 1..179: minute seq is seq minutes after T0)."""
    store.store_batch(ParsedBatch("st-a", "minute", NOW, [minute(s) for s in range(1, 180)]), NOW)
    aggregate_all(store, CFG, lambda: NOW)


def _export(store) -> list[tuple[str, str, str]]:
    out = io.StringIO()
    write_icos_csv(hourly_rows_for_export(store, "st-a", "co2", T0, T0 + timedelta(hours=3)), CFG, "st-a", "co2", out)
    lines = [x for x in out.getvalue().splitlines() if not x.startswith("#")]
    return [(r["Hour"], r["Flag"], r["co2"]) for r in csv.DictReader(io.StringIO("\n".join(lines)), delimiter=";")]


def test_flag_an_hour_then_remove_it_and_the_export_follows(store):
    _three_hours(store)
    before = _export(store)
    assert [(h, f) for h, f, _ in before] == [("0", "U"), ("1", "U"), ("2", "U")]
    f = add_flag(store, CFG, "st-a", H1, H1 + timedelta(hours=1), "K", "exhaust of a generator", "alice",
                 NOW + timedelta(minutes=1), stream="inlet:100m", species="co2", reason_code="contamination")
    flagged = _export(store)
    assert flagged == [before[0], ("1", "K", "-999.99"), before[2]]
    minutes = io.StringIO()
    write_minute_csv(store, "st-a", H1, H1 + timedelta(minutes=2), minutes)
    rows = list(csv.DictReader(io.StringIO(minutes.getvalue())))
    assert {r["co2_flag"] for r in rows} == {"H"} and {r["manual_flag_ids"] for r in rows} == {str(f.id)}
    removed = remove_flag(store, CFG, f.id, "bob", NOW + timedelta(minutes=5), "it was the neighbour's test run")
    assert _export(store) == before
    assert not removed.active and removed.removed_by == "bob" and removed.removed_at == NOW + timedelta(minutes=5)
    # the audit keeps both decisions
    (doc,) = [flag_doc(x) for x in list_flags(store, "st-a")]
    assert (doc["operator"], doc["reason_code"], doc["reason"], doc["created_at"]) == (
        "alice", "contamination", "exhaust of a generator", "2026-03-02T00:01:00.000Z")
    assert (doc["removed_by"], doc["removal_reason"], doc["active"]) == ("bob", "it was the neighbour's test run", False)
    assert list_flags(store, "st-a", include_removed=False) == []
    with pytest.raises(ValueError, match="removed already"):
        remove_flag(store, CFG, f.id, "bob", NOW)
    with pytest.raises(LookupError):
        remove_flag(store, CFG, 999, "bob", NOW)


def test_a_flag_on_another_species_leaves_co2_alone_and_bad_input_is_named(store):
    _three_hours(store)
    before = _export(store)
    add_flag(store, CFG, "st-a", H1, H1 + timedelta(hours=1), "K", "ch4 analyzer fault", "alice", NOW, species="ch4",
             reason_code="instrument")
    assert _export(store) == before
    with pytest.raises(ValueError, match="unknown reason code 'smoke'"):
        add_flag(store, CFG, "st-a", H1, H1 + timedelta(hours=1), "K", "r", "alice", NOW, reason_code="smoke")
    with pytest.raises(ValueError, match="K or O"):
        add_flag(store, CFG, "st-a", H1, H1 + timedelta(hours=1), "X", "r", "alice", NOW)
    with pytest.raises(ValueError, match="stream: empty"):
        add_flag(store, CFG, "st-a", H1, H1 + timedelta(hours=1), "K", "r", "alice", NOW, stream=" ")
    assert len(list_flags(store)) == 1


def test_flags_cli_add_list_remove(tmp_path: Path):
    db = tmp_path / "central.sqlite"
    conf = tmp_path / "central.toml"
    conf.write_text(f'[storage]\npath = "{db}"\n')
    s = open_store("sqlite", path=db)
    _three_hours(s)
    s.close()
    runner = CliRunner()

    def run(*args: str):
        r = runner.invoke(app, [*args, "--config", str(conf)])
        assert r.exit_code == 0, r.output
        return r

    def hour1_flag() -> str:
        out = run("export", "--station", "st-a", "--from", "2026-03-01T00:00Z", "--to", "2026-03-01T03:00Z",
                  "--level", "hourly", "--stream", "inlet:100m").stdout
        lines = [x for x in out.splitlines() if not x.startswith("#")]
        return [r["Flag"] for r in csv.DictReader(io.StringIO("\n".join(lines)), delimiter=";")][1]

    assert hour1_flag() == "U"
    added = run("flags", "add", "--station", "st-a", "--from", "2026-03-01T01:00Z", "--to", "2026-03-01T02:00Z",
                "--flag", "K", "--reason", "inlet leak", "--code", "inlet", "--user", "alice")
    assert "flag #1" in added.stdout
    assert hour1_flag() == "K"
    run("flags", "remove", "1", "--user", "bob", "--reason", "leak was elsewhere")
    assert hour1_flag() == "U"
    (doc,) = json.loads(run("flags", "list", "--json").stdout)
    assert (doc["operator"], doc["reason_code"], doc["removed_by"], doc["active"]) == ("alice", "inlet", "bob", False)
    assert "removed" in run("flags", "list").stdout
    again = runner.invoke(app, ["flags", "remove", "1", "--config", str(conf), "--user", "bob"])
    assert again.exit_code == 2 and "removed already" in again.output
