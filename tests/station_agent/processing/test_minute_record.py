"""Minute records: per-sample exclusion, per-minute judgement, reasons and flags, calibration."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from ghgnet.processing.calibration import fit_species
from ghgnet.processing.minute_record import MinuteLimits, apply_calibration, check_quantities, minute_record
from ghgnet.processing.water import WaterCoefficients
from ghgnet.records import FLAG_INVALID, FLAG_VALID, REASONS
from station_agent.config import ProcessingConfig

T0 = 1_790_000_040.0  # a minute boundary (divisible by 60)
START = datetime.fromtimestamp(T0, UTC)
N = 30  # one sample every 2 s

LIMITS = MinuteLimits(
    min_samples=10,
    max_std={"co2": 0.5, "ch4": 5.0, "co": 15.0},
    ranges={"co2": (300.0, 1500.0), "ch4": (1500.0, 20000.0), "h2o": (0.0, 8.0)},
    cavity_pressure_torr=(139.5, 140.5),
    cavity_temp_c=(44.8, 45.2),
    water={"co": WaterCoefficients(a=-0.01, b=0.0)},
)


def samples(n: int = N, **columns: object) -> dict[str, np.ndarray]:
    """Columns of n samples; a scalar is repeated, a sequence is used as is."""
    out = {}
    for name, v in columns.items():
        arr = np.asarray(v, dtype=float)
        out[name] = np.full(n, float(arr)) if arr.ndim == 0 else arr
    return out


def close(values, *, n: int = N, ok=None, flushing=None, limits=LIMITS, **kw):
    times = T0 + 2.0 * np.arange(n)
    return minute_record(
        T0,
        "pic1",
        "inlet:top",
        times,
        values,
        np.ones(n, bool) if ok is None else np.asarray(ok),
        np.zeros(n, bool) if flushing is None else np.asarray(flushing),
        limits,
        **kw,
    )


def alternating(a: float, b: float, n: int = N) -> np.ndarray:
    return np.where(np.arange(n) % 2 == 0, a, b)


def test_clean_minute_mean_std_n_and_valid_flag():
    # 15 x 400.0 and 15 x 400.2: mean 400.1; each deviation 0.1, sum of squares 30 * 0.01 = 0.3,
    # sample std sqrt(0.3 / 29) = 0.101709...
    rec = close(samples(co2_dry=alternating(400.0, 400.2), ch4_dry=1950.0, h2o=1.2, cavity_pressure=140.0,
                        cavity_temp=45.0))
    co2 = rec.species["co2"]
    assert co2.n == 30
    assert co2.raw_mean == pytest.approx(400.1, abs=1e-9)
    assert co2.mean == co2.raw_mean and co2.cal_mean is None
    assert co2.std == pytest.approx(math.sqrt(0.3 / 29), rel=1e-9)
    assert rec.species["ch4"].mean == pytest.approx(1950.0) and rec.species["ch4"].std == 0.0
    assert rec.flag == FLAG_VALID and rec.reasons == ()
    assert rec.time == START and rec.device == "pic1" and rec.stream == "inlet:top"
    assert rec.n_total == 30 and rec.h2o == pytest.approx(1.2)
    assert rec.diagnostics["cavity_pressure"] == pytest.approx(140.0)
    assert rec.diagnostics["cavity_temp"] == pytest.approx(45.0)


def test_empty_minute_is_no_data():
    rec = close(samples(0, co2_dry=[], ch4_dry=[]), n=0)
    assert rec.flag == FLAG_INVALID and rec.reasons == ("no_data",)
    assert rec.n_total == 0
    assert rec.species["co2"].n == 0 and rec.species["co2"].mean is None


def test_minute_without_any_species_is_no_data():
    rec = close(samples(h2o=1.0, cavity_pressure=140.0))
    assert rec.flag == FLAG_INVALID and rec.reasons == ("no_data",) and rec.species == {}


def test_flushing_samples_are_excluded_but_minute_stays_valid():
    # first 10 samples still carry the previous stream (380), the 20 others 410
    co2 = np.r_[np.full(10, 380.0), np.full(20, 410.0)]
    rec = close(samples(co2_dry=co2), flushing=np.arange(N) < 10)
    assert rec.species["co2"].n == 20 and rec.species["co2"].mean == pytest.approx(410.0)
    assert rec.flag == FLAG_VALID and rec.reasons == ("flush",)


def test_all_flushing_gives_too_few_samples_and_invalid():
    rec = close(samples(co2_dry=410.0), flushing=np.ones(N, bool))
    assert rec.species["co2"].n == 0 and rec.species["co2"].mean is None and rec.species["co2"].std is None
    assert rec.flag == FLAG_INVALID and rec.reasons == ("flush", "too_few_samples")
    assert rec.n_total == 30


def test_exactly_min_samples_is_enough_one_less_is_not():
    # 10 valid samples (the minimum) -> U; 9 -> N
    ok10 = np.arange(N) < 10
    rec = close(samples(co2_dry=410.0), ok=ok10)
    assert rec.species["co2"].n == 10 and rec.flag == FLAG_VALID and rec.reasons == ("status",)
    rec = close(samples(co2_dry=410.0), ok=np.arange(N) < 9)
    assert rec.species["co2"].n == 9 and rec.flag == FLAG_INVALID
    assert rec.reasons == ("status", "too_few_samples")


def test_nan_column_makes_its_species_too_few_and_leaves_the_other_intact():
    rec = close(samples(co2_dry=410.0, ch4_dry=np.nan))
    assert rec.species["co2"].n == 30 and rec.species["co2"].mean == pytest.approx(410.0)
    assert rec.species["ch4"].n == 0 and rec.species["ch4"].mean is None
    assert rec.flag == FLAG_INVALID and rec.reasons == ("too_few_samples",)


def test_scattered_nan_values_only_lower_n():
    co2 = np.full(N, 410.0)
    co2[[3, 7]] = np.nan
    rec = close(samples(co2_dry=co2))
    assert rec.species["co2"].n == 28 and rec.flag == FLAG_VALID and rec.reasons == ()


def test_cavity_pressure_and_temperature_windows_exclude_whole_samples():
    p = np.full(N, 140.0)
    p[[0, 1]] = 141.0  # outside 139.5-140.5
    p[2] = np.nan  # unknown: excludes nothing
    p[3] = 140.5  # the bound itself is inside
    temp = np.full(N, 45.0)
    temp[4] = 44.0
    co2 = np.full(N, 410.0)
    co2[[0, 1, 4]] = 999.0  # the values of the excluded samples must not reach the mean
    rec = close(samples(co2_dry=co2, ch4_dry=1950.0, cavity_pressure=p, cavity_temp=temp))
    assert rec.species["co2"].n == 27 and rec.species["ch4"].n == 27
    assert rec.species["co2"].mean == pytest.approx(410.0)
    assert rec.reasons == ("cavity_pressure", "cavity_temp") and rec.flag == FLAG_VALID
    # diagnostics average every sample with a value: (2*141 + 26*140 + 140.5) / 29
    assert rec.diagnostics["cavity_pressure"] == pytest.approx((2 * 141 + 26 * 140 + 140.5) / 29)


def test_species_out_of_range_excludes_that_species_only():
    co2 = np.full(N, 410.0)
    co2[:5] = 2000.0  # above 1500
    rec = close(samples(co2_dry=co2, ch4_dry=1950.0))
    assert rec.species["co2"].n == 25 and rec.species["co2"].mean == pytest.approx(410.0)
    assert rec.species["ch4"].n == 30
    assert rec.reasons == ("out_of_range",) and rec.flag == FLAG_VALID


def test_h2o_out_of_range_excludes_whole_samples():
    h2o = np.full(N, 1.0)
    h2o[:3] = 9.0  # above 8 %
    rec = close(samples(co2_dry=410.0, ch4_dry=1950.0, h2o=h2o))
    assert rec.species["co2"].n == 27 and rec.species["ch4"].n == 27
    assert rec.h2o == pytest.approx(1.0)  # mean over the samples not excluded
    assert rec.reasons == ("out_of_range",)


def test_std_too_high_makes_the_minute_invalid():
    # 400 / 402 alternating: sample std sqrt(30 * 1 / 29) = 1.0171 > 0.5
    rec = close(samples(co2_dry=alternating(400.0, 402.0), ch4_dry=1950.0))
    assert rec.species["co2"].std == pytest.approx(math.sqrt(30 / 29))
    assert rec.species["co2"].mean == pytest.approx(401.0)  # the numbers are kept, the flag says N
    assert rec.flag == FLAG_INVALID and rec.reasons == ("std_too_high",)


def test_every_exclusion_is_recorded_in_reasons_order():
    flush = np.arange(N) < 2
    ok = np.ones(N, bool)
    ok[5] = False
    p = np.full(N, 140.0)
    p[6] = 150.0
    co2 = np.full(N, 410.0)
    co2[7] = 100.0
    rec = close(samples(co2_dry=co2, cavity_pressure=p), ok=ok, flushing=flush)
    assert rec.reasons == ("flush", "status", "cavity_pressure", "out_of_range")
    assert set(rec.reasons) <= set(REASONS)
    assert rec.species["co2"].n == 25 and rec.flag == FLAG_VALID


def test_wet_only_species_is_water_corrected():
    # co wet 100 ppb at H2O 2 % with a = -0.01: 100 / 0.98 = 102.0408...
    rec = close(samples(co=100.0, h2o=2.0))
    assert rec.species["co"].mean == pytest.approx(100.0 / 0.98)
    assert rec.species["co"].n == 30


def test_analyzer_dry_value_wins_and_a_missing_one_is_filled_from_wet():
    co_dry = np.full(N, 103.0)
    co_dry[0] = np.nan  # this sample's dry value comes from the wet one: 100 / 0.98
    rec = close(samples(co=100.0, co_dry=co_dry, h2o=2.0))
    assert rec.species["co"].mean == pytest.approx((29 * 103.0 + 100.0 / 0.98) / 30)


def test_wet_only_species_without_coefficients_is_an_error_naming_it():
    with pytest.raises(ValueError, match="co2: the analyzer gives no co2_dry"):
        close(samples(co2=410.0, h2o=1.0))
    with pytest.raises(ValueError, match="co2"):
        check_quantities(["co2", "h2o"], LIMITS)
    check_quantities(["co2", "co2_dry", "co", "h2o"], LIMITS)  # all fine: no exception


def test_wet_only_species_in_a_minute_without_h2o_is_missing_not_an_error():
    rec = close(samples(co=100.0, co2_dry=410.0))
    assert rec.species["co"].n == 0 and rec.species["co"].mean is None
    assert rec.species["co2"].n == 30
    assert rec.flag == FLAG_INVALID and rec.reasons == ("too_few_samples",)
    with pytest.raises(ValueError, match="co: only wet values and no h2o"):
        check_quantities(["co", "co2_dry"], LIMITS)  # at start-up, the same lack is a config error


def test_water_argument_overrides_the_limits_coefficients():
    rec = close(samples(co=100.0, h2o=2.0), water={"co": (0.0, -0.01)})
    assert rec.species["co"].mean == pytest.approx(100.0 / 0.96)  # 1 - 0.01 * 4 = 0.96


def test_low_h2o_share_is_reported_not_refused():
    h2o = np.r_[np.full(6, 0.3), np.full(24, 1.5)]  # 6 of 30 below 0.5 %
    rec = close(samples(co2_dry=410.0, h2o=h2o))
    assert rec.diagnostics["h2o_low_fraction"] == pytest.approx(0.2)
    assert rec.flag == FLAG_VALID and rec.reasons == ()


def test_processing_config_is_accepted_as_limits():
    # the config defaults: min_samples 10, co2 max_std 0.5, cavity pressure 139.5-140.5
    p = np.full(N, 140.0)
    p[0] = 138.0
    rec = close(samples(co2=410.0, co2_dry=411.0, cavity_pressure=p), limits=ProcessingConfig(),
                water={"co2": (-0.012, -0.0002674)})
    assert rec.species["co2"].n == 29 and rec.species["co2"].mean == pytest.approx(411.0)
    assert rec.reasons == ("cavity_pressure",)


def test_minute_start_may_be_a_datetime_and_samples_must_lie_inside():
    times = T0 + 2.0 * np.arange(N)
    args = ({"co2_dry": np.full(N, 410.0)}, np.ones(N, bool), np.zeros(N, bool), LIMITS)
    assert minute_record(START, "d", "s", times, *args).time == START
    with pytest.raises(ValueError, match="outside the minute"):
        minute_record(START, "d", "s", times + 5.0, *args)  # last sample at start + 63 s


def test_array_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="co2_dry has 29 values for 30"):
        close({"co2_dry": np.full(29, 410.0)})


# ------------------------------------------------------------------------- applying calibrations


def _valid_minute():
    return close(samples(co2_dry=400.0, ch4_dry=2000.0))


def test_apply_calibration_sets_cal_mean_and_mean():
    # co2: 1.5 + 1.01 * 400 = 405.5; ch4: -10 + 1.0 * 2000 = 1990
    rec = apply_calibration(_valid_minute(), {"co2": (1.5, 1.01), "ch4": [-10.0, 1.0]}, "cal-1")
    assert rec.species["co2"].cal_mean == pytest.approx(405.5) and rec.species["co2"].mean == pytest.approx(405.5)
    assert rec.species["co2"].raw_mean == pytest.approx(400.0)
    assert rec.species["ch4"].mean == pytest.approx(1990.0)
    assert rec.calibration_id == "cal-1" and rec.flag == FLAG_VALID and rec.reasons == ()


def test_apply_calibration_takes_a_fit():
    fit = fit_species([380.0, 420.0], [381.0, 421.8], species="co2")  # slope 1.02, intercept -6.6
    rec = apply_calibration(_valid_minute(), {"co2": fit, "ch4": (0.0, 1.0)}, "cal-2")
    assert rec.species["co2"].mean == pytest.approx(-6.6 + 1.02 * 400.0)


def test_no_calibration_adds_uncalibrated_and_keeps_the_flag():
    rec = apply_calibration(_valid_minute(), None, "ignored")
    assert rec.reasons == ("uncalibrated",) and rec.flag == FLAG_VALID
    assert rec.species["co2"].mean == pytest.approx(400.0) and rec.species["co2"].cal_mean is None
    assert rec.calibration_id is None


def test_a_species_without_coefficients_makes_the_minute_uncalibrated():
    rec = apply_calibration(_valid_minute(), {"co2": (0.0, 1.0)}, "cal-3")
    assert rec.species["co2"].cal_mean == pytest.approx(400.0)
    assert rec.species["ch4"].cal_mean is None and rec.species["ch4"].mean == pytest.approx(2000.0)
    assert rec.reasons == ("uncalibrated",) and rec.calibration_id == "cal-3"


def test_reapplying_replaces_the_earlier_calibration_and_clears_uncalibrated():
    first = apply_calibration(_valid_minute(), None, None)
    again = apply_calibration(first, {"co2": (1.0, 1.0), "ch4": (0.0, 1.0)}, "cal-4")
    again = apply_calibration(again, {"co2": (2.0, 1.0), "ch4": (0.0, 1.0)}, "cal-5")
    assert again.species["co2"].mean == pytest.approx(402.0)  # from raw 400, not from 401
    assert again.reasons == () and again.calibration_id == "cal-5"


def test_invalid_minute_stays_invalid_and_a_species_without_data_is_not_uncalibrated():
    rec = close(samples(co2_dry=400.0, ch4_dry=np.nan))  # ch4: too_few_samples -> N
    cal = apply_calibration(rec, {"co2": (0.0, 1.0)}, "cal-6")
    assert cal.flag == FLAG_INVALID and cal.reasons == ("too_few_samples",)
    assert cal.species["ch4"].mean is None and cal.species["ch4"].cal_mean is None
