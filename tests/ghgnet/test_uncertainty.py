"""Weighted calibration fits, scales, and the uncertainty of minutes, hours and targets (#21).
Every expected number is computed by hand in the comments, or published (York's test data)."""

from __future__ import annotations

import json
import zlib
from datetime import UTC, datetime, timedelta

import msgspec
import numpy as np
import pytest

from central.aggregation.hourly_stats import hourly_stats
from ghgnet.processing import scales
from ghgnet.processing.calibration import AssignedValue, evaluate_target, fit_calibration, fit_species
from ghgnet.processing.minute_record import apply_calibration
from ghgnet.processing.uncertainty import calibration_u, hourly_u_from_minutes
from ghgnet.records import MinuteRecord, SpeciesMinute, minute_to_dict
from ghgnet.wire import BatchEncoder, LeanEncoder, parse_batch
from ghgnet.wire.lean import DICTIONARY_V1, POSITIONAL_MAX_RECORDS, lean_to_json
from station_agent.storage.calibration_results import result_from_wire, result_to_wire

T0 = datetime(2026, 3, 1, tzinfo=UTC)

# Pearson's data with York's weights (York 1966), wx = 1/ux^2, wy = 1/uy^2
PEARSON_X = np.array([0.0, 0.9, 1.8, 2.6, 3.3, 4.4, 5.2, 6.1, 6.5, 7.4])
PEARSON_Y = np.array([5.9, 5.4, 4.4, 4.6, 3.5, 3.7, 2.8, 2.8, 2.4, 1.5])
YORK_WX = np.array([1000, 1000, 500, 800, 200, 80, 60, 20, 1.8, 1.0])
YORK_WY = np.array([1, 1.8, 4, 8, 20, 20, 70, 70, 100, 500])


def test_york_fit_reproduces_the_published_line_on_pearsons_data():
    fit = fit_species(PEARSON_X, PEARSON_Y, 1, u_measured=1 / np.sqrt(YORK_WX), u_assigned=1 / np.sqrt(YORK_WY))
    # Williamson 1968 (and Reed 1992, Lybanon 1984): a = 5.47991022403, b = -0.48053340745
    assert fit.method == "york"
    assert fit.intercept == pytest.approx(5.47991022403, abs=1e-9)
    assert fit.slope == pytest.approx(-0.48053340745, abs=1e-9)
    cov = np.array(fit.covariance)
    # York et al. 2004's standard errors for this set: sigma_a = 0.2950, sigma_b = 0.0580
    assert np.sqrt(cov[0, 0]) == pytest.approx(0.294971, abs=1e-6)
    assert np.sqrt(cov[1, 1]) == pytest.approx(0.057985, abs=1e-6)
    # cov(a, b) = -x_bar sigma_b^2 with x_bar > 0: negative, and the matrix symmetric
    assert cov[0, 1] == cov[1, 0] < 0
    assert fit.mswd == pytest.approx(1.4833, abs=1e-4)  # 11.866 / 8: the scatter a bit above the stated u


def test_without_uncertainties_the_fit_stays_ordinary_least_squares_with_covariance_from_residuals():
    # x = (0, 1, 2), y = (0, 1, 3): slope 1.5, intercept -1/6, residuals (-1/6, 1/3, -1/6) -> SS = 1/6,
    # s^2 = SS / (3 - 2) = 1/6; (A^T A)^-1 = [[5/6, -1/2], [-1/2, 1/2]] -> cov = [[5/36, -1/12], [-1/12, 1/12]]
    fit = fit_species([0.0, 1.0, 2.0], [0.0, 1.0, 3.0], 1, u_measured=[0.1, 0.1, 0.1])  # scatter alone: still OLS
    assert fit.method == "ols" and fit.mswd is None
    assert fit.coefficients == pytest.approx((-1 / 6, 1.5), abs=1e-12)
    assert np.array(fit.covariance) == pytest.approx(np.array([[5 / 36, -1 / 12], [-1 / 12, 1 / 12]]), abs=1e-12)
    # as many standards as parameters: no degree of freedom, covariance unknown
    assert fit_species([0.0, 1.0], [0.0, 1.0], 1).covariance is None


