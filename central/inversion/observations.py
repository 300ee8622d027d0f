"""Observations: the CSV table, the afternoon window, and enhancements over a background.

CSV columns: time_utc (ISO 8601, start of the hourly mean, e.g. 2024-07-01T05:00:00Z), station,
value (ppm), uncertainty (ppm, 1-sigma measurement uncertainty, e.g. from target-gas statistics).
The enhancement of an observation is its value minus the background at the same time, taken as the
mean of the designated background stations or from a given background series (same CSV columns,
station ignored); observations sharing one background value share its error.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class ObsTable:
    """Hourly means: time (datetime64[s], UTC start), station, value and uncertainty in ppm."""

    time: np.ndarray
    station: np.ndarray
    value: np.ndarray
    uncertainty: np.ndarray

    def __len__(self) -> int:
        return int(self.time.size)

    def select(self, mask: np.ndarray) -> "ObsTable":
        return ObsTable(self.time[mask], self.station[mask], self.value[mask], self.uncertainty[mask])


def parse_time(text: str) -> np.datetime64:
    """An ISO 8601 UTC time ('Z' or '+00:00' suffix, or none) as datetime64[s]."""
    t = text.strip()
    if t.endswith("Z"):
        t = t[:-1]
    elif t.endswith("+00:00"):
        t = t[:-6]
    return np.datetime64(t, "s")


def format_time(t: np.datetime64) -> str:
    return f"{np.datetime_as_string(np.datetime64(t, 's'), unit='s')}Z"


def read_csv(path: Path) -> ObsTable:
    """Read an observation CSV; errors name the file and line."""
    times, stations, values, sigmas = [], [], [], []
    with Path(path).open(newline="") as fh:
        reader = csv.DictReader(fh)
        need = {"time_utc", "station", "value", "uncertainty"}
        missing = need - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing columns {sorted(missing)} (need {sorted(need)})")
        for line, row in enumerate(reader, start=2):
            try:
                times.append(parse_time(row["time_utc"]))
                stations.append(row["station"].strip())
                values.append(float(row["value"]))
                sigmas.append(float(row["uncertainty"]))
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{path}: line {line}: {exc}") from None
    table = ObsTable(np.array(times, dtype="datetime64[s]"), np.array(stations, dtype=str),
                     np.array(values, dtype=float), np.array(sigmas, dtype=float))
    bad = ~np.isfinite(table.value) | ~np.isfinite(table.uncertainty) | (table.uncertainty < 0)
    if bad.any():
        raise ValueError(f"{path}: line {int(np.flatnonzero(bad)[0]) + 2}: value or uncertainty not usable")
    return table


def write_csv(path: Path, table: ObsTable) -> None:
    with Path(path).open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["time_utc", "station", "value", "uncertainty"])
        for t, s, v, u in zip(table.time, table.station, table.value, table.uncertainty):
            out.writerow([format_time(t), s, f"{v:.4f}", f"{u:.4f}"])


def afternoon_mask(times: np.ndarray, utc_offset_hours: float, first_hour: int, last_hour: int) -> np.ndarray:
    """Hourly means starting between first_hour and last_hour local time, both included."""
    local = np.asarray(times, "datetime64[s]") + np.timedelta64(int(round(utc_offset_hours * 3600)), "s")
    hour = (local.astype("datetime64[h]") - local.astype("datetime64[D]")).astype(int)
    return (hour >= first_hour) & (hour <= last_hour)


@dataclass(frozen=True)
class Enhancements:
    """Observations over background: ppm, with the errors the enhancement carries."""

    time: np.ndarray
    station: np.ndarray
    value: np.ndarray
    measurement_sigma: np.ndarray
    background_sigma: np.ndarray
    background_group: np.ndarray  # observations with the same group share one background value

    def __len__(self) -> int:
        return int(self.time.size)

    def select(self, mask: np.ndarray) -> "Enhancements":
        return Enhancements(self.time[mask], self.station[mask], self.value[mask],
                            self.measurement_sigma[mask], self.background_sigma[mask],
                            self.background_group[mask])

    def hours(self) -> np.ndarray:
        """Hours since the first observation (for time-correlated errors)."""
        t = self.time.astype(np.int64)
        return (t - (t.min() if t.size else 0)) / 3600.0


def enhancements(table: ObsTable, background: ObsTable | None, background_stations: list[str]) -> tuple[Enhancements, int]:
    """Subtract the background; returns the enhancements and how many observations had none.

    With `background_stations`, the background at a time is the mean of those stations' values at
    that time (their rows are not observations themselves); otherwise `background` is the series.
    """
    is_bg = np.isin(table.station, background_stations)
    source = table.select(is_bg) if background_stations else background
    if source is None or len(source) == 0:
        raise ValueError("no background: name background stations present in the data or give a series")
    obs = table.select(~is_bg)
    keys, inverse = np.unique(source.time.astype(np.int64), return_inverse=True)
    count = np.bincount(inverse, minlength=keys.size)
    mean = np.bincount(inverse, weights=source.value, minlength=keys.size) / count
    sigma = np.sqrt(np.bincount(inverse, weights=source.uncertainty**2, minlength=keys.size)) / count
    t = obs.time.astype(np.int64)
    pos = np.clip(np.searchsorted(keys, t), 0, keys.size - 1)
    has = keys[pos] == t
    obs = obs.select(has)
    pos = pos[has]
    enh = Enhancements(obs.time, obs.station, obs.value - mean[pos], obs.uncertainty,
                       sigma[pos], pos.astype(np.int64))
    return enh, int((~has).sum())
