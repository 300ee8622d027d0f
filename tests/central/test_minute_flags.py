"""Operators' manual flags on minute data: the effective letter (the station's U/N overridden by
R/H) in `central-receiver export --level minute` with the deciding flag's reason, and the same rule
in the hourly aggregation (a later decision overrides an earlier one)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from support.mqtt import T0, minute
from typer.testing import CliRunner

from central.aggregation.hourly_stats import effective_minute_flags
from central.aggregation.worker import aggregate_all
from central.cli import app
from central.config import CentralConfig
from central.store import open_store
from ghgnet.wire import ParsedBatch

NOW = datetime(2026, 3, 2, tzinfo=UTC)


def at(m: int) -> str:
    return (T0 + timedelta(minutes=m)).isoformat().replace("+00:00", "Z")


def test_later_decisions_override_earlier_ones_and_o_cannot_validate_a_flushed_minute():
    station = np.array(list("UUNUU"))
    k_all = np.array([True, True, True, False, False])
    o_late = np.array([False, True, True, True, False])
    letters, decided = effective_minute_flags(station, [k_all, o_late], ["K", "O"])
    assert letters.tolist() == ["H", "R", "N", "R", "U"]
    assert decided.tolist() == [0, 1, -1, 1, -1]
    with pytest.raises(ValueError, match="K or O"):
        effective_minute_flags(station, [k_all], ["X"])


def run(*args: str) -> str:
    r = CliRunner().invoke(app, list(args))
    assert r.exit_code == 0, r.output
    return r.stdout


def test_minute_export_reports_effective_flags_and_the_manual_reason(tmp_path: Path):
    cfg = tmp_path / "central.toml"
    cfg.write_text('[storage]\npath = "c.sqlite"\n')
    store = open_store("sqlite", path=tmp_path / "c.sqlite")
    recs = [minute(i, flag="N" if i == 6 else "U") for i in range(1, 11)]
    recs.append(minute(11).model_copy(update={"stream": "cal:CAL-A"}))
    store.store_batch(ParsedBatch("st-a", "minute", NOW, recs), NOW)
    store.close()
    common = ["--config", str(cfg), "--station", "st-a", "--no-aggregate"]
    run("flag", *common, "--from", at(2), "--to", at(5), "--flag", "K", "--reason", "line leak", "--operator", "al")
    run("flag", *common, "--from", at(4), "--to", at(8), "--flag", "O", "--reason", "leak fixed at 04", "--operator", "bo")
    run("flag", *common, "--from", at(9), "--to", at(10), "--flag", "K", "--species", "co2",
        "--reason", "co2 cell spike", "--operator", "al")
    run("flag", *common, "--from", at(1), "--to", at(12), "--flag", "K", "--stream", "cal:CAL-A",
        "--reason", "cylinder empty", "--operator", "bo")

    out = tmp_path / "min.csv"
    run("export", "--config", str(cfg), "--station", "st-a", "--from", at(0), "--to", at(20), "--level", "minute",
        "--out", str(out))
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    got = [(int(r["seq"]), r["stream"].removeprefix("inlet:"), r["station_flag"], r["flag"], r["co2_flag"],
            r["ch4_flag"], r["manual_flag_ids"], r["manual_reason"]) for r in rows]
    assert got == [
        (1, "100m", "U", "U", "U", "U", "", ""),
        (2, "100m", "U", "H", "H", "H", "1", "line leak"),
        (3, "100m", "U", "H", "H", "H", "1", "line leak"),
        (4, "100m", "U", "R", "R", "R", "2", "leak fixed at 04"),   # O after K: the later decision
        (5, "100m", "U", "R", "R", "R", "2", "leak fixed at 04"),
        (6, "100m", "N", "N", "N", "N", "", ""),                    # flushed: O cannot validate it
        (7, "100m", "U", "R", "R", "R", "2", "leak fixed at 04"),
        (8, "100m", "U", "U", "U", "U", "", ""),
        (9, "100m", "U", "U", "H", "U", "3", "co2 cell spike"),     # a co2-only flag: ch4 stays valid
        (10, "100m", "U", "U", "U", "U", "", ""),
        (11, "cal:CAL-A", "U", "H", "H", "H", "4", "cylinder empty"),
    ]
    assert float(rows[1]["co2_cal_mean"]) == 420.0  # values are kept; only the letters change


def test_hourly_aggregation_follows_the_same_rule(store):
    hour = T0.replace(hour=1)
    recs = [minute(60 + i, co2=420.0 + i) for i in range(0, 30)]
    store.store_batch(ParsedBatch("st-a", "minute", NOW, recs), NOW)
    config = CentralConfig.model_validate({"aggregate": {"min_minutes_per_hour": 3},
                                           "qc": {"spikes": {"enabled": False}}})
    store.add_manual_flag("st-a", hour, hour + timedelta(minutes=10), "K", "leak", "al", NOW)
    aggregate_all(store, config, lambda: NOW)
    (h,) = store.hourly("st-a", hour, hour + timedelta(hours=1), species="co2")
    assert (h.flag, h.n) == ("K", 20)
    store.add_manual_flag("st-a", hour, hour + timedelta(hours=1), "O", "leak was outside the inlet line", "bo",
                          NOW + timedelta(hours=1))
    aggregate_all(store, config, lambda: NOW)
    (h,) = store.hourly("st-a", hour, hour + timedelta(hours=1), species="co2")
    assert (h.flag, h.n) == ("O", 30) and h.mean == pytest.approx(420.0 + 14.5)
