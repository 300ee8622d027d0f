"""UTC time on the wire and in storage: ISO 8601 with a Z, millisecond precision.

Fixed-width strings sort in time order, so they serve as keys in SQLite.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def iso_utc(t: datetime) -> str:
    """`2026-11-22T02:53:12.345Z`; naive datetimes are refused (they hide a zone bug)."""
    if t.tzinfo is None:
        raise ValueError(f"naive datetime {t!r}: ghgnet times are timezone-aware UTC")
    t = t.astimezone(UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def parse_utc(text: str) -> datetime:
    """Parse ISO 8601 (`Z` or an offset; a date alone is midnight UTC). Naive input is taken as UTC."""
    s = text.strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    t = datetime.fromisoformat(s)
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC)


def minute_start(t: datetime) -> datetime:
    """Start of the UTC minute holding `t`: averaged values are stamped at the interval start."""
    return t.astimezone(UTC).replace(second=0, microsecond=0)


def epoch_seconds(t: datetime) -> float:
    return t.timestamp()


def from_epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


ONE_MINUTE = timedelta(minutes=1)
