"""Size is bounded everywhere text enters the station: control requests, cylinders, config files,
events; and the station's max_message_bytes against the broker's own limits (`config check`)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from ghgnet.records import MAX_EVENT_MESSAGE, Event
from station_agent.agent import MAX_REASON, parse_request
from station_agent.forwarding.forwarder import DEFAULT_MAX_MESSAGE_BYTES, ForwardingConfig, broker_payload_limit
from station_agent.sequencing.sampling_config import CylinderConfig

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_BROKER = ROOT / "configs" / "mosquitto" / "mosquitto.conf"
BIN = Path(sys.executable).parent


def refused(request: dict) -> str:
    with pytest.raises(ValueError) as info:
        parse_request(request)
    return str(info.value)


def test_the_issues_600000_character_maintenance_reason_is_refused_naming_the_field_and_limit():
    error = refused({"cmd": "maintenance", "on": True, "reason": "x" * 600_000})
    assert error == "maintenance: reason: String should have at most 500 characters (got 600000)"
    assert parse_request({"cmd": "maintenance", "on": True, "reason": "x" * MAX_REASON}).reason == "x" * MAX_REASON


@pytest.mark.parametrize("request_, expected", [
    ({"cmd": "maintenance", "on": True, "reason": "filter\x00"}, "maintenance: reason: String should match"),
    ({"cmd": "maintenance", "on": "yes"}, "maintenance: on: Input should be a valid boolean"),
    ({"cmd": "maintenance", "on": True, "why": "x"}, "maintenance: why: unknown key"),
    ({"cmd": "calibrate", "name": "c" * 65}, "calibrate: name: String should have at most 64 characters (got 65)"),
    ({"cmd": "cylinder_retire", "id": "c" * 100_000}, "cylinder_retire: id: String should have at most 64"),
    ({"cmd": "recalibrate", "from": "2" * 1000, "to": "x"}, "recalibrate: from: String should have at most 64"),
    ({"cmd": "events", "limit": 10**9}, "events: limit: Input should be less than or equal to 1000"),
    ({"cmd": "set_aside_retry", "seqs": list(range(1, 10_002))}, "set_aside_retry: seqs: List should have at most"),
    ({"cmd": "set_aside_retry", "seqs": [0]}, "set_aside_retry: seqs.0: Input should be greater than or equal to 1"),
    ({"cmd": "x" * 100_000}, "unknown command 'xxxxxxxx"),
])
def test_control_requests_are_refused_with_the_field_and_the_problem(request_, expected):
    error = refused(request_)
    assert error.startswith(expected) and len(error) < 400, error


def test_cylinder_free_text_is_bounded():
    ok = {"id": "CAL-1", "role": "standard", "assigned": {"co2": 400.0}}
    assert CylinderConfig.model_validate(ok | {"serial": "s" * 64, "scale": {"co2": "k" * 64}})
    for bad, where in (({"serial": "s" * 65}, "serial"), ({"scale": {"co2": "k" * 65}}, "scale.co2"),
                       ({"assigned": {"c" * 17: 1.0}}, "assigned.ccccc"),
                       ({"assigned": {f"s{i}": 1.0 for i in range(17)}}, "assigned")):
        with pytest.raises(ValidationError) as info:
            CylinderConfig.model_validate(ok | bad)
        assert ".".join(map(str, info.value.errors()[0]["loc"])).startswith(where)


def test_an_event_message_is_cut_at_the_wires_limit_saying_how_much_went():
    e = Event(datetime(2026, 3, 1, tzinfo=UTC), "fault.x", "error", "y" * 100_000)
    assert len(e.message) <= MAX_EVENT_MESSAGE
    kept = e.message.count("y")
    assert e.message.endswith(f"... ({100_000 - kept} characters cut)")
    assert Event(e.time, "k", "info", "short").message == "short"


def check(tmp_path: Path, forwarding: str = "", extra: str = "") -> subprocess.CompletedProcess:
    """`station-agent config check` of the example station config, its max_message_bytes line
    replaced by `forwarding` and `extra` appended."""
    text = (ROOT / "configs" / "station.example.toml").read_text()
    assert "max_message_bytes = 786432\n" in text
    text = text.replace("max_message_bytes = 786432\n", forwarding + "\n") + extra
    path = tmp_path / "station.toml"
    path.write_text(text)
    return subprocess.run([BIN / "station-agent", "config", "check", str(path)], capture_output=True, text=True,
                          timeout=60)


def test_the_shipped_station_and_broker_configs_agree(tmp_path):
    assert broker_payload_limit(SHIPPED_BROKER)[0] == 1_048_576
    assert ForwardingConfig(broker_config=SHIPPED_BROKER).max_message_bytes == DEFAULT_MAX_MESSAGE_BYTES
    res = check(tmp_path, f'broker_config = "{SHIPPED_BROKER}"')
    assert res.returncode == 0, res.stderr


def test_config_check_says_when_max_message_bytes_is_above_the_brokers_limit(tmp_path):
    res = check(tmp_path, f'broker_config = "{SHIPPED_BROKER}"\nmax_message_bytes = 2000000')
    assert res.returncode == 2
    assert "station.toml: forwarding: Value error, max_message_bytes 2000000 is above what the broker takes: " \
           f"message_size_limit 1048576 ({SHIPPED_BROKER}:" in res.stderr, res.stderr


def test_a_brokers_max_packet_size_counts_the_packets_overhead_and_include_dir_is_read(tmp_path):
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "ghgnet.conf").write_text("max_packet_size 200000  # packets, not payloads\n")
    main = tmp_path / "mosquitto.conf"
    main.write_text("message_size_limit 500000\ninclude_dir conf.d\n")
    limit, why = broker_payload_limit(main)
    assert 200000 - 64 < limit < 200000 and why.startswith("max_packet_size 200000")
    with pytest.raises(ValidationError, match="max_packet_size 200000"):
        ForwardingConfig(broker_config=main, max_message_bytes=200000)
    with pytest.raises(ValidationError, match="cannot read"):
        ForwardingConfig(broker_config=tmp_path / "missing.conf")


def test_any_text_in_a_station_config_is_at_most_1024_characters(tmp_path):
    res = check(tmp_path, extra=f'\n[metrics]\nhost = "{"h" * 5000}"\n')
    assert res.returncode == 2
    assert "station.toml: metrics.host: text longer than 1024 characters (5000)" in res.stderr
