"""Dead letters for operators: listed with their reason and an excerpt of the payload, and replayed
through the normal ingest path (`ingest.decode`, then the store's one-transaction `ingest`) once
what refused them is fixed (a station's config, central's clock, a decoder bug).

What a replay takes:
- a record's letter (it has a seq: one record refused, or the other copy of a seq conflict): the
  record is put back into a batch of its kind, station and store and ingested as one;
- a whole message's letter (no seq): its topic and payload, as they came.

A letter whose replay stores what it held (new, or a duplicate of what central holds: the same
content) is resolved, with when and the result; a resolved letter is not replayed again unless
forced, and a forced replay finds a duplicate: replaying twice stores once. A letter that is
refused again stays unresolved with the new reason as its last result, and no second letter is
made of it (a record's letter is keyed by station, store and seq). A letter whose payload was cut
([storage] dead_letter_keep_bytes) cannot be replayed. A replay sends no ack to the station: a
record's letter was acknowledged when it was refused, and a station resends a message that was
refused whole until it is acknowledged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ghgnet.timeutil import iso_utc
from ghgnet.wire import SCHEMA_VERSION, ParsedBatch, StatusMessage, parse_topic

from ..config import CentralConfig
from ..ingest import decode
from ..store import BatchOutcome, DeadLetter, StatusOutcome
from ..store.base import DeadLetterRow

EXCERPT_BYTES = 240


@dataclass(frozen=True, slots=True)
class ReplayResult:
    id: int
    result: str
    """stored, duplicate, status_stored, already_resolved, refused, conflict, truncated."""
    resolved: bool
    detail: str


def payload_excerpt(payload: bytes, limit: int = EXCERPT_BYTES) -> str:
    """The payload's first bytes as text (undecodable bytes escaped), with … when cut."""
    text = payload[:limit].decode("utf-8", "backslashreplace")
    return text + ("…" if len(payload) > limit else "")


def dead_letter_doc(d: DeadLetterRow, excerpt_bytes: int = EXCERPT_BYTES) -> dict[str, Any]:
    """A dead letter as JSON: reason and an excerpt of the payload (not the whole of it)."""
    return {"id": d.id, "received_at": iso_utc(d.received_at), "topic": d.topic, "station": d.station,
            "store": d.store, "seq": d.seq, "reason_code": d.reason_code, "reason": d.reason,
            "payload_size": d.payload_size, "payload_kept": len(d.payload), "truncated": d.truncated,
            "excerpt": payload_excerpt(d.payload, excerpt_bytes),
            "resolved_at": iso_utc(d.resolved_at) if d.resolved_at else None, "resolution": d.resolution,
            "replays": d.replays, "last_replay_at": iso_utc(d.last_replay_at) if d.last_replay_at else None,
            "last_replay_result": d.last_replay_result}


def list_dead_letters(store, station: str | None = None, unresolved: bool = False, limit: int = 100,
                      before_id: int | None = None) -> list[DeadLetterRow]:
    """Newest first; `before_id` pages on (the last id of the previous page)."""
    return store.dead_letters(limit=limit, station=station, unresolved=unresolved, before_id=before_id)


def replay_message(d: DeadLetterRow) -> tuple[str, bytes]:
    """The (topic, payload) to ingest again for a letter."""
    if d.seq is None:
        return d.topic, d.payload
    station, kind = parse_topic(d.topic)
    record = json.loads(d.payload)
    if not isinstance(record, dict):
        raise ValueError("the kept record is not a JSON object")
    record["seq"] = d.seq
    envelope: dict[str, Any] = {"schema": SCHEMA_VERSION, "station": station}
    if d.store is not None:
        envelope["store"] = d.store
    envelope.update({"kind": kind, "sent": iso_utc(d.received_at), "records": [record]})
    return d.topic, json.dumps(envelope, allow_nan=True).encode()


def replay_dead_letter(store, config: CentralConfig, letter_id: int, now: datetime,
                       force: bool = False) -> ReplayResult:
    """Replay one dead letter (see the module's docstring); `now`: central's clock. LookupError
    for an unknown id."""
    d = store.dead_letter(letter_id)
    if d.resolved_at is not None and not force:
        return ReplayResult(d.id, "already_resolved", True, f"resolved {iso_utc(d.resolved_at)}: {d.resolution}")
    if d.truncated:
        result = ReplayResult(d.id, "truncated", False,
                              f"only {len(d.payload)} of {d.payload_size} bytes were kept: cannot replay")
        store.note_replay(d.id, now, f"{result.result}: {result.detail}", False)
        return result
    try:
        topic, payload = replay_message(d)
    except ValueError as exc:
        result = ReplayResult(d.id, "refused", False, f"the kept record cannot be read: {exc}")
        store.note_replay(d.id, now, f"{result.result}: {result.detail}", False)
        return result
    ingest = config.ingest
    item = decode(topic, payload, ingest.max_payload_bytes, now + timedelta(seconds=ingest.future_tolerance_s))
    result = _classify(d, item, store.ingest([item], now)[0] if isinstance(item, ParsedBatch | StatusMessage)
                       else None)
    store.note_replay(d.id, now, f"{result.result}: {result.detail}", result.resolved)
    return result


def _classify(d: DeadLetterRow, item, outcome) -> ReplayResult:
    if isinstance(item, DeadLetter):
        return ReplayResult(d.id, "refused", False, f"{item.reason_code}: {item.reason}")
    if item is None:
        return ReplayResult(d.id, "refused", False, "an empty retained status: nothing to store")
    if isinstance(outcome, StatusOutcome):
        return ReplayResult(d.id, "status_stored", True, "status stored" if outcome.stored
                            else "status older than the one central holds: nothing to change")
    assert isinstance(outcome, BatchOutcome)
    if d.seq is not None:
        if outcome.conflicts:
            return ReplayResult(d.id, "conflict", False, f"seq {d.seq} is stored with other content")
        if outcome.new:
            return ReplayResult(d.id, "stored", True, f"record seq {d.seq} stored")
        if outcome.duplicate:
            return ReplayResult(d.id, "duplicate", True, f"record seq {d.seq} is held already, same content")
        reason = item.rejected[0].reason if item.rejected else "refused"
        code = getattr(item.rejected[0], "reason_code", "invalid_record") if item.rejected else "refused"
        return ReplayResult(d.id, "refused", False, f"{code}: {reason}")
    detail = f"{outcome.new} new, {outcome.duplicate} duplicate, {outcome.dead_lettered} dead-lettered record(s)"
    if outcome.new or outcome.duplicate:
        return ReplayResult(d.id, "stored" if outcome.new else "duplicate", True, detail)
    return ReplayResult(d.id, "refused", False, detail)


def replay_dead_letters(store, config: CentralConfig, now: datetime, ids: list[int] | None = None,
                        station: str | None = None, limit: int = 1000, force: bool = False) -> list[ReplayResult]:
    """Replay the letters `ids`, or the unresolved ones (of `station`), oldest first."""
    if ids is None:
        ids = sorted(d.id for d in list_dead_letters(store, station, unresolved=True, limit=limit))
    return [replay_dead_letter(store, config, i, now, force) for i in ids]
