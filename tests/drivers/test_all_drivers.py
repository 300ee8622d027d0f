"""Conventions every registered driver keeps (the PyMeasure `test_all_instruments` habit).

Runs over drivers.registry.all_drivers(), so a driver added through the `ghgnet.drivers`
entry points is covered without touching this file: a config model with a Literal `driver` equal
to its registered name, an importable simulator, and an expected-communication test file at
tests/drivers/<maker>/test_<model>.py (from the driver's module drivers/<maker>/<model>.py).
"""

from __future__ import annotations

import importlib
import inspect
import typing
from pathlib import Path

import pytest

from drivers.base import DeviceConfig, Driver
from drivers.registry import all_drivers

TESTS = Path(__file__).resolve().parent
DRIVERS = all_drivers()


def test_at_least_the_bundled_drivers_are_registered():
    assert {"picarro.g2401", "picarro.g2301"} <= set(DRIVERS)


@pytest.mark.parametrize("name", sorted(DRIVERS))
def test_driver_class_is_named_as_registered(name: str):
    cls = DRIVERS[name]
    assert issubclass(cls, Driver)
    assert cls.name == name
    assert cls.kind in ("analyzer", "valve", "modbus")


@pytest.mark.parametrize("name", sorted(DRIVERS))
def test_config_is_a_device_config_whose_driver_field_is_the_literal_name(name: str):
    config = DRIVERS[name].Config
    assert inspect.isclass(config) and issubclass(config, DeviceConfig)
    annotation = config.model_fields["driver"].annotation
    assert typing.get_origin(annotation) is typing.Literal, f"{config.__name__}.driver is not a Literal"
    assert typing.get_args(annotation) == (name,)


@pytest.mark.parametrize("name", sorted(DRIVERS))
def test_simulator_is_importable(name: str):
    module_name, _, attr = DRIVERS[name].simulator.partition(":")
    assert attr, f"{name}: simulator must be 'module:Class', got {DRIVERS[name].simulator!r}"
    simulator = getattr(importlib.import_module(module_name), attr)
    assert callable(simulator)


@pytest.mark.parametrize("name", sorted(DRIVERS))
def test_protocol_test_file_exists_and_uses_expected_protocol(name: str):
    cls = DRIVERS[name]
    parts = cls.__module__.split(".")
    assert parts[0] == "drivers" and len(parts) == 3, (
        f"{name}: driver module {cls.__module__} is not drivers.<maker>.<model>"
    )
    _, maker, model = parts
    path = TESTS / maker / f"test_{model}.py"
    assert path.is_file(), f"{name}: no protocol test at {path.relative_to(TESTS.parent.parent)}"
    text = path.read_text()
    assert "expected_protocol" in text, f"{path.name} does not use expected_protocol"
    assert cls.__name__ in text, f"{path.name} never names {cls.__name__}"
