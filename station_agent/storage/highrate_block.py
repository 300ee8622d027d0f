"""One device's high-rate (10-20 Hz) records of one averaging period as one compressed block.

A flux site makes 36,000 records a half hour per instrument; a row per record in SQLite would cost
about 100 bytes of overhead each and make retention a delete of millions of rows. Instead the
writer stores a block per (device, period): the columns as little-endian float64 (the values exactly
as read, NaN where a record lacks one), the record times as int64 milliseconds since the period's
start, all DEFLATE-compressed in one BLOB (table `highrate_block`, station_agent/storage/store.py).
Being rows of the one database, blocks are written in the writer's transactions, backed up with it
and dropped by retention with one DELETE, with no files beside the database to go missing.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

LEVEL = 6


class BlockError(ValueError):
    """A stored block that cannot be read back; the message says why."""


@dataclass(frozen=True, slots=True)
class HighRateBlock:
    """One device's records of one period: times (ms since `start`) and columns by name."""

    device: str
    start: datetime
    fs_hz: float
    time_ms: NDArray[np.int64]
    columns: dict[str, NDArray[np.float64]]

    @property
    def n(self) -> int:
        return int(self.time_ms.size)


def encode_block(block: HighRateBlock) -> tuple[str, bytes]:
    """(the column names as one comma-separated text, the compressed data)."""
    names = list(block.columns)
    for name in names:
        if "," in name or not name:
            raise ValueError(f"high-rate block: column name {name!r} is empty or holds a comma")
        if block.columns[name].shape != block.time_ms.shape:
            raise ValueError(f"high-rate block: column {name!r} has {block.columns[name].size} values, "
                             f"the times {block.time_ms.size}")
    parts = [block.time_ms.astype("<i8").tobytes()] + [np.asarray(block.columns[k], dtype="<f8").tobytes()
                                                        for k in names]
    return ",".join(names), zlib.compress(b"".join(parts), LEVEL)


def decode_block(device: str, start: datetime, fs_hz: float, n: int, names: str, data: bytes) -> HighRateBlock:
    """The block a row holds; BlockError naming the device and period when it does not add up."""
    cols = names.split(",") if names else []
    raw = zlib.decompress(data)
    if len(raw) != 8 * n * (1 + len(cols)):
        raise BlockError(f"high-rate block {device} {start.isoformat()}: {len(raw)} bytes, "
                         f"{n} records of {len(cols)} columns need {8 * n * (1 + len(cols))}")
    arr = np.frombuffer(raw, dtype="<f8").reshape(1 + len(cols), n)
    time_ms = np.frombuffer(raw[:8 * n], dtype="<i8").copy()
    return HighRateBlock(device, start, fs_hz, time_ms, {k: arr[i + 1].copy() for i, k in enumerate(cols)})


def merge_blocks(a: HighRateBlock, b: HighRateBlock) -> HighRateBlock:
    """One block of the records of two of the same device and period, in time order (a column one
    of them lacks is NaN there)."""
    names = list(dict.fromkeys([*a.columns, *b.columns]))
    order = np.argsort(np.concatenate([a.time_ms, b.time_ms]), kind="stable")
    cols = {k: np.concatenate([a.columns.get(k, np.full(a.n, np.nan)), b.columns.get(k, np.full(b.n, np.nan))])[order]
            for k in names}
    return HighRateBlock(a.device, a.start, a.fs_hz, np.concatenate([a.time_ms, b.time_ms])[order], cols)
