"""A stack's emissions over HJ 212 (issue 18): a05001 (CO2 mg/m3 and kg) and a00000 (flue gas m3/s and
m3) from the station's emission minutes and hours, by hand on known records, then through the real
uplink and the simulated platform over TCP."""

from __future__ import annotations

from contextlib import closing
from datetime import UTC, datetime, timedelta

import pytest
from support.wait import wait_until
from test_hj212_uplink import MN, PW, Station

from simulators.hj212_platform import PlatformSimulator
from station_agent.forwarding.hj212_config import UplinkConfig
from station_agent.forwarding.hj212_emissions import CO2_MG_M3_PER_PCT, points_between
from station_agent.storage.store import StationStore

T0 = datetime(2026, 3, 1, tzinfo=UTC)  # 08:00 in Beijing
Z = "%Y-%m-%dT%H:%M:%SZ"


def em_minute(t: datetime, co2=12.0, flow=2.0e6, running=True, co2_valid=True, flow_valid=True, reasons=()):
    ok = co2_valid and flow_valid and running
    return {"period": "minute", "unit": "unit-1", "time": t.strftime(Z), "operating_h": 1 / 60 if running else 0.0,
            "co2_dry_pct": co2, "standard_flow_m3_h": flow,
            "mass_kg": co2 * 1e4 * 44.01 / 22.414 * 1e-6 * flow / 60 if ok else None,
            "co2_valid": co2_valid, "flow_valid": flow_valid, "reasons": list(reasons)}


def em_hour(t: datetime, co2=12.0, flow=2.0e6, operating_h=1.0, co2_modc="01", flow_modc="01", mass=None):
    mass = co2 * 1e4 * 44.01 / 22.414 * 1e-6 * flow * operating_h if mass is None else mass
    return {"period": "hour", "unit": "unit-1", "time": t.strftime(Z), "operating_h": operating_h,
            "co2_dry_pct": co2, "standard_flow_m3_h": flow, "mass_kg": mass, "co2_modc": co2_modc,
            "flow_modc": flow_modc, "reasons": []}


def test_an_hour_measured_and_one_substituted_after_an_over_range_by_hand():
    h0, h1 = T0, T0 + timedelta(hours=1)
    minutes = [em_minute(h0 + timedelta(minutes=i)) for i in range(60)]
    minutes += [em_minute(h1 + timedelta(minutes=i), co2=25.0, co2_valid=False, reasons=["co2_over_range"])
                for i in range(30)]
    minutes += [em_minute(h1 + timedelta(minutes=30 + i)) for i in range(30)]
    hours = [em_hour(h0), em_hour(h1, co2=12.5, co2_modc="H1", mass=49_100.0)]
    got = points_between(minutes, hours, h0, h1 + timedelta(hours=1), 2061, "Asia/Shanghai")
    assert [p.time for p in got] == [h0, h1]
    first, second = (dict(item for f in p.factors for item in f) for p in got)
    # 12 % vol = 12 x 19,635 mg/m3; 2.0e6 m3/h for one hour = 555.556 m3/s and 2.0e6 m3
    assert CO2_MG_M3_PER_PCT == pytest.approx(19635.0, abs=0.5)
    assert first == {"a05001-Cou": f"{12 * 1e4 * 44.01 / 22.414 * 1e-6 * 2e6:.3f}",
                     "a05001-Avg": f"{12 * CO2_MG_M3_PER_PCT:.3f}", "a05001-Flag": "N",
                     "a00000-Cou": "2000000.0", "a00000-Avg": "555.556", "a00000-Flag": "N"}
    # the substituted hour: its substituted values, flagged by the gap's cause (over range: T); the flow
    # was measured all along
    assert (second["a05001-Cou"], second["a05001-Avg"], second["a05001-Flag"]) == (
        "49100.000", f"{12.5 * CO2_MG_M3_PER_PCT:.3f}", "T")
    assert second["a00000-Flag"] == "N"


