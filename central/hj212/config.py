"""`[hj212]` of central's config: where to listen for HJ 212 data loggers, and who they are.

```toml
[hj212]
listen = "0.0.0.0:9212"
timezone = "Asia/Shanghai"          # the zone of the loggers' DataTime (the standard's times have none)

[[hj212.loggers]]
mn = "010000A8900016F000169DC0"     # the logger's MN (unique)
pw = "123456"                       # its PW, checked on every packet
station = "bj-tower"                # the central station id its records are stored under
stream = "inlet:100m"               # optional (default "inlet:hj212")
[hj212.loggers.factors]             # optional: factor code -> species and wire unit
a05001 = { species = "co2", unit = "mg/m3" }
```
"""

from __future__ import annotations

import re
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from ghgnet import species as species_registry
from ghgnet.config import StrictModel
from ghgnet.hj212 import codes
from ghgnet.wire import STATION_ID_PATTERN

_LISTEN = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[^:\s]+):(?P<port>\d{1,5})$")


def parse_listen(text: str) -> tuple[str, int]:
    """`host:port` (IPv6 in brackets) -> (host, port); ValueError naming what is wrong."""
    m = _LISTEN.match(text)
    if not m:
        raise ValueError(f"listen {text!r}: expected host:port, e.g. 0.0.0.0:9212 or [::]:9212")
    port = int(m["port"])
    if not 0 <= port <= 65535:
        raise ValueError(f"listen {text!r}: port must be 0..65535")
    return m["host"].strip("[]"), port


def _check_zone(zone: str) -> str:
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {zone!r}") from None
    return zone


class FactorMap(StrictModel):
    """What one factor code carries: a registered species and the unit its values have on the wire
    (mg/m3, ug/m3, ng/m3, or the species' mole-fraction units ppm/ppb/ppt)."""

    species: str
    unit: str

    @model_validator(mode="after")
    def _known(self) -> FactorMap:
        try:
            sp = species_registry.get(self.species)
        except KeyError as e:
            raise ValueError(str(e).strip('"')) from None
        allowed = {*codes.MASS_UNITS, *species_registry.MOLE_FRACTION_UNITS, sp.unit}
        if self.unit not in allowed:
            raise ValueError(f"unit {self.unit!r}: one of {', '.join(sorted(allowed))}")
        return self


def _default_factors() -> dict[str, FactorMap]:
    return {code: FactorMap(species=f.species, unit=f.unit) for code, f in codes.FACTORS.items()}


class LoggerConfig(StrictModel):
    mn: str = Field(pattern=r"^[0-9A-Za-z_\-]{1,32}$", description="the logger's MN")
    pw: str = Field(pattern=r"^[^;,=&\s]{1,32}$", description="its PW (the standard's access password)")
    station: str = Field(pattern=STATION_ID_PATTERN, description="central station id its records go to")
    device: str = Field(default="hj212", min_length=1, max_length=64, description="device name of its records")
    stream: str = Field(default="inlet:hj212", min_length=1, max_length=64,
                        description="stream of its records (inlet:<name> counts as ambient data)")
    timezone: str | None = Field(default=None, description="zone of its DataTime; default [hj212] timezone")
    factors: dict[str, FactorMap] = Field(default_factory=_default_factors,
                                          description="factor code -> species and unit; codes not listed are ignored")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str | None) -> str | None:
        return v if v is None else _check_zone(v)


class Hj212Config(StrictModel):
    listen: str = Field(description="host:port to listen on for HJ 212 loggers")
    timezone: str = Field(default="Asia/Shanghai",
                          description="zone of the loggers' DataTime (HJ 212 times carry none; loggers keep "
                          "Beijing time unless set otherwise)")
    loggers: list[LoggerConfig] = Field(default_factory=list)
    max_connections: int = Field(default=4096, ge=1, description="connections at once; more are closed")
    idle_timeout_s: float = Field(default=900.0, gt=0, description="a connection silent this long is closed")
    commit_max_packets: int = Field(default=500, ge=1, description="packets stored per transaction at most (a bigger "
                                    "transaction delays every answer behind it)")
    queue_size: int = Field(default=8192, ge=1, description="packets waiting for storage; readers pause beyond")
    event_loop: Literal["asyncio", "uvloop", "auto"] = Field(
        default="asyncio", description="the listener's event loop: asyncio's own, or uvloop (libuv; auto: uvloop when "
        "installed). Measured with 1,000 loggers: uvloop 2-5 % less CPU per packet but fewer packets/s (likely: "
        "its socket writes keep the GIL, which the store thread then waits for)")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        return _check_zone(v)

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        parse_listen(v)
        return v

    @model_validator(mode="after")
    def _unique_mn(self) -> Hj212Config:
        seen: set[str] = set()
        for i, lg in enumerate(self.loggers):
            if lg.mn in seen:
                raise ValueError(f"loggers[{i}]: MN {lg.mn!r} appears twice")
            seen.add(lg.mn)
        return self

    @property
    def address(self) -> tuple[str, int]:
        return parse_listen(self.listen)

    def zone_of(self, logger: LoggerConfig) -> ZoneInfo:
        return ZoneInfo(logger.timezone or self.timezone)
