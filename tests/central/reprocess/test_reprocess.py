"""Reprocessing at central and versioned data levels (central/reprocess/, central/store/levels.py),
on SQLite and PostgreSQL, against values computed by hand: a span cylinder revised by +0.5 ppm
moves the minutes and hours by the amount the two-point fit says; exports read the latest version
by default and say so, the near-real-time one stays readable; a rerun with nothing changed makes no
new version; a station's re-sent minute is a version, not a second minute."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from central.aggregation.worker import aggregate_all
from central.config import CentralConfig
from central.export import hourly_rows_for_export, write_icos_csv, write_minute_csv
from central.reprocess import RevisedValue, reprocess_period
from ghgnet.wire import CalibrationWire, FitWire, MinuteWire, ParsedBatch, SpeciesStats, StandardWire

T0 = datetime(2026, 3, 1, tzinfo=UTC)
RECEIVED = datetime(2026, 3, 1, 6, tzinfo=UTC)
NOW = datetime(2026, 3, 2, tzinfo=UTC)
CONFIG = CentralConfig.model_validate({"aggregate": {"min_minutes_per_hour": 3},
                                       "stations": {"st-a": {"instrument_id": "G2401-1"}}})
DEVICE = "pic-1"


def calibration(seq: int, start: datetime, low: float, span: float) -> CalibrationWire:
    """A two-standard calibration of CAL-LOW (assigned 380) and CAL-SPAN (assigned 460), measured
    at `low` and `span`, with the station's fit through them."""
    slope = (460.0 - 380.0) / (span - low)
    return CalibrationWire(
        seq=seq, record_type="calibration", id=f"cal-{DEVICE}-{start:%Y%m%dT%H%M}", time_start=start,
        time_end=start + timedelta(minutes=20),
        standards=[StandardWire(cylinder="CAL-LOW", measured={"co2": low}, assigned={"co2": 380.0},
                                scale={"co2": "WMO-CO2-X2019"}),
                   StandardWire(cylinder="CAL-SPAN", measured={"co2": span}, assigned={"co2": 460.0},
                                scale={"co2": "WMO-CO2-X2019"})],
        fits={"co2": FitWire(coefficients=[380.0 - slope * low, slope], residuals=[0.0, 0.0], r2=1.0, rmse=0.0,
                             n=2)})


def minute(seq: int, t: datetime, raw: float, cal: float, cal_id: str, stream: str = "inlet:100m") -> MinuteWire:
    return MinuteWire(seq=seq, time=t, device=DEVICE, stream=stream,
                      species={"co2": SpeciesStats(mean=cal, std=0.1, n=55, raw_mean=raw, cal_mean=cal)},
                      flag="U", reasons=[], n_total=60, calibration_id=cal_id)


def fill(store, later_low: float = 380.0, later_span: float = 460.0) -> None:
    """Calibrations at 00:00 and 04:00 (middles 00:10 and 04:10); minutes 01:00-02:59 of raw 420,
    calibrated near real time with the 00:00 calibration (an identity fit: 420)."""
    a, b = calibration(1, T0, 380.0, 460.0), calibration(2, T0 + timedelta(hours=4), later_low, later_span)
    store.store_batch(ParsedBatch("st-a", "calibration", RECEIVED, [a, b]), RECEIVED)
    recs = [minute(10 + i, T0 + timedelta(hours=1, minutes=i), 420.0, 420.0, a.id) for i in range(120)]
    store.store_batch(ParsedBatch("st-a", "minute", RECEIVED, recs), RECEIVED)
    aggregate_all(store, CONFIG, lambda: RECEIVED)


SPAN_PLUS_HALF = [RevisedValue("CAL-SPAN", "co2", 460.5, "WMO-CO2-X2019", 0.03)]


def hourly(store, version="latest"):
    return {r.hour: r for r in hourly_rows_for_export(store, "st-a", "co2", T0, T0 + timedelta(hours=6),
                                                      "inlet:100m", version)}


