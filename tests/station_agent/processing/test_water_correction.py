"""Water correction: dry = wet / (1 + a*H + b*H^2), checked against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from ghgnet.processing.water import (
    G2401_FACTORY,
    WaterCoefficients,
    as_water_coefficients,
    dry_from_wet,
    in_low_h2o_bias_domain,
)


def test_linear_term_alone():
    # a = -0.01, H = 2 %: 1 - 0.02 = 0.98; 400 / 0.98 = 408.163265...
    assert dry_from_wet(400.0, 2.0, WaterCoefficients(a=-0.01, b=0.0)) == pytest.approx(408.1632653061, abs=1e-9)


def test_quadratic_term_alone():
    # b = -0.01, H = 2 %: 1 - 0.01 * 4 = 0.96; 400 / 0.96 = 416.666...
    assert dry_from_wet(400.0, 2.0, WaterCoefficients(a=0.0, b=-0.01)) == pytest.approx(416.6666666667, abs=1e-9)


def test_g2401_factory_co2_and_ch4():
    # CO2, H = 2: 1 - 0.024 - 0.0002674*4 = 0.9749304 -> 400 / 0.9749304
    assert dry_from_wet(400.0, 2.0, G2401_FACTORY["co2"]) == pytest.approx(400.0 / 0.9749304, rel=1e-12)
    # CH4, H = 1.5: 1 - 0.014730 - 0.0002393*2.25 = 0.984731575 -> 1950 / 0.984731575
    assert dry_from_wet(1950.0, 1.5, G2401_FACTORY["ch4"]) == pytest.approx(1950.0 / 0.984731575, rel=1e-12)


def test_no_water_means_no_correction():
    assert dry_from_wet(412.3, 0.0, G2401_FACTORY["co2"]) == 412.3


def test_vectorised_and_nan_stays_missing():
    wet = np.array([400.0, 400.0, np.nan, 400.0])
    h2o = np.array([0.0, 2.0, 2.0, np.nan])
    dry = dry_from_wet(wet, h2o, WaterCoefficients(a=-0.01, b=0.0))
    assert dry[0] == 400.0
    assert dry[1] == pytest.approx(400.0 / 0.98)
    assert np.isnan(dry[2]) and np.isnan(dry[3])


def test_absurd_water_gives_nan_not_a_sign_flip():
    # a = -0.01: H = 100 % gives denominator 0, H = 150 % a negative one
    dry = dry_from_wet([400.0, 400.0], [100.0, 150.0], WaterCoefficients(a=-0.01, b=0.0))
    assert np.isnan(dry).all()


def test_low_h2o_domain_reported_below_half_a_percent():
    mask = in_low_h2o_bias_domain([0.0, 0.3, 0.4999, 0.5, 2.0, np.nan])
    assert mask.tolist() == [True, True, True, False, False, False]


def test_coefficients_accepted_in_several_shapes():
    expected = WaterCoefficients(a=-0.012, b=-0.0002674)
    assert as_water_coefficients((-0.012, -0.0002674)) == expected
    assert as_water_coefficients({"a": -0.012, "b": -0.0002674}) == expected
    assert as_water_coefficients(expected) is expected


def test_non_finite_coefficients_refused():
    with pytest.raises(ValueError, match="finite"):
        WaterCoefficients(a=float("nan"), b=0.0)
