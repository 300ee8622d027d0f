"""Inventory differences as events: an analyzer swapped, a cylinder installed, versions changed."""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace

from station_agent.fleet.inventory import declared_pressure, inventory_changes, pressure_readings, station_inventory


def _dev(serial):
    return SimpleNamespace(id="picarro-1", driver="picarro.g2401", serial_number=serial, enabled=True)


CYL = {"id": "CAL-A", "role": "standard", "serial": "D123", "assigned": {"co2": 380.0}, "scale": {},
       "pressure_bar": 120.0, "fill_date": None}


def test_first_inventory_reports_everything_installed():
    kinds = [k for k, *_ in inventory_changes(None, station_inventory([_dev("A1")], [CYL], "1.0", 0))]
    assert kinds == ["inventory.agent_version", "inventory.config_version", "inventory.device_added",
                     "inventory.cylinder_installed"]


def test_an_analyzer_swap_is_one_change_naming_both_serials():
    old = station_inventory([_dev("A1")], [CYL], "1.0", 3)
    new = station_inventory([_dev("B2")], [dict(CYL, pressure_bar=90.0)], "1.0", 3)
    (change,) = inventory_changes(old, new)  # a pressure falling is no change of what is installed
    assert change[0] == "inventory.device_changed" and "A1" in change[1] and "B2" in change[1]
    assert change[2] == "picarro-1"


def test_nothing_changed_nothing_reported():
    inv = station_inventory([_dev("A1")], [CYL], "1.0", 3)
    assert inventory_changes(inv, inv) == []


def test_a_new_pressure_is_a_dated_reading_for_central():
    old = station_inventory([_dev("A1")], [CYL], "1.0", 3)
    new = station_inventory([_dev("A1")], [dict(CYL, pressure_bar=90.0, low_pressure_bar=25.0)], "1.0", 3)
    ((kind, message, device, data),) = pressure_readings(old, new)
    assert kind == "inventory.cylinder_pressure" and "120.0 -> 90 bar" in message and device is None
    assert data == {"cylinder": "CAL-A", "serial": "D123", "pressure_bar": 90.0, "low_pressure_bar": 25.0}
    assert pressure_readings(new, new) == [] and pressure_readings(None, new) == []


def test_a_restart_keeps_the_reading_entered_since_the_config_was_written():
    stored = dict(CYL, pressure_bar=80.0, fill_date="2026-01-10")
    declared = dict(CYL, pressure_bar=120.0, fill_date=date(2026, 1, 10))
    assert declared_pressure(stored, declared) == 80.0  # the technician's later reading stays
    assert declared_pressure(stored, dict(declared, pressure_bar=70.0)) == 70.0  # a newer one in the config
    assert declared_pressure(stored, dict(declared, fill_date=date(2026, 4, 1))) == 120.0  # refilled
    assert declared_pressure(stored, dict(declared, serial="D999")) == 120.0  # another cylinder
    assert declared_pressure(None, declared) == 120.0
    assert declared_pressure(stored, dict(declared, pressure_bar=None)) == 80.0
