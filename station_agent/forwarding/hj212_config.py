"""`[[uplinks]]`: HJ 212 links from the station to environmental monitoring platforms.

One table per platform (national, provincial, ...). Each names the platform's address, the
station's identity there (MN, PW, ST), the edition, which data it gets (CN 2011 real-time, 2051
minute, 2061 hour, 2031 day) and how the station's species become the standard's factors.

Times on the wire (QN, DataTime, BeginTime/EndTime) are in `timezone` (platforms in China run on
Beijing time); hours and days are periods of that zone. Link timing (OverTime, reconnect backoff,
heartbeat) is in real seconds: the network does not run faster with --speed. `settle_s` is in the
data's own (simulated) time.
"""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator, model_validator

from ghgnet import species
from ghgnet.config import StrictModel
from ghgnet.hj212 import codes
from ghgnet.records import REASONS

UPLINK_NAME = r"^[a-z0-9][a-z0-9_-]{0,31}$"
DATA_CNS: dict[int, str] = {2011: "real-time", 2051: "minute", 2061: "hour", 2031: "day"}
"""The data CNs an uplink can send (HJ 212-2017 table of command codes), by what they carry."""
HJ212_FLAGS = "".join(codes.DATA_FLAGS)
"""The standard's data flags: N normal, F stopped, M maintenance, S manual value, D fault,
C calibrating, T over range, B communication error."""
FACTOR_UNITS = (*codes.MASS_UNITS, *species.MOLE_FRACTION_UNITS)
"""Units a factor can be sent in; mass concentrations are at 273.15 K and 101.325 kPa."""
DEFAULT_HEARTBEAT_S = 60.0
"""Seconds between 9015 heartbeats on a 2025-edition link. HJ 212-2025's text is not public here:
the heartbeat (CN 9015) is as one open implementation reads it (caoyiliang/HJ212) and its interval
is our guess; both unconfirmed, so the interval is the per-uplink `heartbeat_s`."""


class FactorConfig(StrictModel):
    """One factor sent to the platform: a station species in the platform's code and unit."""

    species: str = Field(pattern=r"^[a-z][a-z0-9_]{0,15}$", description="the station's species (co2, ch4, ...)")
    code: str = Field(pattern=r"^[A-Za-z0-9_]{1,20}$",
                      description="the factor code (HJ 212-2017 Appendix B: a05001 CO2, a05002 CH4)")
    unit: Literal["mg/m3", "ug/m3", "ng/m3", "ppm", "ppb", "ppt"] = Field(
        default="mg/m3", description="mass units from the dry mole fraction at 273.15 K, 101.325 kPa")
    decimals: int = Field(default=3, ge=0, le=9, description="decimals sent")

    @field_validator("species")
    @classmethod
    def _known(cls, v: str) -> str:
        names = {s.name for s in species.all_species() if s.unit in species.MOLE_FRACTION_UNITS}
        if v not in names:
            raise ValueError(f"{v!r} is not a species measured as a mole fraction; known: {sorted(names)}")
        return v


def default_factors() -> list[FactorConfig]:
    """CO2 a05001 and CH4 a05002 with the units of HJ 212-2017 Appendix B (`codes.FACTORS`: CO2
    mg/m3, CH4 ng/m3 as the table is transcribed; set `unit` where a platform wants otherwise)."""
    return [FactorConfig(species=f.species, code=f.code, unit=f.unit, decimals=TABLE_DECIMALS.get(f.code, 3))
            for f in codes.FACTORS.values()]


TABLE_DECIMALS = {"a05001": 3, "a05002": 1}
"""Decimals of the Appendix B data types (a05001 N3.3, a05002 N4.1, as srdgame/lua-HJ212 hj212.csv
transcribes the table). N4.1 cannot hold ambient CH4 in ng/m3 (about 1.4e6): agree the unit with
the platform."""


