"""central-receiver's commands, run as a user runs them (a real process for `run`)."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from support.mqtt import TestStation, minute
from support.wait import wait_until
from typer.testing import CliRunner

from central.cli import app
from central.ingest import Ingestor, Message
from central.store import open_store
from ghgnet.wire import encode_batch

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "central.cli"]
SENT = datetime(2026, 3, 2, tzinfo=UTC)


def write_config(tmp_path: Path, port: int = 1883, extra: str = "") -> Path:
    cfg = tmp_path / "central.toml"
    cfg.write_text(f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\nclient_id = "cli-test"\n'
                   f'[storage]\npath = "data/central.sqlite"\n{extra}')
    return cfg


def test_example_config_is_valid():
    r = CliRunner().invoke(app, ["config", "check", str(REPO / "configs" / "central.example.toml")])
    assert r.exit_code == 0, r.output


def test_config_check_names_file_and_field_paths(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[mqtt]\nport = "x"\n[storage]\nbackend = "oracle"\n[ingest]\nqueue = 3\n')
    r = CliRunner().invoke(app, ["config", "check", str(bad)])
    assert r.exit_code == 2
    lines = r.stderr.strip().splitlines()
    assert f"{bad}: mqtt.port: Input should be a valid integer, unable to parse string as an integer" in lines
    assert any(line.startswith(f"{bad}: storage.backend: Input should be 'sqlite' or 'postgresql'") for line in lines)
    assert f"{bad}: ingest.queue: unknown key (not allowed here)" in lines


def test_relative_storage_path_resolves_against_the_config_folder(tmp_path):
    cfg = write_config(tmp_path)
    r = CliRunner().invoke(app, ["status", "--config", str(cfg), "--json"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "data" / "central.sqlite").exists()
    assert json.loads(r.stdout)["stations"] == []


def _fill(tmp_path: Path) -> Path:
    cfg = write_config(tmp_path)
    store = open_store("sqlite", path=tmp_path / "data" / "central.sqlite")
    recs = [minute(1), minute(2, flag="N"), minute(3)]
    Ingestor(store).handle([
        Message("ghg/v1/st-a/minute", encode_batch("st-a", "minute", recs, SENT)),
        Message("ghg/v1/st-a/minute", encode_batch("st-a", "minute", recs[:1], SENT)),
        Message("ghg/v1/st-a/minute", b"not json"),
    ])
    store.close()
    return cfg


def test_export_minute_csv_columns_and_rows(tmp_path):
    cfg = _fill(tmp_path)
    out = tmp_path / "out" / "st-a.csv"
    r = CliRunner().invoke(app, ["export", "--config", str(cfg), "--station", "st-a", "--from", "2026-03-01",
                                 "--to", "2026-03-01T00:03:00Z", "--level", "minute", "--format", "csv",
                                 "--out", str(out)])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert list(rows[0]) == (["time_utc", "station", "seq", "store", "device", "serial", "stream"]
                             + [f"{sp}_{f}" for sp in ("co2", "ch4")
                                for f in ("mean", "std", "n", "raw_mean", "cal_mean", "u", "flag")]
                             + ["h2o", "flag", "reasons", "station_flag", "manual_flag_ids", "manual_reason",
                                "calibration_id", "version", "processing", "reprocess_run"])
    assert [(x["version"], x["processing"], x["reprocess_run"]) for x in rows] == [("1", "station", "")] * 2
    assert [(x["time_utc"], x["seq"], x["flag"], x["reasons"], x["station_flag"], x["manual_reason"]) for x in rows] == [
        ("2026-03-01T00:01:00.000Z", "1", "U", "", "U", ""), ("2026-03-01T00:02:00.000Z", "2", "N", "flush", "N", "")]
    assert float(rows[0]["co2_cal_mean"]) == 420.0 and rows[0]["ch4_n"] == "55"


def test_export_refuses_levels_it_does_not_have(tmp_path):
    cfg = _fill(tmp_path)
    r = CliRunner().invoke(app, ["export", "--config", str(cfg), "--station", "st-a", "--from", "2026-03-01",
                                 "--to", "2026-03-02", "--level", "raw"])
    assert r.exit_code == 2 and "(minute or hourly)" in r.stderr


def test_status_json_reports_counts_and_dead_letters(tmp_path):
    cfg = _fill(tmp_path)
    r = CliRunner().invoke(app, ["status", "--config", str(cfg), "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    (st,) = doc["stations"]
    assert (st["station"], st["minutes"], st["duplicates"], st["dead_letters"], st["state"]) == (
        "st-a", 3, 1, 1, "unknown")
    assert doc["dead_letters"]["total"] == 1
    assert doc["dead_letters"]["recent"][0]["reason_code"] == "malformed_json"
    table = CliRunner().invoke(app, ["status", "--config", str(cfg)])
    assert table.exit_code == 0 and "st-a" in table.stdout


def test_invert_without_the_inversion_package_exits_2_with_a_message(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "central.inversion.command", None)  # as if not installed
    r = CliRunner().invoke(app, ["invert", "--config", str(write_config(tmp_path)), "--out", str(tmp_path / "inv")])
    assert r.exit_code == 2 and "inversion is not available" in r.stderr


def test_run_stores_data_and_exits_cleanly_on_sigterm(tmp_path, mosquitto):
    cfg = write_config(tmp_path, mosquitto.port, '[logging]\nformat = "json"\n')
    proc = subprocess.Popen([*CLI, "run", "--config", str(cfg)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    station = TestStation(mosquitto, "st-a")
    try:
        # retry until the receiver has subscribed: its first publish may precede the SUBSCRIBE
        def acked() -> bool:
            if not station.acked:
                station.publish("minute", encode_batch("st-a", "minute", [minute(1), minute(2)], SENT))
            return station.acked >= {1, 2}
        wait_until(acked, 15, interval_s=0.2, message="ack from the receiver process")
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=15)
    finally:
        station.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, output
    events = [json.loads(line)["event"] for line in output.splitlines() if line.startswith("{")]
    assert "receiver_started" in events and events[-1] == "receiver_stopped"
    store = open_store("sqlite", path=tmp_path / "data" / "central.sqlite")
    try:
        assert store.held_seqs("st-a") == [1, 2]
    finally:
        store.close()
