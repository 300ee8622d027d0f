"""Hardware in the loop for the LI-COR family: the tall-tower site (configs/sites/
tall-tower-g2401-li7820) run as real processes, `station-sim` and `station-agent`, for a simulated
day at high speed. A Picarro G2401 and a LI-7820 share one VICI valve; the LI-7820 publishes to
its own mosquitto broker. Both analyzers carry their own calibration error (gain, offset, drift);
calibrations every 4 h must bring every later target within the WMO compatibility goals (CO2
0.1 ppm, CH4 2 ppb, N2O 0.1 ppb), and minutes of both analyzers must be stored.
"""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import pytest
from support.site import next_midnight, site

SPEED = 2400.0  # 2880 left the agent short of N2O minutes on a loaded machine
GOALS = {"picarro-1": {"co2": 0.1, "ch4": 2.0}, "licor-1": {"n2o": 0.1}}
LICOR_GAIN = 1.01  # bench.toml: the LI-7820's response on N2O

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tall-tower")
    run = site("tall-tower-g2401-li7820", tmp, SPEED)
    try:
        run.run_until(next_midnight(run.start_agent()) + timedelta(minutes=5))
        stats = run.control({"cmd": "stats"})["stats"]
        truth = {dev: run.truth(dev) for dev in ("picarro-1", "licor-1")}
        assert run.stop_agent() == 0
        db = sqlite3.connect(tmp / "station.sqlite")
        problems = db.execute("SELECT time, device, kind, message FROM event WHERE severity IN ('warning', 'error')"
                              ).fetchall()
        db.close()
        return {"calibration": run.export("calibration"), "minute": run.export("minute"),
                "stats": stats, "truth": truth, "problems": problems}
    finally:
        run.close()


@pytest.mark.slow
def test_both_analyzers_are_calibrated_every_four_hours(day):
    cals = [r for r in day["calibration"] if r["kind"] == "calibration"]
    for dev, species in (("picarro-1", "co2"), ("licor-1", "n2o")):
        mine = [r for r in cals if r["device"] == dev]
        assert len(mine) >= 6, ([r["time_utc"] for r in mine], day["problems"])
        for r in mine:
            assert float(r[f"{species}_r2"]) > 0.9999, r
    for r in (r for r in cals if r["device"] == "licor-1"):
        assert not r["co2_c1"]  # the LI-7820 measures no CO2: no fit for it
        # the fit undoes the analyzer's gain (standards span 25 ppb: the slope is known to about 0.001)
        assert abs(float(r["n2o_c1"]) - 1 / LICOR_GAIN) < 0.005, r


@pytest.mark.slow
def test_every_target_after_the_first_calibration_is_within_its_goal(day):
    for dev, goals in GOALS.items():
        rows = [r for r in day["calibration"] if r["device"] == dev]
        first_cal = min(r["time_utc"] for r in rows if r["kind"] == "calibration")
        targets = [r for r in rows if r["kind"] == "target" and r["time_utc"] > first_cal]
        assert len(targets) >= 14, [r["time_utc"] for r in targets]
        worst = {sp: max(abs(float(r[f"{sp}_bias"])) for r in targets) for sp in goals}
        print(f"{dev}: worst target bias over {len(targets)} targets: {worst}")
        for r in targets:
            for sp, goal in goals.items():
                assert abs(float(r[f"{sp}_bias"])) <= goal, (dev, r)
                assert r[f"{sp}_within_goal"] == "1"


@pytest.mark.slow
def test_minutes_of_both_analyzers_are_stored_and_the_n2o_minutes_agree_with_the_truth(day):
    minutes = {dev: [r for r in day["minute"] if r["device"] == dev] for dev in GOALS}
    assert len(minutes["picarro-1"]) >= 1400 and len(minutes["licor-1"]) >= 1400, {k: len(v) for k, v in minutes.items()}
    stats = day["stats"]["licor-1"]
    assert stats["published"] == stats["produced"] >= 15000, stats  # a record every 5 s, none lost
    truth = day["truth"]["licor-1"]
    errors = []
    for r in minutes["licor-1"]:
        t = truth.get(r["time_utc"])
        if (not r["stream"].startswith("inlet:") or r["flag"] != "U" or "flush" in r["reasons"]
                or not r["n2o_cal_mean"] or t is None or int(r["n2o_n"]) != t["n"]):
            continue
        err = float(r["n2o_cal_mean"]) - t["n2o"]
        # a minute's mean carries its noise (0.13 ppb a record): 4 standard errors, plus half the
        # 0.1 ppb goal for the calibration in force (drift between calibrations, the fit's own noise)
        assert abs(err) <= 4 * float(r["n2o_std"]) / int(r["n2o_n"]) ** 0.5 + 0.05, (r, t)
        assert 0.5 < float(r["h2o"]) < 3.0
        errors.append(abs(err))
    print(f"N2O ambient minutes checked {len(errors)}: mean |calibrated - true| {sum(errors) / len(errors):.4f} ppb")
    assert len(errors) >= 300 and sum(errors) / len(errors) < 0.05
