"""Unit conversion for declared fields: a wire unit to the ghgnet unit of a quantity.

Each entry (wire unit, ghgnet unit) -> (factor, offset): ghgnet = wire * factor + offset. Mole
fractions (ppm, ppb, ppt, mol/mol, mmol/mol, % as percent by volume), pressures, temperatures.
"""

from __future__ import annotations

_MOLE = {"mol/mol": 1.0, "mmol/mol": 1e-3, "%": 1e-2, "ppm": 1e-6, "umol/mol": 1e-6, "ppb": 1e-9,
         "nmol/mol": 1e-9, "ppt": 1e-12}
_PRESSURE = {"Pa": 1.0, "hPa": 100.0, "mbar": 100.0, "kPa": 1000.0, "bar": 1e5, "atm": 101325.0,
             "Torr": 101325.0 / 760.0, "mmHg": 133.322387415, "psi": 6894.757293168}

CONVERSIONS: dict[tuple[str, str], tuple[float, float]] = {
    **{(a, b): (fa / fb, 0.0) for a, fa in _MOLE.items() for b, fb in _MOLE.items()},
    **{(a, b): (fa / fb, 0.0) for a, fa in _PRESSURE.items() for b, fb in _PRESSURE.items()},
    ("degC", "degC"): (1.0, 0.0),
    ("K", "degC"): (1.0, -273.15),
    ("degF", "degC"): (5.0 / 9.0, -32.0 * 5.0 / 9.0),
    ("1", "1"): (1.0, 0.0),
}


def conversion(wire: str, unit: str) -> tuple[float, float]:
    """(factor, offset) from `wire` to `unit`; ValueError naming both when there is none."""
    if wire == unit:
        return (1.0, 0.0)
    try:
        return CONVERSIONS[(wire, unit)]
    except KeyError:
        raise ValueError(f"cannot convert {wire!r} to {unit!r}") from None
