"""What every driver is: a config model, a transport handed in, and translation to `Reading`s.

Drivers translate; they never sleep, schedule, retry or decide. The engine owns time: it polls,
backs off after errors and reopens the transport.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from drivers.reading import Reading
from drivers.transport import SerialTransport, SocketTransport, normalize_url


class DriverError(Exception):
    """The device answered, but not as it should (garbage, a refused command, an error code)."""


def _known_zone(zone: str) -> str:
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {zone!r} (use an IANA name such as UTC)") from None
    return zone


TimeZoneName = Annotated[str, AfterValidator(_known_zone)]
"""A config field naming an IANA time zone (e.g. UTC, Europe/Zurich); any other name is refused."""


class DeviceConfig(BaseModel):
    """Fields every device has. Each driver extends it in one style: a module-level
    `<Model>Config(DeviceConfig)` with `driver: Literal["maker.model"] = "maker.model"`, named by
    the driver class's `Config = <Model>Config`."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="unique device id")
    driver: str = Field(description="registered driver name, e.g. picarro.g2401")
    url: str = Field(
        description="serial device path, socket://host:port (or tcp://), or loop:// for tests"
    )
    baudrate: int = 9600
    bytesize: int = 8
    parity: str = Field(default="N", pattern="^[NEOMS]$")
    stopbits: float = 1
    timeout_s: float = Field(default=2.0, gt=0, description="reply timeout, seconds")
    poll_interval_s: float = Field(default=5.0, gt=0, description="seconds between polls")
    enabled: bool = True
    serial_number: str | None = Field(
        default=None, max_length=64,
        description="the instrument's serial number: reported to central's registry (a change is an event)")


class Driver:
    """Base of every driver class registered under `ghgnet.drivers`."""

    name: ClassVar[str]
    kind: ClassVar[str]  # "analyzer", "valve" or "modbus"
    Config: ClassVar[type[DeviceConfig]]
    simulator: ClassVar[str]  # "module:Class" of its simulator

    def __init__(self, config: DeviceConfig, transport: Any) -> None:
        if not isinstance(config, self.Config):
            raise TypeError(f"{type(self).__name__} needs a {self.Config.__name__}, got a {type(config).__name__}")
        self.config = config
        self.transport = transport
        # The station's clock, for an instrument whose records carry no time: the poller hands in
        # its clock's `now` (simulated time in tests); until then the wall clock, UTC.
        self.now: Callable[[], datetime] = wall_clock

    @classmethod
    def make_transport(cls, config: DeviceConfig) -> Any:
        """The connection this driver is handed in production; tests hand in their own.

        Byte-stream drivers get a pyserial-URL transport; a Modbus driver overrides this to build a
        pymodbus client.
        """
        return transport_for(config)

    @property
    def device_id(self) -> str:
        return self.config.id

    def open(self) -> None:
        self.transport.open()

    def close(self) -> None:
        self.transport.close()

    def identify(self) -> dict[str, Any]:
        """What a technician's `probe` shows about the device; drivers add to it."""
        return {"device": self.device_id, "driver": self.name, "url": self.transport.url}


@dataclass
class PollResult:
    """What one poll of an analyzer gave: the records, oldest first, and what could not be read.

    `problems` names each reply or record line that was malformed and skipped (its raw text
    included), so the engine can log it and count it; the good records around it are kept.
    """

    readings: list[Reading] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class AnalyzerDriver(Driver, ABC):
    kind = "analyzer"

    max_record_age_s: ClassVar[float] = 3.0
    """How old a record can be when a poll returns it (the engine bounds the analyzer's clock
    offset with it): an analyzer that buffers until asked hands over fresh records; a streamed one
    may have had its records waiting in the link for any time (float("inf"))."""

    @abstractmethod
    def poll(self) -> PollResult:
        """Every record the analyzer holds that has not been read yet, oldest first."""


class ValveDriver(Driver, ABC):
    """A multi-position stream selector. Moves are commanded and read back by the engine."""

    kind = "valve"

    @abstractmethod
    def goto(self, position: int) -> None:
        """Command a move (may return before the valve has arrived)."""

    @abstractmethod
    def position(self) -> int:
        """The position the valve reports now."""

    @abstractmethod
    def positions(self) -> int:
        """How many positions the valve has."""


def wall_clock() -> datetime:
    return datetime.now(UTC)


def transport_for(config: DeviceConfig) -> SerialTransport | SocketTransport:
    """The transport a device config names: a TCP socket for socket:// and tcp:// URLs, else a
    pyserial port (device path, pty, loop://) with the line settings."""
    if normalize_url(config.url).startswith("socket://"):
        return SocketTransport(config.url, timeout_s=config.timeout_s)
    return SerialTransport(
        config.url,
        baudrate=config.baudrate,
        bytesize=config.bytesize,
        parity=config.parity,
        stopbits=config.stopbits,
        timeout_s=config.timeout_s,
    )
