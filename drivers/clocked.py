"""For drivers of instruments whose records carry no time (LI-COR LI-8x0, Vaisala GMP343): they
stamp each record with the station's clock, which the analyzer poller hands in once through
`use_clock` (the agent's simulated time in tests); until then, the wall clock (UTC)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime


def wall_clock() -> datetime:
    return datetime.now(UTC)


class StationClocked:
    """Mixin: `self.now()` is the station clock once `use_clock` was called."""

    now: Callable[[], datetime] = staticmethod(wall_clock)

    def use_clock(self, now: Callable[[], datetime]) -> None:
        """Stamp records with `now()` (the station's clock): the instrument sends no time."""
        self.now = now
