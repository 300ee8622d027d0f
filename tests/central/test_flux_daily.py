"""Daily sums of valid half hours: flags, u* filtering by season and night, coverage, units."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta

import pytest

from central.aggregation.flux_daily import daily_sums, season_of
from central.store import open_store
from ghgnet.wire import parse_batch
from simulators.flux_site import FluxSiteSpec, simulate_half_hour
from station_agent.processing.flux import FluxSettings, block_from_columns, process_half_hour

DAY = datetime(2026, 6, 1, tzinfo=UTC)


def half_hours(day: datetime, co2: float = -5.0, ustar: float = 0.4, flag: int = 0, n: int = 48) -> list[dict]:
    return [{"start": (day + timedelta(minutes=30 * i)).strftime("%Y-%m-%dT%H:%M:%SZ"), "duration_s": 1800.0,
             "flag_co2": flag, "co2_flux_umol_m2_s": co2, "h_w_m2": 100.0, "le_w_m2": 50.0, "ustar_ms": ustar}
            for i in range(n)]


def test_a_full_valid_day_sums_to_the_flux_times_the_day_in_grams_of_carbon():
    (d,) = daily_sums(half_hours(DAY))
    assert d.day == date(2026, 6, 1) and (d.n_records, d.n_valid, d.coverage) == (48, 48, 1.0)
    assert d.co2_valid_g_c_m2 == pytest.approx(-5.0 * 86400 * 12.011e-6)  # -5.19 g C m-2
    assert d.co2_daily_g_c_m2 == pytest.approx(d.co2_valid_g_c_m2)
    assert d.h_valid_mj_m2 == pytest.approx(8.64) and d.le_valid_mj_m2 == pytest.approx(4.32)


def test_flag_2_and_missing_fluxes_are_not_summed_and_low_coverage_gives_no_daily_estimate():
    recs = half_hours(DAY)
    for r in recs[:20]:
        r["flag_co2"] = 2
    recs[20]["co2_flux_umol_m2_s"] = None
    (d,) = daily_sums(recs)
    assert d.n_valid == 27 and d.co2_daily_g_c_m2 is None  # 27 of 48 < 80 %
    assert d.co2_valid_g_c_m2 == pytest.approx(-5.0 * 27 * 1800 * 12.011e-6)


def test_ustar_is_filtered_with_its_seasons_threshold_at_night_only_when_night_is_known():
    summer, winter = half_hours(DAY, ustar=0.15), half_hours(datetime(2026, 12, 1, tzinfo=UTC), ustar=0.15)
    thresholds = {"JJA": 0.2, "DJF": 0.1}
    d_summer, d_winter = daily_sums(summer + winter, thresholds)
    assert (d_summer.n_valid, d_summer.n_low_ustar, d_summer.ustar_filtered_all_day) == (0, 48, True)
    assert (d_winter.n_valid, d_winter.n_low_ustar) == (48, 0)  # 0.15 m/s is enough in winter
    (night_only,) = daily_sums(summer, thresholds, is_night=lambda t: t.hour < 6 or t.hour >= 20)
    assert (night_only.n_low_ustar, night_only.n_valid) == (20, 28)


def test_seasons_are_meteorological_and_bad_coverage_settings_are_refused():
    assert [season_of(datetime(2026, m, 1)) for m in (12, 1, 3, 6, 9)] == ["DJF", "DJF", "MAM", "JJA", "SON"]
    with pytest.raises(ValueError, match="min_coverage"):
        daily_sums([], min_coverage=0)


def test_central_receiver_flux_daily_writes_the_stored_days_as_csv(tmp_path):
    db = tmp_path / "central.sqlite"
    cfg = tmp_path / "central.toml"
    cfg.write_text(f'[mqtt]\nhost = "127.0.0.1"\nport = 1883\n[storage]\npath = "{db}"\n')
    store = open_store(backend="sqlite", path=db)
    sim = simulate_half_hour(FluxSiteSpec(fs_hz=10.0), 1, DAY)
    full = process_half_hour(block_from_columns(sim.start, sim.fs_hz, sim.columns), FluxSettings()).wire_dict()
    recs = [{"seq": i + 1, **full, **r} for i, r in enumerate(half_hours(DAY, ustar=0.15))]
    batch = {"schema": 1, "station": "ec-1", "kind": "flux", "sent": "2026-06-02T00:00:00Z", "records": recs}
    assert store.store_batch(parse_batch("ghg/v1/ec-1/flux", json.dumps(batch).encode()), DAY).new == 48
    store.close()
    cli = [sys.executable, "-m", "central.cli", "flux-daily", "--config", str(cfg), "--station", "ec-1",
           "--from", "2026-06-01", "--to", "2026-06-02"]
    run = subprocess.run([*cli, "--ustar", "JJA=0.1"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    (row,) = csv.DictReader(io.StringIO(run.stdout))
    assert (row["day"], row["n_valid"], row["n_low_ustar"]) == ("2026-06-01", "48", "0")
    assert float(row["co2_daily_g_c_m2"]) == pytest.approx(-5.0 * 86400 * 12.011e-6)
    filtered = subprocess.run([*cli, "--ustar", "JJA=0.2"], capture_output=True, text=True, timeout=60)
    (row,) = csv.DictReader(io.StringIO(filtered.stdout))
    assert (row["n_valid"], row["n_low_ustar"], row["co2_daily_g_c_m2"]) == ("0", "48", "")
    bad = subprocess.run([*cli, "--ustar", "summer=0.2"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "is not SEASON=M/S" in bad.stderr


def test_night_by_sun_knows_a_summer_night_from_a_summer_noon_and_the_poles_from_the_equator():
    from central.aggregation.flux_daily import night_by_sun, solar_elevation_deg

    zurich = night_by_sun(47.32, 8.41)
    assert not zurich(datetime(2026, 6, 21, 11, 0, tzinfo=UTC)) and zurich(datetime(2026, 6, 21, 22, 0, tzinfo=UTC))
    # at the June solstice's solar noon the sun stands 90 - 47.32 + 23.44 degrees high
    assert solar_elevation_deg(datetime(2026, 6, 21, 11, 27, tzinfo=UTC), 47.32, 8.41) == pytest.approx(66.1, abs=0.3)
    assert night_by_sun(78.2, 15.6)(datetime(2026, 12, 21, 12, 0, tzinfo=UTC))  # polar night at noon
    assert not night_by_sun(78.2, 15.6)(datetime(2026, 6, 21, 0, 0, tzinfo=UTC))  # midnight sun
    with pytest.raises(ValueError, match="latitude"):
        night_by_sun(95.0, 0.0)
