"""Humidity, density, spectral corrections, quality flags and footprint on constructed cases."""

from __future__ import annotations

import numpy as np
import pytest

from station_agent.processing.flux.air import R, air_state, air_temperature_flux
from station_agent.processing.flux.density import dry_mixing_ratio, wpl_open_path
from station_agent.processing.flux.footprint import kljun_footprint
from station_agent.processing.flux.quality import flag_012, itc_pct, overall_class, percent_class, steady_state_pct
from station_agent.processing.flux.spectral import SensorLayout, correction_factor


def cov(a, b):
    return float(np.mean((a - a.mean()) * (b - b.mean())))


def _air_series(n=200000, seed=0):
    """w, air temperature T (K), vapour and CO2 dry mixing ratios (mol/mol) with known fluxes."""
    rng = np.random.default_rng(seed)
    w = 0.5 * rng.standard_normal(n)
    t = 295.0 + 0.4 * w + 0.3 * rng.standard_normal(n)
    chi_v = 0.015 + 0.001 * w + 0.0005 * rng.standard_normal(n)
    chi_c = 400e-6 - 4e-6 * w + 2e-6 * rng.standard_normal(n)
    return w, t, chi_v, chi_c


def test_wpl_recovers_the_flux_of_the_dry_mixing_ratio_from_densities():
    w, t, chi_v, chi_c = _air_series()
    p = 100000.0
    nd = p / (R * t * (1 + chi_v))
    nc, nv = chi_c * nd, chi_v * nd  # what an open-path analyzer sees (mol m-3)
    true_fc, true_e = nd.mean() * cov(w, chi_c), nd.mean() * cov(w, chi_v)
    air = air_state(t.mean(), p, vapour_mol_m3=nv.mean())
    fc, e = wpl_open_path(cov(w, nc), cov(w, nv), cov(w, t), nc.mean(), air)
    assert fc == pytest.approx(true_fc, rel=0.01)
    assert e == pytest.approx(true_e, rel=0.01)
    # without the correction the CO2 flux is off by more than 10 % (23 % here)
    assert abs(cov(w, nc) / true_fc - 1) > 0.1


def test_closed_path_mixing_ratio_point_by_point():
    _, _, chi_v, chi_c = _air_series(1000)
    x_v = chi_v / (1 + chi_v)
    x_c = chi_c / (1 + chi_v)
    np.testing.assert_allclose(dry_mixing_ratio(x_c, x_v), chi_c, rtol=1e-12)
    np.testing.assert_allclose(dry_mixing_ratio(x_v, x_v), chi_v, rtol=1e-12)


def test_schotanus_humidity_correction_of_the_sonic_temperature_flux():
    w, t, chi_v, _ = _air_series()
    p = 100000.0
    nd = p / (R * t * (1 + chi_v))
    nv = chi_v * nd
    q = nv * 18.01528e-3 / (nd * 28.9645e-3 + nv * 18.01528e-3)
    ts = t * (1 + 0.51 * q)
    air = air_state(ts.mean(), p, vapour_mol_m3=nv.mean())
    assert air.temperature_k == pytest.approx(t.mean(), abs=0.02)
    w_t = air_temperature_flux(cov(w, ts), cov(w, nv), air)
    assert w_t == pytest.approx(cov(w, t), rel=0.01)
    assert abs(cov(w, ts) / cov(w, t) - 1) > 0.03  # the correction matters here


def test_spectral_correction_is_one_for_an_ideal_system_and_grows_with_each_loss():
    base = dict(z_m=3.0, u_ms=3.0, z_over_l=-0.1, fs_hz=20.0, period_s=1800.0)
    ideal = correction_factor(**base, layout=SensorLayout())
    assert ideal == pytest.approx(1.0, abs=0.01)
    sep = correction_factor(**base, layout=SensorLayout(separation_m=0.3))
    paths = correction_factor(**base, layout=SensorLayout(separation_m=0.3, sonic_path_m=0.15, gas_path_m=0.125))
    slow = correction_factor(**base, layout=SensorLayout(separation_m=0.3, sonic_path_m=0.15, gas_path_m=0.125,
                                                         gas_tau_s=0.1))
    assert ideal < sep < paths < slow < 1.5
    # closer to the ground and in faster wind the small eddies carry more of the flux: more loss
    low = correction_factor(**{**base, "z_m": 1.5, "u_ms": 6.0},
                            layout=SensorLayout(separation_m=0.3, sonic_path_m=0.15, gas_path_m=0.125))
    assert low > paths
    stable = correction_factor(**{**base, "z_over_l": 0.5},
                               layout=SensorLayout(separation_m=0.3, sonic_path_m=0.15, gas_path_m=0.125))
    assert stable > paths


