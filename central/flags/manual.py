"""Manual flags as operators (the CLI, the web routes) use them: every change audited (who, when,
why), reversible (a removed flag stays in the trail), and applied at once: the hours the flag
covers are marked dirty in the same transaction and, unless `recompute=False` (then the receiver's
aggregation thread does it within `[aggregate] interval_s`), recomputed before returning, so the
hourly export shows the change."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ghgnet.timeutil import iso_utc

from ..aggregation.worker import aggregate_all
from ..config import CentralConfig
from ..store.hourly import ManualFlag
from .reasons import check_letter, check_reason_code


def add_flag(store, config: CentralConfig, station: str, time_from: datetime, time_to: datetime, flag: str,
             reason: str, user: str, now: datetime, stream: str | None = None, species: str | None = None,
             reason_code: str = "other", recompute: bool = True) -> ManualFlag:
    """Flag [time_from, time_to) of a station (one stream, e.g. inlet:100m, and/or one species when
    given) K or O, with a reason code and the reason in words. Raises ValueError on bad input."""
    check_letter(flag)
    check_reason_code(reason_code)
    if not user.strip():
        raise ValueError("a manual flag needs the user who sets it")
    if stream is not None and not stream.strip():
        raise ValueError("stream: empty (give e.g. inlet:100m or cal:CAL-A, or no stream for all of them)")
    flag_id = store.add_manual_flag(station, time_from, time_to, flag, reason, user, now, stream, species,
                                    reason_code)
    if recompute:
        aggregate_all(store, config, lambda: now)
    return get_flag(store, flag_id)


def remove_flag(store, config: CentralConfig, flag_id: int, user: str, now: datetime, reason: str = "",
                recompute: bool = True) -> ManualFlag:
    """Stop a flag applying; it stays in the audit trail with who removed it, when and why.
    Raises LookupError (unknown id) or ValueError (removed already)."""
    store.remove_manual_flag(flag_id, user, now, reason)
    if recompute:
        aggregate_all(store, config, lambda: now)
    return get_flag(store, flag_id)


def get_flag(store, flag_id: int) -> ManualFlag:
    for f in store.manual_flags(include_removed=True):
        if f.id == flag_id:
            return f
    raise LookupError(f"no manual flag #{flag_id}")


def list_flags(store, station: str | None = None, start: datetime | None = None, end: datetime | None = None,
               include_removed: bool = True) -> list[ManualFlag]:
    """The audit trail (oldest first), removed flags included unless `include_removed` is False."""
    return store.manual_flags(station, start, end, include_removed=include_removed)


def flag_doc(f: ManualFlag) -> dict[str, Any]:
    """A flag as JSON."""
    return {"id": f.id, "station": f.station, "from": iso_utc(f.time_from), "to": iso_utc(f.time_to),
            "flag": f.flag, "reason_code": f.reason_code, "reason": f.reason, "operator": f.operator,
            "created_at": iso_utc(f.created_at), "stream": f.stream, "species": f.species, "active": f.active,
            "removed_by": f.removed_by, "removed_at": iso_utc(f.removed_at) if f.removed_at else None,
            "removal_reason": f.removal_reason}
