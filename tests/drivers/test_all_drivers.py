"""Conventions every registered driver keeps (the PyMeasure `test_all_instruments` habit).

Runs drivers.testing.check_driver_conventions, the same public function a third party's driver
package calls, over drivers.registry.all_drivers(): a driver added through the `ghgnet.drivers`
entry points is covered without touching this file. A bundled driver's expected-communication test
is tests/drivers/<maker>/test_<model>.py (from its module drivers/<maker>/<model>.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.base import Driver
from drivers.registry import all_drivers
from drivers.testing import ConventionError, check_driver_conventions

TESTS = Path(__file__).resolve().parent
DRIVERS = all_drivers()


def test_at_least_the_bundled_drivers_are_registered():
    assert {"picarro.g2401", "picarro.g2301", "vici.multiposition", "modbus.device"} <= set(DRIVERS)


def bundled_protocol_test(cls: type[Driver]) -> Path | None:
    """tests/drivers/<maker>/test_<model>.py for a driver of this repository; None for another
    package's (its own tests call check_driver_conventions with their file)."""
    parts = cls.__module__.split(".")
    if parts[0] != "drivers":
        return None
    assert len(parts) == 3, f"{cls.name}: driver module {cls.__module__} is not drivers.<maker>.<model>"
    return TESTS / parts[1] / f"test_{parts[2]}.py"


@pytest.mark.parametrize("name", sorted(DRIVERS))
def test_driver_keeps_the_conventions(name: str):
    cls = DRIVERS[name]
    assert cls.name == name
    check_driver_conventions(cls, bundled_protocol_test(cls))


def test_a_broken_driver_is_named_with_what_is_wrong():
    class Unregistered(DRIVERS["picarro.g2401"]):
        name = "acme.unregistered"

    with pytest.raises(ConventionError, match="'acme.unregistered' is not registered"):
        check_driver_conventions(Unregistered)


def test_a_protocol_test_without_expected_protocol_is_refused(tmp_path):
    cls = DRIVERS["picarro.g2401"]
    bad = tmp_path / "test_g2401.py"
    bad.write_text(f"# {cls.__name__} tested by hand\n")
    with pytest.raises(ConventionError, match="does not use expected_protocol"):
        check_driver_conventions(cls, bad)


def test_every_driver_refuses_a_config_of_another_model():
    from drivers.picarro.g2401 import G2401, G2301Config
    from drivers.testing import ScriptedTransport

    other = G2301Config(id="picarro-1", url="loop://")
    with pytest.raises(TypeError, match="G2401 needs a G2401Config, got a G2301Config"):
        G2401(other, ScriptedTransport([]))
    for cls in all_drivers().values():
        if cls.Config is not G2301Config:
            with pytest.raises(TypeError, match=f"needs a {cls.Config.__name__}, got a G2301Config"):
                cls(other, ScriptedTransport([]))
