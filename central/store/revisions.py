"""Pending reprocess runs after a cylinder's value or scale was revised: table `scale_revision`,
one row per (station, cylinder, species, first calibration on the new value), written by the
detection pass (central/reprocess/revisions.py) and cleared (run_id, done_at) when the run is made.
Shared by both SQL backends through `RevisionStoreMixin`, which uses the primitives of `SqlStore`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


def migration_scale_revision(types: dict[str, str]) -> list[str]:
    """The scale_revision table (append-only: never edit once released)."""
    t = types
    return [
        f"""CREATE TABLE scale_revision (
            id {t['autoid']}, station {t['text']} NOT NULL, cylinder {t['text']} NOT NULL,
            species {t['text']} NOT NULL, old_value {t['real']} NOT NULL, old_scale {t['text']} NOT NULL,
            new_value {t['real']} NOT NULL, new_scale {t['text']} NOT NULL, revised_value {t['real']},
            revised_scale {t['text']}, time_from {t['time']} NOT NULL, time_to {t['time']} NOT NULL,
            detected_at {t['time']} NOT NULL, note {t['text']}, run_id {t['bigint']}, done_at {t['time']})""",
        "CREATE UNIQUE INDEX scale_revision_key ON scale_revision (station, cylinder, species, time_to)",
    ]


@dataclass(frozen=True, slots=True)
class ScaleRevision:
    """A cylinder's (value, scale) change between two calibrations of a station, and the period
    calibrated with the old one: [time_from, time_to) = first calibration on the old value to the
    first on the new. `revised_value` is the new value on the species' current scale (None with a
    `note` when it cannot be converted); `run_id`/`done_at` set once reprocessed."""

    station: str
    cylinder: str
    species: str
    old_value: float
    old_scale: str
    new_value: float
    new_scale: str
    revised_value: float | None
    revised_scale: str | None
    time_from: datetime
    time_to: datetime
    detected_at: datetime
    note: str | None = None
    id: int | None = None
    run_id: int | None = None
    done_at: datetime | None = None


_COLUMNS = ("station, cylinder, species, old_value, old_scale, new_value, new_scale, revised_value, revised_scale, "
            "time_from, time_to, detected_at, note, id, run_id, done_at")


class RevisionStoreMixin:
    """Scale revisions in a `SqlStore` (needs _t, _from_t, _transaction, _execute, _query, _sql)."""

    def calibration_stations(self) -> list[str]:
        return [r[0] for r in self._query("SELECT DISTINCT station FROM calibration ORDER BY station")]  # type: ignore[attr-defined]

    def add_scale_revisions(self, rows: list[ScaleRevision]) -> int:
        """Insert the revisions not known yet (same station, cylinder, species and time_to);
        returns how many are new."""
        t = self._t  # type: ignore[attr-defined]
        n = 0
        with self._transaction():  # type: ignore[attr-defined]
            for r in rows:
                cur = self._execute(self._sql(  # type: ignore[attr-defined]
                    f"INSERT INTO scale_revision ({_COLUMNS.rsplit(', id', 1)[0]}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"),
                    (r.station, r.cylinder, r.species, r.old_value, r.old_scale, r.new_value, r.new_scale,
                     r.revised_value, r.revised_scale, t(r.time_from), t(r.time_to), t(r.detected_at), r.note))
                n += max(0, cur.rowcount or 0)
        return n

    def scale_revisions(self, pending_only: bool = True) -> list[ScaleRevision]:
        sql = f"SELECT {_COLUMNS} FROM scale_revision"
        if pending_only:
            sql += " WHERE done_at IS NULL"
        f = self._from_t  # type: ignore[attr-defined]
        return [ScaleRevision(*r[:9], f(r[9]), f(r[10]), f(r[11]), r[12], int(r[13]), r[14],
                              None if r[15] is None else f(r[15]))
                for r in self._query(sql + " ORDER BY station, time_from, cylinder, species, id")]  # type: ignore[attr-defined]

    def finish_scale_revision(self, revision_id: int, run_id: int | None, done_at: datetime | None,
                              note: str | None) -> None:
        """Clear a revision (run_id and done_at set), or keep it pending with a note (done_at None)."""
        with self._transaction():  # type: ignore[attr-defined]
            self._execute(self._sql(  # type: ignore[attr-defined]
                "UPDATE scale_revision SET run_id = ?, done_at = ?, note = ? WHERE id = ?"),
                (run_id, None if done_at is None else self._t(done_at), note, revision_id))  # type: ignore[attr-defined]
