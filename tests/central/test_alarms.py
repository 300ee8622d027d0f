"""Alarms: hysteresis, one active alarm per rule+station+subject, acknowledgement, the rules'
evaluation on simulated time (both backends), and the CLI."""

from __future__ import annotations

import json
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.central import open_at_schema
from support.mqtt import minute
from typer.testing import CliRunner

import central.alarms.config as alarms_config_module
from central.alarms.config import AlarmRule, AlarmsConfig
from central.alarms.evaluator import AlarmEvaluator
from central.alarms.rules import decide
from central.cli import app
from central.config import CentralConfig
from central.store import DeadLetter, open_store
from central.store.operations import AlarmCleared, AlarmNotFound
from ghgnet.wire import EventWire, ParsedBatch, StatusMessage, TargetWire

T = datetime(2026, 3, 5, 12, tzinfo=UTC)


def test_hysteresis_raises_at_one_threshold_and_clears_at_the_other():
    """300 raises, 120 clears, between the two nothing changes (no flapping around either)."""
    active, pending, actions = False, None, []
    for i, value in enumerate([100, 299, 300, 250, 121, 299, 120, 200, 299]):
        d = decide(value, active, 300, 120, 0, 0, pending, T + timedelta(minutes=i))
        pending = d.pending_since
        actions.append(d.action)
        active = (active or d.action == "raise") and d.action != "clear"
    assert actions == [None, None, "raise", "update", "update", "update", "clear", None, None]


def test_hold_times_delay_raising_and_clearing():
    d1 = decide(500, False, 300, 120, 600, 0, None, T)
    assert (d1.action, d1.pending_since) == (None, T)
    assert decide(500, False, 300, 120, 600, 0, T, T + timedelta(seconds=599)).action is None
    assert decide(500, False, 300, 120, 600, 0, T, T + timedelta(seconds=600)).action == "raise"
    # a dip below the threshold starts the hold again
    assert decide(200, False, 300, 120, 600, 0, T, T + timedelta(seconds=300)) .pending_since is None
    c1 = decide(100, True, 300, 120, 0, 60, None, T)
    assert (c1.action, c1.pending_since) == ("update", T)
    assert decide(100, True, 300, 120, 0, 60, T, T + timedelta(seconds=60)).action == "clear"


def test_a_rule_refuses_clear_above_raise():
    with pytest.raises(ValueError, match="clear_at"):
        AlarmRule(kind="data_gap", raise_at=100, clear_at=200)
    assert AlarmRule(kind="data_gap", raise_at=100).thresholds == (100, 100)
    assert AlarmRule(kind="station_down").thresholds == (300, 120)
    with pytest.raises(ValueError, match="unique"):
        AlarmsConfig(rules=[{"kind": "data_gap"}, {"kind": "data_gap"}])


def test_one_active_alarm_per_rule_station_and_subject(store):
    a = store.raise_alarm("target_bias", "st-a", "co2", T, "bias 0.2", 2.0)
    b = store.raise_alarm("target_bias", "st-a", "co2", T + timedelta(minutes=1), "bias 0.3", 3.0)
    other = store.raise_alarm("target_bias", "st-a", "ch4", T, "bias 3", 1.5)
    assert (a.change, b.change, other.change) == ("raised", "updated", "raised")
    assert a.id == b.id != other.id
    acked = store.acknowledge_alarm(a.id, "alice", T + timedelta(minutes=2))
    assert (acked.state, acked.acknowledged_by, acked.acknowledged_at) == ("acknowledged", "alice",
                                                                          T + timedelta(minutes=2))
    assert (acked.message, acked.value, acked.subject, acked.rule) == ("bias 0.3", 3.0, "co2", "target_bias")
    # still active: raising again refreshes it and keeps the acknowledgement
    again = store.raise_alarm("target_bias", "st-a", "co2", T + timedelta(minutes=3), "bias 0.25", 2.5)
    assert again.id == a.id and store.alarm(a.id).state == "acknowledged"
    cleared = store.clear_alarm("target_bias", "st-a", "co2", T + timedelta(minutes=4))
    assert cleared is not None and cleared.id == a.id
    assert store.clear_alarm("target_bias", "st-a", "co2", T + timedelta(minutes=5)) is None
    assert store.alarm(a.id).cleared_at == T + timedelta(minutes=4)
    with pytest.raises(AlarmCleared):
        store.acknowledge_alarm(a.id, "bob", T)
    with pytest.raises(AlarmNotFound):
        store.acknowledge_alarm(999, "bob", T)
    fresh = store.raise_alarm("target_bias", "st-a", "co2", T + timedelta(minutes=6), "bias again", 2.0)
    assert fresh.change == "raised" and fresh.id not in (a.id, other.id)
    assert [x.id for x in store.alarm_list(state="active")] == [fresh.id, other.id]
    assert [x.id for x in store.alarm_list(state="cleared")] == [a.id]
    assert store.active_alarm_keys() == {"target_bias|st-a|co2", "target_bias|st-a|ch4"}


