import json
import subprocess
import sys
from pathlib import Path

import pytest

from ghgnet.config import ConfigError
from station_agent.config import load_station_config, station_schema

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "configs" / "station.example.toml"

MINIMAL = """
[station]
id = "tower-1"

[[analyzers]]
id = "picarro-1"
driver = "picarro.g2401"
url = "socket://127.0.0.1:51020"
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "station.toml"
    p.write_text(text)
    return p


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "station_agent.cli", *args], capture_output=True, text=True, timeout=60
    )


def test_example_config_is_valid_and_paths_resolve_against_its_folder():
    cfg = load_station_config(EXAMPLE)
    assert cfg.station.id == "demo-tower"
    assert cfg.storage.path == (ROOT / "configs" / "../data/demo-tower/station.sqlite")
    assert cfg.analyzers[0].driver == "picarro.g2401"


def test_relative_storage_path_resolves_against_the_config_folder(tmp_path):
    cfg = load_station_config(write(tmp_path, MINIMAL + '\n[storage]\npath = "db/s.sqlite"\n'))
    assert cfg.storage.path == tmp_path / "db" / "s.sqlite"


def test_unknown_keys_are_errors_naming_file_and_field(tmp_path):
    path = write(tmp_path, MINIMAL + "colour = 'red'\n\n[processing]\nmin_samplez = 3\n")
    with pytest.raises(ConfigError) as err:
        load_station_config(path)
    assert f"{path}: processing.min_samplez: unknown key (not allowed here)" in err.value.lines
    assert f"{path}: analyzers.0.colour: unknown key (not allowed here)" in err.value.lines


def test_unknown_driver_lists_the_known_ones(tmp_path):
    path = write(tmp_path, MINIMAL.replace("picarro.g2401", "picaro.g2041"))
    with pytest.raises(ConfigError) as err:
        load_station_config(path)
    (line,) = err.value.lines
    assert line.startswith(f"{path}: analyzers.0")
    assert "picaro.g2041" in line and "picarro.g2401" in line


def test_bad_values_and_duplicate_ids(tmp_path):
    text = MINIMAL.replace('id = "tower-1"', 'id = "Tower 1"') + (
        '\n[[analyzers]]\nid = "picarro-1"\ndriver = "picarro.g2301"\nurl = "/dev/ttyS0"\n'
        "\n[processing]\ncavity_temp_c = [46.0, 44.0]\n"
    )
    with pytest.raises(ConfigError) as err:
        load_station_config(write(tmp_path, text))
    joined = "\n".join(err.value.lines)
    assert "station.id: String should match pattern" in joined
    assert "processing.cavity_temp_c: Value error, window (46.0, 44.0) must have low < high" in joined


def test_duplicate_device_ids_are_refused(tmp_path):
    text = MINIMAL + '\n[[analyzers]]\nid = "picarro-1"\ndriver = "picarro.g2301"\nurl = "/dev/ttyS0"\n'
    with pytest.raises(ConfigError, match="device id 'picarro-1' is used twice"):
        load_station_config(write(tmp_path, text))


def test_toml_syntax_error_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"station.toml: \(toml\): "):
        load_station_config(write(tmp_path, "[station\n"))
    with pytest.raises(ConfigError, match=r"nope.toml: \(file\): no such file"):
        load_station_config(tmp_path / "nope.toml")


def test_config_check_command_exit_codes_and_lines(tmp_path):
    ok = cli("config", "check", str(EXAMPLE))
    assert ok.returncode == 0, ok.stderr
    bad = write(tmp_path, MINIMAL + "\n[storage]\nraw_retention_days = -1\nfoo = 1\n")
    res = cli("config", "check", str(bad))
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert f"{bad}: storage.raw_retention_days: Input should be greater than 0" in lines
    assert f"{bad}: storage.foo: unknown key (not allowed here)" in lines
    assert all(line.startswith(f"{bad}: ") for line in lines)


def test_schema_command_matches_the_schema_kept_in_configs():
    res = cli("config", "schema")
    assert res.returncode == 0, res.stderr
    schema = json.loads(res.stdout)
    assert schema == station_schema()
    kept = ROOT / "configs" / "station.schema.json"
    assert json.loads(kept.read_text()) == schema, "run: station-agent config schema --out configs/station.schema.json"


def test_a_cylinder_scale_must_be_known_and_convertible(tmp_path):
    cyl = '\n[[cylinders]]\nid = "CAL-1"\nrole = "standard"\nassigned = {{ co2 = 400.0, ch4 = 1900.0 }}\nscale = {}\n'
    ok = load_station_config(write(tmp_path, MINIMAL + cyl.format('{ co2 = "WMO X2007" }')))
    assert ok.cylinders[0].scale == {"co2": "WMO X2007"}  # converted to X2019 when fitted
    for scale, words in (('{ co2 = "WMO-CO2-X2099" }', "unknown co2 calibration scale 'WMO-CO2-X2099'"),
                         ('{ ch4 = "WMO-CH4-X2004" }', "no checked conversion from WMO-CH4-X2004")):
        with pytest.raises(ConfigError) as err:
            load_station_config(write(tmp_path, MINIMAL + cyl.format(scale)))
        assert "cylinders.0" in str(err.value) and "scale." in str(err.value) and words in str(err.value)
