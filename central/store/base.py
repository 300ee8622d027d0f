"""What central keeps, behind one interface for SQLite and PostgreSQL.

The contract every backend meets (the same test suite runs on both):

- A record is keyed by (station, store, seq): `store` is the identity of the station database it
  comes from (None, kept as '', for a station older than store identities), so a reinstalled
  station's new seq 1 is new data. A second arrival with the same content is counted as a
  duplicate and changes nothing; one with other content is a conflict: the stored copy stays,
  never overwritten, the incoming one goes to the dead letters (`seq_conflict`) and the operators
  get an alarm.
- `ingest` writes a group of received messages in ONE transaction (bulk inserts), so the caller
  may acknowledge all of them once it returns, and none of them if it raises.
- Times go in and come out as timezone-aware UTC datetimes.
"""

from __future__ import annotations

import json
import marshal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol, runtime_checkable

import msgspec

from ghgnet.wire import (
    CalibrationWire,
    EmissionWire,
    EventWire,
    MinuteWire,
    ParsedBatch,
    RejectedRecord,
    StatusMessage,
    TargetWire,
    record_to_json,
    topic_for,
)

from .species import StoredSpecies, species_json

_encode_json = msgspec.json.encode

DEFAULT_DEAD_LETTER_KEEP_BYTES = 65_536
"""Bytes of a dead-lettered payload kept; the full size is stored beside them."""


class StoreError(Exception):
    """The store cannot be used (wrong schema version, bad location); not for input errors."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message (or one record of it) central refused, kept with the reason for an operator."""

    topic: str
    payload: bytes
    reason_code: str
    reason: str
    station: str | None = None
    seq: int | None = None
    store: str | None = None
    """The store of the record's batch (a record's dead letter: None for the legacy store)."""


LEGACY_STORE = ""
"""How the store of a batch without one (a station older than store identities) is kept."""


def store_key(store: str | None) -> str:
    """A batch's store as the tables keep it."""
    return LEGACY_STORE if store is None else store


def store_name(key: str | None) -> str | None:
    """A kept store as the API gives it: None for the legacy store."""
    return key or None


@dataclass(frozen=True, slots=True)
class FutureRecord(RejectedRecord):
    """A valid record stamped beyond central's clock and its tolerance (central/ingest.py)."""

    reason_code: ClassVar[str] = "time_in_future"


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    station: str
    kind: str
    new: int
    duplicate: int
    dead_lettered: int
    ack_seqs: list[int]
    """Every seq central now holds from this batch: new, duplicate and dead-lettered records."""
    store: str | None = None
    """The station database the batch came from (None: a station older than store identities)."""
    conflicts: list[int] = field(default_factory=list)
    """Seqs stored before with other content: these copies went to the dead letters."""


@dataclass(frozen=True, slots=True)
class StatusOutcome:
    station: str
    stored: bool
    """False when central kept the status it holds (a redelivered, late or repeated one: the
    rules are in central/store/status.py)."""


@dataclass(frozen=True, slots=True)
class DeadLetterOutcome:
    station: str | None
    stored: bool


Inbound = ParsedBatch | StatusMessage | DeadLetter
Outcome = BatchOutcome | StatusOutcome | DeadLetterOutcome


@dataclass(frozen=True, slots=True)
class MinuteRows:
    """A minute batch ready to store: its `minute` rows (ROW_COLUMNS order: station, seq, time,
    ...; the batch's store is bound once per statement, not kept in every row) and a dead letter
    for each record it refused. It holds no records, only what storing needs, so it is cheap to
    pass from the decoding process (central/decoder.py)."""

    station: str
    rows: list[tuple]
    rejected: list[DeadLetter]
    store: str | None = None

    def __reduce__(self):
        # The rows cross from the decoding process as marshal data: it writes rows of texts,
        # numbers and None faster than pickle and, like pickle, writes a text repeated as the
        # same object once. Rows hold exactly
        # str, int, float and None (`minute_rows`; marshal would turn a buffer, e.g. a numpy
        # float, into bytes); a row with a datetime (the PostgreSQL backend's) is refused by
        # marshal (ValueError), and those go as pickle has them.
        try:
            return _minute_rows_from_marshal, (self.station, marshal.dumps(self.rows, 4), self.rejected, self.store)
        except ValueError:
            return MinuteRows, (self.station, self.rows, self.rejected, self.store)


def _minute_rows_from_marshal(station: str, rows: bytes, rejected: list[DeadLetter], store: str | None) -> MinuteRows:
    return MinuteRows(station, marshal.loads(rows), rejected, store)


@dataclass(frozen=True, slots=True)
class Prepared:
    """Items ready for one transaction (`CentralStore.prepare`). Building a minute batch's rows
    needs no database, so a thread other than the store's can do it meanwhile; `items` may also
    hold items as they came (then `write` builds their rows)."""

    items: list[Inbound | MinuteRows]
    received_at: datetime


