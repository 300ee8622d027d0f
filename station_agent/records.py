"""The station's data products, as plain dataclasses (pydantic lives at the wire edge only).

Reason codes (`REASONS`) are stable strings: they are stored, exported and sent to central.
Flags are ICOS letters: U valid / N invalid before manual QC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

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


@dataclass(frozen=True, slots=True)
class SpeciesMinute:
    """One species over one minute, in the species' unit (CO2 ppm; CH4, CO, N2O ppb).

    raw_mean: mean of the valid samples' dry mole fraction, uncalibrated.
    cal_mean: raw_mean through the calibration in force (None while uncalibrated).
    mean: the best value available: cal_mean when calibrated, else raw_mean.
    std: standard deviation of the valid dry samples; n: how many there were.
    """

    mean: float | None
    std: float | None
    n: int
    raw_mean: float | None
    cal_mean: float | None = None


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


def _iso(t: datetime) -> str:
    from station_agent.timeutil import iso_utc

    return iso_utc(t)


def minute_to_dict(rec: MinuteRecord) -> dict:
    """The minute record as it travels (without its seq, which the outbox assigns)."""
    return {
        "time": _iso(rec.time),
        "device": rec.device,
        "stream": rec.stream,
        "species": {
            name: {"mean": s.mean, "std": s.std, "n": s.n, "raw_mean": s.raw_mean, "cal_mean": s.cal_mean}
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
        "time": _iso(ev.time),
        "kind": ev.kind,
        "severity": ev.severity,
        "message": ev.message,
        "device": ev.device,
        "data": dict(ev.data),
    }


def minute_from_row(row: dict) -> MinuteRecord:
    """A stored minute row (StationStore.minute_rows) back into a MinuteRecord."""
    from station_agent.timeutil import parse_utc

    return MinuteRecord(
        time=parse_utc(row["time"]),
        device=row["device"],
        stream=row["stream"],
        species={sp: SpeciesMinute(s["mean"], s["std"], s["n"], s["raw_mean"], s.get("cal_mean"))
                 for sp, s in row["species"].items()},
        h2o=row["h2o"],
        flag=row["flag"],
        reasons=tuple(row["reasons"]),
        n_total=row["n_total"],
        calibration_id=row["calibration_id"],
        diagnostics=dict(row["diagnostics"]),
    )
