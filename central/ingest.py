"""From received MQTT messages to stored rows and the acks to send: no network here.

`Ingestor.handle` takes a group of messages, validates each against the wire models, builds the
rows to write and writes all of them in one transaction. Every input ends in exactly one of three places: stored,
recognised as a duplicate, or dead-lettered with the reason. The receiver acknowledges only after
`handle` has returned (that is, after the commit).

Time is sane: a record or a status stamped more than `future_tolerance_s` beyond central's clock
(the group's receive time) cannot be real, and would stay the newest thing central holds (a
station's state, the dashboard's window): such a record is dead-lettered (`time_in_future`) and
acknowledged like any record refused for good; such a status is dead-lettered whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import msgspec
import structlog

from ghgnet.timeutil import iso_utc
from ghgnet.wire import (
    BATCH_KINDS,
    DEFAULT_MAX_PAYLOAD_BYTES,
    BadTopic,
    CalibrationWire,
    FluxWire,
    ParsedBatch,
    WireError,
    batch_json,
    encode_ack,
    parse_batch,
    parse_status,
    parse_topic,
    topic_for,
)

from .lean_minutes import decode_minutes
from .store import (
    BatchOutcome,
    CentralStore,
    DeadLetter,
    DeadLetterOutcome,
    FutureRecord,
    Inbound,
    Outcome,
    Prepared,
    StatusOutcome,
    transient_errors,
)

log = structlog.get_logger(component="ingest")  # lazy: picks up configure_logging done later

DEFAULT_FUTURE_TOLERANCE_S = 3600.0
"""How far beyond central's clock a record or status may be stamped (`[ingest] future_tolerance_s`)."""


MessageTuple = tuple[str, bytes] | tuple[str, bytes, str | None]
"""A message as the decoding takes it: (topic, payload), or (topic, payload, content type)."""


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes
    content_type: str | None = None
    """The MQTT v5 Content Type it came with: None or application/json for JSON, else the lean
    encoding's (ghgnet.wire.lean), which decides how the payload is decoded."""


@dataclass(frozen=True, slots=True)
class Handled:
    """What became of one message."""

    outcome: Outcome | None

    @property
    def ignored(self) -> bool:
        return self.outcome is None


def group_acks(handled: Iterable[Handled]) -> list[tuple[str, bytes]]:
    """The acks a stored group earns, (topic, payload): one per station and store (the station
    database the batches came from), covering every seq its batches settled (records new,
    duplicate or dead-lettered), in the order they first come. An ack names its store only when
    the batches did (a station older than store identities refuses an ack with a key it does not
    know). A payload dead-lettered as a whole, a status or an ignored message earns none. One ack
    for the group rather than one per message: during a replay a group holds several batches of
    one station, and each ack costs the station a parse and a transaction."""
    seqs: dict[tuple[str, str | None], list[int]] = {}
    for h in handled:
        o = h.outcome
        if isinstance(o, BatchOutcome) and o.ack_seqs:
            seqs.setdefault((o.station, o.store), []).extend(o.ack_seqs)
    return [(topic_for(station, "ack"), encode_ack(station, held, store=store))
            for (station, store), held in seqs.items()]


def _record_time(record: Any) -> datetime:
    """The latest time a record claims: a calibration's or a flux period's end, any other record's time."""
    if isinstance(record, FluxWire):
        return record.start + timedelta(seconds=record.duration_s)
    return record.time_end if isinstance(record, CalibrationWire) else record.time


def refuse_future_records(batch: ParsedBatch, not_after: datetime) -> ParsedBatch:
    """`batch` with its records stamped after `not_after` moved to its rejected records (dead
    letters `time_in_future`, acknowledged: a station resending them would not make them true)."""
    texts = batch.time_texts
    # the lean decoder's times are iso_utc's fixed-width text (milliseconds), so text order is
    # time order: one comparison in C for the whole batch, the common case
    if texts is not None and max(texts, default="") <= iso_utc(not_after):
        return batch
    late = {i for i, r in enumerate(batch.records) if _record_time(r) > not_after}
    if not late:
        return batch
    refused = [
        FutureRecord(i, r.seq, f"time {iso_utc(_record_time(r))} is more than central's tolerance beyond its "
                     f"clock (latest accepted: {iso_utc(not_after)})",
                     msgspec.to_builtins(r) if isinstance(r, msgspec.Struct) else r)
        for i, r in enumerate(batch.records) if i in late
    ]
    log.warning("time_in_future", station=batch.station, store=batch.store, kind=batch.kind, records=len(refused),
                seqs=[f.seq for f in refused][:20], latest_accepted=iso_utc(not_after))

    def kept(values: list | None) -> list | None:
        return None if values is None else [v for i, v in enumerate(values) if i not in late]

    return replace(batch, records=kept(batch.records), rejected=[*batch.rejected, *refused],  # type: ignore[arg-type]
                   time_texts=kept(batch.time_texts), species_texts=kept(batch.species_texts))