def test_minutes_and_a_day_with_a_shut_down_hour():
    minutes = [em_minute(T0), em_minute(T0 + timedelta(minutes=1), running=False),
               em_minute(T0 + timedelta(minutes=2), flow_valid=False, reasons=["differential_pressure_pa"])]
    got = points_between(minutes, [], T0, T0 + timedelta(minutes=3), 2051, "Asia/Shanghai")
    flags = [(d["a05001-Flag"], d["a00000-Flag"]) for d in (dict(i for f in p.factors for i in f) for p in got)]
    assert flags == [("N", "N"), ("F", "F"), ("N", "D")]
    # a Beijing day (16:00 UTC the day before to 16:00 UTC): 20 running hours and 4 stopped
    day = T0 - timedelta(hours=8)
    hours = [em_hour(day + timedelta(hours=i), operating_h=0.0 if i < 4 else 1.0, mass=0.0 if i < 4 else None)
             for i in range(24)]
    (p,) = points_between([], hours, day, day + timedelta(days=1), 2031, "Asia/Shanghai")
    d = dict(i for f in p.factors for i in f)
    hourly_kg = 12 * 1e4 * 44.01 / 22.414 * 1e-6 * 2e6
    assert d["a05001-Cou"] == f"{20 * hourly_kg:.3f}" and d["a05001-Flag"] == "N"
    assert d["a00000-Cou"] == f"{20 * 2e6:.1f}" and d["a00000-Avg"] == "555.556"
    with pytest.raises(ValueError, match="2051, 2061 and 2031"):
        points_between([], [], T0, T0, 2011, "UTC")


def test_a_stack_uplink_refuses_real_time_data():
    with pytest.raises(ValueError, match="2011"):
        UplinkConfig(name="prov", host="h", port=1, mn=MN, pw=PW, source="emissions", data=[2011, 2061])


def test_the_stack_sends_its_hours_once_each_and_only_when_computed(tmp_path):
    db = tmp_path / "station.sqlite"
    with closing(StationStore(db)) as store:
        store.insert_emissions([em_minute(T0 + timedelta(minutes=i)) for i in range(120)]
                               + [em_hour(T0), em_hour(T0 + timedelta(hours=1), co2_modc="H2")], T0)
    cfg = UplinkConfig(name="provincial", host="127.0.0.1", port=1, mn=MN, pw=PW, st="31", source="emissions",
                       data=[2061], since=T0, settle_s=0, overtime_s=2.0, recount=2, reconnect_min_s=0.05,
                       reconnect_max_s=0.3, connect_timeout_s=2, stop_drain_s=0.3)
    with PlatformSimulator(mn=MN, pw=PW) as platform:
        cfg = cfg.model_copy(update={"port": platform.port})
        # the station's clock is 5 h on: hours 2-4 are over but not computed, so they wait
        with Station(db, [cfg], now=T0 + timedelta(hours=5)) as station:
            platform.wait(lambda: len(platform.acked) == 2, what="two acknowledged hours")
            wait_until(lambda: station.backlog("provincial") == 0, message="an empty queue")
        # the station computes hour 2 later: it still goes (the uplink waited for it)
        with closing(StationStore(db)) as store:
            store.insert_emissions([em_hour(T0 + timedelta(hours=2))], T0)
        with Station(db, [cfg], now=T0 + timedelta(hours=5)) as station:
            platform.wait(lambda: len(platform.acked) == 3, what="the late hour acknowledged")
            wait_until(lambda: station.backlog("provincial") == 0, message="an empty queue")
        points = platform.points("2061")
        assert sorted(t for _, t in points) == ["20260301080000", "20260301090000", "20260301100000"]
        assert sorted(platform.qn_counts().values()) == [1, 1, 1]
        second = points[("2061", "20260301090000")]
        assert second.st == "31" and second.factors()["a05001"]["Flag"] == "D"  # substituted, cause unknown: D
        assert second.factors()["a00000"]["Avg"] == "555.556"