@pytest.mark.parametrize("pct, cls", [(0, 1), (14.9, 1), (15, 2), (29, 2), (45, 3), (60, 4), (90, 5), (200, 6),
                                      (400, 7), (800, 8), (5000, 9), (float("nan"), 9)])
def test_percent_classes(pct, cls):
    assert percent_class(pct) == cls


@pytest.mark.parametrize("steady, itc, flag", [(5, 5, 0), (25, 25, 0), (29.9, 29.9, 0), (25, 70, 1), (30, 5, 1),
                                               (60, 10, 1), (60, 90, 1), (95, 95, 1), (150, 10, 2), (10, 150, 2),
                                               (100, 5, 2), (600, 600, 2), (float("nan"), 5, 2)])
def test_flag_012_mauder_foken(steady, itc, flag):
    """Mauder and Foken (2004) as EddyPro's GTK2Flag: 0 both under 30 %, 1 both under 100 %, else 2
    (25 % / 70 % is flag 1 although Foken's overall class is 3)."""
    assert flag_012(steady, itc) == flag


@pytest.mark.parametrize("steady, itc, cls", [(5, 20, 1), (20, 20, 2), (20, 60, 3), (60, 5, 4), (5, 90, 5),
                                              (40, 80, 5), (90, 90, 6), (200, 5, 7), (5, 200, 7), (600, 5, 8),
                                              (2000, 5, 9)])
def test_overall_class_foken_table(steady, itc, cls):
    """Foken et al. (2004) Table 9.4 as EddyPro transcribes it (first row that holds)."""
    assert overall_class(steady, itc) == cls


def test_steady_state_test_sees_a_trend_that_5_minute_covariances_miss():
    rng = np.random.default_rng(7)
    n = 36000
    w = rng.standard_normal(n)
    c = 0.5 * w + rng.standard_normal(n)
    assert steady_state_pct(w, c) < 15
    swing = np.sin(2 * np.pi * np.arange(n) / n)
    assert steady_state_pct(w + 1.0 * swing, c - 1.0 * swing) > 100


def test_itc_against_similarity():
    # near neutral, u* 0.4 at 45 N: model sigma_w/u* = 0.21 ln(f/u*) + 3.1 = 1.36
    assert itc_pct(1.3 * 0.4, 0.4, -0.05, 45.0) < 10
    assert itc_pct(6.0 * 0.05, 0.05, 0.1, 45.0) > 100  # low turbulence, waves: far from similarity
    # unstable: 1.3 (1 - 2 z/L)^(1/3)
    assert itc_pct(1.3 * 3 ** (1 / 3) * 0.3, 0.3, -1.0, 45.0) == pytest.approx(0.0, abs=1e-9)


def test_kljun_footprint_scales_with_height_and_wind():
    fp = kljun_footprint(zm=3.0, u_mean=3.0, ustar=0.4, obukhov_m=-50.0, blh_m=1000.0)
    # X*max = c/|b| + d = 0.870; x = X* zm / (1 - zm/h) * u/u* * kappa
    assert fp.peak_m == pytest.approx(0.870 * 3.0 / (1 - 0.003) * 3.0 / 0.4 * 0.4, rel=0.01)
    assert fp.peak_m < fp.x70_m < fp.x90_m
    higher = kljun_footprint(zm=6.0, u_mean=3.0, ustar=0.4, obukhov_m=-50.0, blh_m=1000.0)
    assert higher.x90_m > 1.9 * fp.x90_m
    assert np.isnan(kljun_footprint(zm=3.0, u_mean=3.0, ustar=0.05, obukhov_m=10.0, blh_m=1000.0).peak_m)
