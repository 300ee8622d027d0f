"""The few-column reads behind /api/targets and /api/calibrations (store.target_biases,
calibration_ends, calibration_fit_rows) give what the full records give (store.targets,
calibrations), on SQLite and on a real PostgreSQL (fixture `store`); and views.targets and
views.calibrations answer from them as from the records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from support.mqtt import T0

from central import views
from central.config import CentralConfig
from central.qc import bias_summary, calibration_checks, target_terms
from ghgnet.timeutil import iso_utc
from ghgnet.wire import CalibrationWire, FitWire, ParsedBatch, StandardWire, TargetWire

NOW = datetime(2026, 3, 5, tzinfo=UTC)


def cal(seq: int, hours: float, offset: float, residuals: list[float]) -> CalibrationWire:
    t = T0 + timedelta(hours=hours)
    return CalibrationWire(
        seq=seq, record_type="calibration", id=f"cal-{seq}", time_start=t, time_end=t + timedelta(minutes=40),
        standards=[StandardWire(cylinder="CAL-A", measured={"co2": 380.1}, assigned={"co2": 380.0})],
        fits={"co2": FitWire(coefficients=[offset, 1.0], residuals=residuals, rmse=None if seq % 2 else 0.02, n=3),
              "ch4": FitWire(coefficients=[1.0, 0.999, 1e-6], residuals=[0.5, -0.4], rmse=0.3, n=3)})


def tgt(seq: int, hours: float, cylinder: str, co2: float | None) -> TargetWire:
    bias = {"ch4": -1.0} if co2 is None else {"co2": co2, "ch4": 0.5}
    return TargetWire(seq=seq, record_type="target", id=f"tgt-{seq}", time=T0 + timedelta(hours=hours),
                      cylinder=cylinder, measured={}, assigned={}, bias=bias, within_goal={})


@pytest.fixture
def history(store):
    records = [cal(1, 0, 0.1, [0.01, -0.02]), cal(2, 24, 0.25, [0.2, 0.0]), cal(3, 48, 0.22, []),
               tgt(4, 1, "TGT-LT", 0.03), tgt(5, 7, "TGT-ST", -0.2), tgt(6, 25, "TGT-LT", None),
               tgt(7, 30, "TGT-ST", 0.04), tgt(8, 49, "TGT-LT", 0.01), tgt(9, 24 * 40, "TGT-LT", 9.0),
               tgt(10, 10, "TGT-ST", 0.1)]
    store.store_batch(ParsedBatch("st-a", "calibration", NOW, records), NOW)
    store.store_batch(ParsedBatch("st-b", "calibration", NOW, [tgt(1, 2, "TGT-LT", 5.0), cal(2, 3, 9.0, [1.0])]),
                      NOW)
    return store


def test_the_few_column_reads_match_the_records(history):
    start, end = T0, T0 + timedelta(days=30)
    biases = history.target_biases("st-a", start, end)
    assert biases == [(r.time, r.cylinder, sp, v.bias) for r in history.targets("st-a", start, end)
                      for sp, v in sorted(r.values.items()) if v.bias is not None]
    assert [b[0] for b in biases] == sorted(b[0] for b in biases) and len(biases) == 11  # seq 9: outside
    cals = history.calibrations("st-a", start, end)
    assert history.calibration_ends("st-a", start, end) == [c.time_end for c in cals]
    assert history.calibration_fit_rows("st-a", start, end) == [
        (c.time_start, c.id, sp, c.fits[sp].coefficients, c.fits[sp].residuals, c.fits[sp].rmse)
        for sp in ("ch4", "co2") for c in cals]
    assert history.calibration_fit_rows("st-a", T0 + timedelta(hours=1), T0 + timedelta(hours=24)) == []


def test_the_answers_are_those_of_the_records(history):
    """views.targets and calibrations against the answer built from store.targets/calibrations
    (as they were built before the few-column reads)."""
    config = CentralConfig.model_validate({"stations": {"st-a": {"latitude": 1, "longitude": 2}}})
    start, end = T0, T0 + timedelta(days=30)
    runs = history.targets("st-a", start, end)
    ends = np.array([c.time_end.timestamp() for c in history.calibrations("st-a", start - timedelta(days=1), end)])
    terms = target_terms(np.array([r.time.timestamp() for r in runs]), [r.cylinder for r in runs], ends)
    assert terms == ["long", "short", "short", "long", "short", "long"]  # within 2 h after a calibration ended
    want = {}
    for r, term in zip(runs, terms):
        for sp, v in r.values.items():
            g = want.setdefault((r.cylinder, sp, term), {"time": [], "bias": [], "s": []})
            g["time"].append(iso_utc(r.time))
            g["bias"].append(v.bias)
            g["s"].append(r.time.timestamp())
    got = views.targets(history, config, "st-a", start, end)["targets"]
    assert [(g["cylinder"], g["species"], g["term"]) for g in got] == sorted(want)
    for g in got:
        w = want[(g["cylinder"], g["species"], g["term"])]
        assert (g["time"], g["bias"]) == (w["time"], w["bias"])
        s = bias_summary(np.array(w["s"]), np.array(w["bias"]), config.qc.goals[g["species"]])
        assert g["summary"]["n"] == s.n and g["summary"]["mean"] == pytest.approx(s.mean)
    cals = history.calibrations("st-a", start, end)
    got = views.calibrations(history, config, "st-a", start, end)["calibrations"]
    assert [c["species"] for c in got] == ["ch4", "co2"]
    for c in got:
        sp = c["species"]
        checks = calibration_checks(np.array([int(k.time_start.timestamp()) for k in cals]),
                                    [k.fits[sp].coefficients for k in cals], [k.fits[sp].residuals for k in cals],
                                    [k.fits[sp].rmse for k in cals], config.qc.drift_reference[sp],
                                    config.qc.goals[sp])
        assert c["time"] == [iso_utc(k.time_start) for k in cals] and c["id"] == ["cal-1", "cal-2", "cal-3"]
        assert c["drift"] == [views._f(k.drift) for k in checks]
        assert c["max_abs_residual"] == [views._f(k.max_abs_residual) for k in checks]
        assert c["rmse"] == [views._f(k.rmse) for k in checks]
    co2 = got[1]
    assert co2["drift"][0] is None and co2["drift"][1] == pytest.approx(0.15) and co2["drift_ok"] == [True, False, True]
    assert co2["max_abs_residual"] == [0.02, 0.2, None] and co2["rmse"][0] == pytest.approx(np.sqrt(0.00025))


def test_targets_by_day_are_the_daily_mean_bias_with_the_summary_of_every_run(history):
    config = CentralConfig.model_validate({"stations": {"st-a": {"latitude": 1, "longitude": 2}}})
    start, end = T0, T0 + timedelta(days=30)
    runs = views.targets(history, config, "st-a", start, end)["targets"]
    days = views.targets(history, config, "st-a", start, end, by_day=True)["targets"]
    assert [(g["cylinder"], g["species"], g["term"]) for g in days] == [
        (g["cylinder"], g["species"], g["term"]) for g in runs]
    for r, d in zip(runs, days):
        assert d["summary"] == r["summary"]  # of every run, not of the daily means
        assert sum(d["n"]) == len(r["time"]) and d["time"] == sorted(set(d["time"]))
        for day, mean, n in zip(d["time"], d["bias"], d["n"]):
            assert day.endswith("T00:00:00.000Z")
            same = [b for t, b in zip(r["time"], r["bias"]) if t[:10] == day[:10]]
            assert len(same) == n and mean == pytest.approx(sum(same) / n)
    # the short-term target's co2: two runs on day 0, one on day 1
    st = {g["species"]: g for g in days if g["cylinder"] == "TGT-ST"}
    assert st["co2"]["bias"] == pytest.approx([-0.05, 0.04]) and st["co2"]["n"] == [2, 1]
    assert st["co2"]["time"] == [iso_utc(T0.replace(hour=0)), iso_utc(T0.replace(hour=0) + timedelta(days=1))]
