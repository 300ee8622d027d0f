"""`station-agent demo` from an installed wheel: its example configs are package data
(simulators/demo_configs/), kept equal to the documented configs/*.example.toml.

The wheel is built from a copy of the source tree and installed, without its dependencies, into a
throwaway venv that reads them from the project's venv; the demo then runs from a folder outside
the repository, so nothing of the source tree can be found by accident.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from simulators.network import DEMO_CONFIGS, DemoError, example_config

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "README.md", "ghgnet", "drivers", "simulators", "station_agent", "central")


@pytest.mark.parametrize("name", DEMO_CONFIGS)
def test_the_packaged_example_configs_are_the_documented_ones(name):
    packaged = ROOT / "simulators" / "demo_configs" / name
    assert packaged.read_bytes() == (ROOT / "configs" / name).read_bytes(), (
        f"{packaged} differs from configs/{name}: edit configs/{name}, then "
        f"cp configs/{name} simulators/demo_configs/{name}")
    assert example_config(name) == packaged.read_text()


def test_an_unknown_example_config_is_named():
    with pytest.raises(DemoError, match="no example config 'inversion.example.toml'"):
        example_config("inversion.example.toml")


def _copy_sources(into: Path) -> None:
    """The files a wheel is built from (the build writes build/ and *.egg-info beside them)."""
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, into / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif source.exists():
            shutil.copy2(source, into / name)


def _venv_with_the_projects_dependencies(path: Path) -> Path:
    """A venv whose own site-packages comes first, then the project venv's (a plain path in a .pth:
    its packages, but not the editable install of this source tree, which needs its own .pth run)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=60)
    python = path / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (Path(site) / "project_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def test_the_demo_runs_from_an_installed_wheel_outside_the_repository(tmp_path):
    source, wheels, elsewhere = tmp_path / "source", tmp_path / "wheels", tmp_path / "elsewhere"
    source.mkdir()
    elsewhere.mkdir()
    _copy_sources(source)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--disable-pip-version-check",
                            "-w", str(wheels), str(source)], capture_output=True, text=True, timeout=180)
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("ghgnet-*.whl")

    python = _venv_with_the_projects_dependencies(tmp_path / "venv")
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
                                "--no-deps", "--no-index", "--disable-pip-version-check", str(wheel)],
                               capture_output=True, text=True, timeout=120)
    assert installed.returncode == 0, installed.stderr

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    where = subprocess.run([python, "-c", "import simulators, station_agent; print(simulators.__file__); "
                            "print(station_agent.__file__)"], cwd=elsewhere, env=env,
                           capture_output=True, text=True, check=True).stdout.split()
    assert all(Path(p).is_relative_to(tmp_path / "venv") for p in where), f"not the installed wheel: {where}"

    demo = subprocess.run([tmp_path / "venv" / "bin" / "station-agent", "demo", "--hours", "1", "--speed", "1440",
                           "--json"], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=180)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    summary = json.loads(demo.stdout)
    assert summary["kinds"]["minute"]["produced"] >= 50  # one simulated hour, one record a minute
    for kind, k in summary["kinds"].items():
        assert k["stored"] == k["produced"] == k["acknowledged"], (kind, k)
    assert summary["lost"] == summary["duplicates"] == summary["still_queued"] == 0
    assert list(elsewhere.iterdir()) == [], "the demo wrote into the folder it was started from"
