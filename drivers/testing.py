"""Expected-communication tests for drivers: the exact bytes sent, the replies given.

    with expected_protocol(G2401, config, [(b"_Instr_GetStatus\\r", b"963\\r")]) as drv:
        assert drv.read_status().ok

A `ScriptedTransport` stands where the serial port or socket would be. Each pair is
(bytes the driver must write, bytes the device answers or None for no answer). A write that differs
from the script fails at once, naming both; leaving the block with pairs unused fails too.
This is the pattern of PyMeasure's `expected_protocol`, used for every driver in this project.

`check_driver_conventions(DriverClass, protocol_test=Path(...))` is the conventions suite every
registered driver passes; a third party's driver package calls it from its own tests.
"""

from __future__ import annotations

import importlib
import inspect
import typing
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from drivers.base import DeviceConfig, Driver
from drivers.registry import driver_names, load_driver, load_simulator, simulator_names
from drivers.transport import TransportError, TransportTimeout

Pair = tuple[bytes | None, bytes | None]
D = TypeVar("D", bound=Driver)


class ProtocolMismatch(AssertionError):
    pass


class ScriptedTransport:
    """A transport that plays a script of (expected write, reply) pairs.

    A pair with `None` as the expected write is a reply the device sends unprompted (or a second
    reply line); a reply of `None` means the device stays silent (the read times out). A reply of
    `ScriptedTransport.DISCONNECT` makes the next read fail as a dropped link.
    """

    DISCONNECT = b"\x00<disconnect>\x00"

    def __init__(self, pairs: Sequence[Pair], url: str = "scripted://") -> None:
        self.url = url
        self._pairs = list(pairs)
        self._index = 0
        self._written = b""
        self._readable = b""
        self._open = False
        self.opened = 0

    @property
    def is_open(self) -> bool:
        return self._open

    def open(self) -> None:
        self._open = True
        self.opened += 1

    def close(self) -> None:
        self._open = False

    def _queue_unprompted(self) -> None:
        while self._index < len(self._pairs) and self._pairs[self._index][0] is None:
            reply = self._pairs[self._index][1]
            self._index += 1
            if reply is not None:
                self._readable += reply

    def write(self, data: bytes) -> None:
        if not self._open:
            raise TransportError(f"{self.url} is not open")
        self._written += data
        if self._index >= len(self._pairs):
            raise ProtocolMismatch(f"driver wrote {self._written!r} after the script ended")
        expected, reply = self._pairs[self._index]
        if expected is None:
            raise ProtocolMismatch(f"driver wrote {self._written!r}; the script expected a read")
        if not expected.startswith(self._written):
            raise ProtocolMismatch(f"driver wrote {self._written!r}, expected {expected!r}")
        if self._written == expected:
            self._written = b""
            self._index += 1
            if reply is not None:
                self._readable += reply
            self._queue_unprompted()

    def _arrived(self) -> None:
        """Queue what the device sent unprompted; a DISCONNECT there drops the link."""
        if not self._open:
            raise TransportError(f"{self.url} is not open")
        self._queue_unprompted()
        if self._readable.startswith(self.DISCONNECT):
            self._readable = self._readable[len(self.DISCONNECT) :]
            self._open = False
            raise TransportError(f"{self.url}: connection dropped")

    def read_until(self, terminator: bytes, max_bytes: int = 65536) -> bytes:
        self._arrived()
        cut = self._readable.find(terminator)
        if cut < 0 or cut + len(terminator) > max_bytes:
            partial, self._readable = self._readable[:max_bytes], self._readable[max_bytes:]
            raise TransportTimeout(f"no complete reply from {self.url}", partial=partial)
        line, self._readable = self._readable[: cut + len(terminator)], self._readable[cut + len(terminator) :]
        return line

    def discard_input(self) -> None:
        self._readable = b""

    def read_available(self, max_bytes: int = 1 << 20) -> bytes:
        """Every unprompted reply queued so far (a stream), or a dropped link."""
        self._arrived()
        data, self._readable = self._readable[:max_bytes], self._readable[max_bytes:]
        return data

    @property
    def unused(self) -> list[Pair]:
        return self._pairs[self._index :]


