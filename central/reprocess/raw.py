"""Minutes rebuilt from the raw archive (L0, central/archive/) as the station built them: pure
grouping and ghgnet.processing.minute_record, with the station's processing limits.

A device's raw rows (`central.archive.raw_readings`) are grouped by (minute, stream) as the
station's MinuteAssembler bins them (station_agent/processing/minute_bins.py); an auxiliary
device's rows (stream "aux") make no minutes, as at the station. Each group goes through
`minute_record` with the limits, then, as the station's `Agent.make_minute` does, the engine
conditions of its samples (valve_mismatch, maintenance, interlock) exclude those samples and make
the minute N with the condition as a reason.

Manual flags: a K flag (invalid after manual QC, central/flags) in force over part of a minute
excludes the raw samples it covers (of its species only, when it names one; of its stream only,
when it names one) before the minute's statistics, so the minute's mean is that of the samples
left; O flags change no sample. The minutes and hours under a flag still show it as the aggregation
applies it (H/R): the samples' exclusion is what reprocessing from raw adds.

The limits (`[processing]` of the station's config) live at the station only: central takes
`DEFAULT_LIMITS` (the station's own defaults, station_agent.config.ProcessingConfig, checked equal
by the tests) unless given the station's config file (`load_station_processing`: its `[processing]`
table and each `[[devices]]` entry's `water_correction`), read here as TOML without the station's
code (central does not import station_agent).
"""

from __future__ import annotations

import tomllib
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from ghgnet.processing.minute_record import MinuteLimits, minute_record
from ghgnet.processing.water import as_water_coefficients
from ghgnet.records import FLAG_INVALID, REASONS, MinuteRecord
from ghgnet.timeutil import minute_start, parse_utc

AUX_STREAM = "aux"

DEFAULT_LIMITS = MinuteLimits(
    min_samples=10,
    max_std={"co2": 0.5, "ch4": 5.0, "co": 15.0, "n2o": 1.0},
    ranges={"co2": (300.0, 1500.0), "ch4": (1500.0, 20000.0), "co": (0.0, 20000.0), "n2o": (250.0, 500.0),
            "h2o": (0.0, 8.0)},
    cavity_pressure_torr=(139.5, 140.5),
    cavity_temp_c=(44.8, 45.2),
)
"""The station's default `[processing]` limits (station_agent.config.ProcessingConfig)."""


@dataclass(frozen=True, slots=True)
class StationProcessing:
    """What a station's minutes were made with: the limits and each analyzer's water coefficients."""

    limits: MinuteLimits = DEFAULT_LIMITS
    water: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    source: str = "default limits"

    def for_device(self, device: str) -> MinuteLimits:
        w = self.water.get(device)
        return replace(self.limits, water={sp: as_water_coefficients(c) for sp, c in w.items()}) if w else self.limits


def load_station_processing(path: Path) -> StationProcessing:
    """The `[processing]` limits and the devices' `water_correction` of a station config (TOML).
    Raises ValueError naming the file and the field on what cannot be used; keys not given keep
    the station's defaults."""
    try:
        doc = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    p = doc.get("processing", {}) or {}
    d = DEFAULT_LIMITS
    try:
        limits = MinuteLimits(
            min_samples=int(p.get("min_samples", d.min_samples)),
            max_std={str(k): float(v) for k, v in p.get("max_std", d.max_std).items()},
            ranges={str(k): (float(lo), float(hi)) for k, (lo, hi) in p.get("ranges", d.ranges).items()},
            cavity_pressure_torr=tuple(float(x) for x in p.get("cavity_pressure_torr", d.cavity_pressure_torr)),
            cavity_temp_c=tuple(float(x) for x in p.get("cavity_temp_c", d.cavity_temp_c)),
        )
    except (TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"{path}: [processing]: {exc}") from None
    water: dict[str, dict[str, Any]] = {}
    for i, dev in enumerate(doc.get("devices", []) or []):
        wc = dev.get("water_correction")
        if wc:
            try:
                water[str(dev["id"])] = {sp: as_water_coefficients(c) for sp, c in wc.items()}
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"{path}: [[devices]] entry {i + 1}: water_correction: {exc}") from None
    return StationProcessing(limits, water, f"limits from {path}")


def _k_windows(flags: Iterable[Any], stream: str) -> list[tuple[float, float, str | None]]:
    return [(f.time_from.timestamp(), f.time_to.timestamp(), f.species) for f in flags
            if f.flag == "K" and (f.stream is None or f.stream == stream)]


def minute_from_rows(minute: datetime, device: str, stream: str, rows: list[dict], limits: MinuteLimits,
                     flags: Iterable[Any] = ()) -> MinuteRecord:
    """One minute from its raw rows (module docstring), uncalibrated."""
    windows = _k_windows(flags, stream)
    times = np.array([parse_utc(r["time"]).timestamp() for r in rows], dtype=float)
    keep = np.ones(times.size, dtype=bool)
    species_out: dict[str, np.ndarray] = {}
    for lo, hi, sp in windows:
        under = (times >= lo) & (times < hi)
        if sp is None:
            keep &= ~under
        else:
            species_out[sp] = species_out.get(sp, np.zeros(times.size, dtype=bool)) | under
    rows = [r for r, k in zip(rows, keep, strict=True) if k]
    times = times[keep]
    names = sorted({k for r in rows for k in r["values"]})
    values = {n: np.array([np.nan if r["values"].get(n) is None else float(r["values"][n]) for r in rows], dtype=float)
              for n in names}
    for sp, out in species_out.items():
        for name in (sp, f"{sp}_dry"):
            if name in values:
                values[name][out[keep]] = np.nan
    ok = np.array([bool(r["status_ok"]) for r in rows], dtype=bool)
    conditions = sorted({c for r in rows for c in r.get("conditions") or ()})
    flushing = np.array([bool(r["flushing"]) or bool(r.get("conditions")) for r in rows], dtype=bool)
    rec = minute_record(minute, device, stream, times, values, ok, flushing, limits)
    if conditions:
        reasons = set(rec.reasons) | set(conditions)
        rec = replace(rec, flag=FLAG_INVALID, reasons=tuple(r for r in REASONS if r in reasons))
    return rec


def minutes_from_rows(rows: Iterable[dict], processing: StationProcessing,
                      flags: Iterable[Any] = ()) -> Iterator[MinuteRecord]:
    """Every (device, minute, stream) of the rows as a minute record, auxiliary devices left out.
    The rows come in time order (`raw_readings`): a minute is closed when a later one starts, so
    only one minute of rows is held at a time (a year of 1 Hz rows is 31 million)."""
    flags = list(flags)
    groups: dict[tuple[str, datetime, str], list[dict]] = defaultdict(list)
    current: datetime | None = None
    for r in rows:
        if r["stream"] == AUX_STREAM:
            continue
        m = minute_start(parse_utc(r["time"]))
        if current is not None and m > current:
            yield from _close(groups, processing, flags)
        current = m if current is None else max(current, m)
        groups[(r["device"], m, r["stream"])].append(r)
    yield from _close(groups, processing, flags)


def _close(groups: dict[tuple[str, datetime, str], list[dict]], processing: StationProcessing,
           flags: list[Any]) -> Iterator[MinuteRecord]:
    for (dev, m, stream), g in sorted(groups.items()):
        yield minute_from_rows(m, dev, stream, g, processing.for_device(dev), flags)
    groups.clear()
