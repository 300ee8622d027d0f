"""The HTTP API's query parameters: parsed and checked by pure functions, one per parameter.

Kept apart from the server so any HTTP framework can reuse them: each function takes the raw text
and returns the value or raises `BadParameter`, whose message names the parameter and what was
wrong (the server answers it as HTTP 400). The limits:

  days       a plain decimal number, 0 < days <= 3660 (ten years); no exponent, nan or inf
  from, to   ISO 8601 times (Z or an offset; a date alone is midnight UTC), both or neither,
             in 1900-01-01 .. 2200-01-01, from before to, at most 3660 days apart; not with days
  station    a station id as on the wire: a-z, 0-9, - and _, first a letter or digit, 1-32 long
  stream, species  1-64 printable characters
  any value  at most 256 characters; no parameter twice; no parameter an endpoint does not take
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl

from ghgnet.timeutil import parse_utc
from ghgnet.wire import STATION_ID_PATTERN

MAX_DAYS = 3660.0
DEFAULT_DAYS = 7.0
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
MAX_VALUE_CHARS = 256
MAX_NAME_CHARS = 64
MAX_FIELDS = 16

_DECIMAL = re.compile(r"[0-9]{1,12}(\.[0-9]{0,12})?|\.[0-9]{1,12}")
_STATION = re.compile(STATION_ID_PATTERN)
_PRINTABLE = re.compile(r"[^\x00-\x1f\x7f]{1,%d}" % MAX_NAME_CHARS)


class BadParameter(ValueError):
    """A query that cannot be answered; the message names the parameter and what was wrong."""

    def __init__(self, parameter: str, problem: str) -> None:
        self.parameter = parameter
        super().__init__(f"{parameter}: {problem}")


@dataclass(frozen=True)
class Endpoint:
    """The parameters one endpoint takes: `required` must be given, `optional` may be."""

    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()

    @property
    def accepted(self) -> tuple[str, ...]:
        return self.required + self.optional


RANGE = ("days", "from", "to")
ENDPOINTS: dict[str, Endpoint] = {
    "/api/network": Endpoint(),
    "/api/stations": Endpoint(),
    "/api/flags": Endpoint(optional=("station",)),
    "/api/consistency": Endpoint(optional=("species", *RANGE)),
    "/api/series": Endpoint(("station",)),
    "/api/hourly": Endpoint(("station",), ("stream", "species", *RANGE)),
    "/api/afternoon": Endpoint(("station", "stream", "species"), RANGE),
    "/api/monthly": Endpoint(("station", "stream", "species"), RANGE),
    "/api/targets": Endpoint(("station",), RANGE),
    "/api/calibrations": Endpoint(("station",), RANGE),
    "/api/completeness": Endpoint(("station",), RANGE),
}


def _shown(text: str) -> str:
    """A client's text quoted in a message, cut short."""
    return repr(text if len(text) <= 40 else text[:40] + "...")


def query_values(query: str, endpoint: Endpoint) -> dict[str, str]:
    """The raw query string as {name: value}: each name the endpoint takes, at most once, with a
    bounded value; every required name present and not empty."""
    try:
        pairs = parse_qsl(query, keep_blank_values=True, errors="strict", max_num_fields=MAX_FIELDS)
    except UnicodeDecodeError:
        raise BadParameter("query", "percent-escapes that are not UTF-8") from None
    except ValueError:
        raise BadParameter("query", f"more than {MAX_FIELDS} parameters") from None
    values: dict[str, str] = {}
    for name, value in pairs:
        if name not in endpoint.accepted:
            takes = ", ".join(endpoint.accepted) or "no parameters"
            raise BadParameter("query", f"unknown parameter {_shown(name)} (this endpoint takes: {takes})")
        if name in values:
            raise BadParameter(name, "given more than once")
        if len(value) > MAX_VALUE_CHARS:
            raise BadParameter(name, f"longer than {MAX_VALUE_CHARS} characters")
        values[name] = value
    for name in endpoint.required:
        if not values.get(name):
            raise BadParameter(name, "missing (required by this endpoint)")
    return values


def days(text: str) -> float:
    """The `days` parameter: a window length in days, 0 < days <= MAX_DAYS."""
    if not _DECIMAL.fullmatch(text):
        raise BadParameter("days", f"{_shown(text)} is not a plain decimal number of days (e.g. 7 or 0.5)")
    value = float(text)
    if not 0 < value <= MAX_DAYS:
        raise BadParameter("days", f"{_shown(text)} is out of range: 0 < days <= {MAX_DAYS:g}")
    return value


def time(name: str, text: str) -> datetime:
    """A `from`/`to` time: ISO 8601, in EARLIEST .. LATEST, as aware UTC."""
    try:
        value = parse_utc(text)
    except (ValueError, OverflowError):
        raise BadParameter(name, f"{_shown(text)} is not an ISO 8601 time (e.g. 2026-03-01T00:00:00Z)") from None
    if not EARLIEST <= value <= LATEST:
        raise BadParameter(name, f"{_shown(text)} is outside {EARLIEST.date()} .. {LATEST.date()}")
    return value


def time_range(values: Mapping[str, str]) -> tuple[datetime, datetime] | None:
    """`from` and `to` when given (both, ordered, at most MAX_DAYS apart); None when neither is."""
    given = [k for k in ("from", "to") if k in values]
    if not given:
        return None
    if "days" in values:
        raise BadParameter("days", "give days or from and to, not both")
    if len(given) == 1:
        missing = "to" if given == ["from"] else "from"
        raise BadParameter(missing, "missing: from and to go together")
    start, end = time("from", values["from"]), time("to", values["to"])
    if start >= end:
        raise BadParameter("to", "must be later than from")
    if (end - start).total_seconds() > MAX_DAYS * 86400:
        raise BadParameter("to", f"more than {MAX_DAYS:g} days after from")
    return start, end


def station(text: str, name: str = "station") -> str:
    """A station id as the wire contract has it."""
    if not _STATION.fullmatch(text):
        raise BadParameter(name, f"{_shown(text)} is not a station id (a-z, 0-9, - and _, at most 32)")
    return text


def label(name: str, text: str) -> str:
    """A stream or species name: 1-64 printable characters."""
    if not _PRINTABLE.fullmatch(text):
        raise BadParameter(name, f"{_shown(text)} is not a name of 1-{MAX_NAME_CHARS} printable characters")
    return text