def test_a_span_revision_moves_minutes_and_hours_by_the_hand_computed_amount(store):
    fill(store)
    before = hourly(store)
    s = reprocess_period(store, CONFIG, "st-a", T0, T0 + timedelta(hours=6), SPAN_PLUS_HALF, "CAL-SPAN revised",
                         "tester", NOW)
    # refitted: slope (460.5 - 380) / (460 - 380) = 1.00625 through (380, 380): at 420,
    # 380 + 40 * 1.00625 = 420.25, a shift of 0.5 * (420 - 380) / (460 - 380) = +0.25 ppm; both
    # calibrations are alike, so interpolating between them changes nothing
    assert (s.calibrations, s.minutes, s.unchanged, s.hours) == (2, 120, 0, 2)
    assert s.minute_shift["co2"] == pytest.approx(0.25, abs=1e-9)
    assert s.hourly_shift["co2"] == pytest.approx(0.25, abs=1e-9)
    after = hourly(store)
    for h in (T0 + timedelta(hours=1), T0 + timedelta(hours=2)):
        assert before[h].mean == pytest.approx(420.0, abs=1e-9) and before[h].version == 1
        assert after[h].mean == pytest.approx(420.25, abs=1e-9)
        assert after[h].version == 2 and after[h].run_id == s.run_id
        assert after[h].processing.startswith("central-reprocess/1 ")
        assert after[h].calibration_ids == (f"cal-{DEVICE}-20260301T0000", f"cal-{DEVICE}-20260301T0400")
        # the near-real-time hour is kept as it was
        assert hourly(store, "nrt")[h].mean == pytest.approx(420.0, abs=1e-9)
    # what the whole system reads (the web, alarms) is the latest version too
    assert store.hourly("st-a", T0 + timedelta(hours=1), T0 + timedelta(hours=2))[0].mean == pytest.approx(420.25)
    run = store.reprocess_runs("st-a")[-1]
    assert (run.id, run.reason, run.operator, run.minutes, run.hours) == (s.run_id, "CAL-SPAN revised", "tester", 120, 2)
    assert run.cylinders[0]["value"] == 460.5


def test_coefficients_are_interpolated_in_time_between_the_refitted_calibrations(store):
    fill(store, later_low=381.0, later_span=461.0)  # the analyzer drifted +1 ppm by 04:00
    reprocess_period(store, CONFIG, "st-a", T0, T0 + timedelta(hours=6), SPAN_PLUS_HALF, "drift", "tester", NOW)
    # f_A(420) = 420.25 (above); f_B(420) = 380 + (420 - 381) * 80.5 / 80 = 419.24375; a minute at t
    # takes (1 - w) f_A + w f_B with w = (t - 00:10) / 4 h; the 02:00 hour's mean w is
    # (02:29:30 - 00:10) / 240 min = 139.5 / 240
    w = 139.5 / 240
    expected = (1 - w) * 420.25 + w * 419.24375
    assert hourly(store)[T0 + timedelta(hours=2)].mean == pytest.approx(expected, abs=1e-9)
    m = [v for v in store.minute_versions("st-a", T0 + timedelta(hours=2), T0 + timedelta(hours=2, minutes=1))]
    assert m[0].calibration_id == f"cal-{DEVICE}-20260301T0000~cal-{DEVICE}-20260301T0400"
    assert m[0].species["co2"].cal_mean == pytest.approx((1 - 110 / 240) * 420.25 + 110 / 240 * 419.24375, abs=1e-9)


def test_exports_read_the_latest_version_and_say_so_and_nrt_stays_readable(store):
    fill(store)
    reprocess_period(store, CONFIG, "st-a", T0, T0 + timedelta(hours=6), SPAN_PLUS_HALF, "CAL-SPAN revised",
                     "tester", NOW)
    span = (T0 + timedelta(hours=1), T0 + timedelta(hours=1, minutes=2))
    latest, nrt, every = io.StringIO(), io.StringIO(), io.StringIO()
    assert write_minute_csv(store, "st-a", *span, latest) == 2
    assert write_minute_csv(store, "st-a", *span, nrt, "nrt") == 2
    assert write_minute_csv(store, "st-a", *span, every, "all") == 4
    rows = list(csv.DictReader(io.StringIO(latest.getvalue())))
    assert [(r["version"], r["co2_cal_mean"], r["reprocess_run"] != "") for r in rows] == [("2", "420.25", True)] * 2
    assert rows[0]["calibration_id"] == f"cal-{DEVICE}-20260301T0000~cal-{DEVICE}-20260301T0400"
    assert rows[0]["processing"].startswith("central-reprocess/1 ")
    rows = list(csv.DictReader(io.StringIO(nrt.getvalue())))
    assert [(r["version"], r["co2_cal_mean"], r["processing"], r["calibration_id"]) for r in rows] == [
        ("1", "420.0", "station", f"cal-{DEVICE}-20260301T0000")] * 2
    assert [r["version"] for r in csv.DictReader(io.StringIO(every.getvalue()))] == ["1", "2", "1", "2"]
    for version, value in (("latest", "420.250"), ("nrt", "420.000")):
        out = io.StringIO()
        write_icos_csv(hourly_rows_for_export(store, "st-a", "co2", T0, T0 + timedelta(hours=6), None, version),
                       CONFIG, "st-a", "co2", out, version=version)
        text = out.getvalue()
        assert f"# version: {version} " in text
        body = list(csv.DictReader(io.StringIO("\n".join(x for x in text.splitlines() if not x.startswith("#"))),
                                   delimiter=";"))
        assert [r["co2"] for r in body] == [value, value]
        assert {r["Version"] for r in body} == ({"2"} if version == "latest" else {"1"})
        assert body[0]["CalibrationId"] == (f"cal-{DEVICE}-20260301T0000|cal-{DEVICE}-20260301T0400"
                                            if version == "latest" else f"cal-{DEVICE}-20260301T0000")


