"""The simulated flux site: seeded, its population fluxes are the ones asked for, and the
instrument effects are there (tilt, lag, spikes, drop-outs, density effects)."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest

from simulators.flux_site import FluxSiteSpec, simulate_day, simulate_half_hour

START = datetime(2026, 6, 1, 12, tzinfo=timezone.utc)


def test_same_seed_same_records_other_seed_other_records():
    a = simulate_half_hour(FluxSiteSpec(), 1, START)
    b = simulate_half_hour(FluxSiteSpec(), 1, START)
    c = simulate_half_hour(FluxSiteSpec(), 2, START)
    np.testing.assert_array_equal(a.columns["w"], b.columns["w"])
    assert not np.array_equal(a.columns["w"], c.columns["w"])
    assert len(a.columns["w"]) == 36000


def test_realised_fluxes_scatter_around_the_prescribed_ones():
    spec = FluxSiteSpec()
    truths = [simulate_half_hour(spec, s, START).truth for s in range(20)]
    for got, want in ((np.mean([t.h_w_m2 for t in truths]), spec.h_w_m2),
                      (np.mean([t.le_w_m2 for t in truths]), spec.le_w_m2),
                      (np.mean([t.co2_flux_umol_m2_s for t in truths]), spec.co2_flux),
                      (np.mean([t.ustar_ms for t in truths]), spec.ustar_ms)):
        assert got == pytest.approx(want, rel=0.05)


def test_instrument_effects_are_in_the_records():
    sim = simulate_half_hour(FluxSiteSpec(sonic_pitch_deg=5.0, dropout_fraction=0.01), 3, START)
    c = sim.columns
    good = c["sonic_diag"] == 0
    assert abs(np.mean(c["w"][good])) > 0.1  # tilted sonic: mean w is not 0
    assert 0.005 < np.mean(~good) < 0.02 and np.abs(c["w"][~good]).max() > 50  # garbage under a bad diagnostic
    assert np.mean(c["ts"][good]) > 293.15  # Ts = T (1 + 0.51 q) is warmer than T
    # open path: molar densities (mmol m-3) near chi * p / (R T)
    assert np.mean(c["co2"][c["gas_diag"] == 0]) == pytest.approx(410e-6 * 101325 / (8.314 * 293.15) * 1e3, rel=0.02)


def test_closed_path_records_wet_mole_fractions():
    c = simulate_half_hour(FluxSiteSpec(path="closed"), 3, START).columns
    ok = c["gas_diag"] == 0
    assert np.median(c["co2"][ok]) == pytest.approx(410 / 1.012, rel=0.01)
    assert np.median(c["h2o"][ok]) == pytest.approx(12 / 1.012, rel=0.02)


def test_a_day_follows_the_sun():
    day = simulate_day(FluxSiteSpec(duration_s=300), 5, datetime(2026, 6, 1, tzinfo=timezone.utc))
    assert len(day) == 48
    noon, midnight = day[24].spec, day[0].spec
    assert noon.h_w_m2 > 150 and midnight.h_w_m2 < 0
    assert noon.co2_flux < -10 and midnight.co2_flux > 0


def test_bad_spec_is_named():
    with pytest.raises(ValueError, match="path 'wet'"):
        FluxSiteSpec(path="wet")
    with pytest.raises(ValueError, match="correlation"):
        FluxSiteSpec(correlation=1.0)