@contextmanager
def expected_protocol(
    driver_cls: type[D], config: DeviceConfig | dict[str, Any], pairs: Sequence[Pair]
) -> Iterator[D]:
    """Build `driver_cls` on a ScriptedTransport, open it, and check that the script was used up."""
    if isinstance(config, dict):
        config = driver_cls.Config.model_validate(config)
    transport = ScriptedTransport(pairs)
    driver = driver_cls(config, transport)
    driver.open()
    yield driver
    if transport.unused:
        raise ProtocolMismatch(f"script not used up; left: {transport.unused!r}")
    if transport._readable:
        raise ProtocolMismatch(f"replies never read: {transport._readable!r}")


DRIVER_KINDS = ("analyzer", "valve", "modbus")


class ConventionError(AssertionError):
    pass


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConventionError(message)


def check_driver_conventions(driver_cls: type[Driver], protocol_test: str | Path | None = None) -> None:
    """Raise ConventionError unless `driver_cls` keeps the conventions of a ghgnet driver:

    registered under `driver_cls.name` (entry points `ghgnet.drivers`) as this very class; a known
    `kind`; a DeviceConfig whose `driver` field is `Literal[name]`; an importable `simulator`
    ("module:Class"); a bench simulator registered under the same name (`ghgnet.simulators`), if
    any, with `kind`, `Config` (whose `model` accepts the name) and `build`; and, when
    `protocol_test` is given, that file uses `expected_protocol` and names the class.
    """
    name = getattr(driver_cls, "name", None)
    _require(isinstance(driver_cls, type) and issubclass(driver_cls, Driver), f"{driver_cls!r} is not a Driver")
    _require(name in driver_names(), f"{name!r} is not registered in the ghgnet.drivers entry points")
    _require(load_driver(name) is driver_cls, f"{name!r} is registered as {load_driver(name)!r}, not {driver_cls!r}")
    _require(driver_cls.kind in DRIVER_KINDS, f"{name}: kind {driver_cls.kind!r} is not one of {DRIVER_KINDS}")
    check_config(driver_cls)
    check_simulator(driver_cls)
    if protocol_test is not None:
        check_protocol_test(driver_cls, Path(protocol_test))


def check_config(driver_cls: type[Driver]) -> None:
    """The driver's Config is a DeviceConfig whose `driver` field is Literal[its registered name]."""
    config = driver_cls.Config
    _require(inspect.isclass(config) and issubclass(config, DeviceConfig),
             f"{driver_cls.name}: Config {config!r} is not a DeviceConfig")
    annotation = config.model_fields["driver"].annotation
    _require(typing.get_origin(annotation) is typing.Literal, f"{config.__name__}.driver is not a Literal")
    _require(typing.get_args(annotation) == (driver_cls.name,),
             f"{config.__name__}.driver is {annotation}, not Literal[{driver_cls.name!r}]")


def check_simulator(driver_cls: type[Driver]) -> None:
    """The driver's simulator imports; its bench model, when registered, is well formed."""
    name = driver_cls.name
    module_name, _, attr = driver_cls.simulator.partition(":")
    _require(bool(attr), f"{name}: simulator must be 'module:Class', got {driver_cls.simulator!r}")
    simulator = getattr(importlib.import_module(module_name), attr, None)
    _require(callable(simulator), f"{name}: simulator {driver_cls.simulator!r} is not a class in {module_name}")
    if name not in simulator_names():
        return
    model = load_simulator(name)
    _require(model.kind == driver_cls.kind,
             f"{name}: bench simulator kind {model.kind!r} differs from the driver's {driver_cls.kind!r}")
    model_field = model.Config.model_fields.get("model")
    _require(model_field is not None, f"{name}: bench Config {model.Config.__name__} has no `model` field")
    annotation = model_field.annotation
    if typing.get_origin(annotation) is typing.Literal:
        _require(name in typing.get_args(annotation), f"{model.Config.__name__}.model does not accept {name!r}")
    _require(callable(model.build), f"{name}: bench model {model!r} has no callable build")


def check_protocol_test(driver_cls: type[Driver], path: Path) -> None:
    """`path` exists, uses expected_protocol and names the driver class."""
    _require(path.is_file(), f"{driver_cls.name}: no protocol test at {path}")
    text = path.read_text()
    _require("expected_protocol" in text, f"{path.name} does not use expected_protocol")
    _require(driver_cls.__name__ in text, f"{path.name} never names {driver_cls.__name__}")