def test_weighted_fit_with_errors_in_y_only_is_weighted_least_squares():
    # uy = 0.1 everywhere, ux = 0: York = WLS, cov = 0.01 (A^T A)^-1 = 0.01 [[5/6, -1/2], [-1/2, 1/2]]
    fit = fit_species([0.0, 1.0, 2.0], [0.0, 1.0, 3.0], 1, u_assigned=[0.1, 0.1, 0.1])
    assert fit.method == "york"
    assert fit.coefficients == pytest.approx((-1 / 6, 1.5), abs=1e-12)
    assert np.array(fit.covariance) == pytest.approx(0.01 * np.array([[5 / 6, -0.5], [-0.5, 0.5]]), abs=1e-12)
    # chi2 = SS / u^2 = (1/6) / 0.01 = 16.67 over 1 degree of freedom
    assert fit.mswd == pytest.approx(100 / 6)


def test_quadratic_weighted_fit_matches_numpy_with_y_errors_and_moves_with_x_errors():
    uy = 1 / np.sqrt(YORK_WY)
    fit = fit_species(PEARSON_X, PEARSON_Y, 2, u_assigned=uy)
    p, cov = np.polyfit(PEARSON_X, PEARSON_Y, 2, w=1 / uy, cov="unscaled")
    assert fit.method == "wls-ev"
    assert fit.coefficients == pytest.approx(p[::-1], rel=1e-9)
    assert np.array(fit.covariance) == pytest.approx(cov[::-1, ::-1], rel=1e-8)
    both = fit_species(PEARSON_X, PEARSON_Y, 2, u_measured=1 / np.sqrt(YORK_WX), u_assigned=uy)
    assert both.coefficients != pytest.approx(fit.coefficients, rel=1e-3)  # x errors change the weights


def test_a_standard_without_any_uncertainty_cannot_be_weighted():
    with pytest.raises(ValueError, match="B have no uncertainty"):
        fit_species([1.0, 2.0, 3.0], [1.0, 2.0, 3.1], 1, cylinders=["A", "B", "C"], u_assigned=[0.1, 0.0, 0.1])


def test_scale_conversion_x2007_to_x2019():
    # X2019 = 1.00079 * X2007 - 0.142: 400 -> 400.174 (Hall et al. 2021: +0.18 ppm at 400 ppm)
    value, u, scale = scales.to_current("co2", 400.0, "WMO X2007", 0.05)
    assert value == pytest.approx(400.174, abs=1e-9)
    assert u == pytest.approx(0.05 * 1.00079)
    assert scale == "WMO-CO2-X2019"
    assert scales.to_current("co2", 400.0, "X2019") == (400.0, None, "WMO-CO2-X2019")
    assert scales.resolve("n2o", "NOAA-2006A") == "WMO-N2O-X2006A"
    with pytest.raises(ValueError, match="unknown co2 calibration scale 'X2099'.*WMO-CO2-X2019"):
        scales.check("co2", "X2099")
    with pytest.raises(ValueError, match="no checked conversion from WMO-CH4-X2004 to WMO-CH4-X2004A"):
        scales.check("ch4", "WMO-CH4-X2004")


def test_a_fit_converts_old_scale_values_and_records_the_scale():
    measured = {"A": {"co2": 380.0}, "B": {"co2": 420.0}, "C": {"co2": 460.0}}
    assigned = {c: {"co2": AssignedValue(v, "WMO-CO2-X2007")} for c, v in (("A", 380.0), ("B", 420.0), ("C", 460.0))}
    res = fit_calibration("cal", T0, T0, measured, assigned)
    fit = res.fits["co2"]
    assert fit.scale == "WMO-CO2-X2019"
    # every assigned value x -> 1.00079 x - 0.142: the fit is exactly that line
    assert fit.coefficients == pytest.approx((-0.142, 1.00079), abs=1e-9)
    assert res.standards[1].assigned["co2"] == AssignedValue(pytest.approx(420.0 * 1.00079 - 0.142), "WMO-CO2-X2019")
    bad = {c: {"co2": AssignedValue(v, "WMO X2099")} for c, v in (("A", 380.0), ("B", 420.0))}
    with pytest.raises(ValueError, match="cylinder A: scale.co2: unknown co2 calibration scale"):
        fit_calibration("cal", T0, T0, {"A": {"co2": 380.0}, "B": {"co2": 420.0}}, bad)


