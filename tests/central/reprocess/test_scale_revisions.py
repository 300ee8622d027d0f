"""A scale revision triggers reprocessing (central/reprocess/revisions.py), on SQLite and
PostgreSQL with hand-made calibrations: a cylinder moved from X2007 to X2019 and one re-assigned on
X2007 give the value converted to the current scale by hand; a value change gives a pending run
over [first calibration on the old value, first on the new); no change gives none; a second pass
records nothing twice; running it writes a new version of the minutes, by the hand-computed amount,
and clears it; and `central-receiver reprocess --pending [--run]` lists and runs them."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import structlog
from test_reprocess import CONFIG, DEVICE, NOW, RECEIVED, T0, minute  # tests/central/reprocess/test_reprocess.py
from typer.testing import CliRunner

from central.aggregation.worker import aggregate_all
from central.cli import app
from central.reprocess.revisions import detect_revisions, run_pending
from central.store import open_store
from ghgnet.wire import CalibrationWire, FitWire, ParsedBatch, StandardWire

X2007, X2019 = "WMO-CO2-X2007", "WMO-CO2-X2019"


def calibration(seq: int, hours: int, low: tuple[float, str], span: tuple[float, str]) -> CalibrationWire:
    """A calibration at T0 + hours measuring CAL-LOW at 380 and CAL-SPAN at 460, with the assigned
    (value, scale) given; the station's fit is an identity (it is refitted when reprocessed)."""
    start = T0 + timedelta(hours=hours)
    return CalibrationWire(
        seq=seq, record_type="calibration", id=f"cal-{DEVICE}-{start:%Y%m%dT%H%M}", time_start=start,
        time_end=start + timedelta(minutes=20),
        standards=[StandardWire(cylinder="CAL-LOW", measured={"co2": 380.0}, assigned={"co2": low[0]},
                                scale={"co2": low[1]} if low[1] else {}),
                   StandardWire(cylinder="CAL-SPAN", measured={"co2": 460.0}, assigned={"co2": span[0]},
                                scale={"co2": span[1]} if span[1] else {})],
        fits={"co2": FitWire(coefficients=[0.0, 1.0], residuals=[0.0, 0.0], r2=1.0, rmse=0.0, n=2)})


def fill(store, *cals: CalibrationWire) -> None:
    store.store_batch(ParsedBatch("st-a", "calibration", RECEIVED, list(cals)), RECEIVED)
    recs = [minute(10 + i, T0 + timedelta(hours=1, minutes=i), 420.0, 420.0, cals[0].id) for i in range(120)]
    store.store_batch(ParsedBatch("st-a", "minute", RECEIVED, recs), RECEIVED)
    aggregate_all(store, CONFIG, lambda: RECEIVED)


def test_a_scale_change_gives_the_value_converted_to_the_current_scale(store):
    fill(store, calibration(1, 0, (380.0, X2007), (460.0, X2019)),
         calibration(2, 4, (380.3, X2019), (460.2, "X2007")))
    new = {r.cylinder: r for r in detect_revisions(store, NOW)}
    assert set(new) == {"CAL-LOW", "CAL-SPAN"}
    low, span = new["CAL-LOW"], new["CAL-SPAN"]
    assert (low.old_value, low.old_scale, low.new_value, low.new_scale) == (380.0, X2007, 380.3, X2019)
    assert low.revised_value == pytest.approx(380.3) and low.revised_scale == X2019
    # re-assigned on X2007: NOAA's X2019 = 1.00079 * X2007 - 0.142 by hand
    assert span.new_scale == X2007 and span.revised_value == pytest.approx(1.00079 * 460.2 - 0.142, abs=1e-9)
    assert span.revised_scale == X2019
    assert (low.time_from, low.time_to) == (T0, T0 + timedelta(hours=4))
    assert {r.cylinder for r in store.scale_revisions()} == {"CAL-LOW", "CAL-SPAN"}


def test_no_change_gives_none_and_a_second_pass_records_nothing_twice(store):
    fill(store, calibration(1, 0, (380.0, X2019), (460.0, "")), calibration(2, 4, (380.0, "X2019"), (460.0, X2019)))
    assert detect_revisions(store, NOW) == [] and store.scale_revisions() == []
    store.store_batch(ParsedBatch("st-a", "calibration", RECEIVED,
                                  [calibration(3, 8, (380.0, X2019), (460.5, X2019))]), RECEIVED)
    assert len(detect_revisions(store, NOW)) == 1
    assert detect_revisions(store, NOW) == [] and len(store.scale_revisions()) == 1


def test_a_value_change_gives_a_pending_run_that_writes_a_new_version_and_clears_it(store):
    """CAL-SPAN re-assigned 460 -> 460.5 at the 04:00 calibration: the period 00:00-04:00 is run with
    460.5; both calibrations refit to LOW (380, 380), SPAN (460, 460.5), so a raw 420 becomes
    380 + 40 * 80.5 / 80 = 420.25."""
    fill(store, calibration(1, 0, (380.0, X2019), (460.0, X2019)), calibration(2, 4, (380.0, X2019), (460.5, X2019)))
    (pending,) = detect_revisions(store, NOW)
    assert (pending.cylinder, pending.old_value, pending.new_value) == ("CAL-SPAN", 460.0, 460.5)
    assert (pending.time_from, pending.time_to) == (T0, T0 + timedelta(hours=4))
    (result,) = run_pending(store, CONFIG, "op", NOW)
    assert result.error is None and result.run_id is not None
    latest = list(store.minute_versions("st-a", T0, T0 + timedelta(hours=4), "latest"))
    assert len(latest) == 120 and all(m.run_id == result.run_id for m in latest)
    assert all(m.species["co2"].cal_mean == pytest.approx(420.25) for m in latest)
    assert store.scale_revisions() == []
    (done,) = store.scale_revisions(pending_only=False)
    assert done.run_id == result.run_id and done.done_at == NOW
    assert run_pending(store, CONFIG, "op", NOW) == [] and detect_revisions(store, NOW) == []


