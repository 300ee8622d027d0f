"""The technician's pin: `station-agent config pin` writes a kept version back and makes the
station refuse central's pushes (remote_config.vet) until `pin --off`; and a config for another
station is refused even when central signed it."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.site import BIN, ROOT

from ghgnet.signed_config import new_private_key, public_key_text, sign_config
from station_agent.fleet.config_history import ConfigHistory
from station_agent.fleet.remote_config import Refusal, vet

NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)


@pytest.fixture
def station(tmp_path: Path):
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    path = tmp_path / "configs" / "station.toml"
    shutil.copy(tmp_path / "configs" / "station.example.toml", path)
    return path


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([BIN / "station-agent", *args], capture_output=True, text=True, timeout=60)


def test_pin_writes_the_kept_version_back_and_pushes_are_refused_until_unpinned(station: Path):
    key = new_private_key()
    public = public_key_text(key.public_key())
    history = ConfigHistory(station.parent / "config-versions")
    original = station.read_text()
    v1 = original.replace('name = "Demo tall tower (simulated)"', 'name = "v1"')
    history.keep(0, original)
    history.keep(1, v1)
    station.write_text(v1)
    history.set_active(1)

    pinned = _cli("config", "pin", "0", "--config", str(station))
    assert pinned.returncode == 0, pinned.stderr
    assert station.read_text() == original and history.active() == 0 and history.pinned() == 0
    push = sign_config(key, "demo-tower", 2, NOW, v1).encode()
    with pytest.raises(Refusal) as refused:
        vet(push, "demo-tower", public, history, station, NOW)
    assert refused.value.step == "refused_pinned" and "pinned version 0" in refused.value.message

    assert _cli("config", "pin", "--off", "--config", str(station)).returncode == 0
    assert vet(push, "demo-tower", public, history, station, NOW).envelope.version == 2
    shown = _cli("config", "history", "--config", str(station))
    assert "active version 0, not pinned" in shown.stdout and "pinned" in shown.stdout


def test_pin_of_a_version_never_kept_is_refused(station: Path):
    res = _cli("config", "pin", "7", "--config", str(station))
    assert res.returncode == 2 and "no config version 7" in res.stderr


def test_a_config_signed_for_another_station_is_refused(station: Path):
    key = new_private_key()
    history = ConfigHistory(station.parent / "config-versions")
    push = sign_config(key, "other-tower", 1, NOW, station.read_text()).encode()
    with pytest.raises(Refusal) as refused:
        vet(push, "demo-tower", public_key_text(key.public_key()), history, station, NOW)
    assert refused.value.step == "refused_station"
    assert history.highest_seen() == 0  # nor does it count as a version seen


def test_a_health_check_cut_by_a_restart_is_resumed(tmp_path: Path):
    h = ConfigHistory(tmp_path / "config-versions")
    h.set_active(3)
    h.note(NOW, 3, "verified")
    h.note(NOW, 3, "applied", previous=1)
    assert h.unchecked() == (3, 1)
    h.note(NOW, 3, "healthy")
    assert h.unchecked() is None