# covariance whose calibration part at x = 420 is 0.01 ppm:
# g^T C g = 0.04 + 2 * 420 * (-1e-4) + 420^2 * 2.5e-7 = 0.04 - 0.084 + 0.0441 = 1e-4
COV = ((0.04, -1e-4), (-1e-4, 2.5e-7))


def _fit():
    base = fit_species([400.0, 420.0, 440.0], [400.0, 420.0, 440.0], 1, species="co2")
    return type(base)(**{**{f: getattr(base, f) for f in base.__slots__}, "covariance": COV})


def test_a_minutes_u_combines_calibration_repeatability_and_water():
    assert calibration_u(420.0, COV) == pytest.approx(0.01)
    dried = MinuteRecord(T0, "g2401", "inlet:top", {"co2": SpeciesMinute(420.0, 0.1, 25, 420.0)}, None, "U")
    got = apply_calibration(dried, {"co2": _fit()}, "cal-1").species["co2"]
    # repeatability 0.1 / sqrt(25) = 0.02; no H2O: no water part; u = sqrt(0.01^2 + 0.02^2)
    assert got.u == pytest.approx(np.sqrt(0.0005), rel=1e-9)
    humid = MinuteRecord(T0, "g2401", "inlet:top", {"co2": SpeciesMinute(420.0, 0.1, 25, 420.0)}, 1.0, "U")
    got = apply_calibration(humid, {"co2": _fit()}, "cal-1").species["co2"]
    # G2401 CO2 a = -0.012, b = -0.0002674 at H = 1 %: |a H + b H^2| = 0.0122674, correction 420 x that
    # = 5.152308 ppm, 1 % of it = 0.05152308 ppm
    assert got.u == pytest.approx(np.sqrt(0.0005 + 0.05152308**2), rel=1e-7)
    # bare coefficients without a covariance: u unknown, not understated
    assert apply_calibration(humid, {"co2": (0.0, 1.0)}, "c").species["co2"].u is None
    # interpolated coefficients with their covariance given apart
    assert apply_calibration(dried, {"co2": (0.0, 1.0)}, "c", covariances={"co2": COV}).species["co2"].u == \
        pytest.approx(np.sqrt(0.0005))
    assert apply_calibration(dried, None, None).species["co2"].u is None


def test_an_hours_u_keeps_the_systematic_part_and_averages_the_random_one():
    # 3 minutes, each u^2 = 0.01^2 (systematic) + (0.1/sqrt(25))^2 (random, 0.02)
    u_min = np.sqrt(0.0001 + 0.0004)
    h = hourly_stats(np.array([0, 60, 120]), np.array([420.0, 420.1, 420.2]), np.full(3, 0.1), np.full(3, 25),
                     minute_u=np.full(3, u_min))
    # systematic: rms 0.01 (no averaging down); random: sqrt(3 * 0.02^2) / 3 = 0.011547
    expected = np.sqrt(0.0001 + (np.sqrt(3 * 0.0004) / 3) ** 2)
    assert h.u[0] == pytest.approx(expected, rel=1e-9) == pytest.approx(0.0152753, rel=1e-5)
    assert hourly_u_from_minutes([u_min] * 3, [0.1] * 3, [25] * 3) == pytest.approx(expected, rel=1e-9)
    unknown = hourly_stats(np.array([0, 60]), np.array([420.0, 420.1]), np.full(2, 0.1), np.full(2, 25),
                           minute_u=np.array([u_min, np.nan]))
    assert np.isnan(unknown.u[0])
    assert hourly_stats(np.array([0]), np.array([420.0]), np.full(1, 0.1), np.full(1, 25)).u is None


