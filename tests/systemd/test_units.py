"""The systemd units: verified and rated by systemd-analyze, their hardening checked against what
the agent needs (serial ports, MemoryDenyWriteExecute), and install.sh in --dry-run.

`systemd-analyze verify` insists that ExecStart= names an executable file. On a test machine
/opt/ghgnet/.venv does not exist (install.sh creates it on a station), so the verify test copies
the units to a temporary folder with /opt/ghgnet/.venv/bin/ rewritten to this virtualenv's bin
folder, where the very same console scripts live; nothing else in the units is changed.
`verify` exits 0 even on unknown keys or unparsable values (it only warns), so its output must
also be empty.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "systemd"
BIN = Path(sys.executable).parent
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze binary is not installed")
UNIT_NAMES = ["station-agent.service", "central-receiver.service", "central-web.service", "station-sim@.service"]


def directives(unit: str) -> dict[str, list[str]]:
    """Key -> values in file order (systemd allows a key several times)."""
    out: dict[str, list[str]] = {}
    for line in (UNITS / unit).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def localized_units(tmp_path: Path) -> Path:
    for name in UNIT_NAMES:
        text = (UNITS / name).read_text().replace("/opt/ghgnet/.venv/bin/", f"{BIN}/")
        (tmp_path / name).write_text(text)
    return tmp_path


def analyze(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([SYSTEMD_ANALYZE, *args], capture_output=True, text=True, timeout=60, cwd=cwd)


@needs_analyze
@pytest.mark.parametrize("unit", ["station-agent.service", "central-receiver.service", "central-web.service",
                                  "station-sim@bench1.service"])
def test_systemd_analyze_verify_passes_without_a_warning(tmp_path, unit):
    folder = localized_units(tmp_path)
    assert (BIN / "station-agent").exists()
    res = analyze("verify", unit, cwd=folder)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.strip() == "" and res.stderr.strip() == "", res.stdout + res.stderr


@needs_analyze
def test_verify_output_check_catches_a_misspelt_directive(tmp_path):
    """The control for the test above: a typo leaves rc 0 but is reported, and we would fail."""
    folder = localized_units(tmp_path)
    text = (folder / "station-agent.service").read_text().replace("ProtectHome=yes", "ProtectHomme=yes")
    (folder / "typo.service").write_text(text)
    res = analyze("verify", "typo.service", cwd=folder)
    assert "Unknown key" in res.stderr and "ProtectHomme" in res.stderr


def exposure(unit_path: Path) -> float:
    res = analyze("security", "--offline=true", "--no-pager", str(unit_path), cwd=unit_path.parent)
    m = re.search(r"Overall exposure level for (\S+): (\d+(?:\.\d+)?)", res.stdout)
    assert m, res.stdout + res.stderr
    return float(m.group(2))


@needs_analyze
def test_station_agent_exposure_is_2_5_or_less():
    level = exposure(UNITS / "station-agent.service")
    print(f"station-agent.service exposure {level}")
    assert level <= 2.5


@needs_analyze
@pytest.mark.parametrize("unit", ["central-receiver.service", "central-web.service", "station-sim@.service"])
def test_the_other_units_are_hardened_as_well(unit):
    level = exposure(UNITS / unit)
    print(f"{unit} exposure {level}")
    assert level <= 2.5


def test_station_agent_unit_has_what_the_agent_and_the_issue_need():
    d = directives("station-agent.service")
    one = {k: v[-1] for k, v in d.items()}
    assert one["ExecStart"] == "/opt/ghgnet/.venv/bin/station-agent run --config /etc/ghgnet/station.toml"
    assert one["Type"] == "notify" and one["NotifyAccess"] == "main"
    assert int(one["WatchdogSec"]) > 0 and one["Restart"] == "always" and int(one["RestartSec"]) > 0
    assert one["StartLimitIntervalSec"] == "0"  # never give up restarting
    assert one["User"] == "ghgnet" and one["SupplementaryGroups"] == "dialout"
    assert one["StateDirectory"] == "ghgnet"  # /var/lib/ghgnet, writable under ProtectSystem=strict
    # Serial ports: no PrivateDevices, a closed device policy with the tty classes allowed.
    assert one["PrivateDevices"] == "no" and one["DevicePolicy"] == "closed"
    assert d["DeviceAllow"] == ["char-ttyS rw", "char-ttyUSB rw", "char-ttyACM rw"]
    for key, value in {
        "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes", "NoNewPrivileges": "yes",
        "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes", "ProtectKernelLogs": "yes",
        "ProtectControlGroups": "yes", "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "RestrictNamespaces": "yes", "LockPersonality": "yes", "MemoryDenyWriteExecute": "yes",
        "SystemCallArchitectures": "native", "CapabilityBoundingSet": "", "UMask": "0027",
    }.items():
        assert one[key] == value, key
    assert d["SystemCallFilter"][0] == "@system-service"
    assert one["StandardOutput"] == "journal"


def test_simulator_template_takes_its_bench_config_from_the_instance_name():
    d = directives("station-sim@.service")
    assert d["ExecStart"] == ["/opt/ghgnet/.venv/bin/station-sim run --config /etc/ghgnet/bench/%i.toml $SIM_ARGS"]
    assert d["RuntimeDirectory"] == ["ghgnet-sim/%i"]
    c = directives("central-receiver.service")
    assert c["ExecStart"] == ["/opt/ghgnet/.venv/bin/central-receiver run --config /etc/ghgnet/central.toml"]
    assert c["PrivateDevices"] == ["yes"]


@pytest.mark.parametrize(("unit", "command"), [("central-receiver.service", "run"), ("central-web.service", "serve")])
def test_central_units_notify_and_have_a_watchdog(unit, command):
    one = {k: v[-1] for k, v in directives(unit).items()}
    assert one["ExecStart"] == f"/opt/ghgnet/.venv/bin/central-receiver {command} --config /etc/ghgnet/central.toml"
    assert one["Type"] == "notify" and one["NotifyAccess"] == "main"
    assert int(one["WatchdogSec"]) > 0 and one["Restart"] == "always" and one["StartLimitIntervalSec"] == "0"
    assert one["StateDirectory"] == "ghgnet-central" and one["User"] == "ghgnet"
    assert one["MemoryDenyWriteExecute"] == "yes" and one["CapabilityBoundingSet"] == ""


# -- MemoryDenyWriteExecute=yes: does the real software run under it? -----------------------------

MDWE = [sys.executable, str(Path(__file__).with_name("mdwe_exec.py"))]


def test_mdwe_filter_denies_writable_executable_memory():
    code = "import mmap\ntry:\n mmap.mmap(-1, 4096, prot=mmap.PROT_WRITE | mmap.PROT_EXEC)\nexcept PermissionError:\n print('denied')"
    res = subprocess.run([*MDWE, sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stdout.strip() == "denied", res.stderr


def test_central_side_imports_and_computes_under_mdwe():
    """numpy/scipy linear algebra (OpenBLAS), psycopg's libpq, xarray/netCDF4 and ctypes callbacks."""
    code = (
        "import numpy as np, scipy.linalg, scipy.sparse, psycopg, xarray, netCDF4, ctypes\n"
        "import central.receiver, central.cli\n"
        "a = np.random.default_rng(1).normal(size=(400, 400))\n"
        "c = scipy.linalg.cho_factor(a @ a.T + 400 * np.eye(400))\n"
        "x = scipy.linalg.cho_solve(c, np.ones(400))\n"
        "assert np.isfinite(x).all()\n"
        "assert ctypes.CFUNCTYPE(ctypes.c_int)(lambda: 7)() == 7\n"
        "print('ok')\n"
    )
    res = subprocess.run([*MDWE, sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_agent_and_simulator_run_and_store_minutes_under_mdwe(tmp_path):
    """The daemon itself (drivers, numpy processing, SQLite writer) under the unit's W^X rule."""
    ports: dict[str, int] = {}

    def free(m: re.Match) -> str:  # every fixed TCP port of the example bench: a free one instead
        ports[m.group(1)] = _free_port()
        return f"port = {ports[m.group(1)]}"

    bench = re.sub(r"^port = (5\d{4})$", free, (ROOT / "configs/bench.example.toml").read_text(), flags=re.M)
    bench = re.sub(r'pty_link = "[^"]*/([^/"]+)"', r'pty_link = "\1"', bench)
    (tmp_path / "bench.toml").write_text(bench)
    station = (ROOT / "configs/station.example.toml").read_text()
    for fixed, free_port in ports.items():
        station = station.replace(f"127.0.0.1:{fixed}", f"127.0.0.1:{free_port}")
    station = station.replace('path = "../data/demo-tower/station.sqlite"', 'path = "station.sqlite"')
    station = station.split("\n# Central's broker")[0]
    (tmp_path / "station.toml").write_text(station)
    sim = subprocess.Popen([*MDWE, str(BIN / "station-sim"), "run", "--config", str(tmp_path / "bench.toml"),
                            "--speed", "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    agent = None
    try:
        assert json.loads(sim.stdout.readline())["instruments"]["picarro-1"]["tcp"].endswith(f":{ports['51020']}")
        agent = subprocess.Popen([*MDWE, str(BIN / "station-agent"), "run", "--config", str(tmp_path / "station.toml"),
                                  "--speed", "60"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        minutes, deadline = 0, time.monotonic() + 60
        while minutes < 3 and time.monotonic() < deadline and agent.poll() is None:
            time.sleep(0.5)
            if (tmp_path / "station.sqlite").exists():
                with sqlite3.connect(f"file:{tmp_path / 'station.sqlite'}?mode=ro", uri=True) as db:
                    try:
                        minutes = db.execute("SELECT COUNT(*) FROM minute").fetchone()[0]
                    except sqlite3.OperationalError:  # schema not created yet
                        minutes = 0
        assert minutes >= 3, agent.stderr.read() if agent.poll() is not None else "too few minutes"
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=60) == 0, agent.stderr.read()
    finally:
        if agent is not None and agent.poll() is None:
            agent.kill()
            agent.wait()
        sim.send_signal(signal.SIGTERM)
        assert sim.wait(timeout=30) == 0, sim.stderr.read()


# -- install.sh ------------------------------------------------------------------------------------


def test_install_script_installs_the_central_extras_only_for_central(tmp_path):
    res = subprocess.run(["bash", str(UNITS / "install.sh"), "--dry-run", "--prefix", str(tmp_path / "opt")],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert f"+ {tmp_path}/opt/.venv/bin/pip install --quiet --upgrade {ROOT}" in res.stdout.splitlines()


def test_install_script_dry_run_prints_every_step_and_changes_nothing(tmp_path):
    """Only --dry-run runs here: the real thing creates users and writes to /etc and /opt."""
    etc_before = os.path.exists("/etc/ghgnet")
    unit_before = os.path.exists("/etc/systemd/system/station-agent.service")
    res = subprocess.run(["bash", str(UNITS / "install.sh"), "--dry-run", "--central", "--bench", "hil1",
                          "--prefix", str(tmp_path / "opt")], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    cmds = [line[2:] for line in res.stdout.splitlines() if line.startswith("+ ")]
    joined = "\n".join(cmds)
    assert re.search(r"^(useradd .*--groups dialout .*ghgnet|usermod --append --groups dialout ghgnet)$", joined, re.M)
    # the central extras (printf %q quotes the brackets)
    assert f"{tmp_path}/opt/.venv/bin/pip install --quiet --upgrade {ROOT}\\[central\\]" in cmds
    for target in ("/etc/ghgnet/station.toml", "/etc/ghgnet/central.toml", "/etc/ghgnet/bench/hil1.toml"):
        assert any(c.startswith("install -o root -g ghgnet -m 0640 ") and c.endswith(target) for c in cmds) or \
            os.path.exists(target), target
    assert "install -d -o ghgnet -g ghgnet -m 0750 /var/lib/ghgnet" in cmds
    for unit in UNIT_NAMES:
        assert any(c.startswith("install -m 0644 ") and c.endswith(f"/etc/systemd/system/{unit}") for c in cmds)
    assert ("systemctl enable station-agent.service central-receiver.service central-web.service "
            "station-sim@hil1.service") in cmds
    assert os.path.exists("/etc/ghgnet") == etc_before
    assert os.path.exists("/etc/systemd/system/station-agent.service") == unit_before
    assert not (tmp_path / "opt").exists()


def test_install_script_rejects_unknown_options_and_odd_bench_names():
    for args in (["--dry-run", "--frobnicate"], ["--dry-run", "--bench", "../etc"]):
        res = subprocess.run(["bash", str(UNITS / "install.sh"), *args], capture_output=True, text=True, timeout=30)
        assert res.returncode == 2, res.stdout + res.stderr
