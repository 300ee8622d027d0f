"""From received MQTT messages to stored rows and the acks to send: no network here.

`Ingestor.handle` takes a group of messages, validates each against the wire models, builds the
rows to write and writes all of them in one transaction. Every input ends in exactly one of three places: stored,
recognised as a duplicate, or dead-lettered with the reason. The receiver acknowledges only after
`handle` has returned (that is, after the commit).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import structlog
from station_agent.wire import (
    BATCH_KINDS,
    DEFAULT_MAX_PAYLOAD_BYTES,
    BadTopic,
    WireError,
    encode_ack,
    parse_batch,
    parse_status,
    parse_topic,
    topic_for,
)

from .store import (
    BatchOutcome,
    CentralStore,
    DeadLetter,
    DeadLetterOutcome,
    Inbound,
    Outcome,
    Prepared,
    StatusOutcome,
    transient_errors,
)

log = structlog.get_logger(component="ingest")  # lazy: picks up configure_logging done later


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class Handled:
    """What became of one message."""

    outcome: Outcome | None

    @property
    def ignored(self) -> bool:
        return self.outcome is None


def group_acks(handled: Iterable[Handled]) -> list[tuple[str, bytes]]:
    """The acks a stored group earns, (topic, payload): one per station, covering every seq its
    batches settled (records new, duplicate or dead-lettered), stations in the order they first
    come. A payload dead-lettered as a whole, a status or an ignored message earns none. One ack
    for the group rather than one per message: during a replay a group holds several batches of
    one station, and each ack costs the station a parse and a transaction."""
    seqs: dict[str, list[int]] = {}
    for h in handled:
        o = h.outcome
        if isinstance(o, BatchOutcome) and o.ack_seqs:
            seqs.setdefault(o.station, []).extend(o.ack_seqs)
    return [(topic_for(station, "ack"), encode_ack(station, held)) for station, held in seqs.items()]


def decode(topic: str, payload: bytes, max_bytes: int) -> Inbound | None:
    """The store item for one message; None for a message to ignore (an empty retained status,
    which is how a retained message is cleared). Never raises on any input."""
    try:
        station, kind = parse_topic(topic)
    except BadTopic as exc:
        return DeadLetter(topic, payload, exc.code, exc.message)
    try:
        if kind in BATCH_KINDS:
            return parse_batch(topic, payload, max_bytes, lean=True)
        if kind == "status":
            if not payload:
                return None
            return parse_status(topic, payload, max_bytes)
        raise BadTopic(f"central does not take messages on {kind!r} topics")
    except WireError as exc:
        return DeadLetter(topic, payload, exc.code, exc.message, station=station)
    except Exception as exc:  # a validator bug must not stop ingest; keep the evidence
        log.exception("decode_failed", topic=topic)
        return DeadLetter(topic, payload, "internal_error", f"decoder failed: {type(exc).__name__}: {exc}",
                          station=station)


def decode_group(
    messages: Sequence[tuple[str, bytes]],
    max_bytes: int,
    prepare: Callable[[Sequence[Inbound], datetime], Prepared],
    received_at: datetime,
) -> tuple[list[int], Prepared]:
    """Validate a group of (topic, payload) messages and build the rows to write (`prepare`: the
    store's row builder). Returns the indexes of the messages with something to store (the others
    are ignored) and the prepared items. Pure: the decoding process runs it (central/decoder.py)."""
    items = [decode(topic, payload, max_bytes) for topic, payload in messages]
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

    def decode(self, messages: Sequence[tuple[str, bytes]], received_at: datetime) -> tuple[list[int], Prepared] | None:
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
    ) -> None:
        self.store = store
        self.max_payload_bytes = max_payload_bytes
        self.now = now
        self.decoder = decoder
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
        pairs = [(m.topic, m.payload) for m in messages]
        result = self.decoder.decode(pairs, received_at) if self.decoder is not None else None
        if result is None:
            result = decode_group(pairs, self.max_payload_bytes, self.store.prepare, received_at)
        return Decoded(messages, *result)

    def store_decoded(self, decoded: Decoded) -> list[Handled]:
        """Store a decoded group (`decode_all`) in one transaction; results in message order.

        A transient storage error (database locked or unreachable) propagates: nothing was stored
        and the caller retries later. Any other storage error is retried message by message, and
        a message that still fails is dead-lettered, so one bad input cannot block the rest.
        """
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


__all__ = ["Decoded", "Handled", "Ingestor", "Message", "RemoteDecoder", "StatusOutcome", "decode", "decode_group",
           "group_acks"]
