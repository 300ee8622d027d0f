"""Calibration scales: the names a cylinder's assigned value may carry, and the conversions from
an older scale to the species' current one.

A value is only comparable with another on the same scale, so every assigned value carries its
scale (DOMAIN.md section 2) and a calibration fits on the species' current scale: `to_current`
converts an assigned value (and its standard uncertainty, by the conversion's derivative) before
the fit, and the calibration result records the scale it used.

Names follow the WMO/GAW form `WMO-<SPECIES>-X<year>[letter]`; `resolve` also accepts the common
short forms of the same scale (case and separators ignored): `WMO X2019`, `X2019`, `WMO-X2019`, and
the NOAA name `NOAA-2006A` for N2O (NOAA GML calibration scales page, gml.noaa.gov/ccl/scales.html,
stored copy checked: "CO2 WMO X2019, CH4 WMO X2004A, CO WMO X2014A, N2O NOAA-2006A"). An empty
name means the species' current scale (what a station configured before scales were recorded).

Conversions (`CONVERSIONS`), each with its source; a conversion is a polynomial, lowest order first:
- CO2 WMO-CO2-X2007 -> WMO-CO2-X2019: X2019 = 1.00079 * X2007 - 0.142 ppm, NOAA GML's published
  conversion (its CO2 scale page; the page itself was not in the stored copies reachable here, the
  equation was checked as quoted "from NOAA webpage" in public ATom analysis code). Hall et al.
  2021 (AMT 14, 3015; abstract checked in a stored copy): the new scale is "0.18 ppm greater than
  the previous scale at 400 ppm"; the equation gives +0.174 ppm there. A cylinder re-calibrated on
  X2019 is better than any formula: prefer re-assigned values where they exist.
- CH4 WMO-CH4-X2004 -> WMO-CH4-X2004A and CO WMO-CO-X2014 -> WMO-CO-X2014A: known scales, but no
  conversion is applied: NOAA GML's pages describing these revisions were not in the stored copies
  reachable here, and the CO revision corrected drifting secondary standards (a time-dependent
  change that no single formula of the value carries). A cylinder on these scales is refused with
  a message saying so, until its value is re-assigned on the current scale or a checked
  conversion is added to `CONVERSIONS`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Scale:
    """A calibration scale of one species; `current` marks the one fits are made on."""

    name: str
    species: str
    current: bool
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Conversion:
    """new = c0 + c1*old (+ c2*old^2 ...), species units; `source` says where the numbers come from."""

    species: str
    source_scale: str
    target_scale: str
    coefficients: tuple[float, ...]
    source: str


SCALES: tuple[Scale, ...] = (
    Scale("WMO-CO2-X2019", "co2", True),
    Scale("WMO-CO2-X2007", "co2", False),
    Scale("WMO-CH4-X2004A", "ch4", True),
    Scale("WMO-CH4-X2004", "ch4", False),
    Scale("WMO-CO-X2014A", "co", True),
    Scale("WMO-CO-X2014", "co", False),
    Scale("WMO-N2O-X2006A", "n2o", True, aliases=("NOAA-2006A", "NOAA-N2O-2006A")),
)

CONVERSIONS: tuple[Conversion, ...] = (
    Conversion("co2", "WMO-CO2-X2007", "WMO-CO2-X2019", (-0.142, 1.00079),
               "NOAA GML CO2 scale conversion; Hall et al. 2021, AMT 14, 3015 (+0.18 ppm at 400 ppm)"),
)

_BY_SPECIES: dict[str, tuple[Scale, ...]] = {}
for _s in SCALES:
    _BY_SPECIES[_s.species] = (*_BY_SPECIES.get(_s.species, ()), _s)


def _norm(name: str) -> str:
    return re.sub(r"[\s_]+", "-", name.strip().upper())


def _spellings(scale: Scale) -> set[str]:
    """The accepted spellings of a scale: its name, the name without the species, the bare
    X-year part, and its aliases (all normalised)."""
    full = _norm(scale.name)
    tag = f"-{scale.species.upper()}-"
    short = full.replace(tag, "-")
    return {full, short, short.split("-", 1)[-1], *(_norm(a) for a in scale.aliases)}


def scales_of(species: str) -> tuple[Scale, ...]:
    """The known scales of `species` (empty for a species this table does not know)."""
    return _BY_SPECIES.get(species, ())


def current(species: str) -> str | None:
    """The name of the species' current scale, None for a species this table does not know."""
    return next((s.name for s in scales_of(species) if s.current), None)


def resolve(species: str, name: str) -> str:
    """The canonical name of scale `name` of `species` ("" -> the current scale). A species this
    table does not know keeps whatever name it was given. ValueError for a name that is not a
    scale of the species, listing the known ones."""
    known = scales_of(species)
    if not known:
        return name
    if not name.strip():
        return current(species) or name
    want = _norm(name)
    for s in known:
        if want in _spellings(s):
            return s.name
    raise ValueError(f"unknown {species} calibration scale {name!r}; known: {', '.join(s.name for s in known)}")


def conversion(species: str, name: str) -> Conversion | None:
    """The conversion from scale `name` to the species' current scale; None when `name` is the
    current scale (or the species is unknown here). ValueError for an unknown scale and for a
    known older scale without a checked conversion."""
    canonical = resolve(species, name)
    target = current(species)
    if target is None or canonical == target:
        return None
    for c in CONVERSIONS:
        if c.species == species and c.source_scale == canonical and c.target_scale == target:
            return c
    raise ValueError(f"{species}: no checked conversion from {canonical} to {target} in ghgnet.processing.scales;"
                     f" have the cylinder's value re-assigned on {target} (or add the published conversion)")


def check(species: str, name: str) -> str:
    """Validate a configured scale: its canonical name when values on it can be fitted (current,
    or convertible to current); ValueError otherwise (for config validators to name the field)."""
    conversion(species, name)
    return resolve(species, name)


def to_current(species: str, value: float, name: str, uncertainty: float | None = None
               ) -> tuple[float, float | None, str]:
    """(value, uncertainty, scale) of an assigned value on the species' current scale.

    The uncertainty is carried through the conversion's derivative at `value` (GUM, JCGM 100:2008,
    eq. 10 for one input); the conversion's own uncertainty is not published with it and is not
    added. A value already on the current scale comes back unchanged."""
    conv = conversion(species, name)
    if conv is None:
        return float(value), uncertainty, resolve(species, name)
    poly = np.polynomial.Polynomial(conv.coefficients)
    new = float(poly(value))
    u = None if uncertainty is None else abs(float(poly.deriv()(value))) * float(uncertainty)
    return new, u, conv.target_scale
