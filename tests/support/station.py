"""The example bench and the example station (configs/*.example.toml) as real processes, on free
ports, in a temporary folder, with one shared simulated clock: hardware in the loop (support.site)."""

from __future__ import annotations

from pathlib import Path

from support.site import BIN, ROOT, START, Site, control
from support.site import bench_toml as _bench_toml

__all__ = ["BIN", "ROOT", "START", "Hil", "bench_toml", "control", "station_toml"]

EXAMPLE_BENCH = ROOT / "configs" / "bench.example.toml"
EXAMPLE_STATION = ROOT / "configs" / "station.example.toml"


def bench_toml(tmp: Path) -> Path:
    return _bench_toml(EXAMPLE_BENCH, tmp)


def _without_broker(forwarding: str | None):
    """The example station without its [mqtt] part (no broker) unless `forwarding` gives one (and more)."""
    return lambda text: text.split("# Central's broker")[0] + (forwarding or "")


def station_toml(tmp: Path, endpoints: dict, forwarding: str | None = None) -> Path:
    """The example station pointed at the bench's endpoints, storing in `tmp`; no broker unless
    `forwarding` gives an [mqtt] table (and more) to append."""
    from support.site import station_toml as site_station

    return site_station(EXAMPLE_STATION, tmp, endpoints, _without_broker(forwarding))


class Hil(Site):
    """station-sim + station-agent of the example configs sharing simulated time."""

    def __init__(self, tmp: Path, speed: float = 1440.0, forwarding: str | None = None) -> None:
        self.forwarding = forwarding
        super().__init__(tmp, EXAMPLE_BENCH, EXAMPLE_STATION, speed, _without_broker(forwarding))

    def truth(self, device: str = "picarro-1") -> dict[str, dict]:
        return super().truth(device)
