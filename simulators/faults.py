"""The faults a simulated instrument has been told to show: each for a number of uses and/or until
a simulated time (simulators.picarro.g2401's `_Fault`), looked up by kind."""

from __future__ import annotations

from typing import Any

from simulators.picarro.g2401 import _Fault


class FaultSet:
    """Injected faults, oldest first. Not thread-safe: the simulator's own lock guards it."""

    def __init__(self) -> None:
        self.faults: list[_Fault] = []

    def add(self, kind: str, count: int | None, until: float | None, params: dict[str, Any]) -> None:
        self.faults.append(_Fault(kind, count, until, dict(params)))

    def active(self, kind: str, now: float, consume: bool = False) -> bool:
        """Whether a `kind` fault is in force at simulated monotonic time `now` (using one up)."""
        self.faults = [f for f in self.faults if f.active(now)]
        for f in self.faults:
            if f.kind == kind:
                if consume:
                    f.use()
                return True
        return False

    def param(self, kind: str, name: str, default: Any) -> Any:
        return next((f.params[name] for f in self.faults if f.kind == kind and name in f.params), default)

    def take_all(self, kind: str) -> int:
        """Use up every `kind` fault at once: the sum of their counts (1 for an uncounted one)."""
        n = 0
        for f in self.faults:
            if f.kind == kind:
                n += f.remaining if f.remaining is not None else 1
                f.remaining = 0
        return n

    def clear(self) -> None:
        self.faults.clear()
