"""The bench resolves each instrument's `model` through the `ghgnet.simulators` entry points."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from drivers.registry import simulator_names
from ghgnet.clock import make_clock
from simulators.bench import Bench, PicarroBench
from simulators.config import BenchConfig, PicarroInstrument


def test_bundled_bench_models_are_registered_as_entry_points():
    assert {"picarro.g2401", "picarro.g2301", "vici.multiposition", "modbus.device"} <= set(simulator_names())


def test_an_instrument_is_validated_by_its_models_config_and_built_by_it():
    cfg = BenchConfig.model_validate({"instruments": [{"id": "p", "model": "picarro.g2301", "columns": ["CO2"]}]})
    assert type(cfg.instruments[0]) is PicarroInstrument is PicarroBench.Config
    bench = Bench(cfg, make_clock(1.0))
    assert type(bench.devices["p"]).__name__ == "PicarroSimulator"


def test_an_unknown_model_is_an_error_that_lists_the_known_ones():
    with pytest.raises(ValidationError) as err:
        BenchConfig.model_validate({"instruments": [{"id": "p", "model": "acme.nothing"}]})
    (e,) = err.value.errors()
    assert e["loc"] == ("instruments", 0, "model")
    assert "unknown simulator 'acme.nothing'" in e["msg"] and "picarro.g2401" in e["msg"]


def test_a_model_of_the_wrong_kind_is_refused_where_it_stands():
    with pytest.raises(ValidationError, match="'vici.multiposition' is a valve simulator, not an analyzer"):
        BenchConfig.model_validate({"instruments": [{"id": "v", "model": "vici.multiposition"}]})


def test_a_models_own_field_errors_keep_their_path(tmp_path):
    bad = tmp_path / "bench.toml"
    bad.write_text('[[instruments]]\nid = "ok"\nmodel = "picarro.g2401"\n\n'
                   '[[instruments]]\nid = "p"\nmodel = "picarro.g2401"\ncolums = ["CO2"]\n')
    run = subprocess.run([sys.executable, "-m", "simulators.cli", "config", "check", str(bad)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert run.stderr.strip() == f"{bad}: instruments.1.colums: unknown key (not allowed here)"
