"""Several valves that select one stream together, seen by the engine as one valve.

Stations often put valves in series: one selects the inlet heights or the cylinder line, a second
selects the cylinder on that line. Each stream then names a position on every valve that matters
for it (`positions = { inlets = 4, cylinders = 2 }`); valves a stream does not name stay where they
are. The engine commands and reads back the stream's `port` as with one valve; the train moves
each named valve in the configured order and reports the port of the stream whose named positions
all hold (the most specific one when several do), or 0 when none does (a mismatch the engine
flags as it would for one valve).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from drivers.base import ValveDriver
from drivers.transport import TransportError

NO_STREAM = 0
"""What `position()` reports when the valves' positions match no configured stream."""


@dataclass(frozen=True)
class _TrainConfig:
    id: str
    positions: int  # the highest stream port: what the engine checks a manual `goto` against


class _TrainLink:
    """The train's view of its valves' links: open only when every valve's link is."""

    def __init__(self, valves: list[ValveDriver]) -> None:
        self._valves = valves
        self.url = " + ".join(v.transport.url for v in valves)

    @property
    def is_open(self) -> bool:
        return all(v.transport.is_open for v in self._valves)


class ValveTrain:
    """`valves` in the order they are moved; `table` maps each stream port to {valve id: position}."""

    name = "valve-train"
    kind = "valve"

    def __init__(self, valves: list[ValveDriver], table: Mapping[int, Mapping[str, int]]) -> None:
        ids = [v.device_id for v in valves]
        unknown = sorted({vid for positions in table.values() for vid in positions} - set(ids))
        if unknown:
            raise ValueError(f"valve train: stream positions name unknown valve(s) {unknown}; valves: {ids}")
        self.valves = valves
        self.table = {int(port): dict(pos) for port, pos in table.items()}
        self.config = _TrainConfig(id="+".join(ids), positions=max(self.table, default=0))
        self.transport = _TrainLink(valves)

    @property
    def device_id(self) -> str:
        return self.config.id

    def open(self) -> None:
        """Open every valve's link that is not open; the first failure is raised after trying all."""
        first: TransportError | None = None
        for v in self.valves:
            if v.transport.is_open:
                continue
            try:
                v.open()
            except TransportError as exc:
                first = first or TransportError(f"{v.device_id}: {exc}")
        if first is not None:
            raise first

    def close(self) -> None:
        for v in self.valves:
            try:
                v.close()
            except Exception:  # a broken link may fail to close; it is closed either way
                pass

    def goto(self, port: int) -> None:
        if port not in self.table:
            raise ValueError(f"no stream on port {port}; configured ports: {sorted(self.table)}")
        wanted = self.table[port]
        for v in self.valves:
            if v.device_id in wanted:
                v.goto(wanted[v.device_id])

    def position(self) -> int:
        """The port of the stream the valves now select (see the module docstring)."""
        now = {v.device_id: v.position() for v in self.valves}
        matches = [(len(pos), port) for port, pos in self.table.items()
                   if all(now[vid] == p for vid, p in pos.items())]
        return max(matches)[1] if matches else NO_STREAM

    def positions(self) -> int:
        return self.config.positions

    def identify(self) -> dict[str, Any]:
        return {"device": self.device_id, "driver": self.name, "valves": [v.identify() for v in self.valves]}
