"""Evaluating the alarm rules: `AlarmEvaluator.evaluate(store, now)` is one pass on central's clock
(tests drive it with simulated times); `AlarmThread` runs passes inside `central-receiver run`
every `[alarms] interval_s` real seconds, with its own store connection, beside ingest.

The store holds which alarms are active (one per rule, station and subject: central/store/
operations.py), so a restarted receiver carries on where it was; only the hold-time timers of
values waiting to cross a threshold live in memory (a restart starts them again).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import structlog

from ..config import CentralConfig
from ..store import open_configured_store
from ..store.operations import AlarmChange, alarm_key
from ..store_thread import StoreThread
from .config import LOWER_IS_WORSE
from .notify import Notifier
from .rules import decide, measure, snapshot

log = structlog.get_logger(component="alarms")


class AlarmEvaluator:
    def __init__(self, config: CentralConfig, notify: Callable[[AlarmChange], object] | None = None) -> None:
        self.config = config
        self.notify = notify
        self._pending: dict[str, datetime] = {}
        self.passes = 0
        self.last_active: dict[str, int] | None = None
        """Active alarms per severity after the last pass (metrics)."""
        self.last_unresolved_dead_letters: int | None = None

    def evaluate(self, store, now: datetime) -> list[AlarmChange]:
        """One pass over every rule: raise, refresh or clear alarms; the raised and cleared ones
        are returned (and handed to `notify`)."""
        snap = snapshot(store)
        active = store.active_alarm_keys()
        changes: list[AlarmChange] = []
        for rule in self.config.alarms.rules:
            up, down = rule.thresholds
            sign = -1.0 if rule.kind in LOWER_IS_WORSE else 1.0  # `decide` takes higher as worse
            name = rule.rule_name
            for obs in measure(rule, store, self.config, snap, now):
                key = alarm_key(name, obs.station, obs.subject)
                d = decide(sign * obs.value, key in active, sign * up, sign * down, rule.hold_s, rule.clear_hold_s,
                           self._pending.get(key), now)
                if d.pending_since is None:
                    self._pending.pop(key, None)
                else:
                    self._pending[key] = d.pending_since
                data = {**obs.data, "kind": rule.kind, "raise_at": up, "clear_at": down}
                if d.action in ("raise", "update"):
                    change = store.raise_alarm(name, obs.station, obs.subject, now, obs.message, obs.value,
                                               rule.severity, data)
                    if change.change == "raised":
                        changes.append(change)
                elif d.action == "clear":
                    cleared = store.clear_alarm(name, obs.station, obs.subject, now, obs.message, obs.value)
                    if cleared is not None:
                        changes.append(cleared)
        self.passes += 1
        self.last_active = store.active_alarm_counts()
        self.last_unresolved_dead_letters = sum(snap.unresolved_dead_letters.values())
        for c in changes:
            log.warning("alarm_" + c.change, alarm=c.id, rule=c.rule, station=c.station, subject=c.subject,
                        value=c.value, message=c.message)
            if self.notify is not None:
                self.notify(c)
        return changes


class AlarmThread(StoreThread):
    """The receiver's alarm evaluation: a thread with its own store connection, and the notifier."""

    thread_name = "central-alarms"
    failure_event = "alarm_evaluation_failed"

    def __init__(self, config: CentralConfig, now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 open_store: Callable[[], object] | None = None) -> None:
        super().__init__(open_store or (lambda: open_configured_store(config)), lambda: config.alarms.interval_s)
        self.config = config
        self._now = now
        self.notifier = Notifier(config.alarms)
        self.evaluator = AlarmEvaluator(config, self.notifier.submit)

    def run_pass(self, store) -> bool:
        self.evaluator.evaluate(store, self._now())
        return False

    def start(self) -> AlarmThread:
        self.notifier.start()
        super().start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        super().stop(timeout_s)
        self.notifier.stop(timeout_s)
