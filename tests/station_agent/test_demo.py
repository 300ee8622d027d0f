"""`station-agent demo` end to end: the real command, every part a real process, a short run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from simulators.network import format_summary, set_toml_value


def test_demo_runs_the_whole_network_and_its_summary_says_nothing_lost_or_duplicated():
    bin_dir = Path(sys.executable).parent
    proc = subprocess.run([bin_dir / "station-agent", "demo", "--hours", "2", "--speed", "720", "--json"],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    minutes = summary["kinds"]["minute"]
    assert minutes["produced"] >= 100  # two simulated hours, one record a minute (plus the start-up)
    for kind, k in summary["kinds"].items():
        assert k["stored"] == k["produced"] == k["acknowledged"], (kind, k)
        assert k["lost"] == k["duplicates"] == k["still_queued"] == k["content_mismatch"] == 0, (kind, k)
    assert summary["lost"] == summary["duplicates"] == 0
    assert summary["forwarder"]["published_records"] >= minutes["produced"]
    text = format_summary(summary)
    assert "duplicates stored: 0   lost: 0   still queued at the station: 0" in text


def test_config_rewriting_sets_keys_in_their_table_and_adds_missing_ones():
    text = "# head\n[mqtt]\nhost = \"x\"  # broker\nport = 1883\n\n[mqtt.tls]\nport = 9\n"
    out = set_toml_value(set_toml_value(text, "mqtt", "port", 4242), "mqtt", "username", "demo-tower")
    assert "[mqtt]\nusername = \"demo-tower\"\nhost = \"x\"  # broker\nport = 4242\n" in out
    assert "[mqtt.tls]\nport = 9" in out
    assert set_toml_value(out, "forwarding", "replay_rate", 0).endswith("\n[forwarding]\nreplay_rate = 0\n")
