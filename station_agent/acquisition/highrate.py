"""High-rate (10-20 Hz) records of a flux site gathered into averaging periods, and one period's
sonic and analyzer blocks aligned on one time grid for the flux processing.

Pure data, no I/O: the writer hands `PeriodAccumulator.add` each poll's readings of the flux
devices; a reading in a later period closes the open one, which comes back as one HighRateBlock per
device (the writer stores them; station_agent/storage/highrate_block.py). `aligned_columns` puts the
sonic's and the analyzer's records of a period on the grid i / fs s after its start (both drivers
stamp records on the station's clock at the output rate, so a record's grid index is its time
rounded to the nearest step); a grid point without a record is NaN with a bad diagnostic, which the
processing drops like any record its instrument called bad.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone

import numpy as np
from numpy.typing import NDArray

from drivers.reading import Reading
from station_agent.storage.highrate_block import HighRateBlock

STATUS_OK = "status_ok"


def period_start(t: datetime, period_s: float) -> datetime:
    """The start of the period (aligned on the clock: :00 and :30 for half hours) holding `t`."""
    epoch = t.timestamp()
    return datetime.fromtimestamp(epoch - epoch % period_s, tz=timezone.utc)


class PeriodAccumulator:
    """Open periods' readings per device; `add` returns the blocks of the periods it closed.

    A period closes when every device has sent a record of a later period (one poll brings the
    sonic's and the analyzer's records of the same seconds, in either order), or when any device is
    two periods past it (a silent device does not hold it open for ever)."""

    def __init__(self, devices: Iterable[str], fs_hz: float, period_s: float = 1800.0) -> None:
        self.devices = tuple(devices)
        self.fs_hz = fs_hz
        self.period_s = period_s
        self._open: dict[datetime, dict[str, list[Reading]]] = {}
        self._latest: dict[str, datetime] = {}
        self._closed_before: datetime | None = None

    def add(self, readings: Iterable[Reading]) -> list[HighRateBlock]:
        for r in readings:
            if r.device not in self.devices:
                continue
            start = period_start(r.time, self.period_s)
            if self._closed_before is not None and start < self._closed_before:
                continue  # a record of a period already stored (the clock stepped back)
            self._open.setdefault(start, {d: [] for d in self.devices})[r.device].append(r)
            if start > self._latest.get(r.device, start - timedelta(seconds=1)):
                self._latest[r.device] = start
        closed: list[HighRateBlock] = []
        newest = max(self._latest.values(), default=None)
        for start in sorted(self._open):
            everyone_past = len(self._latest) == len(self.devices) and all(t > start for t in self._latest.values())
            if everyone_past or (newest is not None and newest - start >= timedelta(seconds=2 * self.period_s)):
                closed += self._emit(start)
        return closed

    def _emit(self, start: datetime) -> list[HighRateBlock]:
        by_device = self._open.pop(start)
        self._closed_before = start + timedelta(seconds=self.period_s)
        return [block_of(d, start, self.fs_hz, rs) for d, rs in by_device.items() if rs]

    def close(self) -> list[HighRateBlock]:
        """Every open period's blocks, oldest first (devices without records give none)."""
        out: list[HighRateBlock] = []
        for start in sorted(self._open):
            out += self._emit(start)
        return out


def block_of(device: str, start: datetime, fs_hz: float, readings: list[Reading]) -> HighRateBlock:
    """A device's readings as a block: every value name a column (NaN where a record lacks it),
    plus `status_ok` (1 or 0)."""
    names: dict[str, None] = {}
    for r in readings:
        names.update(dict.fromkeys(r.values))
    cols = {k: np.array([r.values.get(k, np.nan) for r in readings], dtype=np.float64) for k in names}
    cols[STATUS_OK] = np.array([1.0 if r.status_ok else 0.0 for r in readings])
    time_ms = np.array([round((r.time - start) / timedelta(milliseconds=1)) for r in readings], dtype=np.int64)
    return HighRateBlock(device, start, fs_hz, time_ms, cols)


def _on_grid(block: HighRateBlock, n: int) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    idx = np.rint(block.time_ms * block.fs_hz / 1000.0).astype(np.int64)
    keep = (idx >= 0) & (idx < n)
    return idx, keep


def aligned_columns(sonic: HighRateBlock, gas: HighRateBlock, period_s: float,
                    names: Mapping[str, tuple[str, str]]) -> dict[str, NDArray[np.float64]]:
    """The period's columns on the grid of `period_s * fs` points: `names` maps an output column to
    (which block, "sonic" or "gas"; its column), e.g. {"u": ("sonic", "u"), "co2": ("gas",
    "co2_density")}; `sonic_diag` and `gas_diag` (0 good, 1 bad or missing) are added."""
    if sonic.fs_hz != gas.fs_hz:
        raise ValueError(f"flux: the sonic runs at {sonic.fs_hz:g} Hz, the analyzer at {gas.fs_hz:g} Hz")
    n = int(round(period_s * sonic.fs_hz))
    blocks = {"sonic": sonic, "gas": gas}
    grids = {k: _on_grid(b, n) for k, b in blocks.items()}
    out: dict[str, NDArray[np.float64]] = {}
    for name, (which, col) in names.items():
        b = blocks[which]
        if col not in b.columns:
            raise KeyError(f"flux: {b.device} has no column {col!r}; it has: {', '.join(b.columns)}")
        idx, keep = grids[which]
        x = np.full(n, np.nan)
        x[idx[keep]] = b.columns[col][keep]
        out[name] = x
    for which, diag in (("sonic", "sonic_diag"), ("gas", "gas_diag")):
        idx, keep = grids[which]
        d = np.ones(n)
        d[idx[keep]] = 1.0 - blocks[which].columns[STATUS_OK][keep]
        out[diag] = d
    return out