class UplinkConfig(StrictModel):
    name: str = Field(pattern=UPLINK_NAME, description="the uplink's name (logs, queue): lower case, digits, - _")
    enabled: bool = True
    host: str = Field(min_length=1, max_length=253, description="the platform's host name or address")
    port: int = Field(ge=1, le=65535, description="the platform's TCP port")
    mn: str = Field(pattern=r"^[A-Za-z0-9]{1,24}$", description="the station's MN at this platform (up to 24)")
    pw: str = Field(pattern=r"^[\x21-\x7e]{1,6}$",
                    description="the access password (PW, up to 6 characters; no ';' '=' ',' '&')")
    st: str = Field(default="22", pattern=r"^[0-9]{2}$", description="system code ST (22: air quality)")
    edition: Literal[2017, 2025] = Field(default=2017, description="HJ 212 edition spoken on this link")
    source: Literal["ambient", "emissions"] = Field(
        default="ambient", description="ambient: the inlets' minutes (factors); emissions: a stack CEMS's "
        "emission minutes and hours as a05001 (CO2 mg/m3, kg) and a00000 (flue gas m3/s, m3)")
    data: list[Literal[2011, 2051, 2061, 2031]] = Field(
        default_factory=lambda: [2051, 2061],
        description="data sent: 2011 real-time, 2051 minute, 2061 hour, 2031 day")
    factors: list[FactorConfig] = Field(default_factory=default_factors, min_length=1,
                                        description="species to factor codes and units")
    streams: list[str] | None = Field(
        default=None, description="ambient streams reported (default: every inlet:* stream); one MN "
        "is one monitoring point, so a tower with several inlets usually has one uplink per inlet")
    devices: list[str] | None = Field(default=None, description="analyzers whose minutes are reported (default: all)")
    flags: dict[str, str] = Field(
        default_factory=dict,
        description="overrides of the flag mapping (ghgnet.hj212.codes.ICOS_REASON_TO_HJ): reason code -> "
        "HJ 212 data flag; a valid (U) minute is always N")
    timezone: str = Field(default="Asia/Shanghai", description="zone of the times on the wire and of hours/days")
    overtime_s: float = Field(default=10.0, gt=0, le=3600,
                              description="OverTime: real seconds to wait for the platform's 9014 (CN 1000 sets it)")
    recount: int = Field(default=3, ge=0, le=100,
                         description="ReCount: resends before the link is dropped and redialled (CN 1000 sets it)")
    window: int = Field(default=4, ge=1, le=64, description="packets sent and awaiting 9014 at once")
    reconnect_min_s: float = Field(default=1.0, gt=0, description="first reconnect delay, real seconds")
    reconnect_max_s: float = Field(default=60.0, gt=0, description="longest reconnect delay, real seconds")
    connect_timeout_s: float = Field(default=10.0, gt=0)
    stop_drain_s: float = Field(
        default=2.0, ge=0, description="real seconds a stop waits for the answers to packets in flight")
    since: datetime | None = Field(
        default=None, description="a new uplink's first period (e.g. 2026-03-01T00:00:00Z; default: from "
        "when it is first started); older data goes only when the platform asks for it")
    settle_s: float = Field(
        default=120.0, ge=0,
        description="simulated seconds after a period's end before its packet is made (late minutes)")
    hour_min_valid_minutes: int = Field(default=1, ge=1, le=60,
                                        description="valid minutes an hour needs for flag N")
    day_min_valid_minutes: int = Field(default=1, ge=1, le=1440,
                                       description="valid minutes a day needs for flag N")
    heartbeat_s: float | None = Field(
        default=None, gt=0,
        description=f"real seconds between 9015 heartbeats on a 2025 link (default {DEFAULT_HEARTBEAT_S:g}; unconfirmed)")
    allow_time_set: bool = Field(
        default=False, description="apply the platform's time set (CN 1012) to the system clock (needs root)")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            zoneinfo.ZoneInfo(v)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (e.g. Asia/Shanghai, UTC)") from None
        return v

    @field_validator("since")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("give the time with its zone, e.g. 2026-03-01T00:00:00Z")
        return v

    @field_validator("data")
    @classmethod
    def _data(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("name at least one of 2011, 2051, 2061, 2031")
        if len(set(v)) != len(v):
            raise ValueError("a CN is listed twice")
        return v

    @field_validator("flags")
    @classmethod
    def _flags(cls, v: dict[str, str]) -> dict[str, str]:
        for reason, letter in v.items():
            if reason not in REASONS:
                raise ValueError(f"flags: {reason!r} is not a reason code; known: {', '.join(REASONS)}")
            if len(letter) != 1 or letter not in HJ212_FLAGS:
                raise ValueError(f"flags.{reason}: {letter!r} is not one of the standard's flags {HJ212_FLAGS}")
        return v

    @field_validator("streams")
    @classmethod
    def _streams(cls, v: list[str] | None) -> list[str] | None:
        if v is not None:
            bad = [s for s in v if not s.startswith("inlet:")]
            if bad:
                raise ValueError(f"{bad}: only ambient inlet streams (inlet:<name>) are sent; calibration "
                                 "and target streams are not ambient data")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "UplinkConfig":
        codes = [f.code for f in self.factors]
        if len(set(codes)) != len(codes):
            raise ValueError("factors: a code is used twice")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s is below reconnect_min_s")
        if self.source == "emissions" and 2011 in self.data:
            raise ValueError("data: 2011 (real-time) is not sent from a stack's emissions; use 2051, 2061, 2031")
        return self

    @property
    def flag_table(self) -> dict[str, str]:
        """Reason code -> HJ 212 flag: the codec's table with this uplink's overrides."""
        return {**codes.ICOS_REASON_TO_HJ, **self.flags}

    @property
    def heartbeat_interval_s(self) -> float | None:
        """Real seconds between heartbeats, None on a link whose edition has none (2017)."""
        return (self.heartbeat_s or DEFAULT_HEARTBEAT_S) if self.edition == 2025 else None


def check_uplinks(uplinks: list[UplinkConfig]) -> None:
    """Names are unique (they key each uplink's queue in the database)."""
    names = [u.name for u in uplinks]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"uplinks: name(s) {dup} used twice; each uplink's queue is kept under its name")