@dataclass(frozen=True, slots=True)
class StoredMinute:
    station: str
    seq: int
    time: datetime
    device: str
    stream: str
    species: dict[str, StoredSpecies]
    h2o: float | None
    flag: str
    reasons: list[str]
    n_total: int
    calibration_id: str | None
    diagnostics: dict[str, float]
    received_at: datetime
    store: str | None = None
    """The station database the record came from (None: the legacy store)."""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    station: str
    seq: int
    time: datetime
    kind: str
    severity: str
    message: str
    device: str | None
    data: dict[str, Any]
    received_at: datetime
    store: str | None = None


@dataclass(frozen=True, slots=True)
class StoredFit:
    coefficients: list[float]
    residuals: list[float]
    r2: float | None
    rmse: float | None
    n: int
    covariance: list[list[float]] | None = None
    """The coefficients' covariance (same order), schema 14; None when the station sent none."""


@dataclass(frozen=True, slots=True)
class StoredCalibration:
    station: str
    seq: int
    id: str
    time_start: datetime
    time_end: datetime
    standards: list[dict[str, Any]]
    fits: dict[str, StoredFit]
    received_at: datetime
    store: str | None = None


@dataclass(frozen=True, slots=True)
class StoredTargetValue:
    measured: float | None
    assigned: float | None
    bias: float | None
    within_goal: bool | None
    u: float | None = None
    """Standard uncertainty of the bias (schema 14; None: not sent)."""
    within_u: bool | None = None
    """|bias| <= 2u (schema 14; None: not sent)."""


@dataclass(frozen=True, slots=True)
class StoredTarget:
    station: str
    seq: int
    id: str
    time: datetime
    cylinder: str
    values: dict[str, StoredTargetValue]
    received_at: datetime
    store: str | None = None


@dataclass(frozen=True, slots=True)
class StationStatus:
    state: str
    time: datetime
    received_at: datetime
    backlog: int
    oldest_unacked_age_s: float | None
    agent_version: str
    interval_s: float | None
    last_seq: int | None
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StationSummary:
    station: str
    first_seen: datetime
    last_seen: datetime
    last_seq: int
    minutes: int
    events: int
    calibrations: int
    targets: int
    duplicates: int
    dead_letters: int
    status: StationStatus | None = None
    store: str | None = None
    """The store of the station's latest batch (None: the legacy store); `last_seq` is its."""
    emissions: int = 0
    fluxes: int = 0


@dataclass(frozen=True, slots=True)
class DeadLetterRow:
    id: int
    received_at: datetime
    topic: str
    station: str | None
    seq: int | None
    reason_code: str
    reason: str
    payload: bytes
    payload_size: int
    store: str | None = None
    resolved_at: datetime | None = None
    """When a replay stored what the letter held (central/deadletters/); None: not resolved."""
    resolution: str | None = None
    replays: int = 0
    last_replay_at: datetime | None = None
    last_replay_result: str | None = None

    @property
    def truncated(self) -> bool:
        """Only the first bytes of the payload were kept ([storage] dead_letter_keep_bytes)."""
        return len(self.payload) < self.payload_size


@dataclass(frozen=True, slots=True)
class Alarm:
    """Something central tells its operators, with the station it concerns: a `seq_conflict` found
    by ingest, or an alarm raised by a rule (central/alarms/), which one per rule, station and
    subject is active (open or acknowledged) at most, until cleared."""

    id: int
    time: datetime
    """When it was raised."""
    station: str | None
    store: str | None
    kind: str
    """The rule's kind (station_down, ...) or seq_conflict."""
    message: str
    data: dict[str, Any]
    rule: str | None = None
    """The rule's name ([[alarms.rules]] name; seq_conflict for ingest's)."""
    subject: str | None = None
    """What within the station, e.g. a species; None for the station as a whole."""
    severity: str = "warning"
    state: str = "open"
    """open, acknowledged or cleared."""
    value: float | None = None
    """The rule's measured value when last evaluated (its unit: the rule's)."""
    updated_at: datetime | None = None
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    cleared_at: datetime | None = None


