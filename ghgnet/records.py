"""The station's data products, as plain dataclasses (pydantic lives at the wire edge only).

Reason codes (`REASONS`) are stable strings: they are stored, exported and sent to central.
Flags are ICOS letters: U valid / N invalid before manual QC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ghgnet.timeutil import iso_utc, parse_utc

REASONS = {
    "flush": "line flushing after a valve switch",
    "status": "instrument status word not normal",
    "cavity_pressure": "cavity pressure outside its window",
    "cavity_temp": "cavity temperature outside its window",
    "out_of_range": "value outside the plausible range",
    "too_few_samples": "fewer valid samples than the minimum",
    "std_too_high": "standard deviation above the limit",
    "spike": "spike detected",
    "valve_mismatch": "valve position differs from the commanded one",
    "maintenance": "station in maintenance mode",
    "uncalibrated": "no valid calibration for this time",
    "interlock": "a sequence interlock (e.g. low sample flow) was active",
    "no_data": "no samples at all in the minute",
}

FLAG_VALID = "U"
FLAG_INVALID = "N"

MAX_EVENT_MESSAGE = 4000
"""Characters of an event's message: the wire's limit (ghgnet.wire.EventWire). Events are
made inside the station, often from a device's own words, so a longer message is cut (saying so),
never refused: a fault must be recorded whatever the device said."""


@dataclass(frozen=True, slots=True)
class SpeciesMinute:
    """One species over one minute, in the species' unit (CO2 ppm; CH4, CO, N2O ppb).

    raw_mean: mean of the valid samples' dry mole fraction, uncalibrated.
    cal_mean: raw_mean through the calibration in force (None while uncalibrated).
    mean: the best value available: cal_mean when calibrated, else raw_mean.
    std: standard deviation of the valid dry samples; n: how many there were.
    u: standard uncertainty of cal_mean (calibration, repeatability and water correction combined,
    ghgnet.processing.uncertainty); None while uncalibrated or when the fit's covariance is unknown.
    """

    mean: float | None
    std: float | None
    n: int
    raw_mean: float | None
    cal_mean: float | None = None
    u: float | None = None


@dataclass(frozen=True, slots=True)
class MinuteRecord:
    """A closed minute for one analyzer, stamped at the start of the minute (UTC)."""

    time: datetime
    device: str
    stream: str
    species: dict[str, SpeciesMinute]
    h2o: float | None
    flag: str
    reasons: tuple[str, ...] = ()
    n_total: int = 0
    calibration_id: str | None = None
    diagnostics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Event:
    """Something a person may need to know: a fault, an alarm, a state change."""

    time: datetime
    kind: str
    severity: str  # "info", "warning", "error"
    message: str
    device: str | None = None
    data: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.message) > MAX_EVENT_MESSAGE:
            object.__setattr__(self, "message", bounded_message(self.message))


def bounded_message(text: str, limit: int = MAX_EVENT_MESSAGE) -> str:
    """`text` cut to `limit` characters, its end saying how many were cut."""
    if len(text) <= limit:
        return text
    keep = limit - len(f"... ({len(text)} characters cut)")  # the count's digits never exceed this
    return text[:keep] + f"... ({len(text) - keep} characters cut)"


def minute_to_dict(rec: MinuteRecord) -> dict:
    """The minute record as it travels (without its seq, which the outbox assigns)."""
    return {
        "time": iso_utc(rec.time),
        "device": rec.device,
        "stream": rec.stream,
        "species": {
            name: {"mean": s.mean, "std": s.std, "n": s.n, "raw_mean": s.raw_mean, "cal_mean": s.cal_mean,
                   "u": s.u}
            for name, s in rec.species.items()
        },
        "h2o": rec.h2o,
        "flag": rec.flag,
        "reasons": list(rec.reasons),
        "n_total": rec.n_total,
        "calibration_id": rec.calibration_id,
        "diagnostics": dict(rec.diagnostics),
    }


def event_to_dict(ev: Event) -> dict:
    return {
        "time": iso_utc(ev.time),
        "kind": ev.kind,
        "severity": ev.severity,
        "message": ev.message,
        "device": ev.device,
        "data": dict(ev.data),
    }


def minute_from_row(row: dict) -> MinuteRecord:
    """A stored minute row (StationStore.minute_rows) back into a MinuteRecord."""
    return MinuteRecord(
        time=parse_utc(row["time"]),
        device=row["device"],
        stream=row["stream"],
        species={sp: SpeciesMinute(s["mean"], s["std"], s["n"], s["raw_mean"], s.get("cal_mean"), s.get("u"))
                 for sp, s in row["species"].items()},
        h2o=row["h2o"],
        flag=row["flag"],
        reasons=tuple(row["reasons"]),
        n_total=row["n_total"],
        calibration_id=row["calibration_id"],
        diagnostics=dict(row["diagnostics"]),
    )


def set_aside_event(moved: list[dict], now: datetime) -> Event:
    """The alarm for records moved out of the outbox (StationStore.set_aside's `moved`)."""
    seqs = [m["seq"] for m in moved]
    first = moved[0]
    more = f" and {len(moved) - 1} more" if len(moved) > 1 else ""
    return Event(now, "forwarding.set_aside", "error",
                 f"{first['kind']} record seq {first['seq']} ({first['bytes']} bytes){more} set aside, not sent: "
                 f"{first['reason']}; see `station-agent set-aside list`, then `set-aside retry`",
                 None, {"seqs": seqs[:100], "count": len(moved), "reason": first["reason"][:200]})


def set_aside_retried_event(seqs: list[int], now: datetime) -> Event:
    return Event(now, "forwarding.set_aside_retried", "info",
                 f"{len(seqs)} set-aside record(s) put back in the outbox (seq {seqs[0]}..{seqs[-1]})",
                 None, {"seqs": seqs[:100], "count": len(seqs)})
