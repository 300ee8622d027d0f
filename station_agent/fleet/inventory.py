"""What is installed at the station, for central's registry: devices (driver, serial number),
cylinders (serial, assigned values, pressure), agent and config versions. The inventory rides in
every status message; each change against the last inventory the station recorded is an event
(`inventory.*`), which central stores exactly once with its date: an analyzer swapped is
`inventory.device_changed` on the day it was. Pure functions; the agent does the I/O."""

from __future__ import annotations

from typing import Any

Inventory = dict[str, Any]


def station_inventory(devices: list, cylinders: list[dict], agent_version: str, config_version: int) -> Inventory:
    """`devices`: the device configs (analyzers, valves, auxiliary); `cylinders`: the store's rows."""
    return {
        "agent_version": agent_version,
        "config_version": config_version,
        "devices": {d.id: {"driver": d.driver, "serial_number": getattr(d, "serial_number", None),
                           "enabled": d.enabled} for d in devices},
        "cylinders": {c["id"]: {"role": c["role"], "serial": c["serial"], "assigned": c["assigned"],
                                "scale": c["scale"], "pressure_bar": c["pressure_bar"], "fill_date": c["fill_date"],
                                "low_pressure_bar": c.get("low_pressure_bar")}
                      for c in cylinders},
    }


def inventory_changes(old: Inventory | None, new: Inventory) -> list[tuple[str, str, str | None, dict]]:
    """(event kind, message, device, data) for each difference; everything is new on the first run."""
    old = old or {"devices": {}, "cylinders": {}}
    out: list[tuple[str, str, str | None, dict]] = []
    for key, what in (("agent_version", "agent version"), ("config_version", "config version")):
        if old.get(key) != new[key]:
            out.append((f"inventory.{key}", f"{what} {old.get(key)} -> {new[key]}", None,
                        {"from": old.get(key), "to": new[key]}))
    for dev, now in new["devices"].items():
        was = old["devices"].get(dev)
        if was is None:
            out.append(("inventory.device_added", f"device {dev} ({now['driver']}, serial {now['serial_number']}) "
                        "installed", dev, now))
        elif (was["driver"], was["serial_number"]) != (now["driver"], now["serial_number"]):
            out.append(("inventory.device_changed", f"device {dev}: {was['driver']} serial {was['serial_number']} "
                        f"replaced by {now['driver']} serial {now['serial_number']}", dev, {"from": was, "to": now}))
    for dev in sorted(set(old["devices"]) - set(new["devices"])):
        out.append(("inventory.device_removed", f"device {dev} removed", dev, old["devices"][dev]))
    for cyl, now in new["cylinders"].items():
        was = old["cylinders"].get(cyl)
        if was is None:
            out.append(("inventory.cylinder_installed", f"cylinder {cyl} ({now['role']}, serial {now['serial']}) "
                        f"installed at {now['pressure_bar']} bar", None, {"cylinder": cyl, **now}))
        elif (was["serial"], was["assigned"]) != (now["serial"], now["assigned"]):
            out.append(("inventory.cylinder_changed", f"cylinder {cyl}: serial or assigned values changed", None,
                        {"cylinder": cyl, "from": was, "to": now}))
    for cyl in sorted(set(old["cylinders"]) - set(new["cylinders"])):
        out.append(("inventory.cylinder_removed", f"cylinder {cyl} removed", None, {"cylinder": cyl}))
    return out


def pressure_readings(old: Inventory | None, new: Inventory) -> list[tuple[str, str, str | None, dict]]:
    """`inventory.cylinder_pressure` for each cylinder still installed whose pressure differs from
    the last recorded: the dated readings central fits to forecast when a cylinder runs empty
    (central/fleet/cylinders.py). A newly installed cylinder's pressure rides in its install event."""
    old_cyl = (old or {}).get("cylinders") or {}
    out: list[tuple[str, str, str | None, dict]] = []
    for cyl, now in new["cylinders"].items():
        was = old_cyl.get(cyl)
        if was is not None and now["pressure_bar"] is not None and was.get("pressure_bar") != now["pressure_bar"]:
            out.append(("inventory.cylinder_pressure", f"cylinder {cyl}: {was.get('pressure_bar')} -> "
                        f"{now['pressure_bar']:g} bar", None,
                        {"cylinder": cyl, "serial": now["serial"], "pressure_bar": now["pressure_bar"],
                         "low_pressure_bar": now.get("low_pressure_bar")}))
    return out


def declared_pressure(stored: dict | None, declared: dict) -> float | None:
    """The pressure to keep for a cylinder declared in the config, at each start: the config's
    figure is the one at install, so for the same cylinder (same serial and fill date) a lower
    reading entered since (`station-agent cylinders add`) is newer and stays; a new serial or fill
    date (a swap or refill) takes the config's. Without this every restart would look like a refill."""
    mine = declared.get("pressure_bar")
    if stored is None or stored.get("pressure_bar") is None or mine is None:
        return mine if mine is not None else (stored or {}).get("pressure_bar")
    fill = str(declared["fill_date"]) if declared.get("fill_date") else None
    if (stored.get("serial") or "", stored.get("fill_date")) != (declared.get("serial") or "", fill):
        return mine
    return min(mine, stored["pressure_bar"])