def test_a_target_is_checked_against_twice_its_uncertainty():
    # calibration part 0.01 at 420; repeatability 0.02; assigned u 0.02 -> u = sqrt(1e-4 + 4e-4 + 4e-4) = 0.03
    inside = evaluate_target("T", T0, T0, {"co2": 420.0}, {"co2": AssignedValue(419.95, "", 0.02)},
                             {"co2": _fit()}, "cal-1", u_measured={"co2": 0.02})
    s = inside.species["co2"]
    assert s.u == pytest.approx(0.03) and s.bias == pytest.approx(0.05)
    assert s.within_u and s.within_goal  # 0.05 <= 2 * 0.03
    outside = evaluate_target("T", T0, T0, {"co2": 420.0}, {"co2": AssignedValue(419.93, "", 0.02)},
                              {"co2": _fit()}, "cal-1", u_measured={"co2": 0.02}).species["co2"]
    assert outside.bias == pytest.approx(0.07) and not outside.within_u and outside.within_goal  # 0.07 > 0.06


def _minute_row(seq: int, u: float | None) -> tuple[int, str, bytes]:
    rec = MinuteRecord(T0 + timedelta(minutes=seq), "g2401", "inlet:top",
                       {"co2": SpeciesMinute(420.1, 0.05, 55, 419.8, 420.1, u),
                        "ch4": SpeciesMinute(2000.0, 0.8, 55, 1999.0, 2000.0, None if u is None else 0.9)},
                       1.2, "U", (), 60, "cal-1", {"cavity_pressure": 140.0})
    return seq, "minute", json.dumps(minute_to_dict(rec), separators=(",", ":")).encode()


@pytest.mark.parametrize("n", [2, 40])  # positional lean form (few records) and its JSON form (backlog)
def test_wire_round_trip_carries_u_in_json_and_lean(n):
    batch = [_minute_row(s, 0.031 if s % 2 else None) for s in range(1, n + 1)]
    sent = T0 + timedelta(hours=1)
    as_json = BatchEncoder("st-a").encode_rows("minute", sent, batch)
    lean = LeanEncoder("st-a").encode_rows("minute", sent, batch)
    assert lean_to_json(lean, 10**7) == as_json  # the lean payload stands for the same batch, byte for byte
    if n <= POSITIONAL_MAX_RECORDS:  # positional: each minute a tag-2 record (five doubles a species)
        doc = msgspec.msgpack.decode(zlib.decompressobj(-15, zdict=DICTIONARY_V1).decompress(lean))
        assert [r[0] for r in doc[4]] == [2] * n
    parsed = parse_batch("ghg/v1/st-a/minute", as_json)
    assert [r.species["co2"].u for r in parsed.records] == [0.031 if s % 2 else None for s in range(1, n + 1)]
    assert parsed.records[0].species["ch4"].u == 0.9


def test_calibration_and_target_records_carry_covariance_and_u_on_the_wire():
    measured = {"A": {"co2": 380.0}, "B": {"co2": 420.5}, "C": {"co2": 460.0}}
    assigned = {c: {"co2": AssignedValue(v, "WMO-CO2-X2019", 0.02)} for c, v in (("A", 380.0), ("B", 420.0),
                                                                                    ("C", 460.0))}
    res = fit_calibration("cal-1", T0, T0 + timedelta(hours=1), measured, assigned)
    wire = result_to_wire(res)
    back = result_from_wire(json.loads(json.dumps(wire)))
    assert np.array(back.fits["co2"].covariance) == pytest.approx(np.array(res.fits["co2"].covariance))
    assert back.fits["co2"].method == "york" and back.fits["co2"].scale == "WMO-CO2-X2019"
    target = {"record_type": "target", "id": "tgt-1", "time": "2026-03-01T00:00:00.000Z", "cylinder": "T",
              "measured": {"co2": 420.0}, "assigned": {"co2": 419.95}, "bias": {"co2": 0.05},
              "within_goal": {"co2": True}, "u": {"co2": 0.03}, "within_u": {"co2": True}}
    rows = [(1, "calibration", json.dumps(wire).encode()), (2, "calibration", json.dumps(target).encode())]
    for payload in (BatchEncoder("st-a").encode_rows("calibration", T0, rows),
                    lean_to_json(LeanEncoder("st-a").encode_rows("calibration", T0, rows), 10**7)):
        parsed = parse_batch("ghg/v1/st-a/calibration", payload)
        assert not parsed.rejected
        cal, tgt = parsed.records
        assert cal.fits["co2"].covariance == [list(r) for r in res.fits["co2"].covariance]
        assert tgt.u == {"co2": 0.03} and tgt.within_u == {"co2": True}
