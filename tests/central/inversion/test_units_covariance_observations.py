"""Units, the Kronecker covariances, the observation error model and background subtraction."""

from __future__ import annotations

import numpy as np
import pytest

from central.inversion import reference as ref
from central.inversion.aggregates import region_totals
from central.inversion.covariance import (
    PriorCovariance,
    exponential_correlation,
    observation_error,
    spatial_correlation,
)
from central.inversion.grid import FluxGrid, daily_steps
from central.inversion.observations import ObsTable, afternoon_mask, enhancements
from central.inversion.units import EARTH_RADIUS_M, UnitError, cell_areas_m2, flux_to_umol, molar_mass


def test_kg_and_mol_fluxes_convert_to_umol():
    assert flux_to_umol(np.array([1.0]), "kg m-2 s-1", 44.0095)[0] == pytest.approx(1e9 / 44.0095)
    assert flux_to_umol(np.array([2e-6]), "mol m-2 s-1", 44.0095)[0] == pytest.approx(2.0)
    assert flux_to_umol(np.array([3.0]), "umol m-2 s-1", 44.0095)[0] == 3.0


def test_unknown_units_and_species_are_named():
    with pytest.raises(UnitError, match="unknown flux units 'tC/cell/month'"):
        flux_to_umol(np.ones(1), "tC/cell/month", 44.0)
    with pytest.raises(UnitError, match="unknown species 'SF6'"):
        molar_mass("SF6")
    assert molar_mass("SF6", 146.06) == 146.06
    assert molar_mass("co2") == 44.0095


def test_global_cell_areas_add_up_to_the_sphere():
    lat = np.linspace(-89.5, 89.5, 180)
    lon = np.linspace(0.5, 359.5, 360)
    assert cell_areas_m2(lat, lon).sum() == pytest.approx(4 * np.pi * EARTH_RADIUS_M**2, rel=1e-12)


def test_monthly_total_of_a_constant_flux_in_mt():
    starts, seconds = daily_steps(np.datetime64("2024-06-29T00:00:00"), 4)  # 2 days June, 2 days July
    grid = FluxGrid(np.array([40.0, 40.01]), np.array([116.0, 116.01]), starts, seconds)
    agg = region_totals(grid, np.ones((2, 2)), 44.0095, ["total"])
    total = agg.weights.reshape(agg.size, -1) @ np.full(grid.n_steps * 4, 10.0)  # 10 umol m-2 s-1
    area = grid.areas_m2().sum()
    expected = 10e-6 * area * 2 * 86400 * 44.0095 * 1e-12
    assert agg.month == ["2024-06", "2024-07"]
    np.testing.assert_allclose(total, [expected, expected], rtol=1e-12)


@pytest.mark.parametrize("model", ["separable", "isotropic"])
def test_kronecker_prior_covariance_equals_b_formed_in_full(model):
    rng = np.random.default_rng(0)
    starts, seconds = daily_steps(np.datetime64("2024-01-01T00:00:00"), 3)
    grid = FluxGrid(30.0 + 0.1 * np.arange(5), 100.0 + 0.1 * np.arange(6), starts, seconds)
    sigma = rng.uniform(0.5, 2.0, (2, 3, 30))
    cov = PriorCovariance(sigma, exponential_correlation(grid.step_mid_days(), 1.5),
                          spatial_correlation(grid, 12.0, model))
    b = ref.dense_prior_covariance(grid, sigma, 12.0, 1.5, model)
    v = rng.standard_normal((4, 2, 3, 30))
    np.testing.assert_allclose(cov.apply(v).reshape(4, -1), v.reshape(4, -1) @ b, rtol=1e-12, atol=1e-12)


def test_isotropic_model_refuses_a_grid_too_large_to_hold():
    starts, seconds = daily_steps(np.datetime64("2024-01-01T00:00:00"), 1)
    grid = FluxGrid(np.arange(200.0) * 0.01, np.arange(200.0) * 0.01, starts, seconds)
    with pytest.raises(ValueError, match="use spatial_model = \"separable\""):
        spatial_correlation(grid, 5.0, "isotropic")


def test_observation_error_shares_background_and_correlates_mismatch_within_a_station():
    r = observation_error(np.array([0.1, 0.1, 0.2]), np.array([1.0, 1.0, 1.0]), np.array(["A", "A", "B"]),
                          np.array([0.0, 2.0, 0.0]), 2.0, np.array([0.3, 0.3, 0.3]), np.array([0, 1, 0]))
    assert r[0, 0] == pytest.approx(0.01 + 1.0 + 0.09)
    assert r[0, 1] == pytest.approx(np.exp(-1.0))  # same station, 2 h apart, different background
    assert r[0, 2] == pytest.approx(0.09)  # different stations, same background value
    assert r[1, 2] == 0.0


def test_afternoon_window_is_in_local_time():
    times = np.array(["2024-07-01T03:00", "2024-07-01T04:00", "2024-07-01T08:00", "2024-07-01T09:00"],
                     dtype="datetime64[s]")
    np.testing.assert_array_equal(afternoon_mask(times, 8, 12, 16), [False, True, True, False])


def test_enhancement_is_over_the_mean_of_background_stations_at_the_same_time():
    t = np.array(["2024-07-01T04:00"] * 4 + ["2024-07-01T05:00"] * 2, dtype="datetime64[s]")
    table = ObsTable(t, np.array(["A", "B", "BG1", "BG2", "A", "BG1"]),
                     np.array([425.0, 430.0, 420.0, 422.0, 440.0, 421.0]), np.array([0.1, 0.1, 0.2, 0.2, 0.1, 0.3]))
    enh, missing = enhancements(table, None, ["BG1", "BG2"])
    assert missing == 0
    np.testing.assert_allclose(enh.value, [4.0, 9.0, 19.0])
    np.testing.assert_allclose(enh.background_sigma, [np.sqrt(0.08) / 2, np.sqrt(0.08) / 2, 0.3])
    assert enh.background_group[0] == enh.background_group[1] != enh.background_group[2]


def test_observation_without_background_is_counted_and_dropped():
    t = np.array(["2024-07-01T04:00", "2024-07-01T05:00", "2024-07-01T04:00"], dtype="datetime64[s]")
    table = ObsTable(t, np.array(["A", "A", "BG"]), np.array([425.0, 426.0, 420.0]), np.full(3, 0.1))
    enh, missing = enhancements(table, None, ["BG"])
    assert missing == 1 and len(enh) == 1
