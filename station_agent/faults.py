"""Fault episodes: log a fault once when it starts and once when it ends, with a count between.

A poller that hits the same timeout every 5 s for an hour must not write 720 identical lines; the
technician needs "link down since T" and "link back after N failures".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from ghgnet.records import Event


@dataclass
class Episode:
    kind: str
    started: datetime
    message: str
    count: int = 1


@dataclass
class FaultTracker:
    """Per-device fault state. `report` opens or extends an episode; `clear` closes them all."""

    device: str
    log: object  # a structlog bound logger
    emit: Callable[[Event], None]
    open: dict[str, Episode] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)

    def report(self, kind: str, message: str, now: datetime) -> None:
        self.totals[kind] = self.totals.get(kind, 0) + 1
        ep = self.open.get(kind)
        if ep is not None:
            ep.count += 1
            ep.message = message
            return
        self.open[kind] = Episode(kind, now, message)
        self.log.warning("device_fault", fault=kind, detail=message)
        self.emit(Event(now, f"fault.{kind}", "warning", message, self.device, {"fault": kind}))

    def clear(self, now: datetime, kinds: tuple[str, ...] | None = None) -> None:
        for kind in list(self.open) if kinds is None else [k for k in kinds if k in self.open]:
            ep = self.open.pop(kind)
            seconds = (now - ep.started).total_seconds()
            self.log.info("device_recovered", fault=kind, failures=ep.count, duration_s=round(seconds, 1))
            self.emit(
                Event(now, f"recovered.{kind}", "info",
                      f"{kind} cleared after {ep.count} failure(s) over {seconds:.0f} s", self.device,
                      {"fault": kind, "failures": ep.count, "duration_s": seconds})
            )

    @property
    def healthy(self) -> bool:
        return not self.open
