"""From named columns (a raw file's table, a stored half-hour block, the simulator) to a FluxBlock:
which column is which, and the unit conversions raw files need (sonic temperature in degC,
pressure in kPa)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from numpy.typing import NDArray

from station_agent.processing.flux.pipeline import FluxBlock


@dataclass(frozen=True, slots=True)
class ColumnMap:
    """Column names of each quantity; a diagnostic column's record is good where it is 0 (None: no
    such column, all good); `ts_celsius` / `pressure_kpa` for files in those units."""

    u: str = "u"
    v: str = "v"
    w: str = "w"
    ts: str = "ts"
    co2: str = "co2"
    h2o: str = "h2o"
    pressure: str = "pressure_pa"
    sonic_diag: str | None = "sonic_diag"
    gas_diag: str | None = "gas_diag"
    ts_celsius: bool = False
    pressure_kpa: bool = False


def block_from_columns(start: datetime, fs_hz: float, columns: Mapping[str, NDArray],
                       cmap: ColumnMap = ColumnMap()) -> FluxBlock:
    """The FluxBlock of a period's columns; a missing column is an error that names it and lists
    the columns there are."""

    def col(name: str) -> NDArray[np.float64]:
        if name not in columns:
            raise KeyError(f"flux columns: no column {name!r}; there are: {', '.join(columns)}")
        return np.asarray(columns[name], dtype=np.float64)

    ts = col(cmap.ts) + (273.15 if cmap.ts_celsius else 0.0)
    p = col(cmap.pressure) * (1000.0 if cmap.pressure_kpa else 1.0)
    sonic_ok = None if cmap.sonic_diag is None else col(cmap.sonic_diag) == 0
    gas_ok = None if cmap.gas_diag is None else col(cmap.gas_diag) == 0
    return FluxBlock(start, fs_hz, col(cmap.u), col(cmap.v), col(cmap.w), ts, col(cmap.co2), col(cmap.h2o), p,
                     sonic_ok=sonic_ok, gas_ok=gas_ok)


def half_hours(time: NDArray[np.datetime64], columns: Mapping[str, NDArray], *, period_s: float = 1800.0,
               min_fraction: float = 0.5) -> Iterator[tuple[datetime, dict[str, NDArray]]]:
    """Split a raw table (UTC times, columns of the same length) into averaging periods aligned on
    the clock (:00 and :30 for half hours): (period start, that period's columns) in time order;
    a period holding less than `min_fraction` of the records the table's median rate gives it is
    skipped (the ends of a file). Times must not go backwards."""
    t = np.asarray(time, dtype="datetime64[ns]")
    if t.size < 2:
        return
    if np.any(np.diff(t) < np.timedelta64(0, "ns")):
        raise ValueError("raw table: times go backwards; sort or split the file first")
    dt_s = float(np.median(np.diff(t)).astype(np.int64)) / 1e9
    expected = period_s / dt_s if dt_s > 0 else 0
    period_ns = np.int64(period_s * 1e9)
    index = t.astype(np.int64) // period_ns
    cuts = np.flatnonzero(np.diff(index)) + 1
    for lo, hi in zip(np.concatenate(([0], cuts)), np.concatenate((cuts, [t.size]))):
        if hi - lo < min_fraction * expected:
            continue
        start = datetime.fromtimestamp(int(index[lo] * period_ns) / 1e9, tz=UTC)
        yield start, {k: np.asarray(v)[lo:hi] for k, v in columns.items()}
