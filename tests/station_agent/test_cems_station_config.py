"""The `[cems]` profile of a station config: the example site is valid, and each mistake is an error
naming its field; the minute inputs built from raw readings (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from ghgnet.config import ConfigError
from station_agent.config import load_station_config
from station_agent.emission.minute_inputs import minute_inputs

SITE = Path(__file__).resolve().parents[2] / "configs" / "sites" / "stack-cems" / "station.toml"


def with_cems(tmp_path: Path, old: str, new: str) -> Path:
    text = SITE.read_text()
    assert old in text
    path = tmp_path / "station.toml"
    path.write_text(text.replace(old, new).replace("../../../data/stack-cems/", str(tmp_path) + "/"))
    return path


def test_the_example_site_is_a_valid_cems_profile():
    cfg = load_station_config(SITE)
    assert cfg.cems.unit == "unit-1" and cfg.cems.settings().duct.diameter_m == 7.5
    assert cfg.cems.options().method == "hj75" and cfg.cems.options().hour_rule.min_valid_minutes == 45


@pytest.mark.parametrize("old, new, message", [
    ('running = "unit-1:running"', 'running = "unit-9:running"',
     "cems.inputs: device(s) ['unit-9'] are not [[devices]]"),
    ('kv = 1.06 ', 'kv = -1.0 ', "cems.kv: Input should be greater than 0"),
    ('duct = { shape = "round", diameter_m = 7.5 }', 'duct = { shape = "round" }',
     "cems.duct: Value error, a round duct needs diameter_m"),
    ('co2_pct = "cems-analyzer:co2_pct"\n', '', "cems: Value error, inputs: pitot velocity needs co2_pct"),
    ('substitution = "hj75"', 'substitution = "part75"', "part75_max_co2_pct and part75_max_flow_m3_h"),
    ('substitution = "hj75"', 'substitution = "part75"\npart75_max_co2_pct = 16.0\npart75_max_flow_m3_h = 3e6\n'
     'part75_max_load = 600.0', "part75_max_load needs inputs.load"),
    ('close_after_s = 120', 'close_after_s = 120\npart75_load_ranges = 21', "cems.part75_load_ranges"),
    ('analyzer_basis = "wet"', 'analyzer_basis = "moist"', "cems.analyzer_basis: Input should be 'wet' or 'dry'"),
    ('o2_pct = "cems-analyzer:o2_pct"', 'oxygen = "cems-analyzer:o2_pct"', "inputs: unknown input(s) ['oxygen']"),
    ('velocity_method = "pitot"', 'velocity_method = "ultrasonic"', "ultrasonic velocity needs velocity_m_s"),
])
def test_a_mistake_in_the_cems_profile_names_its_field(tmp_path, old, new, message):
    path = with_cems(tmp_path, old, new)
    with pytest.raises(ConfigError) as err:
        load_station_config(path)
    text = "\n".join(err.value.lines)
    assert message in text and str(path) in text, text


def test_minute_inputs_average_each_point_and_mark_the_daily_check(tmp_path):
    cfg = load_station_config(SITE).cems
    start = datetime(2026, 3, 1, 1, 58, tzinfo=UTC)
    rows = [
        {"device": "cems-analyzer", "time": "2026-03-01T01:58:10.000Z", "values": {"co2_pct": 11.0, "o2_pct": 5.0}},
        {"device": "cems-analyzer", "time": "2026-03-01T01:58:40.000Z", "values": {"co2_pct": 12.0, "o2_pct": 5.2}},
        {"device": "cems-flow", "time": "2026-03-01T01:59:10.000Z", "values": {"temperature_c": 50.0}},
        {"device": "unit-1", "time": "2026-03-01T01:58:10.000Z", "values": {"running": 1.0}},
        {"device": "other", "time": "2026-03-01T01:58:10.000Z", "values": {"co2_pct": 99.0}},
    ]
    got = minute_inputs(rows, cfg, start, 3)
    assert got.values["co2_pct"][0] == pytest.approx(11.5) and np.isnan(got.values["co2_pct"][1])
    assert got.values["temperature_c"][1] == 50.0
    # the unit's state is carried over the minutes the unit device did not answer
    assert got.running.tolist() == [True, True, True]
    # 02:00 is the daily check: the analyzer's values are not OK then
    assert got.ok["co2_pct"].tolist() == [True, True, False]


def test_the_emissions_command_refuses_bad_input_naming_it(tmp_path):
    from typer.testing import CliRunner

    from station_agent.cli import app

    site = with_cems(tmp_path, 'unit = "unit-1"', 'unit = "unit-1"')
    bad_by = CliRunner().invoke(app, ["emissions", "--config", str(site), "--from", "2026-03-01", "--to",
                                      "2026-04-01", "--by", "week"])
    assert bad_by.exit_code == 2 and "--by: 'week' is not one of hour, day, month" in bad_by.output
    no_db = CliRunner().invoke(app, ["emissions", "--config", str(site), "--from", "2026-03-01", "--to", "2026-04-01"])
    assert no_db.exit_code == 3, no_db.output
    plain = tmp_path / "plain.toml"
    plain.write_text('[station]\nid = "plain"\n')
    no_cems = CliRunner().invoke(app, ["emissions", "--config", str(plain), "--from", "2026-03-01",
                                       "--to", "2026-04-01"])
    assert no_cems.exit_code == 2 and "has no [cems] table" in no_cems.output
