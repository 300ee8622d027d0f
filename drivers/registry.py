"""The one registry of drivers, fed by the entry-point group `ghgnet.drivers`.

Bundled drivers register exactly as a site's private driver package would (see pyproject.toml).
Driver modules are imported only when a driver is asked for by name.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points

from drivers.base import Driver

ENTRY_POINT_GROUP = "ghgnet.drivers"


class UnknownDriverError(LookupError):
    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        super().__init__(f"unknown driver {name!r}; known drivers: {', '.join(known) or '(none)'}")


@cache
def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def driver_names() -> list[str]:
    return sorted(_entry_points())


def load_driver(name: str) -> type[Driver]:
    eps = _entry_points()
    if name not in eps:
        raise UnknownDriverError(name, driver_names())
    cls = eps[name].load()
    if not (isinstance(cls, type) and issubclass(cls, Driver)):
        raise TypeError(f"entry point {name!r} -> {eps[name].value} is not a ghgnet Driver class")
    return cls


def all_drivers() -> dict[str, type[Driver]]:
    return {name: load_driver(name) for name in driver_names()}
