"""The faults a simulated instrument has been told to show, the one record of them every simulator
uses: each fault lasts a number of uses and/or until a simulated monotonic time, whichever ends
first, and carries the parameters it was injected with (`Fault`); `FaultSet` holds them.

Thread safety is decided here: every `FaultSet` method takes the set's own lock, so a control-port
request and a simulator thread may call it at once. A simulator that must order an injection with
its own state (make every record due first) does that under its own lock before calling `inject`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Fault:
    """One injected fault: `remaining` uses (None: no count) and/or in force until the simulated
    monotonic time `until` (None: no deadline)."""

    kind: str
    remaining: int | None
    until: float | None
    params: dict[str, Any] = field(default_factory=dict)

    def active(self, now: float) -> bool:
        if self.until is not None and now >= self.until:
            return False
        return self.remaining is None or self.remaining > 0

    def use(self) -> None:
        if self.remaining is not None:
            self.remaining -= 1


class FaultSet:
    """The injected faults of one simulator, oldest first, judged against `monotonic` (the
    simulator's clock) unless a lookup names its own time (a record made after the fact).

    `known` are the fault kinds the simulator can show; `lasting` those that, injected with neither
    a count nor a duration, stay until `clear` (the others then last one use).
    """

    def __init__(self, known: Sequence[str], monotonic: Callable[[], float],
                 lasting: Collection[str] = ()) -> None:
        self.known = tuple(known)
        self.lasting = frozenset(lasting)
        self._monotonic = monotonic
        self._faults: list[Fault] = []
        self._lock = threading.RLock()

    def check(self, kind: str) -> None:
        """Refuse a fault kind this simulator does not know, naming the ones it does."""
        if kind not in self.known:
            raise ValueError(f"unknown fault {kind!r}; known: {', '.join(self.known)}")

    def inject(self, kind: str, count: int | None = None, duration_s: float | None = None, /,
               **params: Any) -> Fault:
        """Start a `kind` fault for `count` uses and/or `duration_s` simulated seconds, whichever ends
        first (neither: one use, or until `clear` for a `lasting` kind)."""
        self.check(kind)
        if count is None and duration_s is None and kind not in self.lasting:
            count = 1
        with self._lock:
            until = None if duration_s is None else self._monotonic() + duration_s
            fault = Fault(kind, count, until, dict(params))
            self._faults.append(fault)
            return fault

    def active(self, kind: str, now: float | None = None, consume: bool = False) -> Fault | None:
        """The first `kind` fault in force at `now` (default: the clock's), one use taken when
        `consume`; None when there is none. Faults no longer in force are dropped."""
        with self._lock:
            now = self._monotonic() if now is None else now
            self._faults = [f for f in self._faults if f.active(now)]
            for f in self._faults:
                if f.kind == kind:
                    if consume:
                        f.use()
                    return f
            return None

    def param(self, kind: str, name: str, default: Any) -> Any:
        """Parameter `name` of the first `kind` fault that has it, else `default`."""
        with self._lock:
            return next((f.params[name] for f in self._faults if f.kind == kind and name in f.params), default)

    def take_all(self, kind: str) -> int:
        """Use up every `kind` fault at once: the sum of their counts (1 for an uncounted one)."""
        with self._lock:
            n = 0
            for f in self._faults:
                if f.kind == kind:
                    n += f.remaining if f.remaining is not None else 1
                    f.remaining = 0
            return n

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
