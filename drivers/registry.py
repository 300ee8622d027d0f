"""The registries of drivers and simulators, fed by the entry-point groups `ghgnet.drivers` and
`ghgnet.simulators`.

Bundled drivers and simulators register exactly as a site's private driver package would (see
pyproject.toml). Both are keyed by the driver name (`picarro.g2401`); a module is imported only when
its name is asked for. An unknown name is an error that lists the known ones.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from drivers.base import Driver

ENTRY_POINT_GROUP = "ghgnet.drivers"
SIMULATOR_GROUP = "ghgnet.simulators"


class UnknownDriverError(LookupError):
    what = "driver"

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        super().__init__(f"unknown {self.what} {name!r}; known {self.what}s: {', '.join(known) or '(none)'}")


class UnknownSimulatorError(UnknownDriverError):
    what = "simulator"


@cache
def _entry_points(group: str) -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=group)}


def driver_names() -> list[str]:
    return sorted(_entry_points(ENTRY_POINT_GROUP))


def load_driver(name: str) -> type[Driver]:
    eps = _entry_points(ENTRY_POINT_GROUP)
    if name not in eps:
        raise UnknownDriverError(name, driver_names())
    cls = eps[name].load()
    if not (isinstance(cls, type) and issubclass(cls, Driver)):
        raise TypeError(f"entry point {name!r} -> {eps[name].value} is not a ghgnet Driver class")
    return cls


def all_drivers() -> dict[str, type[Driver]]:
    return {name: load_driver(name) for name in driver_names()}


def simulator_names() -> list[str]:
    return sorted(_entry_points(SIMULATOR_GROUP))


def load_simulator(name: str) -> Any:
    """The bench model registered for driver `name` (see simulators.bench: `kind`, `Config`, `build`)."""
    eps = _entry_points(SIMULATOR_GROUP)
    if name not in eps:
        raise UnknownSimulatorError(name, simulator_names())
    model = eps[name].load()
    missing = [a for a in ("kind", "Config", "build") if not hasattr(model, a)]
    if missing:
        raise TypeError(f"simulator entry point {name!r} -> {eps[name].value} lacks {', '.join(missing)}")
    return model
