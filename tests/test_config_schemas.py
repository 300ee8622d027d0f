"""The JSON schemas kept in configs/ are those of the config models, and every example config is
valid (each CLI's `config check` exits 0 on it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(("kept", "command"), [
    ("station.schema.json", ["station-agent", "config", "schema"]),
    ("bench.schema.json", ["station-sim", "config", "schema"]),
    ("central.schema.json", ["central-receiver", "config", "schema"]),
    ("inversion.schema.json", ["central-receiver", "config", "schema", "--inversion"]),
])
def test_kept_schema_is_current(kept, command):
    res = subprocess.run([BIN / command[0], *command[1:]], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert json.loads((ROOT / "configs" / kept).read_text()) == json.loads(res.stdout), (
        f"regenerate with: {' '.join(command)} --out configs/{kept}")


@pytest.mark.parametrize(("example", "command"), [
    ("station.example.toml", "station-agent"),
    ("bench.example.toml", "station-sim"),
    ("central.example.toml", "central-receiver"),
])
def test_example_configs_are_valid(example, command):
    res = subprocess.run([BIN / command, "config", "check", ROOT / "configs" / example],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr


def test_bench_config_errors_name_file_and_field(tmp_path):
    bad = tmp_path / "bench.toml"
    bad.write_text("[[instruments]]\nid = 'picarro-1'\nmodel = 'picarro.g2401'\nport = -1\ncolour = 1\n")
    res = subprocess.run([BIN / "station-sim", "config", "check", bad], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert f"{bad}: instruments.0.colour: unknown key (not allowed here)" in res.stderr.splitlines()
    assert any(line.startswith(f"{bad}: instruments.0.port:") for line in res.stderr.splitlines())
