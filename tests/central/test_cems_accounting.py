"""The accounting method by hand, and the activity CSV: good files read, bad ones named precisely."""

from __future__ import annotations

from pathlib import Path

import pytest

from central.cems import DEFAULT_COAL_CARBON_TC_PER_GJ, ActivityError, FuelMonth, accounting_months, read_activity_csv

GOOD = """unit,month,fuel,consumption_t,ncv_gj_per_t,carbon_tc_per_gj,oxidation_fraction
unit-1,2026-03,coal,152000,20.9,0.0262,0.99
unit-1,2026-04,coal,148500,21.1,,0.99
unit-1,2026-04,diesel,1200,42.6,0.0202,0.98
"""


def _write(tmp_path: Path, text: str, name: str = "activity.csv", bom: bool = False) -> Path:
    path = tmp_path / name
    path.write_text(("\ufeff" if bom else "") + text, encoding="utf-8")
    return path


def test_accounting_mass_by_hand_with_the_coal_default_and_two_fuels(tmp_path):
    rows = read_activity_csv(_write(tmp_path, GOOD, bom=True))
    march, april = accounting_months(rows)
    # 152,000 t * 20.9 GJ/t * 0.0262 tC/GJ * 0.99 * 44/12 = 302,132.7408 t CO2
    assert (march.unit, march.month) == ("unit-1", "2026-03")
    assert march.mass_t == pytest.approx(302_132.7408)
    assert not march.carbon_defaulted
    # coal without carbon content: the default 0.03085 -> 350,889.7664 t; diesel 1,200 * 42.6 * 0.0202
    # * 0.98 * 44/12 = 3,710.5622 t
    assert april.mass_t == pytest.approx(350_889.7664 + 3_710.5622, abs=1e-3)
    assert april.carbon_defaulted and april.fuels == ("coal", "diesel")
    assert DEFAULT_COAL_CARBON_TC_PER_GJ == 0.03085


def test_only_coal_has_a_default_carbon_content():
    with pytest.raises(ValueError, match="no default for this fuel"):
        _ = FuelMonth("u", "2026-01", "gas", 1.0, 1.0, None, 1.0).emission_t


def test_every_problem_is_named_by_file_row_and_field(tmp_path):
    text = """unit,month,fuel,consumption_t,ncv_gj_per_t,carbon_tc_per_gj,oxidation_fraction
unit-1,2026-13,coal,152000,20.9,0.0262,0.99
unit-1,2026-03,coal,-5,20.9,0.0262,0.99
,2026-03,gas,10,35,,1.2
unit-1,2026-04,coal,100,abc,0.0262,0.99
unit-1,2026-04,Coal,100,20,0.0262,0.99
unit-1,2026-05,coal,100,20,0.0262
"""
    path = _write(tmp_path, text)
    with pytest.raises(ActivityError) as err:
        read_activity_csv(path)
    problems = err.value.problems
    assert f"{path}: row 2: month: '2026-13' is not YYYY-MM" in problems
    assert f"{path}: row 3: consumption_t: -5 is outside [0, 1e+09]" in problems
    assert f"{path}: row 4: unit: empty" in problems
    assert any(p.startswith(f"{path}: row 4: carbon_tc_per_gj: empty, and only coal has a default") for p in problems)
    assert f"{path}: row 4: oxidation_fraction: 1.2 is outside (0, 1]" in problems
    assert any(p.startswith(f"{path}: row 5: ncv_gj_per_t:") for p in problems)
    assert f"{path}: row 6: fuel: 'Coal' for unit-1 2026-04 already on row 5" in problems
    assert f"{path}: row 7: oxidation_fraction: empty" in problems
    assert len(problems) == 8


def test_header_problems_and_unreadable_files(tmp_path):
    path = _write(tmp_path, "unit,month,fuel,consumption,ncv_gj_per_t,carbon_tc_per_gj,oxidation_fraction\n")
    with pytest.raises(ActivityError) as err:
        read_activity_csv(path)
    assert err.value.problems == [f"{path}: row 1: header: missing column(s) consumption_t",
                                  f"{path}: row 1: header: unknown column(s) consumption; known: unit, month, fuel, "
                                  "consumption_t, ncv_gj_per_t, carbon_tc_per_gj, oxidation_fraction"]
    with pytest.raises(ActivityError, match="cannot read"):
        read_activity_csv(tmp_path / "missing.csv")
    extra = _write(tmp_path, GOOD.splitlines()[0] + "\nunit-1,2026-03,coal,1,20,0.026,0.99,surplus\n", "extra.csv")
    with pytest.raises(ActivityError, match="row 2: more fields than the header's 7"):
        read_activity_csv(extra)
