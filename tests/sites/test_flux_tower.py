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
from support.wait import wait_until

from simulators.flux_site import simulate_half_hour
from simulators.flux_stream import FluxInstrument

SPEED = 120.0
DEVICES = ("sonic-1", "irga-1")
HALF_HOUR = timedelta(minutes=30)

pytestmark = pytest.mark.slow


def simulated_seconds_in_real_time(text: str) -> str:
    """Two driver settings are simulated seconds, and the delays they bound happen in real time,
    which --speed 120 multiplies by 120 (the bench pumps every 50 ms real, 6 s simulated):
    - `clock_window_s`: the record clock (drivers/record_clock.py) takes each stream's start from the
      least delayed poll of the window. 600 s is 5 real seconds here, and the best poll of one window
      is tens of ms real (seconds simulated) later than another's, so the start estimates of the
      sonic and the analyzer wander apart by records and their covariance is smeared. The window
      exists to follow an instrument clock running slow; a simulated instrument runs on the bench's
      clock, which is the agent's: the whole run (7200 s) is right;
    - `silent_s`: 10 s is 83 ms real, which a busy machine's scheduling pauses exceed; each timeout
      restarts the record clock on one late poll. 120 s simulated is 1 s real."""
    assert text.count("poll_interval_s = 1.0\n") == 2, "the site's fast instruments changed: update the edit"
    return text.replace("poll_interval_s = 1.0\n", "poll_interval_s = 1.0\nclock_window_s = 7200\nsilent_s = 120\n")


def flux_record(db_path, start: str) -> dict | None:
    """The agent's flux record of the period starting at `start` (ISO Z), once stored."""
    if not db_path.exists():
        return None
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    try:
        row = db.execute("SELECT payload FROM flux WHERE time = ?", (start,)).fetchone()
    except sqlite3.OperationalError:  # no flux table yet
        return None
    finally:
        db.close()
    return json.loads(row[0]) if row else None


def test_a_flux_tower_stores_every_record_and_the_half_hours_true_fluxes(tmp_path):
    run = site("flux-tower", tmp_path, SPEED, simulated_seconds_in_real_time)
    try:
        started = run.start_agent()
        # the first half hour the agent sees whole (a busy machine can take a simulated half hour to
        # start the agent: the period follows it, not a fixed time)
        period = datetime(2026, 3, 1, tzinfo=UTC) + HALF_HOUR * (int((started - datetime(2026, 3, 1, tzinfo=UTC))
                                                                    / HALF_HOUR) + 1)
        key = f"{period:%Y-%m-%dT%H:%M:%S}Z"
        run.run_until(period + timedelta(minutes=31), timeout=240)
        # the period closes when both streams are past it; its processing may lag on a busy machine
        wait_until(lambda: flux_record(tmp_path / "station.sqlite", key), 120, 0.05, f"the {key} flux record")
        before = {d: run.stats(d)["records_sent"] for d in DEVICES}
        assert run.stop_agent() == 0
        sent = {d: run.stats(d)["records_sent"] for d in DEVICES}
        log = run.log.read_text(errors="replace")
    finally:
        run.close()
    db = sqlite3.connect(tmp_path / "station.sqlite")
    stored = dict(db.execute("SELECT device, SUM(n) FROM highrate_block GROUP BY device").fetchall())
    in_period = dict(db.execute("SELECT device, n FROM highrate_block WHERE start = ?", (key.replace("Z", ".000Z"),)))
    fluxes = {r[0]: json.loads(r[1]) for r in db.execute("SELECT time, payload FROM flux")}
    raw_rows = db.execute("SELECT COUNT(*) FROM raw").fetchone()[0]
    db.close()
    print(f"sent {sent}, stored {stored}, in {period:%H:%M}: {in_period}; flux records {sorted(fluxes)}")
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
    rec = fluxes[key]
    bench = tomllib.loads((SITES / "flux-tower" / "bench.toml").read_text())["instruments"][0]
    truth = simulate_half_hour(FluxInstrument.model_validate(bench).spec(), bench["seed"], period).truth
    print(f"CO2 flux {rec['co2_flux_umol_m2_s']:.3f} (true {truth.co2_flux_umol_m2_s:.3f}), "
          f"H {rec['h_w_m2']:.1f} (true {truth.h_w_m2:.1f}), flags {rec['flag_co2']} {rec['flag_h']}, "
          f"lag {rec['lag_co2_s']} s (nominal: {rec['lag_co2_nominal']})")
    assert rec["co2_flux_umol_m2_s"] == pytest.approx(truth.co2_flux_umol_m2_s, rel=0.05)
    assert rec["h_w_m2"] == pytest.approx(truth.h_w_m2, rel=0.05)
    assert rec["flag_co2"] < 2 and rec["flag_h"] < 2