def _status(station: str, at: datetime, state: str = "up", oldest: float | None = None) -> StatusMessage:
    return StatusMessage(station=station, state=state, time=at, backlog=3, agent_version="t", interval_s=60.0,
                         oldest_unacked_age_s=oldest, details={})


def _target(seq: int, at: datetime, bias: float) -> ParsedBatch:
    tgt = TargetWire(seq=seq, record_type="target", id=f"tgt-{seq}", time=at, cylinder="TGT-1",
                     measured={"co2": 410 + bias}, assigned={"co2": 410.0}, bias={"co2": bias},
                     within_goal={"co2": abs(bias) <= 0.1})
    return ParsedBatch("st-a", "calibration", at, [tgt])


def test_rules_raise_and_clear_on_central_clock(store):
    """Simulated time: a station falls silent, its target drifts, a record is dead-lettered; each
    rule raises once however often it is evaluated, and clears when the value is back."""
    cfg = CentralConfig.model_validate({"alarms": {"rules": [
        {"kind": "station_down", "raise_at": 300, "clear_at": 120},
        {"kind": "target_bias", "raise_at": 1.0, "clear_at": 0.7, "severity": "critical"},
        {"kind": "dead_letters", "name": "dead"},
        {"kind": "backlog_age", "raise_at": 3600, "clear_at": 600},
    ]}})
    sent = []
    ev = AlarmEvaluator(cfg, sent.append)
    store.store_batch(ParsedBatch("st-a", "minute", T, [minute(1, t0=T)]), T)
    store.store_status(_status("st-a", T, oldest=30.0), T)
    store.store_batch(_target(2, T, 0.05), T)
    assert ev.evaluate(store, T + timedelta(seconds=60)) == []
    up = ev.evaluate(store, T + timedelta(seconds=400))
    assert [(c.rule, c.station, c.change) for c in up] == [("station_down", "st-a", "raised")]
    for k in range(5):  # evaluated again and again: still one alarm
        assert ev.evaluate(store, T + timedelta(seconds=410 + k)) == []
    # the station comes back at T+550; 200 s later its status is 200 s old: between the thresholds
    store.store_status(_status("st-a", T + timedelta(seconds=550), oldest=30.0), T + timedelta(seconds=550))
    assert ev.evaluate(store, T + timedelta(seconds=600)) != []  # 50 s: cleared
    # the target's bias goes beyond the goal (0.1 ppm); a record is dead-lettered
    store.store_batch(_target(3, T + timedelta(seconds=560), 0.25), T + timedelta(seconds=560))
    store.add_dead_letter(DeadLetter("ghg/v1/st-a/minute", b"{}", "invalid_record", "bad", "st-a", 9), T)
    changes = ev.evaluate(store, T + timedelta(seconds=620))
    assert sorted((c.rule, c.subject, c.change, c.severity) for c in changes) == [
        ("dead", None, "raised", "warning"), ("target_bias", "co2", "raised", "critical")]
    bias = next(c for c in changes if c.rule == "target_bias")
    assert bias.value == pytest.approx(2.5) and bias.data["bias"] == pytest.approx(0.25)
    # 0.08 ppm is 0.8 goal: above clear_at 0.7, the alarm stays; 0.05 clears it
    store.store_batch(_target(4, T + timedelta(seconds=630), 0.08), T + timedelta(seconds=630))
    assert ev.evaluate(store, T + timedelta(seconds=640)) == []
    store.store_batch(_target(5, T + timedelta(seconds=650), 0.05), T + timedelta(seconds=650))
    (clear,) = ev.evaluate(store, T + timedelta(seconds=660))
    assert (clear.rule, clear.change) == ("target_bias", "cleared")
    history = store.alarm_list(station="st-a")
    assert [(a.rule, a.state) for a in history] == [
        ("dead", "open"), ("target_bias", "cleared"), ("station_down", "cleared")]
    assert [c.change for c in sent] == ["raised", "cleared", "raised", "raised", "cleared"]


