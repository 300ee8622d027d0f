"""A reprocessed minute carries u (central/reprocess/calibrations.py): the fits' covariance
interpolated linearly in time between the bracketing calibrations, evaluated at the minute's raw
mean, with its repeatability, on SQLite and PostgreSQL, against a value worked by hand."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from central.config import CentralConfig
from central.reprocess import RevisedValue, reprocess_period
from ghgnet.wire import CalibrationWire, FitWire, MinuteWire, ParsedBatch, SpeciesStats, StandardWire

T0 = datetime(2026, 3, 1, tzinfo=UTC)
RECEIVED = datetime(2026, 3, 1, 6, tzinfo=UTC)
NOW = datetime(2026, 3, 2, tzinfo=UTC)
CONFIG = CentralConfig.model_validate({"aggregate": {"min_minutes_per_hour": 3},
                                       "stations": {"st-a": {"instrument_id": "G2401-1"}}})
DEVICE = "pic-1"


def calibration(seq: int, start: datetime, low: float, span: float) -> CalibrationWire:
    slope = 80.0 / (span - low)
    return CalibrationWire(
        seq=seq, record_type="calibration", id=f"cal-{DEVICE}-{start:%Y%m%dT%H%M}", time_start=start,
        time_end=start + timedelta(minutes=20),
        standards=[StandardWire(cylinder="CAL-LOW", measured={"co2": low}, assigned={"co2": 380.0},
                                scale={"co2": "WMO-CO2-X2019"}),
                   StandardWire(cylinder="CAL-SPAN", measured={"co2": span}, assigned={"co2": 460.0},
                                scale={"co2": "WMO-CO2-X2019"})],
        fits={"co2": FitWire(coefficients=[380.0 - slope * low, slope], residuals=[0.0, 0.0], r2=1.0, rmse=0.0,
                             n=2)})


def test_a_reprocessed_minute_carries_the_hand_computed_u(store):
    """Calibrations at 00:00 (measured 380/460) and 04:00 (measured 370/460), middles 00:10 and
    04:10; both cylinders given u = 0.03 ppm. Two standards, no x error: the fit goes through both
    points and the variance of the calibrated value at raw x is ((x2-x)/dx)^2 u1^2 + ((x-x1)/dx)^2 u2^2:
    at x = 420, 0.5 * 0.0009 = 0.00045 for the first, (16 + 25) / 81 * 0.0009 for the second. The
    minute at 01:00 is w = 50/240 of the way; repeatability 0.1/sqrt(55); no h2o (no water part)."""
    a, b = calibration(1, T0, 380.0, 460.0), calibration(2, T0 + timedelta(hours=4), 370.0, 460.0)
    store.store_batch(ParsedBatch("st-a", "calibration", RECEIVED, [a, b]), RECEIVED)
    t = T0 + timedelta(hours=1)
    rec = MinuteWire(seq=10, time=t, device=DEVICE, stream="inlet:100m",
                     species={"co2": SpeciesStats(mean=420.0, std=0.1, n=55, raw_mean=420.0, cal_mean=420.0)},
                     flag="U", reasons=[], n_total=60, calibration_id=a.id)
    store.store_batch(ParsedBatch("st-a", "minute", RECEIVED, [rec]), RECEIVED)
    revised = [RevisedValue("CAL-LOW", "co2", 380.0, "WMO-CO2-X2019", 0.03),
               RevisedValue("CAL-SPAN", "co2", 460.0, "WMO-CO2-X2019", 0.03)]
    s = reprocess_period(store, CONFIG, "st-a", T0, T0 + timedelta(hours=3), revised, "u", "op", NOW)
    assert s.minutes == 1
    w = 50 / 240
    var_cal = (1 - w) * 0.5 * 0.0009 + w * 41 / 81 * 0.0009
    hand = math.sqrt(var_cal + 0.1**2 / 55)
    latest = list(store.minute_versions("st-a", T0, T0 + timedelta(hours=3), "latest"))
    assert len(latest) == 1 and latest[0].run_id == s.run_id
    assert math.isclose(latest[0].species["co2"].u, hand, rel_tol=1e-6)


def test_the_reprocessed_hour_carries_the_u_of_its_minutes(store):
    """Ten minutes 01:00-01:09 as above: each minute's calibration variance by hand (its own w);
    the hour's u = sqrt(mean of the calibration variances + repeatability^2 / N) (systematic part
    by its root mean square, the random part as a standard error of the mean:
    ghgnet.processing.uncertainty.hourly_u)."""
    a, b = calibration(1, T0, 380.0, 460.0), calibration(2, T0 + timedelta(hours=4), 370.0, 460.0)
    store.store_batch(ParsedBatch("st-a", "calibration", RECEIVED, [a, b]), RECEIVED)
    recs = [MinuteWire(seq=10 + i, time=T0 + timedelta(hours=1, minutes=i), device=DEVICE, stream="inlet:100m",
                       species={"co2": SpeciesStats(mean=420.0, std=0.1, n=55, raw_mean=420.0, cal_mean=420.0)},
                       flag="U", reasons=[], n_total=60, calibration_id=a.id) for i in range(10)]
    store.store_batch(ParsedBatch("st-a", "minute", RECEIVED, recs), RECEIVED)
    revised = [RevisedValue("CAL-LOW", "co2", 380.0, "WMO-CO2-X2019", 0.03),
               RevisedValue("CAL-SPAN", "co2", 460.0, "WMO-CO2-X2019", 0.03)]
    s = reprocess_period(store, CONFIG, "st-a", T0, T0 + timedelta(hours=3), revised, "u", "op", NOW)
    assert (s.minutes, s.hours) == (10, 1)
    var_cal = [(1 - w) * 0.5 * 0.0009 + w * 41 / 81 * 0.0009 for w in ((50 + i) / 240 for i in range(10))]
    hand = math.sqrt(sum(var_cal) / 10 + 0.1**2 / 55 / 10)
    (hour,) = [r for r in store.hourly_versions("st-a", T0, T0 + timedelta(hours=3), "latest")
               if r.species == "co2" and r.run_id == s.run_id]
    assert math.isclose(hour.u, hand, rel_tol=1e-6)
