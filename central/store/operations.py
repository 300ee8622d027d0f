"""What operators do with central's data (schema 6): alarms with a state, manual flags that can be
removed, dead letters that can be replayed.

- Alarms (table `alarm`, created by schema 5 for seq conflicts) gain a rule, a subject (e.g. a
  species), a state (open, acknowledged, cleared), who acknowledged them and when. An alarm raised
  by a rule (central/alarms/) has a key `rule|station|subject`; a partial unique index allows one
  alarm per key that is not cleared, so a rule can never open a second copy of the same alarm.
- Manual flags are never deleted: removing one stamps who removed it, when and why, and the flag
  stops applying (the aggregates of its hours are recomputed). `reason_code` is the ICOS-style code
  of the flag (central/flags/).
- A dead letter that a replay stored is resolved (when, and what became of it); every replay is
  counted with its last result, so an admin sees what was tried.

Shared by both SQL backends through `OperationsStoreMixin`, which uses the primitives of `SqlStore`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .base import Alarm
from .hourly import hours_of

ALARM_STATES = ("open", "acknowledged", "cleared")
ACTIVE_STATES = ("open", "acknowledged")


def migration_v6(types: dict[str, str]) -> list[str]:
    t = types
    return [
        f"ALTER TABLE alarm ADD COLUMN rule {t['text']}",
        f"ALTER TABLE alarm ADD COLUMN subject {t['text']}",
        f"ALTER TABLE alarm ADD COLUMN alarm_key {t['text']}",
        f"ALTER TABLE alarm ADD COLUMN severity {t['text']} NOT NULL DEFAULT 'warning'",
        f"ALTER TABLE alarm ADD COLUMN state {t['text']} NOT NULL DEFAULT 'open'",
        f"ALTER TABLE alarm ADD COLUMN value {t['real']}",
        f"ALTER TABLE alarm ADD COLUMN updated_at {t['time']}",
        f"ALTER TABLE alarm ADD COLUMN acknowledged_by {t['text']}",
        f"ALTER TABLE alarm ADD COLUMN acknowledged_at {t['time']}",
        f"ALTER TABLE alarm ADD COLUMN cleared_at {t['time']}",
        "UPDATE alarm SET rule = kind",
        # one alarm per rule, station and subject until it is cleared (deduplication)
        "CREATE UNIQUE INDEX alarm_active_key ON alarm (alarm_key) WHERE state <> 'cleared'",
        "CREATE INDEX alarm_state ON alarm (state, id)",
        f"ALTER TABLE manual_flag ADD COLUMN reason_code {t['text']}",
        f"ALTER TABLE manual_flag ADD COLUMN removed_by {t['text']}",
        f"ALTER TABLE manual_flag ADD COLUMN removed_at {t['time']}",
        f"ALTER TABLE manual_flag ADD COLUMN removal_reason {t['text']}",
        f"ALTER TABLE dead_letter ADD COLUMN resolved_at {t['time']}",
        f"ALTER TABLE dead_letter ADD COLUMN resolution {t['text']}",
        f"ALTER TABLE dead_letter ADD COLUMN replays {t['int']} NOT NULL DEFAULT 0",
        f"ALTER TABLE dead_letter ADD COLUMN last_replay_at {t['time']}",
        f"ALTER TABLE dead_letter ADD COLUMN last_replay_result {t['text']}",
    ]


def alarm_key(rule: str, station: str | None, subject: str | None) -> str:
    """The deduplication key of a rule's alarm."""
    return f"{rule}|{station or ''}|{subject or ''}"


class AlarmNotFound(LookupError):
    pass


class AlarmCleared(ValueError):
    """An alarm that is cleared cannot be acknowledged any more."""


@dataclass(frozen=True, slots=True)
class AlarmChange:
    """What `raise_alarm` or `clear_alarm` did: the alarm's id, and whether it is new or now cleared."""

    id: int
    rule: str
    station: str | None
    subject: str | None
    change: str
    """'raised' (a new alarm), 'updated' (still active: message and value refreshed), 'cleared'."""
    time: datetime
    severity: str
    message: str
    value: float | None
    data: dict[str, Any]


ALARM_COLUMNS = ("id, time, station, store, kind, message, data, rule, subject, severity, state, value, updated_at, "
               "acknowledged_by, acknowledged_at, cleared_at")