def test_a_station_reported_down_raises_at_once(store):
    cfg = CentralConfig.model_validate({"alarms": {"rules": [{"kind": "station_down"}]}})
    store.store_status(_status("st-b", T, "down"), T)
    (c,) = AlarmEvaluator(cfg).evaluate(store, T + timedelta(seconds=1))
    assert c.station == "st-b" and "reported down" in c.message


def test_alarms_cli_lists_and_acknowledges(tmp_path: Path):
    db = tmp_path / "central.sqlite"
    conf = tmp_path / "central.toml"
    conf.write_text(f'[storage]\npath = "{db}"\n')
    s = open_store("sqlite", path=db)
    a = s.raise_alarm("data_gap", "st-a", None, T, "st-a: no minute data for 4000 s", 4000.0)
    s.close()
    runner = CliRunner()
    listed = runner.invoke(app, ["alarms", "list", "--config", str(conf), "--json"])
    assert listed.exit_code == 0, listed.output
    (doc,) = json.loads(listed.stdout)
    assert (doc["id"], doc["rule"], doc["state"], doc["station"]) == (a.id, "data_gap", "open", "st-a")
    ack = runner.invoke(app, ["alarms", "ack", str(a.id), "--config", str(conf), "--user", "alice"])
    assert ack.exit_code == 0, ack.output
    assert "acknowledged by alice" in ack.stdout
    text = runner.invoke(app, ["alarms", "list", "--config", str(conf), "--state", "acknowledged"])
    assert f"#{a.id}" in text.stdout and "alice" in text.stdout
    missing = runner.invoke(app, ["alarms", "ack", "99", "--config", str(conf), "--user", "alice"])
    assert missing.exit_code == 2 and "no alarm #99" in missing.output


def test_the_documented_example_config_is_valid():
    """The TOML in central/alarms/config.py's docstring is what operators copy: it must load."""
    text = alarms_config_module.__doc__.split("```toml\n")[1].split("```")[0]
    cfg = CentralConfig.model_validate(tomllib.loads(text.replace('password_file = "/etc/ghgnet/smtp-password"\n', "")))
    assert [r.rule_name for r in cfg.alarms.rules] == ["station_down", "cylinder_empty", "target_bias"]
    assert cfg.alarms.email is not None and cfg.alarms.email.starttls
    assert cfg.alarms.webhooks[0].url.startswith("https://")