def test_a_rerun_with_nothing_changed_makes_no_new_version(store):
    fill(store)
    reprocess_period(store, CONFIG, "st-a", T0, T0 + timedelta(hours=6), SPAN_PLUS_HALF, "first", "tester", NOW)
    again = reprocess_period(store, CONFIG, "st-a", T0, T0 + timedelta(hours=6), SPAN_PLUS_HALF, "again", "tester",
                             NOW + timedelta(hours=1))
    assert (again.minutes, again.unchanged, again.hours, again.minute_shift) == (0, 120, 0, {})
    assert {r.version for r in hourly(store).values()} == {2}
    assert len(store.reprocess_runs("st-a")) == 2  # the rerun is in the audit trail all the same
    # a further revision makes version 3, and version 2 stays readable
    third = reprocess_period(store, CONFIG, "st-a", T0, T0 + timedelta(hours=6),
                             [RevisedValue("CAL-SPAN", "co2", 461.0)], "again revised", "tester", NOW)
    assert third.minute_shift["co2"] == pytest.approx(0.25, abs=1e-9)  # 420.5 - 420.25
    all_hours = store.hourly_versions("st-a", T0, T0 + timedelta(hours=6), "all", "inlet:100m", "co2")
    assert [(r.version, round(r.mean, 6)) for r in all_hours if r.hour == T0 + timedelta(hours=1)] == [
        (1, 420.0), (2, 420.25), (3, 420.5)]


def test_a_minute_the_station_resent_is_a_version_not_a_second_minute(store):
    fill(store)
    t = T0 + timedelta(hours=1, minutes=5)
    resent = minute(500, t, 420.0, 420.1, f"cal-{DEVICE}-20260301T0000~cal-{DEVICE}-20260301T0400")
    later = RECEIVED + timedelta(hours=1)
    store.store_batch(ParsedBatch("st-a", "minute", later, [resent]), later)
    out = io.StringIO()
    assert write_minute_csv(store, "st-a", t, t + timedelta(minutes=1), out) == 1
    row = next(csv.DictReader(io.StringIO(out.getvalue())))
    assert (row["seq"], row["version"], row["co2_cal_mean"], row["processing"]) == ("500", "2", "420.1", "station")
    nrt = list(store.minute_versions("st-a", t, t + timedelta(minutes=1), "nrt"))
    assert [(m.seq, m.version) for m in nrt] == [(15, 1)]
    aggregate_all(store, CONFIG, lambda: later)
    h = hourly(store)[T0 + timedelta(hours=1)]
    assert h.version == 2 and h.mean_all == pytest.approx((59 * 420.0 + 420.1) / 60)  # mean: a spike left out
    assert hourly(store, "nrt")[T0 + timedelta(hours=1)].mean == pytest.approx(420.0)
    # a central reprocess afterwards comes after the station's copy, and a later station copy after it
    s = reprocess_period(store, CONFIG, "st-a", T0, T0 + timedelta(hours=6), SPAN_PLUS_HALF, "span", "tester", NOW)
    versions = list(store.minute_versions("st-a", t, t + timedelta(minutes=1), "all"))
    assert [(m.version, m.run_id) for m in versions] == [(1, None), (2, None), (3, s.run_id)]
    again = minute(600, t, 420.0, 419.9, "cal-x")
    store.store_batch(ParsedBatch("st-a", "minute", NOW, [again]), NOW)
    versions = list(store.minute_versions("st-a", t, t + timedelta(minutes=1), "all"))
    assert [(m.version, m.seq, m.run_id, m.latest) for m in versions][-1] == (4, 600, None, True)


