"""A simulated month of a 600 MW coal unit through the CEMS calculation: the monthly mass recovers
the simulator's true emission within 1 % when nothing fails, and injected faults come out as
substituted hours with their codes, in the hours the faults covered."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from simulators.stack import StackFault, UnitSpec, simulate_stack
from station_agent.processing.cems import (
    CalculationOptions,
    DailyCheck,
    MinuteInputs,
    RoundDuct,
    StackSettings,
    SubstitutionMethod,
    calculate,
    part75_co2,
    part75_flow,
)

SPEC = UnitSpec()
MONTH = np.arange(np.datetime64("2026-03-01T00:00"), np.datetime64("2026-04-01T00:00"), np.timedelta64(1, "m"))
OUTAGE = [(np.datetime64("2026-03-12T06:00"), np.datetime64("2026-03-13T18:00"))]
SETTINGS = StackSettings(duct=RoundDuct(SPEC.stack_diameter_m), kv=SPEC.kv_true, kp=SPEC.kp, co2_basis="wet",
                         co2_full_scale_pct=SPEC.co2_full_scale_pct)
FAULTS = [
    StackFault("blocked_pitot", np.datetime64("2026-03-05T10:00"), np.datetime64("2026-03-05T15:30")),
    StackFault("analyzer_drift", np.datetime64("2026-03-20T00:00"), np.datetime64("2026-03-21T12:00"),
               {"span_error": 0.08}),
    StackFault("device_lost", np.datetime64("2026-03-25T00:00"), np.datetime64("2026-03-26T08:00"),
               {"device": "analyzer"}),
    StackFault("co2_over_range", np.datetime64("2026-03-27T03:00"), np.datetime64("2026-03-27T05:00")),
]


HJ75 = CalculationOptions()


def _run(faults=(), seed=7, options=HJ75):
    sim = simulate_stack(SPEC, MONTH, seed=seed, outages=OUTAGE, faults=faults)
    inputs = MinuteInputs(time=sim.time, running=sim.running, values=sim.values, ok=sim.ok)
    checks = [DailyCheck(c.time, c.zero_reading, c.span_reading, c.span_reference, c.full_scale) for c in sim.checks]
    return sim, calculate(inputs, SETTINGS, checks, options)


@pytest.mark.parametrize("seed", [7, 8])
def test_a_month_with_nothing_failing_recovers_the_true_mass_within_1_percent(seed):
    sim, result = _run(seed=seed)
    (month,) = result.totals("month")
    assert month.mass_t == pytest.approx(sim.true_mass_t(), rel=0.01)
    assert month.substituted_hours == 0 and month.unfilled_hours == 0
    assert month.operating_hours == 744 - 36          # the 36 h outage
    assert month.availability == 1.0
    assert result.out_of_control == []
    # days add up to the month, the month to the year
    assert sum(d.mass_t for d in result.totals("day")) == pytest.approx(month.mass_t)
    assert result.totals("year")[0].mass_t == pytest.approx(month.mass_t)
    records = result.hours.records()
    assert len(records) == 708 and records[0].hour == "2026-03-01T00:00:00Z"
    assert {r.co2_modc for r in records} == {r.flow_modc for r in records} == {"01"}
    assert sum(r.mass_kg for r in records) / 1000.0 == pytest.approx(month.mass_t)


def _hours_between(result, start: str, end: str) -> np.ndarray:
    h = result.hours.hour
    return (h >= np.datetime64(start, "h")) & (h < np.datetime64(end, "h"))


def test_injected_faults_become_substituted_hours_with_their_codes():
    sim, result = _run(FAULTS)
    hours = result.hours
    # blocked pitot 10:00-15:30: the flow of hours 10-14 (15: 30 valid minutes) substituted, CO2 measured
    pitot = _hours_between(result, "2026-03-05T10", "2026-03-05T16")
    assert set(hours.flow_modc[pitot]) == {"H1"} and set(hours.co2_modc[pitot]) == {"01"}
    # the span fault fails the checks of 20 and 21 March at 02:00; out of control until the 22nd's check
    (period,) = result.out_of_control
    assert period.start == np.datetime64("2026-03-20T02:00") and period.end == np.datetime64("2026-03-22T02:00")
    ooc = _hours_between(result, "2026-03-20T02", "2026-03-22T02")
    assert set(hours.co2_modc[ooc]) == {"H5"}            # 48 h out of control: 720-hour maximum
    # the analyzer lost for 32 h: CO2 substituted, > 24 h
    lost = _hours_between(result, "2026-03-25T00", "2026-03-26T08")
    assert set(hours.co2_modc[lost]) <= {"H2", "H3"}
    assert set(hours.co2_modc[_hours_between(result, "2026-03-27T03", "2026-03-27T05")]) <= {"H1", "H3"}
    (month,) = result.totals("month")
    assert month.substituted_hours == int(hours.substituted.sum()) == 6 + 48 + 32 + 2
    assert month.measured_hours + month.substituted_hours == month.operating_hours
    assert Counter(hours.co2_modc[~(ooc | lost)])["H5"] == 0
    # substitution errs high (maxima), never absurdly: within 3 % of the truth here
    assert sim.true_mass_t() <= month.mass_t <= 1.03 * sim.true_mass_t()


def test_the_part75_option_marks_the_same_hours_with_part75_codes():
    options = CalculationOptions(method=SubstitutionMethod.PART75, part75_co2=part75_co2(16.0),
                                 part75_flow=part75_flow(3.0e6))
    _, result = _run(FAULTS, options=options)
    hours = result.hours
    codes = set(hours.co2_modc[hours.substituted]) | set(hours.flow_modc[hours.substituted])
    # a month has fewer than 720 QA hours: the initial procedure (07) for CO2 and flow
    assert codes == {"07", "01"}
    assert int(hours.substituted.sum()) == 6 + 48 + 32 + 2


def test_the_month_against_the_accounting_method_through_centrals_comparison():
    from datetime import datetime

    from central.cems import CemsHour, FuelMonth, accounting_months, cems_months, compare_months

    sim, result = _run(seed=9)
    records = result.hours.records()
    hours = [CemsHour("unit-1", datetime.fromisoformat(r.hour.replace("Z", "+00:00")), r.mass_kg,
                      r.operating_hours, r.co2_modc == "01" and r.flow_modc == "01", False) for r in records]
    # the fuel the simulated unit burnt: its heat input (true CO2 / (CC * OF * 44/12)) at 20.9 GJ/t
    heat_gj = sim.true_co2_kg_h.sum() / 60.0 / 1000.0 / (SPEC.carbon_tc_per_gj * SPEC.oxidised_fraction * 44 / 12)
    fuel_t = heat_gj / 20.9
    measured = FuelMonth("unit-1", "2026-03", "coal", fuel_t, 20.9, SPEC.carbon_tc_per_gj, SPEC.oxidised_fraction)
    defaulted = FuelMonth("unit-1", "2026-03", "coal", fuel_t, 20.9, None, SPEC.oxidised_fraction)
    (with_measured,) = compare_months(cems_months(hours), accounting_months([measured]))
    (with_default,) = compare_months(cems_months(hours), accounting_months([defaulted]))
    assert abs(with_measured.relative_difference) < 0.01
    # the default carbon content (0.03085 vs 0.0262 tC/GJ) puts the account 17.7 % above the stack:
    # (CEMS - accounting) / accounting = 0.0262 / 0.03085 - 1 = -15.1 %
    assert with_default.relative_difference == pytest.approx(0.0262 / 0.03085 - 1, abs=0.01)
    assert with_default.carbon_defaulted and with_measured.availability == 1.0


def test_part75_flow_is_substituted_from_the_hours_of_its_load_range():
    """The month with the unit's load: the blocked pitot's hours take the mean flow of the earlier
    hours in their own load range (code 07: fewer than 2,160 QA hours), which lands nearer the flow
    the stack really had than the mean of all earlier hours does."""
    from station_agent.processing.cems import load_ranges
    from station_agent.processing.cems.hourly import hourly_mean

    sim = simulate_stack(SPEC, MONTH, seed=7, outages=OUTAGE, faults=FAULTS[:1])
    inputs = MinuteInputs(time=sim.time, running=sim.running, values=sim.values, ok=sim.ok, load=sim.load_mw)
    checks = [DailyCheck(c.time, c.zero_reading, c.span_reading, c.span_reference, c.full_scale) for c in sim.checks]
    base = dict(method=SubstitutionMethod.PART75, part75_co2=part75_co2(16.0), part75_flow=part75_flow(3.0e6))
    by_load = calculate(inputs, SETTINGS, checks, CalculationOptions(**base, part75_max_load=SPEC.capacity_mw))
    one_range = calculate(inputs, SETTINGS, checks, CalculationOptions(**base))
    _, truth = _run(seed=7)
    pitot = _hours_between(by_load, "2026-03-05T10", "2026-03-05T16")
    assert set(by_load.hours.flow_modc[pitot]) == {"07"}
    # by hand from the hourly series: each hour's range, then the mean of the earlier valid hours in it
    hv = by_load.hourly
    ranges = load_ranges(hourly_mean(inputs.time, inputs.running, sim.load_mw, hv.hour), SPEC.capacity_mw)
    first = int(np.flatnonzero(pitot)[0])
    earlier = hv.flow_valid[:first] & hv.operating[:first]
    for i in np.flatnonzero(pitot):
        same = earlier & (ranges[:first] == ranges[i])
        assert by_load.hours.standard_flow_m3_h[i] == pytest.approx(hv.standard_flow_m3_h[:first][same].mean())
    true_flow = truth.hours.standard_flow_m3_h[pitot]
    err_load = np.abs(by_load.hours.standard_flow_m3_h[pitot] / true_flow - 1).mean()
    err_one = np.abs(one_range.hours.standard_flow_m3_h[pitot] / true_flow - 1).mean()
    print(f"blocked-pitot hours, mean |flow error|: load ranges {err_load:.2%}, one range {err_one:.2%}")
    assert err_load < err_one