@runtime_checkable
class CentralStore(Protocol):
    """Central's storage. One instance is used by one thread at a time."""

    backend: str

    def schema_version(self) -> int: ...

    def ingest(self, items: Sequence[Inbound], received_at: datetime) -> list[Outcome]:
        """Store every item in one transaction; outcomes in item order. Raises (and stores
        nothing) on a storage failure. `write(prepare(items, received_at))`."""
        ...

    def prepare(self, items: Sequence[Inbound], received_at: datetime) -> Prepared:
        """What `write` needs that can be built without the database; safe on any thread."""
        ...

    def write(self, prepared: Prepared) -> list[Outcome]:
        """`ingest` of prepared items."""
        ...

    def store_batch(self, batch: ParsedBatch, received_at: datetime) -> BatchOutcome: ...

    def store_status(self, status: StatusMessage, received_at: datetime) -> StatusOutcome: ...

    def add_dead_letter(self, letter: DeadLetter, received_at: datetime) -> DeadLetterOutcome: ...

    def minutes(self, station: str, start: datetime, end: datetime) -> Iterator[StoredMinute]:
        """Minute records with start <= time < end, in time then seq order."""
        ...

    def minute_species(self, station: str, start: datetime, end: datetime) -> list[str]: ...

    def events(self, station: str, start: datetime, end: datetime) -> list[StoredEvent]: ...

    def fluxes(self, station: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Half-hourly flux records (ghgnet.wire.FluxWire's fields, `seq` and `store`) whose
        period starts in [start, end)."""

    def calibrations(self, station: str, start: datetime, end: datetime) -> list[StoredCalibration]:
        """Calibrations whose time_start lies in [start, end)."""
        ...

    def targets(self, station: str, start: datetime, end: datetime) -> list[StoredTarget]: ...

    def target_biases(self, station: str, start: datetime, end: datetime) -> list[tuple[datetime, str, str, float]]:
        """(time, cylinder, species, bias) of every target value with a bias, runs in [start, end), time order."""
        ...

    def calibration_ends(self, station: str, start: datetime, end: datetime) -> list[datetime]:
        """time_end of the calibrations whose time_start lies in [start, end)."""
        ...

    def calibration_fit_rows(self, station: str, start: datetime, end: datetime
                             ) -> list[tuple[datetime, str, str, list[float], list[float], float | None]]:
        """(time_start, id, species, coefficients, residuals, rmse) of the fits of calibrations
        starting in [start, end), by species then time."""
        ...

    def held_seqs(self, station: str, store: str | None = None) -> list[int]:
        """Every seq stored for the station's `store` (None: the legacy store), any kind, sorted
        (dead letters not included)."""
        ...

    def record_identities(self, station: str) -> dict[str, list[dict[str, Any]]]:
        """Every record stored for the station, any store, per kind (minute, event, calibration,
        target) in seq order: seq, store (None: the legacy store) and the fields that identify it
        (times as iso_utc text); a calibration's fit RMSE per species (`rmse`), a target's bias and
        whether it is within the goal per species (`bias`). What `central-receiver records` prints."""
        ...

    def minute_count(self, station: str, device: str | None = None) -> int:
        """Minute records stored for the station (of one device when given), any store."""
        ...

    def stations(self) -> list[StationSummary]: ...

    def dead_letters(self, limit: int = 100, station: str | None = None, unresolved: bool = False,
                     letter_id: int | None = None, before_id: int | None = None) -> list[DeadLetterRow]:
        """Newest first; `unresolved`: only those no replay resolved; `before_id`: the next page."""
        ...

    def dead_letter_count(self, station: str | None = None) -> int: ...

    def alarms(self, limit: int = 100, station: str | None = None) -> list[Alarm]:
        """Newest first."""
        ...

    def alarm_count(self, station: str | None = None) -> int:
        """Alarms not cleared (open or acknowledged)."""
        ...

    # -- operators' actions (schema 6: central/store/operations.py) -----------------------------

    def raise_alarm(self, rule: str, station: str | None, subject: str | None, time: datetime, message: str,
                    value: float | None = None, severity: str = "warning", data: dict[str, Any] | None = None) -> Any:
        """Open the alarm of (rule, station, subject) or refresh the active one; an AlarmChange."""
        ...

    def clear_alarm(self, rule: str, station: str | None, subject: str | None, time: datetime,
                    message: str | None = None, value: float | None = None) -> Any: ...

    def acknowledge_alarm(self, alarm_id: int, user: str, time: datetime) -> Alarm: ...

    def alarm(self, alarm_id: int) -> Alarm: ...

    def alarm_list(self, state: str | None = None, station: str | None = None, limit: int = 100) -> list[Alarm]: ...

    def active_alarm_keys(self) -> set[str]: ...

    def active_alarm_counts(self) -> dict[str, int]: ...

    def remove_manual_flag(self, flag_id: int, user: str, time: datetime, reason: str = "") -> None: ...

    def dead_letter(self, letter_id: int) -> DeadLetterRow: ...

    def note_replay(self, letter_id: int, time: datetime, result: str, resolved: bool) -> None: ...

    def unresolved_dead_letter_counts(self) -> dict[str | None, int]: ...

    def close(self) -> None: ...


# ---------------------------------------------------------------------------------------------
# Row building shared by the SQL backends


_ENCODE = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def dumps(value: Any) -> str:
    """Compact JSON, NaN refused (one encoder made once: this runs twice per stored minute)."""
    if not value and isinstance(value, list | dict):
        return "[]" if isinstance(value, list) else "{}"
    return _ENCODE(value)


@dataclass(slots=True)
class Counters:
    """Per-station increments gathered over one transaction, applied at its end in station
    order (so two PostgreSQL writers never lock station rows in opposite orders)."""

    last_seen: datetime
    last_seq: int = 0
    store: str | None = None
    """The store (as kept) of the station's last batch in the transaction; `last_seq` is its."""
    minutes: int = 0
    events: int = 0
    calibrations: int = 0
    targets: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    emissions: int = 0
    fluxes: int = 0


def record_dead_letters(batch: ParsedBatch) -> list[DeadLetter]:
    """One dead letter per rejected record of a batch, its payload the record's JSON."""
    topic = topic_for(batch.station, batch.kind)
    out = []
    for r in batch.rejected:
        payload = record_to_json(r.raw).encode("utf-8", "backslashreplace")
        code = getattr(r, "reason_code", "invalid_record")
        out.append(DeadLetter(topic, payload, code, r.reason, batch.station, r.seq, batch.store))
    return out


def minute_rows(station: str, recs: list[MinuteWire], t, received, times: list[Any] | None = None,
                species: list[str] | None = None) -> list[tuple]:
    """The `minute` rows (ROW_COLUMNS order) of validated minute records; `times` and `species`:
    their times as the store keeps them and their species texts, when known already (else
    `t(r.time)` and `species_json(r.species)` each)."""
    # The hot loop of ingest (once per record): reasons and diagnostics are validated lists of
    # names and dicts of finite floats, which msgspec (C) writes as JSON.
    if times is None:
        times = [t(r.time) for r in recs]
    if species is None:
        species = [species_json(r.species) for r in recs]
    # One object for each repeated text (a batch has a few devices, streams, flags, calibration
    # ids): the decoding process sends the rows as marshal data (MinuteRows.__reduce__), which,
    # like pickle, writes a repeat as a reference to the first, so the receiver reads it faster.
    same = {}.setdefault
    return [
        (
            station, r.seq, time, same(r.device, r.device), same(r.stream, r.stream), r.h2o, same(r.flag, r.flag),
            _encode_json(r.reasons).decode() if r.reasons else "[]",
            r.n_total, same(r.calibration_id, r.calibration_id),
            _encode_json(r.diagnostics).decode() if r.diagnostics else "{}", received, sp,
        )
        for r, time, sp in zip(recs, times, species)
    ]


def emission_rows(station: str, recs: list[EmissionWire], t, received) -> list[tuple]:
    """The `emission` rows (ROW_COLUMNS order) of validated emission records."""
    return [
        (station, r.seq, t(r.time), r.unit, r.period, r.operating_h, r.co2_dry_pct, r.standard_flow_m3_h,
         r.mass_kg, r.co2_valid, r.flow_valid, r.co2_modc, r.flow_modc, dumps(r.reasons), received)
        for r in recs
    ]


NO_DEVICE = ""
"""How an event without a device (a station-wide one: agent start/stop, interlocks, runs) is
stored: schema 1 made event.device NOT NULL, and a device id is never empty on the wire."""


def event_rows(station: str, recs: list[EventWire], t, received) -> list[tuple]:
    return [
        (station, r.seq, t(r.time), r.kind, r.severity, r.message,
         NO_DEVICE if r.device is None else r.device, dumps(r.data), received)
        for r in recs
    ]


def calibration_rows(station: str, recs: list[CalibrationWire], t, received) -> tuple[list[tuple], list[tuple]]:
    rows, fits = [], []
    for r in recs:
        rows.append((
            station, r.seq, r.id, t(r.time_start), t(r.time_end),
            dumps([s.model_dump() for s in r.standards]), received,
        ))
        for sp, f in r.fits.items():
            fits.append((station, r.seq, sp, dumps(f.coefficients), dumps(f.residuals), f.r2, f.rmse, f.n,
                         None if f.covariance is None else dumps(f.covariance)))
    return rows, fits


def target_rows(station: str, recs: list[TargetWire], t, received) -> tuple[list[tuple], list[tuple]]:
    rows, values = [], []
    for r in recs:
        rows.append((station, r.seq, r.id, t(r.time), r.cylinder, received))
        for sp in sorted(set(r.measured) | set(r.assigned) | set(r.bias) | set(r.within_goal) | set(r.u)
                         | set(r.within_u)):
            values.append((
                station, r.seq, sp, r.measured.get(sp), r.assigned.get(sp), r.bias.get(sp),
                r.within_goal.get(sp), r.u.get(sp), r.within_u.get(sp),
            ))
    return rows, values