def test_a_store_from_before_data_levels_reads_its_hours_as_version_1(store_location):
    from support.central import open_at_schema

    from central.store import open_store
    from central.store.sql import migrations
    from central.store.sqlite import TYPES

    # the schema before data levels (migration_levels is migration 12); the calibrations are stored
    # after the upgrade (this code writes a fit's covariance, a column of schema 14)
    before_levels = 11
    assert len(migrations(TYPES)) > before_levels + 1
    old = open_at_schema(store_location, before_levels)
    fill_records = [calibration(1, T0, 380.0, 460.0), calibration(2, T0 + timedelta(hours=4), 380.0, 460.0)]
    try:
        recs = [minute(10 + i, T0 + timedelta(hours=1, minutes=i), 420.0, 420.0, fill_records[0].id)
                for i in range(120)]
        old.store_batch(ParsedBatch("st-a", "minute", RECEIVED, recs), RECEIVED)
        # an hour the aggregator of that schema wrote (only ingest ran: it knows nothing of levels)
        old._execute(old._sql(
            "INSERT INTO hourly (station, stream, species, hour, n, mean, std, repeatability, n_all, mean_all, "
            "std_all, repeatability_all, n_spikes, flag, computed_at) VALUES (?, ?, ?, ?, 60, 420.0, 0.0, 0.01, "
            "60, 420.0, 0.0, 0.01, 0, 'U', ?)"),
            ("st-a", "inlet:100m", "co2", old._t(T0 + timedelta(hours=1)), old._t(RECEIVED)))
        assert old.schema_version() == before_levels
    finally:
        old.close()
    store = open_store(**store_location)
    try:
        store.store_batch(ParsedBatch("st-a", "calibration", RECEIVED, fill_records), RECEIVED)
        rows = hourly(store)
        assert [(r.version, r.processing, r.mean) for r in rows.values()] == [(1, "station", 420.0)]
        assert hourly(store, "nrt").keys() == rows.keys()
        aggregate_all(store, CONFIG, lambda: RECEIVED)
        s = reprocess_period(store, CONFIG, "st-a", T0, T0 + timedelta(hours=6), SPAN_PLUS_HALF, "span", "t", NOW)
        assert s.hourly_shift["co2"] == pytest.approx(0.25, abs=1e-9)
    finally:
        store.close()


def test_a_revised_value_no_calibration_used_and_an_empty_period_are_refused(store):
    fill(store)
    with pytest.raises(ValueError, match="revised value\\(s\\) for CAL-SPNA co2 match no standard .*CAL-LOW, CAL-SPAN"):
        reprocess_period(store, CONFIG, "st-a", T0, T0 + timedelta(hours=6),
                         [RevisedValue("CAL-SPNA", "co2", 460.5)], "typo", "tester", NOW)
    with pytest.raises(ValueError, match="station 'st-b' has no minutes"):
        reprocess_period(store, CONFIG, "st-b", T0, T0 + timedelta(hours=6), SPAN_PLUS_HALF, "x", "tester", NOW)
    assert store.reprocess_runs() == []  # nothing written


def test_the_obspack_export_names_its_version_and_calibrations(store, tmp_path):
    import xarray as xr

    from central.export import write_obspack_nc

    fill(store)
    reprocess_period(store, CONFIG, "st-a", T0, T0 + timedelta(hours=6), SPAN_PLUS_HALF, "span", "tester", NOW)
    for version, value in (("latest", 420.25), ("nrt", 420.0)):
        path = tmp_path / f"{version}.nc"
        rows = hourly_rows_for_export(store, "st-a", "co2", T0, T0 + timedelta(hours=6), None, version)
        assert write_obspack_nc(rows, CONFIG, "st-a", "co2", path, version=version) == 2
        with xr.open_dataset(path) as ds:
            assert ds.attrs["data_version"] == version
            assert list(ds["value"].values * 1e6) == pytest.approx([value, value])
            assert list(ds["version"].values) == ([2, 2] if version == "latest" else [1, 1])
            assert ds["calibration_id"].values[0].startswith(f"cal-{DEVICE}-20260301T0000")
