"""Errors of the wire contract: a message that cannot be accepted as a whole, by reason code."""

from __future__ import annotations


class WireError(ValueError):
    """A message that cannot be accepted as a whole. `code` is a stable reason code (stored with
    the dead letter); the message says what was wrong, in words a person can act on."""

    code = "invalid"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadTopic(WireError):
    code = "bad_topic"


class PayloadTooLarge(WireError):
    code = "oversize"


class MalformedJSON(WireError):
    code = "malformed_json"


class UnknownSchema(WireError):
    code = "unknown_schema"


class StationMismatch(WireError):
    code = "forged_station"


class KindMismatch(WireError):
    code = "kind_mismatch"


class InvalidPayload(WireError):
    code = "invalid_payload"


class UnknownContentType(WireError):
    code = "unknown_content_type"


class MalformedLean(WireError):
    code = "malformed_lean"
