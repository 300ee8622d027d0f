"""A driver package from outside this repository, built and installed as a third party would.

tests/fixtures/acme_tiny is such a package (driver, bench simulator, the species SF6, its own
pyproject.toml registering the three entry points, and its own tests). It is built and installed
with pip into a folder put on PYTHONPATH; then the real commands see it: `station-agent drivers
list`, `station-sim run` serving it by `model = "acme.tiny"` on a real socket, `station-agent
probe` reading it through the registry, and the package's own tests (ghgnet's conventions suite).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "acme_tiny"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    """An environment whose Python sees the installed acme_tiny package (and this ghgnet)."""
    tmp = tmp_path_factory.mktemp("acme")
    source, site = tmp / "acme_tiny", tmp / "site"
    shutil.copytree(FIXTURE, source, ignore=shutil.ignore_patterns("tests"))  # the build writes beside it
    build = subprocess.run(
        # built with this venv's setuptools and wheel (the `test` extra), offline: no build isolation
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "--target", str(site), str(source)],
        capture_output=True, text=True, timeout=120,
    )
    assert build.returncode == 0, build.stderr
    assert (site / "acme_tiny" / "driver.py").is_file()
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}


def control(address: str, request: dict) -> dict:
    """One request to the bench's JSON-lines control port, its reply."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as conn, conn.makefile("rwb") as f:
        f.write(json.dumps(request).encode() + b"\n")
        f.flush()
        return json.loads(f.readline())


def run(args: list[str], env: dict[str, str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, env=env, **kw)


def test_drivers_list_shows_the_third_party_driver(env):
    res = run([str(BIN / "station-agent"), "drivers", "list", "--json"], env)
    assert res.returncode == 0, res.stderr
    rows = {r["name"]: r for r in json.loads(res.stdout)}
    assert rows["acme.tiny"] == {"name": "acme.tiny", "kind": "analyzer", "class": "acme_tiny.driver.TinyAnalyzer",
                                 "simulator": "acme_tiny.simulator:TinySimulator"}
    assert "picarro.g2401" in rows


def test_station_sim_models_lists_its_bench_model(env):
    res = run([str(BIN / "station-sim"), "models", "--json"], env)
    assert res.returncode == 0, res.stderr
    rows = {r["model"]: r for r in json.loads(res.stdout)}
    assert rows["acme.tiny"] == {"model": "acme.tiny", "kind": "analyzer", "class": "acme_tiny.simulator.TinyBench"}
    assert rows["picarro.g2401"]["class"] == "simulators.bench.PicarroBench"


def test_the_bench_serves_it_by_model_and_the_station_reads_it_through_the_registry(env, tmp_path):
    bench = tmp_path / "bench.toml"
    bench.write_text('[[instruments]]\nid = "tiny-1"\nmodel = "acme.tiny"\nsf6_ppt = 11.5\nserial = "T-42"\n')
    sim = subprocess.Popen([str(BIN / "station-sim"), "run", "--config", str(bench)], env=env,
                           stdout=subprocess.PIPE, stderr=(tmp_path / "sim.log").open("w"), text=True)
    try:
        endpoints = json.loads(sim.stdout.readline())
        tiny = endpoints["instruments"]["tiny-1"]
        assert tiny["driver"] == "acme.tiny" and tiny["url"].startswith("socket://127.0.0.1:")
        station = tmp_path / "station.toml"
        station.write_text(f'[station]\nid = "acme-test"\n\n[storage]\npath = "station.sqlite"\n\n'
                           f'[[analyzers]]\nid = "tiny-1"\ndriver = "acme.tiny"\nurl = "{tiny["url"]}"\n')
        res = run([str(BIN / "station-agent"), "probe", "tiny-1", "--config", str(station), "--json"], env)
        assert res.returncode == 0, res.stdout + res.stderr
        probe = json.loads(res.stdout)
        # the simulator's first MEAS? answers sf6_ppt + 0.01
        assert probe == {"device": "tiny-1", "driver": "acme.tiny", "url": tiny["url"], "model": "ACME TINY T-42",
                         "values": {"sf6": 11.51}, "ok": True}
        assert control(endpoints["control"], {"cmd": "stats"}) == {"ok": True, "stats": {"tiny-1": {"requests": 1}}}
        assert control(endpoints["control"], {"device": "tiny-1", "fault": "garbage"}) == {
            "ok": False, "error": "analyzer 'tiny-1' (TinySimulator) offers no inject"}
    finally:
        sim.send_signal(signal.SIGTERM)
        assert sim.wait(timeout=30) == 0


def test_the_bench_refuses_an_unknown_model_naming_the_third_party_one(env, tmp_path):
    bench = tmp_path / "bench.toml"
    bench.write_text('[[instruments]]\nid = "x"\nmodel = "acme.tinyy"\n')
    res = run([str(BIN / "station-sim"), "config", "check", str(bench)], env)
    assert res.returncode == 2
    assert "instruments.0.model: unknown simulator 'acme.tinyy'" in res.stderr and "acme.tiny," in res.stderr


def test_its_species_registers_with_unit_and_goal(env):
    code = ("from ghgnet.species import get, goals; from drivers.reading import unit_of; "
            "print(get('sf6').molar_mass, unit_of('sf6'), unit_of('sf6_dry'), goals()['sf6'], goals()['co2'])")
    res = run([sys.executable, "-c", code], env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["146.06", "ppt", "ppt", "0.02", "0.1"]


def test_the_packages_own_tests_pass(env, tmp_path):
    tests = tmp_path / "acme_tests"
    shutil.copytree(FIXTURE / "tests", tests)
    res = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tests), str(tests)],
              env, cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "4 passed" in res.stdout


def test_its_bench_table_keeps_its_own_fields_through_a_dump_and_reload(env):
    code = ("from simulators.config import BenchConfig; "
            "c = BenchConfig.model_validate({'instruments': [{'id': 't', 'model': 'acme.tiny', 'sf6_ppt': 3.5}]}); "
            "i = BenchConfig.model_validate(c.model_dump()).instruments[0]; print(type(i).__name__, i.sf6_ppt)")
    res = run([sys.executable, "-c", code], env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["TinyInstrument", "3.5"]