def test_a_revision_over_a_period_without_minutes_stays_pending_with_why(store):
    store.store_batch(ParsedBatch("st-a", "calibration", RECEIVED, [
        calibration(1, 0, (380.0, X2019), (460.0, X2019)), calibration(2, 4, (380.0, X2019), (460.5, X2019))]),
        RECEIVED)
    detect_revisions(store, NOW)
    (result,) = run_pending(store, CONFIG, "op", NOW)
    assert result.run_id is None and "no minutes" in result.error
    (still,) = store.scale_revisions()
    assert "no minutes" in still.note


@pytest.fixture
def structlog_restored():
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def test_the_cli_lists_pending_runs_and_runs_them(tmp_path: Path, structlog_restored):
    cfg = tmp_path / "central.toml"
    cfg.write_text('[mqtt]\nhost = "127.0.0.1"\nport = 1883\n[storage]\npath = "central.sqlite"\n'
                   '[aggregate]\nmin_minutes_per_hour = 3\n')
    store = open_store("sqlite", path=tmp_path / "central.sqlite")
    fill(store, calibration(1, 0, (380.0, X2019), (460.0, X2019)), calibration(2, 4, (380.0, X2019), (460.5, X2019)))
    store.close()
    r = CliRunner().invoke(app, ["reprocess", "--config", str(cfg), "--pending"])
    assert r.exit_code == 0, r.output
    assert "1 new cylinder revision(s) found; pending: 1" in r.stdout
    assert "CAL-SPAN co2: 460 WMO-CO2-X2019 -> 460.5 WMO-CO2-X2019" in r.stdout
    r = CliRunner().invoke(app, ["reprocess", "--config", str(cfg), "--pending", "--run", "--json"])
    assert r.exit_code == 0, r.output
    (row,) = json.loads(r.stdout)["revisions"]
    assert row["done"] and row["run_id"] is not None
    r = CliRunner().invoke(app, ["reprocess", "--config", str(cfg), "--pending"])
    assert "0 new cylinder revision(s) found; pending: 0" in r.stdout
    r = CliRunner().invoke(app, ["reprocess", "--config", str(cfg), "--run"])
    assert r.exit_code == 2 and "--run goes with --pending" in r.output
    r = CliRunner().invoke(app, ["reprocess", "--config", str(cfg), "--station", "st-a"])
    assert r.exit_code == 2 and "--from, --to missing" in r.output
    cyl = tmp_path / "revised.csv"
    cyl.write_text("cylinder,species,value,scale\nCAL-LOW,co2,380.2,WMO-CO2-X2019\n")
    r = CliRunner().invoke(app, ["reprocess", "--config", str(cfg), "--record", "--station", "st-a", "--from",
                                 "2026-03-01", "--to", "2026-03-01T04:00:00Z", "--cylinders", str(cyl)])
    assert r.exit_code == 0, r.output
    assert "1 revision(s) recorded as pending" in r.stdout and "CAL-LOW co2: 380 WMO-CO2-X2019 -> 380.2" in r.stdout
    r = CliRunner().invoke(app, ["reprocess", "--config", str(cfg), "--pending"])
    assert "pending: 1" in r.stdout


def test_an_operator_records_a_revision_and_it_runs_like_a_detected_one(store):
    """No calibration shows it: CAL-SPAN re-certified at 460.5 on X2007 after the fact, recorded for
    00:00-04:00; the run refits with 1.00079 * 460.5 - 0.142 (X2019) = 460.7218 by hand, so a raw
    420 becomes 380 + 40 * 80.7218 / 80 = 420.3609."""
    from central.reprocess import RevisedValue
    from central.reprocess.revisions import record_revisions

    fill(store, calibration(1, 0, (380.0, X2019), (460.0, X2019)), calibration(2, 4, (380.0, X2019), (460.0, X2019)))
    assert detect_revisions(store, NOW) == []
    with pytest.raises(ValueError, match="CAL-TYPO co2: no calibration"):
        record_revisions(store, "st-a", T0, T0 + timedelta(hours=4), [RevisedValue("CAL-TYPO", "co2", 1.0)], NOW)
    (rec,) = record_revisions(store, "st-a", T0, T0 + timedelta(hours=4),
                              [RevisedValue("CAL-SPAN", "co2", 460.5, "X2007")], NOW)
    converted = 1.00079 * 460.5 - 0.142
    assert (rec.old_value, rec.old_scale, rec.new_scale) == (460.0, X2019, X2007)
    assert rec.revised_value == pytest.approx(converted, abs=1e-9)
    (result,) = run_pending(store, CONFIG, "op", NOW)
    assert result.error is None
    latest = list(store.minute_versions("st-a", T0, T0 + timedelta(hours=4), "latest"))
    assert all(m.species["co2"].cal_mean == pytest.approx(380.0 + 40.0 * (converted - 380.0) / 80.0) for m in latest)
    assert store.scale_revisions() == []