def parse_batch_lean(topic: str, payload: bytes, max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> ParsedBatch:
    """`parse_batch`, a minute batch first through the lean decoder (central/lean_minutes.py): it
    accepts and rejects the same inputs, with the same values and reasons."""
    station, kind = parse_topic(topic)  # a bad topic: parse_batch raises what it would have
    if kind == "minute" and len(payload) <= max_bytes:
        parsed = decode_minutes(station, payload)
        if parsed is not None:
            return parsed
    return parse_batch(topic, payload, max_bytes)


def decode(topic: str, payload: bytes, max_bytes: int, not_after: datetime | None = None,
           content_type: str | None = None) -> Inbound | None:
    """The store item for one message; None for a message to ignore (an empty retained status,
    which is how a retained message is cleared). `not_after`: the latest time a record or status
    may be stamped (None: any); `content_type`: the message's MQTT v5 Content Type, which decides
    the decoding of a batch (ghgnet.wire.lean.batch_json). Never raises on any input."""
    try:
        station, kind = parse_topic(topic)
    except BadTopic as exc:
        return DeadLetter(topic, payload, exc.code, exc.message)
    try:
        if kind in BATCH_KINDS:
            batch = parse_batch_lean(topic, batch_json(content_type, payload, max_bytes), max_bytes)
            return batch if not_after is None else refuse_future_records(batch, not_after)
        if kind == "status":
            if not payload:
                return None
            status = parse_status(topic, payload, max_bytes)
            if not_after is not None and status.time > not_after:
                log.warning("time_in_future", station=station, kind="status", time=iso_utc(status.time),
                            latest_accepted=iso_utc(not_after))
                return DeadLetter(topic, payload, "time_in_future",
                                  f"the status is stamped {iso_utc(status.time)}, more than central's tolerance "
                                  f"beyond its clock (latest accepted: {iso_utc(not_after)})", station=station)
            return status
        raise BadTopic(f"central does not take messages on {kind!r} topics")
    except WireError as exc:
        return DeadLetter(topic, payload, exc.code, exc.message, station=station)
    except Exception as exc:  # a validator bug must not stop ingest; keep the evidence
        log.exception("decode_failed", topic=topic)
        return DeadLetter(topic, payload, "internal_error", f"decoder failed: {type(exc).__name__}: {exc}",
                          station=station)


def decode_group(
    messages: Sequence[MessageTuple],
    max_bytes: int,
    prepare: Callable[[Sequence[Inbound], datetime], Prepared],
    received_at: datetime,
    future_tolerance_s: float = DEFAULT_FUTURE_TOLERANCE_S,
) -> tuple[list[int], Prepared]:
    """Validate a group of (topic, payload[, content type]) messages received at `received_at`
    (central's clock) and build the rows to write (`prepare`: the store's row builder). Returns the indexes of the
    messages with something to store (the others are ignored) and the prepared items. Pure: the
    decoding process runs it (central/decoder.py)."""
    not_after = received_at + timedelta(seconds=future_tolerance_s)
    items = [decode(m[0], m[1], max_bytes, not_after, m[2] if len(m) > 2 else None) for m in messages]
    present = [i for i, it in enumerate(items) if it is not None]
    found = [it for it in items if it is not None]
    try:
        prepared = prepare(found, received_at)
    except Exception:  # a row builder's bug: `write` builds the rows, and copes, message by message
        log.exception("prepare_failed", messages=len(found))
        prepared = Prepared(list(found), received_at)
    return present, prepared


class RemoteDecoder(Protocol):
    """Where `decode_group` may run instead of the calling thread (central/decoder.py)."""

    def decode(self, messages: Sequence[MessageTuple], received_at: datetime) -> tuple[list[int], Prepared] | None:
        """The result of `decode_group`, or None when it cannot decode now (then the caller does)."""
        ...


@dataclass(frozen=True, slots=True)
class Decoded:
    """A group of messages validated and prepared for one transaction (`Ingestor.decode_all`)."""

    messages: Sequence[Message]
    present: list[int]
    """Indexes of the messages with something to store (the others are ignored)."""
    prepared: Prepared


class Ingestor:
    def __init__(
        self,
        store: CentralStore,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        decoder: RemoteDecoder | None = None,
        future_tolerance_s: float = DEFAULT_FUTURE_TOLERANCE_S,
    ) -> None:
        self.store = store
        self.max_payload_bytes = max_payload_bytes
        self.now = now
        """Central's clock (a simulated one in the demo and the tests: ghgnet/clock.py)."""
        self.decoder = decoder
        self.future_tolerance_s = future_tolerance_s
        self._transient = transient_errors()

    def handle(self, messages: Sequence[Message]) -> list[Handled]:
        """Decode and store a group of messages in one transaction; results in message order.
        (The receiver runs the two halves, `decode_all` and `store_decoded`, on two threads.)"""
        return self.store_decoded(self.decode_all(messages))

    def decode_all(self, messages: Sequence[Message]) -> Decoded:
        """Validate every message and build the rows to write (no database: safe on another
        thread than `store_decoded`), in the decoding process when there is one that can, else
        here. Central receives the group now."""
        received_at = self.now()
        pairs: list[MessageTuple] = [(m.topic, m.payload, m.content_type) if m.content_type else (m.topic, m.payload)
                                     for m in messages]
        result = self.decoder.decode(pairs, received_at) if self.decoder is not None else None
        if result is None:
            result = decode_group(pairs, self.max_payload_bytes, self.store.prepare, received_at,
                                  self.future_tolerance_s)
        return Decoded(messages, *result)

    def store_decoded(self, decoded: Decoded) -> list[Handled]:
        """Store a decoded group (`decode_all`) in one transaction; results in message order.

        A transient storage error (database locked or unreachable) propagates: nothing was stored
        and the caller retries later. Any other storage error is retried message by message, and
        a message that still fails is dead-lettered, so one bad input cannot block the rest.
        """
        results = self._store(decoded)
        for h in results:
            o = h.outcome
            if isinstance(o, BatchOutcome) and o.conflicts:
                log.warning("seq_conflict", station=o.station, store=o.store, kind=o.kind, records=len(o.conflicts),
                            seqs=o.conflicts[:20], detail="stored copies kept; incoming ones dead-lettered")
        return results

    def _store(self, decoded: Decoded) -> list[Handled]:
        messages, present, prepared = decoded.messages, decoded.present, decoded.prepared
        results: list[Handled] = [Handled(None)] * len(messages)
        try:
            outcomes = self.store.write(prepared)
        except self._transient:
            raise
        except Exception:
            if len(present) == 1:
                results[present[0]] = Handled(self._store_failed(messages[present[0]]))
                return results
            log.exception("group_store_failed", messages=len(present))
            for i, it in zip(present, prepared.items):
                try:
                    results[i] = Handled(self.store.write(Prepared([it], prepared.received_at))[0])
                except self._transient:
                    raise
                except Exception:
                    results[i] = Handled(self._store_failed(messages[i]))
            return results
        for i, outcome in zip(present, outcomes):
            results[i] = Handled(outcome)
        return results

    def _store_failed(self, msg: Message) -> DeadLetterOutcome:
        log.exception("store_failed", topic=msg.topic)
        try:
            station: str | None = parse_topic(msg.topic)[0]
        except BadTopic:
            station = None
        letter = DeadLetter(msg.topic, msg.payload, "store_error", "the store refused this message "
                            "(see the receiver's log)", station=station)
        outcome = self.store.ingest([letter], self.now())[0]
        assert isinstance(outcome, DeadLetterOutcome)
        return outcome


__all__ = ["DEFAULT_FUTURE_TOLERANCE_S", "Decoded", "Handled", "Ingestor", "Message", "MessageTuple", "RemoteDecoder",
           "StatusOutcome", "decode", "decode_group", "group_acks", "refuse_future_records"]
