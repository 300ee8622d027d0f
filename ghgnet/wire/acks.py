"""Inclusive seq ranges, as an ack carries them: compress a set of seqs, test membership."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence


def compress_seqs(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Minimal sorted list of inclusive ranges covering exactly `seqs` (duplicates allowed)."""
    ordered = sorted(set(seqs))
    if ordered and ordered[-1] - ordered[0] == len(ordered) - 1:  # one run (a whole batch, usually)
        return [(ordered[0], ordered[-1])]
    ranges: list[tuple[int, int]] = []
    for s in ordered:
        if ranges and s == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], s)
        else:
            ranges.append((s, s))
    return ranges


class SeqRanges:
    """Membership test over inclusive seq ranges (as an ack carries them), by bisection."""

    def __init__(self, ranges: Iterable[Sequence[int]]) -> None:
        merged = compress_ranges(ranges)
        self.ranges = merged
        self._lows = [lo for lo, _ in merged]

    def __contains__(self, seq: object) -> bool:
        if not isinstance(seq, int):
            return False
        i = bisect.bisect_right(self._lows, seq) - 1
        return i >= 0 and seq <= self.ranges[i][1]

    def __len__(self) -> int:
        """How many seqs the ranges cover."""
        return sum(hi - lo + 1 for lo, hi in self.ranges)

    def __iter__(self):
        for lo, hi in self.ranges:
            yield from range(lo, hi + 1)

    def __repr__(self) -> str:
        return f"SeqRanges({self.ranges})"


def compress_ranges(ranges: Iterable[Sequence[int]]) -> list[tuple[int, int]]:
    """Sort and merge overlapping or adjacent inclusive ranges."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted((int(r[0]), int(r[1])) for r in ranges):
        if lo > hi:
            raise ValueError(f"range [{lo}, {hi}] has lo > hi")
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out
