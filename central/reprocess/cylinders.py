"""Revised cylinder values for a reprocess run, from a TOML or CSV file.

One value per (cylinder, species): the cylinder's id as the station names it (the calibration
records' `standards[].cylinder`), the species, the value in the species' unit (CO2 ppm; CH4, CO,
N2O ppb), the scale it is on and its standard uncertainty (both optional). CSV: a header row
`cylinder,species,value,scale,uncertainty` (scale and uncertainty may be left out or empty).
TOML: `[[cylinders]]` tables with `id` (or `cylinder`), `species`, `value`, `scale`, `uncertainty`.
An error names the file, the row (CSV: its line; TOML: cylinders[i]) and the field.
"""

from __future__ import annotations

import csv
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ghgnet import species as species_registry


class CylinderFileError(ValueError):
    """A cylinder file that cannot be used; the message names file, row and field."""


@dataclass(frozen=True, slots=True)
class RevisedValue:
    cylinder: str
    species: str
    value: float
    scale: str = ""
    uncertainty: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"cylinder": self.cylinder, "species": self.species, "value": self.value, "scale": self.scale,
                "uncertainty": self.uncertainty}


_FIELDS = ("cylinder", "species", "value", "scale", "uncertainty")


def _value(where: str, name: str, raw: Any, required: bool) -> float | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        if required:
            raise CylinderFileError(f"{where}: {name}: missing")
        return None
    if isinstance(raw, bool):
        raise CylinderFileError(f"{where}: {name}: {raw!r} is not a number")
    try:
        v = float(raw)
    except (TypeError, ValueError):
        raise CylinderFileError(f"{where}: {name}: {raw!r} is not a number") from None
    if not math.isfinite(v):
        raise CylinderFileError(f"{where}: {name}: {raw!r} is not a finite number")
    if name == "uncertainty" and v < 0:
        raise CylinderFileError(f"{where}: {name}: {v} is negative")
    return v


def _entry(where: str, doc: dict[str, Any]) -> RevisedValue:
    cyl = doc.get("cylinder", doc.get("id"))
    if not isinstance(cyl, str) or not cyl.strip():
        raise CylinderFileError(f"{where}: cylinder: missing (the cylinder's id)")
    sp = doc.get("species")
    if not isinstance(sp, str) or not sp.strip():
        raise CylinderFileError(f"{where}: species: missing")
    sp = sp.strip().lower()
    known = species_registry.calibrated()
    if sp not in known:
        raise CylinderFileError(f"{where}: species: {sp!r} is not one of {', '.join(known)}")
    scale = doc.get("scale") or ""
    if not isinstance(scale, str):
        raise CylinderFileError(f"{where}: scale: {scale!r} is not a text")
    value = _value(where, "value", doc.get("value"), True)
    assert value is not None
    return RevisedValue(cyl.strip(), sp, value, scale.strip(), _value(where, "uncertainty", doc.get("uncertainty"),
                                                                      False))


def load_revised_values(path: Path) -> list[RevisedValue]:
    """The revised values of a TOML (`.toml`) or CSV (anything else) file; raises CylinderFileError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CylinderFileError(f"{path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise CylinderFileError(f"{path}: not UTF-8 text") from None
    out: list[RevisedValue] = []
    if path.suffix.lower() == ".toml":
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise CylinderFileError(f"{path}: (toml): {exc}") from None
        unknown = sorted(set(doc) - {"cylinders"})
        if unknown:
            raise CylinderFileError(f"{path}: {unknown[0]}: unknown key (give [[cylinders]] tables)")
        items = doc.get("cylinders")
        if not isinstance(items, list) or not items:
            raise CylinderFileError(f"{path}: cylinders: no [[cylinders]] tables")
        for i, item in enumerate(items):
            where = f"{path}: cylinders[{i}]"
            extra = sorted(set(item) - set(_FIELDS) - {"id"})
            if extra:
                raise CylinderFileError(f"{where}: {extra[0]}: unknown field (known: id, {', '.join(_FIELDS[1:])})")
            out.append(_entry(where, item))
    else:
        reader = csv.reader(text.splitlines())
        header = next(reader, None)
        if not header:
            raise CylinderFileError(f"{path}: row 1: empty file (want a header {','.join(_FIELDS)})")
        names = [h.strip().lower() for h in header]
        unknown = [h for h in names if h not in _FIELDS]
        if unknown:
            raise CylinderFileError(f"{path}: row 1: {unknown[0]}: unknown column (known: {', '.join(_FIELDS)})")
        for need in ("cylinder", "species", "value"):
            if need not in names:
                raise CylinderFileError(f"{path}: row 1: {need}: column missing")
        for line, row in enumerate(reader, start=2):
            if not any(c.strip() for c in row):
                continue
            if len(row) > len(names):
                raise CylinderFileError(f"{path}: row {line}: {len(row)} fields, the header has {len(names)}")
            out.append(_entry(f"{path}: row {line}", dict(zip(names, row))))
    seen: dict[tuple[str, str], int] = {}
    for i, v in enumerate(out):
        if (v.cylinder, v.species) in seen:
            raise CylinderFileError(f"{path}: {v.cylinder} {v.species}: given twice")
        seen[(v.cylinder, v.species)] = i
    return out