class OperationsStoreMixin:
    """Methods added to SqlStore (which supplies _execute, _query, _sql, _t, _from_t, _transaction)."""

    # -- alarms ----------------------------------------------------------------------------------

    def _alarm(self, r: tuple):
        f = self._from_t  # type: ignore[attr-defined]
        return Alarm(r[0], f(r[1]), r[2], r[3], r[4], r[5], json.loads(r[6]), rule=r[7] or r[4], subject=r[8],
                     severity=r[9], state=r[10], value=r[11], updated_at=None if r[12] is None else f(r[12]),
                     acknowledged_by=r[13], acknowledged_at=None if r[14] is None else f(r[14]),
                     cleared_at=None if r[15] is None else f(r[15]))

    def raise_alarm(self, rule: str, station: str | None, subject: str | None, time: datetime, message: str,
                    value: float | None = None, severity: str = "warning",
                    data: dict[str, Any] | None = None) -> AlarmChange:
        """Open the alarm of (rule, station, subject), or refresh it when one is active already
        (open or acknowledged: deduplicated, its acknowledgement kept)."""
        key = alarm_key(rule, station, subject)
        t = self._t  # type: ignore[attr-defined]
        doc = json.dumps(data or {}, allow_nan=False, default=str)
        with self._transaction():  # type: ignore[attr-defined]
            rows = self._query(  # type: ignore[attr-defined]
                "SELECT id FROM alarm WHERE alarm_key = ? AND state <> 'cleared'", (key,))
            if rows:
                alarm_id, change = int(rows[0][0]), "updated"
                self._execute(self._sql(  # type: ignore[attr-defined]
                    "UPDATE alarm SET message = ?, value = ?, data = ?, updated_at = ?, severity = ? WHERE id = ?"),
                    (message, value, doc, t(time), severity, alarm_id))
            else:
                cur = self._execute(self._sql(  # type: ignore[attr-defined]
                    "INSERT INTO alarm (time, station, store, kind, message, data, rule, subject, alarm_key, severity, "
                    "state, value, updated_at) VALUES (?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, 'open', ?, ?) RETURNING id"),
                    (t(time), station, rule, message, doc, rule, subject, key, severity, value, t(time)))
                alarm_id, change = int(cur.fetchone()[0]), "raised"
        return AlarmChange(alarm_id, rule, station, subject, change, time, severity, message, value, data or {})

    def clear_alarm(self, rule: str, station: str | None, subject: str | None, time: datetime,
                    message: str | None = None, value: float | None = None) -> AlarmChange | None:
        """Clear the active alarm of (rule, station, subject); None when there is none."""
        key = alarm_key(rule, station, subject)
        with self._transaction():  # type: ignore[attr-defined]
            rows = self._query(  # type: ignore[attr-defined]
                "SELECT id, severity, message, data FROM alarm WHERE alarm_key = ? AND state <> 'cleared'", (key,))
            if not rows:
                return None
            alarm_id, severity, old_message, data = int(rows[0][0]), rows[0][1], rows[0][2], json.loads(rows[0][3])
            self._execute(self._sql(  # type: ignore[attr-defined]
                "UPDATE alarm SET state = 'cleared', cleared_at = ?, updated_at = ? WHERE id = ?"),
                (self._t(time), self._t(time), alarm_id))  # type: ignore[attr-defined]
        return AlarmChange(alarm_id, rule, station, subject, "cleared", time, severity, message or old_message,
                           value, data)

    def acknowledge_alarm(self, alarm_id: int, user: str, time: datetime):
        """Acknowledge an open alarm (who, when); acknowledging it again changes nothing. Raises
        AlarmNotFound, or AlarmCleared for an alarm cleared already."""
        if not user.strip():
            raise ValueError("acknowledging an alarm needs the user's name")
        with self._transaction():  # type: ignore[attr-defined]
            rows = self._query("SELECT state FROM alarm WHERE id = ?", (alarm_id,))  # type: ignore[attr-defined]
            if not rows:
                raise AlarmNotFound(f"no alarm #{alarm_id}")
            if rows[0][0] == "cleared":
                raise AlarmCleared(f"alarm #{alarm_id} is cleared already")
            if rows[0][0] == "open":
                self._execute(self._sql(  # type: ignore[attr-defined]
                    "UPDATE alarm SET state = 'acknowledged', acknowledged_by = ?, acknowledged_at = ? WHERE id = ?"),
                    (user, self._t(time), alarm_id))  # type: ignore[attr-defined]
        return self.alarm(alarm_id)

    def alarm(self, alarm_id: int):
        rows = self._query(f"SELECT {ALARM_COLUMNS} FROM alarm WHERE id = ?", (alarm_id,))  # type: ignore[attr-defined]
        if not rows:
            raise AlarmNotFound(f"no alarm #{alarm_id}")
        return self._alarm(rows[0])

    def alarm_list(self, state: str | None = None, station: str | None = None, limit: int = 100) -> list:
        """Alarms newest first; `state`: open, acknowledged, cleared, or 'active' (open or acknowledged)."""
        sql = f"SELECT {ALARM_COLUMNS} FROM alarm WHERE 1 = 1"
        params: list[Any] = []
        if state == "active":
            sql += " AND state <> 'cleared'"
        elif state is not None:
            if state not in ALARM_STATES:
                raise ValueError(f"alarm state {state!r} is not one of {', '.join(ALARM_STATES)} or active")
            sql += " AND state = ?"
            params.append(state)
        if station is not None:
            sql += " AND station = ?"
            params.append(station)
        rows = self._query(sql + " ORDER BY id DESC LIMIT ?", [*params, limit])  # type: ignore[attr-defined]
        return [self._alarm(r) for r in rows]

    def active_alarm_keys(self) -> set[str]:
        """Keys of the rules' alarms not cleared (what the evaluator holds raised)."""
        rows = self._query("SELECT alarm_key FROM alarm WHERE state <> 'cleared' AND alarm_key IS NOT NULL")  # type: ignore[attr-defined]
        return {r[0] for r in rows}

    def active_alarm_counts(self) -> dict[str, int]:
        """Alarms open or acknowledged, per severity."""
        rows = self._query("SELECT severity, count(*) FROM alarm WHERE state <> 'cleared' GROUP BY severity")  # type: ignore[attr-defined]
        return {r[0]: int(r[1]) for r in rows}

    # -- manual flags ----------------------------------------------------------------------------

    def remove_manual_flag(self, flag_id: int, user: str, time: datetime, reason: str = "") -> None:
        """Stop a manual flag applying (kept, with who removed it, when and why) and mark its hours
        dirty, in one transaction. Raises LookupError for an unknown flag, ValueError for one
        removed already."""
        if not user.strip():
            raise ValueError("removing a manual flag needs the user's name")
        f = self._from_t  # type: ignore[attr-defined]
        with self._transaction():  # type: ignore[attr-defined]
            rows = self._query(  # type: ignore[attr-defined]
                "SELECT station, time_from, time_to, removed_at FROM manual_flag WHERE id = ?", (flag_id,))
            if not rows:
                raise LookupError(f"no manual flag #{flag_id}")
            station, time_from, time_to, removed = rows[0]
            if removed is not None:
                raise ValueError(f"manual flag #{flag_id} is removed already")
            self._execute(self._sql(  # type: ignore[attr-defined]
                "UPDATE manual_flag SET removed_by = ?, removed_at = ?, removal_reason = ? WHERE id = ?"),
                (user, self._t(time), reason, flag_id))  # type: ignore[attr-defined]
            self._mark_dirty(station, hours_of(f(time_from), f(time_to)))  # type: ignore[attr-defined]

    # -- dead letters ----------------------------------------------------------------------------

    def dead_letter(self, letter_id: int):
        """One dead letter by id; LookupError when there is none."""
        rows = self.dead_letters(limit=1, letter_id=letter_id)  # type: ignore[attr-defined]
        if not rows:
            raise LookupError(f"no dead letter #{letter_id}")
        return rows[0]

    def note_replay(self, letter_id: int, time: datetime, result: str, resolved: bool) -> None:
        """Count a replay of a dead letter and its result; `resolved`: the replay stored what it held."""
        t = self._t(time)  # type: ignore[attr-defined]
        with self._transaction():  # type: ignore[attr-defined]
            self._execute(self._sql(  # type: ignore[attr-defined]
                "UPDATE dead_letter SET replays = replays + 1, last_replay_at = ?, last_replay_result = ?, "
                "resolved_at = CASE WHEN ? THEN COALESCE(resolved_at, ?) ELSE resolved_at END, "
                "resolution = CASE WHEN ? THEN COALESCE(resolution, ?) ELSE resolution END WHERE id = ?"),
                (t, result[:2000], resolved, t, resolved, result[:2000], letter_id))

    def unresolved_dead_letter_counts(self) -> dict[str | None, int]:
        """Dead letters not resolved, per station (None: messages without a station)."""
        rows = self._query(  # type: ignore[attr-defined]
            "SELECT station, count(*) FROM dead_letter WHERE resolved_at IS NULL GROUP BY station")
        return {r[0]: int(r[1]) for r in rows}
