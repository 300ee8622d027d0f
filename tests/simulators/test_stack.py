"""The simulated stack: seeded, time-consistent, physics that follows the load, and faults that show."""

from __future__ import annotations

import numpy as np
import pytest

from simulators.stack import StackFault, UnitSpec, simulate_stack

SPEC = UnitSpec()
DAY = np.arange(np.datetime64("2026-03-01T00:00"), np.datetime64("2026-03-03T00:00"), np.timedelta64(1, "m"))


def test_same_seed_same_stack_other_seed_other_noise():
    a, b, c = (simulate_stack(SPEC, DAY, seed=s) for s in (3, 3, 4))
    assert np.array_equal(a.values["co2_pct"], b.values["co2_pct"])
    assert not np.array_equal(a.values["co2_pct"], c.values["co2_pct"])


def test_a_minute_asked_alone_is_the_minute_of_the_whole_run():
    whole = simulate_stack(SPEC, DAY, seed=5)
    i = 1500
    alone = simulate_stack(SPEC, DAY[i:i + 1], seed=5)
    for name, values in whole.values.items():
        assert alone.values[name][0] == values[i], name
    assert alone.true_co2_kg_h[0] == whole.true_co2_kg_h[i]


def test_true_emission_at_full_load_by_hand():
    # the unit held at full load, with the full-load efficiency and O2
    spec = UnitSpec(min_load_fraction=1.0, efficiency_min_load=0.41, o2_min_load_pct=5.0)
    sim = simulate_stack(spec, DAY[:60])
    # 600 MW * 3.6 / 0.41 = 5268.3 GJ/h; * 0.0262 tC/GJ * 0.99 * 44/12 * 1000 = 501,046 kg/h
    assert sim.true_co2_kg_h == pytest.approx(600 * 3.6 / 0.41 * 0.0262 * 0.99 * 44 / 12 * 1000)
    # CO2 dry = 18.7 * (20.9 - 5) / 20.9; the flow carries that mass at that concentration
    co2 = 18.7 * 15.9 / 20.9
    assert sim.true_co2_dry_pct == pytest.approx(co2)
    assert sim.true_standard_flow_m3_h == pytest.approx(sim.true_co2_kg_h * 1e6 / (co2 * 44.01 / 22.414 * 1e4))


def test_flue_gas_follows_the_load():
    sim = simulate_stack(SPEC, DAY, seed=1)
    lo, hi = np.argmin(sim.load_mw), np.argmax(sim.load_mw)
    assert sim.load_mw[lo] < 0.8 * sim.load_mw[hi]
    assert sim.true_standard_flow_m3_h[lo] < sim.true_standard_flow_m3_h[hi]
    assert sim.values["o2_pct"][lo] > sim.values["o2_pct"][hi]
    assert sim.values["differential_pressure_pa"][lo] < sim.values["differential_pressure_pa"][hi]
    assert SPEC.min_load_fraction * 600 <= sim.load_mw.min() and sim.load_mw.max() <= 600


def test_shut_down_outage_and_start_up():
    outage = (np.datetime64("2026-03-01T12:00"), np.datetime64("2026-03-01T20:00"))
    sim = simulate_stack(SPEC, DAY, outages=[outage])
    t = sim.time
    off = (t >= outage[0]) & (t < outage[1])
    assert not sim.running[off].any() and sim.running[~off].all()
    assert np.all(sim.true_co2_kg_h[off] == 0.0)
    ramp_up = sim.load_mw[(t >= outage[1]) & (t < outage[1] + np.timedelta64(SPEC.startup_minutes, "m"))]
    assert ramp_up[0] < 0.02 * 600 and ramp_up[:30].mean() < 0.5 * ramp_up[-30:].mean()   # rising from zero
    ramp_down = sim.load_mw[(t >= outage[0] - np.timedelta64(60, "m")) & (t < outage[0])]
    assert ramp_down[-1] < ramp_down[0]
    # start-up burns with much excess air: O2 well above the full-load value
    assert sim.values["o2_pct"][np.searchsorted(t, outage[1]) + 5] > 12.0


def test_daily_checks_see_the_drift_and_a_span_fault():
    fault = StackFault("analyzer_drift", np.datetime64("2026-03-02T00:00"), np.datetime64("2026-03-03T00:00"),
                       {"span_error": 0.08})
    sim = simulate_stack(SPEC, DAY, seed=2, faults=[fault])
    assert [str(c.time) for c in sim.checks] == ["2026-03-01T02:00", "2026-03-02T02:00"]
    normal, faulty = sim.checks
    assert abs(normal.span_reading - 15.0) < 0.3
    assert faulty.span_reading - 15.0 == pytest.approx(15.0 * 0.08, abs=0.3)
    check_minutes = np.zeros(len(sim.time), bool)
    for c in sim.checks:
        check_minutes |= (sim.time >= c.time) & (sim.time < c.time + np.timedelta64(10, "m"))
    assert not sim.ok["co2_pct"][check_minutes].any() and sim.ok["co2_pct"][~check_minutes].all()


def test_faults_show_in_the_readings():
    def window(h0: int, h1: int) -> tuple[np.datetime64, np.datetime64]:
        return np.datetime64(f"2026-03-01T{h0:02d}:00"), np.datetime64(f"2026-03-01T{h1:02d}:00")

    faults = [StackFault("blocked_pitot", *window(4, 5)), StackFault("co2_over_range", *window(6, 7)),
              StackFault("device_lost", *window(8, 9), {"device": "flow"})]
    sim = simulate_stack(SPEC, DAY, seed=3, faults=faults)
    t = sim.time

    def inside(w):
        return (t >= w[0]) & (t < w[1])

    assert sim.values["differential_pressure_pa"][inside(window(4, 5))].max() < 1.0
    assert np.all(sim.values["co2_pct"][inside(window(6, 7))] == SPEC.co2_full_scale_pct)
    assert np.all(np.isnan(sim.values["differential_pressure_pa"][inside(window(8, 9))]))
    assert not np.isnan(sim.values["co2_pct"][inside(window(8, 9))]).any()
    assert sim.lost.tolist() == inside(window(8, 9)).tolist()
    with pytest.raises(ValueError, match="unknown stack fault 'smoke'"):
        StackFault("smoke", t[0], t[1])
