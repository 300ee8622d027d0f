"""The CEMS flow and concentration chain against values worked out by hand (issue 18)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from station_agent.processing.cems.concentration import (
    MG_M3_PER_PERCENT,
    co2_dry_pct,
    dry_from_wet_pct,
    emission_rate_kg_h,
    mg_m3_from_pct,
)
from station_agent.processing.cems.flow import (
    RectangularDuct,
    RoundDuct,
    actual_flow_m3_h,
    flue_gas_density_kg_m3,
    flue_gas_molar_mass,
    pitot_velocity_m_s,
    section_velocity_m_s,
    standard_dry_flow_m3_h,
)


def test_duct_areas():
    assert RoundDuct(2.0).area_m2 == pytest.approx(math.pi)
    assert RectangularDuct(5.0, 4.0).area_m2 == 20.0
    with pytest.raises(ValueError, match="duct area"):
        actual_flow_m3_h(10.0, RoundDuct(0.0))


def test_pitot_velocity_kv_and_flows_by_hand():
    # Kp 0.84, dP 200 Pa, rho 1.0 kg/m3: 0.84 * sqrt(400) = 16.8 m/s; Kv 1.1 -> 18.48 m/s
    v_p = pitot_velocity_m_s(200.0, 1.0, kp=0.84)
    assert v_p == pytest.approx(16.8)
    v_s = section_velocity_m_s(v_p, kv=1.1)
    assert v_s == pytest.approx(18.48)
    # 5 m x 4 m duct: 3600 * 20 * 18.48 = 1,330,560 m3/h
    q_s = actual_flow_m3_h(v_s, RectangularDuct(5.0, 4.0))
    assert q_s == pytest.approx(1_330_560.0)
    # 60 degC, Ba 100,000 Pa, Ps -1,325 Pa, 10 % moisture:
    # 1,330,560 * 273.15/333.15 (0.8199009) * 98,675/101,325 (0.9738465) * 0.9 = 956,156.28 m3/h
    assert standard_dry_flow_m3_h(q_s, 60.0, 100_000.0, -1_325.0, 10.0) == pytest.approx(956_156.28, abs=0.01)


def test_negative_differential_pressure_has_no_velocity():
    assert np.isnan(pitot_velocity_m_s(-5.0, 1.0, kp=0.84))


def test_kv_must_be_positive():
    with pytest.raises(ValueError, match="Kv"):
        section_velocity_m_s(10.0, kv=0.0)


def test_flue_gas_density_by_hand():
    # dry: 44.01*0.12 + 31.999*0.06 + 28.014*0.82 = 30.17262; wet (10 %): *0.9 + 18.015*0.1 = 28.956858 g/mol
    m = flue_gas_molar_mass(12.0, 6.0, 10.0)
    assert m == pytest.approx(28.956858, abs=1e-9)
    # rho = 0.028956858 * 98,675 / (8.314462618 * 333.15) = 1.0315364 kg/m3
    assert flue_gas_density_kg_m3(m, 60.0, 98_675.0) == pytest.approx(1.0315364, abs=1e-7)


def test_dry_wet_case_by_hand():
    # a wet analyzer reads 11.2 % in gas with 12 % moisture: 11.2 / 0.88 = 12.72727 % dry
    assert dry_from_wet_pct(11.2, 12.0) == pytest.approx(12.727272727)
    assert co2_dry_pct(11.2, 12.0, "wet") == pytest.approx(12.727272727)
    # a dry analyzer's reading is used as it is, whatever the moisture
    assert co2_dry_pct(12.727272727, 12.0, "dry") == pytest.approx(12.727272727)
    # 12.72727 % * 44.01/22.414 * 1e4 = 249,900.63 mg/m3
    assert mg_m3_from_pct(12.727272727) == pytest.approx(249_900.63, abs=0.01)
    assert np.isnan(dry_from_wet_pct(5.0, 100.0))


def test_co2_density_and_the_domain_sanity_figure():
    assert MG_M3_PER_PERCENT == pytest.approx(19_635.05, abs=0.01)
    # 13 % and 2.0e6 m3/h: 13 * 19,635.05 * 2e6 * 1e-6 = 510,511 kg/h, about 510 t/h (DOMAIN.md)
    assert emission_rate_kg_h(mg_m3_from_pct(13.0), 2.0e6) == pytest.approx(510_511.3, abs=0.1)
