"""Hardware in the loop for an eddy-covariance site: configs/sites/flux-tower (its bench.toml and
station.toml, as shipped) run as real processes at speed 120: the WindMaster and the LI-7500 stream
10 Hz over real sockets, the agent keeps their records as half-hour blocks, processes each closed
half hour and stores a flux record. The complete half hour's CO2 and heat fluxes match the
simulator's truth within 5 %, and the records sent are the records stored."""

from __future__ import annotations

import json
import sqlite3
import tomllib
from datetime import UTC, datetime, timedelta

import pytest
from support.site import SITES, site

from simulators.flux_site import simulate_half_hour
from simulators.flux_stream import FluxInstrument

SPEED = 120.0
DEVICES = ("sonic-1", "irga-1")
PERIOD = datetime(2026, 3, 1, 0, 30, tzinfo=UTC)  # the first half hour the agent sees whole

pytestmark = pytest.mark.slow


def steadier_record_clocks(text: str) -> str:
    """At speed 120 a millisecond of scheduling delay is 0.12 simulated s, more than a record: the
    drivers' record clocks take the stream start from every poll of the run, not of 600 s (which at
    this speed is 5 real seconds)."""
    assert text.count("poll_interval_s = 1.0\n") == 2, "the site's fast instruments changed: update the edit"
    return text.replace("poll_interval_s = 1.0\n", "poll_interval_s = 1.0\nclock_window_s = 7200\n")


def test_a_flux_tower_stores_every_record_and_the_half_hours_true_fluxes(tmp_path):
    run = site("flux-tower", tmp_path, SPEED, steadier_record_clocks)
    try:
        started = run.start_agent()
        assert started < PERIOD, f"the agent started at {started}: too late for {PERIOD}"
        run.run_until(PERIOD + timedelta(minutes=31), timeout=120)
        before = {d: run.stats(d)["records_sent"] for d in DEVICES}
        assert run.stop_agent() == 0
        sent = {d: run.stats(d)["records_sent"] for d in DEVICES}
        log = run.log.read_text(errors="replace")
    finally:
        run.close()
    db = sqlite3.connect(tmp_path / "station.sqlite")
    stored = dict(db.execute("SELECT device, SUM(n) FROM highrate_block GROUP BY device").fetchall())
    in_period = dict(db.execute("SELECT device, n FROM highrate_block WHERE start = '2026-03-01T00:30:00.000Z'"))
    fluxes = {r[0]: json.loads(r[1]) for r in db.execute("SELECT time, payload FROM flux")}
    raw_rows = db.execute("SELECT COUNT(*) FROM raw").fetchone()[0]
    db.close()
    print(f"sent {sent}, stored {stored}, in {PERIOD:%H:%M}: {in_period}; flux records {sorted(fluxes)}")
    assert raw_rows == 0  # the 10 Hz records are blocks, not rows
    assert "records lost" not in log  # the LI-7500's record counter (Ndx) never skipped
    for device in DEVICES:
        # nothing lost: every record the bench had pumped before the stop is stored, less at most
        # what was in flight then (a pump of 0.05 s real = 6 s simulated = 60 records, one poll);
        # the bench goes on pumping while the agent shuts down, which nobody reads
        assert before[device] - 100 <= stored[device] <= sent[device], (device, before, sent, stored)
        # records are stamped on arrival (backwards from the poll at the output rate); at speed 120 a
        # pump arrives up to 6 simulated s late, so records at a period's edges may go next door
        assert abs(in_period[device] - 18000) <= 60, in_period
    rec = fluxes["2026-03-01T00:30:00Z"]
    bench = tomllib.loads((SITES / "flux-tower" / "bench.toml").read_text())["instruments"][0]
    truth = simulate_half_hour(FluxInstrument.model_validate(bench).spec(), bench["seed"], PERIOD).truth
    print(f"CO2 flux {rec['co2_flux_umol_m2_s']:.3f} (true {truth.co2_flux_umol_m2_s:.3f}), "
          f"H {rec['h_w_m2']:.1f} (true {truth.h_w_m2:.1f}), flags {rec['flag_co2']} {rec['flag_h']}, "
          f"lag {rec['lag_co2_s']} s (nominal: {rec['lag_co2_nominal']})")
    assert rec["co2_flux_umol_m2_s"] == pytest.approx(truth.co2_flux_umol_m2_s, rel=0.05)
    assert rec["h_w_m2"] == pytest.approx(truth.h_w_m2, rel=0.05)
    assert rec["flag_co2"] < 2 and rec["flag_h"] < 2
