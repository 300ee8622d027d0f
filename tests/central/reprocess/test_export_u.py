"""The exports carry each value's uncertainty: the minute CSV `<sp>_u` (the station's propagated u),
the ICOS-like hourly CSV `Uncertainty` and the ObsPack netCDF `value_u` (the hour's u, from the
minutes' as central/aggregation/hourly_stats.py combines them), on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import math
from datetime import timedelta

import pytest
from test_reprocess import CONFIG, DEVICE, RECEIVED, T0, calibration  # tests/central/reprocess/test_reprocess.py

from central.aggregation.worker import aggregate_all
from central.export import hourly_rows_for_export, write_icos_csv, write_minute_csv, write_obspack_nc
from ghgnet.wire import MinuteWire, ParsedBatch, SpeciesStats

U = 0.04


def fill(store, u_of=lambda i: U) -> None:
    cal = calibration(1, T0, 380.0, 460.0)
    store.store_batch(ParsedBatch("st-a", "calibration", RECEIVED, [cal]), RECEIVED)
    recs = [MinuteWire(seq=10 + i, time=T0 + timedelta(hours=1, minutes=i), device=DEVICE, stream="inlet:100m",
                       species={"co2": SpeciesStats(mean=420.0 + 0.01 * i, std=0.1, n=55, raw_mean=420.0 + 0.01 * i,
                                                    cal_mean=420.0 + 0.01 * i, u=u_of(i))},
                       flag="U", reasons=[], n_total=60, calibration_id=cal.id) for i in range(120)]
    store.store_batch(ParsedBatch("st-a", "minute", RECEIVED, recs), RECEIVED)
    aggregate_all(store, CONFIG, lambda: RECEIVED)


def test_minute_and_hourly_exports_carry_u(store, tmp_path):
    fill(store, lambda i: None if i == 70 else U)  # one minute of the second hour without u
    out = io.StringIO()
    assert write_minute_csv(store, "st-a", T0, T0 + timedelta(hours=6), out) == 120
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [float(r["co2_u"]) for r in rows[:3]] == [U] * 3 and rows[70]["co2_u"] == ""
    assert list(rows[0]).index("co2_u") == list(rows[0]).index("co2_cal_mean") + 1
    hourly = hourly_rows_for_export(store, "st-a", "co2", T0, T0 + timedelta(hours=6), "inlet:100m")
    assert len(hourly) == 2
    # the hour's u as the aggregation combines the minutes' (its own tests check the formula); a
    # minute without u leaves its hour's unknown, never understated
    assert hourly[0].u is not None and 0 < hourly[0].u <= U and hourly[1].u is None
    icos = io.StringIO()
    write_icos_csv(hourly, CONFIG, "st-a", "co2", icos)
    table = list(csv.DictReader((line for line in icos.getvalue().splitlines() if not line.startswith("#")),
                                delimiter=";"))
    assert float(table[0]["Uncertainty"]) == pytest.approx(hourly[0].u, abs=1e-4)
    assert table[1]["Uncertainty"] == "-999.99"
    assert list(table[0])[-1] == "InstrumentSerial"
    xr = pytest.importorskip("xarray")
    path = tmp_path / "co2.nc"
    write_obspack_nc(hourly, CONFIG, "st-a", "co2", path)
    with xr.open_dataset(path) as ds:
        got = ds["value_u"].values
        assert got[0] == pytest.approx(hourly[0].u * 1e-6) and math.isnan(got[1])