def test_schema_6_keeps_what_an_older_database_holds(store_location):
    """Migrating from schema 5: an ingest alarm stays open (its rule: its kind), a flag stays in force."""
    old = open_at_schema(store_location, 5)
    old._execute(old._sql("INSERT INTO alarm (time, station, store, kind, message, data) VALUES (?, ?, ?, ?, ?, ?)"),
                 (old._t(T), "st-a", "", "seq_conflict", "seq 7 reused", "{}"))
    old._execute(old._sql("INSERT INTO manual_flag (station, time_from, time_to, flag, reason, operator, created_at) "
                          "VALUES (?, ?, ?, ?, ?, ?, ?)"), ("st-a", old._t(T), old._t(T + timedelta(hours=1)), "K",
                                                         "leak", "alice", old._t(T)))
    if store_location["backend"] == "postgresql":
        old._commit()
    old.close()
    s = open_store(**store_location)
    try:
        (a,) = s.alarm_list()
        assert (a.rule, a.kind, a.state, a.subject) == ("seq_conflict", "seq_conflict", "open", None)
        assert s.acknowledge_alarm(a.id, "alice", T).state == "acknowledged"
        (f,) = s.manual_flags("st-a")
        assert f.active and f.reason_code is None
    finally:
        s.close()


def test_clock_offsets_of_the_station_and_of_each_analyzer(store):
    cfg = CentralConfig.model_validate({"alarms": {"rules": [{"kind": "clock_offset", "raise_at": 60, "clear_at": 20}]}})
    status = StatusMessage(station="st-a", state="up", time=T - timedelta(seconds=90), backlog=0, agent_version="t",
                           interval_s=60.0, details={"metrics": {"clock_offset_s": {"g2401": -75.5, "lgr": 3.0}}})
    store.store_status(status, T)
    changes = AlarmEvaluator(cfg).evaluate(store, T + timedelta(seconds=1))
    assert sorted((c.subject or "", round(c.value, 1)) for c in changes) == [("", 90.0), ("g2401", 75.5)]


def _pressure(seq: int, at: datetime, bar: float, kind: str = "inventory.cylinder_pressure") -> ParsedBatch:
    ev = EventWire(seq=seq, time=at, kind=kind, severity="info", message=f"CAL-A at {bar} bar",
                   data={"cylinder": "CAL-A", "serial": "D1", "pressure_bar": bar, "low_pressure_bar": 20.0})
    return ParsedBatch("st-a", "event", at, [ev])


def test_a_cylinder_running_empty_raises_before_it_does_and_a_refill_clears(store):
    """Simulated weeks: CAL-A loses 2 bar a day from 120 bar, so it reaches 20 bar on day 50. The
    alarm (lower is worse: days left) is raised within 14 days of that, stays between 14 and 21,
    and clears when a refill restarts the trend."""
    cfg = CentralConfig.model_validate({"alarms": {"rules": [{"kind": "cylinder_empty", "raise_at": 14,
                                                              "clear_at": 21}]}})
    ev = AlarmEvaluator(cfg)
    store.store_status(_status("st-a", T), T)
    day = timedelta(days=1)
    store.store_batch(_pressure(1, T, 120.0, "inventory.cylinder_installed"), T)
    assert ev.evaluate(store, T + day) == []  # one reading: no forecast
    for seq, d in enumerate((10, 20, 30), start=2):
        store.store_batch(_pressure(seq, T + d * day, 120.0 - 2 * d), T + d * day)
    assert ev.evaluate(store, T + 31 * day) == []  # 19 days left
    (up,) = ev.evaluate(store, T + 37 * day)  # 13 days left
    assert (up.rule, up.subject, up.change) == ("cylinder_empty", "CAL-A", "raised")
    assert up.value == pytest.approx(13.0, abs=0.01) and up.data["empty_at"].startswith("2026-04-24")
    assert ev.evaluate(store, T + 38 * day) == []  # raised once
    store.store_batch(_pressure(5, T + 39 * day, 150.0), T + 39 * day)  # refilled
    (clear,) = ev.evaluate(store, T + 40 * day)
    assert (clear.change, clear.subject) == ("cleared", "CAL-A") and "not_enough_points" in clear.message


def test_cylinder_empty_thresholds_run_the_other_way():
    assert AlarmRule(kind="cylinder_empty").thresholds == (14, 21)
    assert AlarmRule(kind="cylinder_empty", raise_at=30).thresholds == (30, 30)
    with pytest.raises(ValueError, match="lower is worse"):
        AlarmRule(kind="cylinder_empty", raise_at=14, clear_at=7)
