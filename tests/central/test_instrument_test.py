"""`central-receiver instrument-test`: the report of an analyzer's performance test from the minutes
central stored (ingested through the wire), its CSV equal to the analysis, its HTML with the plots."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from typer.testing import CliRunner

from central.cli import app
from central.ingest import Ingestor, Message
from central.instrument_test.report import result_rows, series_from_minutes
from central.store import open_store
from ghgnet.processing.performance_test import infer_phases, performance_test
from ghgnet.wire import encode_batch
from ghgnet.wire.models import MinuteWire, SpeciesStats

T0 = datetime(2026, 3, 1, tzinfo=UTC)
SIGMA = 0.01  # ppm, 1-min means
DRIFT = 0.2  # ppm/day


def _minutes() -> list[MinuteWire]:
    rng = np.random.default_rng(7)
    plan = [("target:T", 240, 430.0, 0.0)]
    for _ in range(4):
        plan += [("cal:A", 20, 380.0, 0.0), ("cal:B", 20, 420.0, 0.0)]
    plan += [("target:T-wet", 60, 430.0, None)]
    out, i = [], 0
    for stream, n, value, h2o in plan:
        for k in range(n):
            t = T0 + timedelta(minutes=i)
            days = i / 1440
            v = value + DRIFT * days + rng.normal(0, SIGMA)
            h = 2.5 - 2.0 * k / n if h2o is None else 0.0
            out.append(MinuteWire(seq=i + 1, time=t, device="g2401", stream=stream,
                                  species={"co2": SpeciesStats(mean=v, std=0.05, n=30, raw_mean=v, cal_mean=v)},
                                  h2o=h, flag="N" if k < 3 else "U", reasons=["flush"] if k < 3 else [],
                                  n_total=30, calibration_id=None))
            i += 1
    return out


@pytest.fixture
def central(tmp_path):
    cfg = tmp_path / "central.toml"
    cfg.write_text('[mqtt]\nhost = "127.0.0.1"\nport = 1883\nclient_id = "t"\n[storage]\npath = "c.sqlite"\n')
    store = open_store("sqlite", path=tmp_path / "c.sqlite")
    recs = _minutes()
    Ingestor(store).handle([Message("ghg/v1/st-a/minute", encode_batch("st-a", "minute", recs[k:k + 200], T0))
                            for k in range(0, len(recs), 200)])
    store.close()
    return cfg, tmp_path


def _invoke(cfg, out, device="g2401"):
    return CliRunner().invoke(app, ["instrument-test", "--config", str(cfg), "--station", "st-a", "--device", device,
                                    "--from", "2026-03-01T00:00:00Z", "--to", "2026-03-02T00:00:00Z",
                                    "--out", str(out)])


def test_report_files_hold_the_analysis_and_its_plots(central):
    cfg, tmp = central
    r = _invoke(cfg, tmp / "rep")
    assert r.exit_code == 0, r.output
    store = open_store("sqlite", path=tmp / "c.sqlite")
    try:
        m = series_from_minutes(store.minutes("st-a", T0, T0 + timedelta(days=1)), "g2401")
    finally:
        store.close()
    expected = result_rows(performance_test("g2401", m, infer_phases(m)))
    got = list(csv.DictReader((tmp / "rep" / "results.csv").open()))
    assert [(g["part"], g["stream"], g["species"], g["metric"], g["unit"]) for g in got] == \
        [(p, s, sp, k, u) for p, s, sp, k, _, u in expected]
    for g, e in zip(got, expected):
        assert (g["value"] == "" and e[4] is None) or float(g["value"]) == e[4]
    by = {(g["part"], g["stream"], g["metric"]): g["value"] for g in got}
    # the simulated noise and drift come back
    # CMR is the SD of the 1-min means, the drift over the run included: sigma^2 + (drift span)^2 / 12
    span = DRIFT * (240 - 10) / 1440  # the run after its first 10 minutes (skipped: settling)
    cmr = float(by[("continuous", "target:T", "cmr_1min")])
    assert cmr == pytest.approx(np.sqrt(SIGMA**2 + span**2 / 12), rel=0.2)
    assert float(by[("continuous", "target:T", "drift_per_day")]) == pytest.approx(DRIFT, abs=0.05)
    assert abs(float(by[("long_term", "cal:A", "drift_per_day")]) - DRIFT) < 0.05
    assert float(by[("water", "target:T-wet", "h2o_max")]) > 2.0
    html = (tmp / "rep" / "report.html").read_text()
    assert html.count("<img") == 3 and html.count("data:image/png;base64,") == 3
    assert "Yver Kwok et al. 2015" in html


def test_a_device_without_minutes_is_a_clear_error(central):
    cfg, tmp = central
    r = _invoke(cfg, tmp / "none", device="li7810")
    assert r.exit_code == 2
    assert "st-a/li7810: no minute of device 'li7810' in that period" in r.output
    assert not (tmp / "none" / "results.csv").exists()
