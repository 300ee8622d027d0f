"""The clock_offset alarm fed by the station PC's NTP state (details.clock_sync of its status)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from central.alarms.evaluator import AlarmEvaluator
from central.config import CentralConfig
from ghgnet.wire import StatusMessage

T = datetime(2026, 3, 5, 12, tzinfo=UTC)


def _status(clock_sync: dict) -> StatusMessage:
    return StatusMessage(station="st-a", state="up", time=T, backlog=0, agent_version="t", interval_s=60.0,
                         details={"clock_sync": clock_sync})


def test_a_system_clock_far_from_its_reference_raises_clock_offset(store):
    cfg = CentralConfig.model_validate({"alarms": {"rules": [{"kind": "clock_offset", "raise_at": 60, "clear_at": 20}]}})
    store.store_status(_status({"source": "chrony", "synchronised": False, "offset_s": -75.25}), T)
    changes = AlarmEvaluator(cfg).evaluate(store, T + timedelta(seconds=1))
    (alarm,) = [c for c in changes if c.subject == "system-clock"]
    assert round(alarm.value, 2) == 75.25 and "synchronised: False" in alarm.message


def test_an_unknown_clock_state_raises_nothing(store):
    cfg = CentralConfig.model_validate({"alarms": {"rules": [{"kind": "clock_offset", "raise_at": 60, "clear_at": 20}]}})
    store.store_status(_status({"source": "unknown", "synchronised": None, "offset_s": None}), T)
    assert [c for c in AlarmEvaluator(cfg).evaluate(store, T + timedelta(seconds=1)) if c.subject == "system-clock"] == []
