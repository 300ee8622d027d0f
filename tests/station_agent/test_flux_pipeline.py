"""The whole half-hour processing against the simulated flux site's truth: in good conditions the
fluxes are within 5 % of the realised ones (open and closed path, double rotation and planar fit),
and non-stationary or low-turbulence half hours are flagged 2."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from drivers.campbell.toa5 import read_toa5, write_toa5
from drivers.rawtable import RawTable
from simulators.flux_site import FluxSiteSpec, SimulatedHalfHour, simulate_day, simulate_half_hour
from station_agent.processing.flux import (
    ColumnMap,
    FluxSettings,
    LagWindow,
    block_from_columns,
    fit_planar,
    half_hours,
    process_half_hour,
)

DAY = datetime(2026, 6, 1, tzinfo=timezone.utc)


def process(sim: SimulatedHalfHour, settings: FluxSettings):
    return process_half_hour(block_from_columns(sim.start, sim.fs_hz, sim.columns), settings)


def settings_for(path: str, nominal_lag_s: float, **kw) -> FluxSettings:
    window = LagWindow(min_s=0.0, max_s=4.0, nominal_s=nominal_lag_s)
    return FluxSettings(path=path, co2_lag=window, h2o_lag=window, **kw)


def assert_recovered(result, truth, rel=0.05):
    assert result.h_w_m2 == pytest.approx(truth.h_w_m2, rel=rel)
    assert result.le_w_m2 == pytest.approx(truth.le_w_m2, rel=rel)
    assert result.co2_flux_umol_m2_s == pytest.approx(truth.co2_flux_umol_m2_s, rel=rel)
    assert result.h2o_flux_mmol_m2_s == pytest.approx(truth.h2o_flux_mmol_m2_s, rel=rel)
    assert result.ustar_ms == pytest.approx(truth.ustar_ms, rel=rel)


@pytest.mark.parametrize("path, lag_s", [("open", 0.3), ("closed", 2.1)])
def test_good_half_hours_recover_the_true_fluxes_within_5_percent(path, lag_s):
    spec = FluxSiteSpec(path=path, lag_s=lag_s)
    settings = settings_for(path, nominal_lag_s=1.0)
    for i in range(6):
        sim = simulate_half_hour(spec, seed=i, start=DAY + timedelta(hours=12, minutes=30 * i))
        r = process(sim, settings)
        assert_recovered(r, sim.truth)
        assert r.lag_co2_s == pytest.approx(lag_s) and not r.lag_co2_nominal
        assert r.flag_co2 == r.flag_h == r.flag_le == 0
        assert r.n_valid > 0.95 * r.n_records
        assert sum(r.spikes.values()) > 0
        assert r.yaw_deg == pytest.approx(spec.wind_dir_deg, abs=2.0)
        assert r.z_over_l < 0 and r.obukhov_m < 0  # daytime heating: unstable
        assert 0 < r.footprint_peak_m < r.footprint_x70_m < r.footprint_x90_m


def test_a_simulated_day_matches_the_truth_where_flagged_good():
    sims = simulate_day(FluxSiteSpec(), seed=11, day=DAY, half_hours=48)
    settings = settings_for("open", nominal_lag_s=0.3)
    results = [process(sim, settings) for sim in sims]
    good = 0
    for sim, r in zip(sims, results):
        if r.flag_co2 == 0 and abs(sim.truth.co2_flux_umol_m2_s) > 1.0:
            assert r.co2_flux_umol_m2_s == pytest.approx(sim.truth.co2_flux_umol_m2_s, rel=0.05)
            good += 1
        if r.flag_h == 0 and abs(sim.truth.h_w_m2) > 20:
            assert r.h_w_m2 == pytest.approx(sim.truth.h_w_m2, rel=0.05)
    assert good >= 30
    daily_true = sum(s.truth.co2_flux_umol_m2_s for s in sims)
    daily = sum(r.co2_flux_umol_m2_s for r in results)
    assert daily == pytest.approx(daily_true, rel=0.03)


def test_planar_fit_over_many_wind_directions():
    spec = FluxSiteSpec(sonic_pitch_deg=4.0, sonic_roll_deg=-2.5)
    sims = [simulate_half_hour(replace(spec, wind_dir_deg=float(d)), seed=i, start=DAY + timedelta(minutes=30 * i))
            for i, d in enumerate(range(0, 360, 30))]
    means = np.array([[np.nanmean(np.where(s.columns["sonic_diag"] == 0, s.columns[k], np.nan)) for k in "uvw"]
                      for s in sims])
    fit = fit_planar(*means.T)
    assert fit.roll_deg != 0 and abs(fit.b0) < 0.05
    settings = settings_for("open", 0.3, rotation="planar", planar_fit=fit)
    for sim in sims:
        r = process(sim, settings)
        assert_recovered(r, sim.truth)
        assert r.rotation == "planar"


def test_non_stationary_half_hours_are_flagged_2():
    for seed in range(3):
        r = process(simulate_half_hour(FluxSiteSpec(nonstationary=True), seed), settings_for("open", 0.3))
        assert r.steady_co2_pct > 100 and r.steady_h_pct > 100
        assert r.flag_co2 == r.flag_h == r.flag_le == 2


def test_low_turbulence_nights_are_flagged_2():
    night = FluxSiteSpec(ustar_ms=0.04, sigma_w_over_ustar=6.0, mean_wind_ms=0.8, h_w_m2=-5.0, le_w_m2=5.0,
                         co2_flux=2.0)
    for seed in range(3):
        r = process(simulate_half_hour(night, seed), settings_for("open", 0.3))
        assert r.itc_pct > 100
        assert r.flag_co2 == r.flag_h == 2
        assert np.isnan(r.footprint_peak_m)  # u* below the footprint model's range


def test_too_many_bad_records_give_no_flux_and_flag_2():
    sim = simulate_half_hour(FluxSiteSpec(dropout_fraction=0.3), seed=3)
    r = process(sim, settings_for("open", 0.3))
    assert r.n_valid < 0.9 * r.n_records
    assert np.isnan(r.co2_flux_umol_m2_s) and np.isnan(r.h_w_m2)
    assert r.flag_co2 == r.flag_h == r.flag_le == 2


def test_the_record_is_plain_data_for_the_store():
    r = process(simulate_half_hour(FluxSiteSpec(), seed=0, start=DAY), settings_for("open", 0.3))
    d = r.as_dict()
    assert d["start"] == "2026-06-01T00:00:00Z"
    assert d["flag_co2"] in (0, 1, 2) and isinstance(d["cov"], dict) and isinstance(d["spikes"], dict)


def test_bad_inputs_are_named():
    sim = simulate_half_hour(FluxSiteSpec(duration_s=60), seed=0)
    cols = dict(sim.columns)
    cols["w"] = cols["w"][:-1]
    with pytest.raises(ValueError, match="u has 1200 records, w has 1199"):
        block_from_columns(sim.start, sim.fs_hz, cols)
    with pytest.raises(KeyError, match="no column 'co2'"):
        block_from_columns(sim.start, sim.fs_hz, {k: v for k, v in sim.columns.items() if k != "co2"})
    with pytest.raises(ValueError, match="needs a planar_fit"):
        FluxSettings(rotation="planar")
    with pytest.raises(ValueError, match="path 'wet'"):
        FluxSettings(path="wet")


def test_a_half_hour_without_a_valid_record_gives_nan_and_flag_2(recwarn):
    sim = simulate_half_hour(FluxSiteSpec(duration_s=300), seed=1)
    cols = dict(sim.columns)
    cols["sonic_diag"] = np.ones_like(cols["sonic_diag"])
    r = process_half_hour(block_from_columns(sim.start, sim.fs_hz, cols), settings_for("open", 0.3))
    assert r.n_valid == 0 and np.isnan(r.h_w_m2) and r.flag_h == r.flag_co2 == 2
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_a_sites_history_from_a_toa5_file(tmp_path):
    """An hour and a bit of a logger's TOA5 table (Campbell names, Ts in degC, pressure in kPa):
    split on the clock into half hours, the partial one at the end skipped, each processed."""
    sims = [simulate_half_hour(FluxSiteSpec(), seed=s, start=DAY + timedelta(minutes=30 * s)) for s in range(2)]
    tail = simulate_half_hour(FluxSiteSpec(duration_s=120), seed=9, start=DAY + timedelta(hours=1))
    names = {"Ux": "u", "Uy": "v", "Uz": "w", "Ts": "ts", "CO2": "co2", "H2O": "h2o", "press": "pressure_pa",
             "diag_sonic": "sonic_diag", "diag_irga": "gas_diag"}
    cols = {k: np.concatenate([s.columns[v] for s in (*sims, tail)]) for k, v in names.items()}
    cols["Ts"] = cols["Ts"] - 273.15
    cols["press"] = cols["press"] / 1000
    n = len(cols["Ux"])
    time = np.datetime64("2026-06-01T00:00:00", "ns") + (np.arange(n) * 50_000_000).astype("timedelta64[ns]")
    write_toa5(tmp_path / "ts_data.dat", RawTable(list(names), [""] * len(names), cols, time))

    table = read_toa5(tmp_path / "ts_data.dat")
    cmap = ColumnMap(u="Ux", v="Uy", w="Uz", ts="Ts", co2="CO2", h2o="H2O", pressure="press",
                     sonic_diag="diag_sonic", gas_diag="diag_irga", ts_celsius=True, pressure_kpa=True)
    periods = list(half_hours(table.time, table.columns))
    assert [start for start, _ in periods] == [DAY, DAY + timedelta(minutes=30)]
    for (start, period), sim in zip(periods, sims):
        r = process_half_hour(block_from_columns(start, 20.0, period, cmap), settings_for("open", 0.3))
        assert r.start == start
        assert r.co2_flux_umol_m2_s == pytest.approx(sim.truth.co2_flux_umol_m2_s, rel=0.05)
        assert r.h_w_m2 == pytest.approx(sim.truth.h_w_m2, rel=0.05)


def test_half_hours_refuses_times_going_backwards():
    t = np.array(["2026-06-01T00:00:01", "2026-06-01T00:00:00"], dtype="datetime64[ns]")
    with pytest.raises(ValueError, match="times go backwards"):
        list(half_hours(t, {"w": np.zeros(2)}))
