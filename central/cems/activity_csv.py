"""Reading the accounting method's monthly activity data from CSV.

One row per unit, month and fuel; the header names the columns (any order, UTF-8, an Excel BOM is
fine):

    unit,month,fuel,consumption_t,ncv_gj_per_t,carbon_tc_per_gj,oxidation_fraction
    unit-1,2026-03,coal,152000,20.9,0.0262,0.99
    unit-1,2026-04,coal,148500,21.1,,0.99          <- empty carbon content: the coal default

Every problem is reported at once, each as "FILE: row N: field: message" (N the file's line
number, the header being line 1), and nothing is read from a file with a problem.
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

from central.cems.accounting import DEFAULTABLE_FUELS, FuelMonth

COLUMNS = ("unit", "month", "fuel", "consumption_t", "ncv_gj_per_t", "carbon_tc_per_gj", "oxidation_fraction")
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


class ActivityError(ValueError):
    """The activity file's problems, one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _number(text: str, low: float, high: float, low_open: bool = False) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    if value < low or (low_open and value == low) or value > high:
        raise ValueError(f"{value:g} is outside {'(' if low_open else '['}{low:g}, {high:g}]")
    return value


_FIELDS = {
    "consumption_t": lambda t: _number(t, 0.0, 1e9),
    "ncv_gj_per_t": lambda t: _number(t, 0.0, 100.0, low_open=True),
    "carbon_tc_per_gj": lambda t: _number(t, 0.0, 0.1, low_open=True),
    "oxidation_fraction": lambda t: _number(t, 0.0, 1.0, low_open=True),
}


def read_activity_csv(path: str | Path) -> list[FuelMonth]:
    """The file's rows as FuelMonth, or ActivityError listing every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ActivityError([f"{path}: cannot read: {exc}"]) from exc
    reader = csv.DictReader(text.splitlines())
    header = reader.fieldnames or []
    problems: list[str] = []
    missing = [c for c in COLUMNS if c not in header]
    unknown = [c for c in header if c not in COLUMNS]
    if missing:
        problems.append(f"{path}: row 1: header: missing column(s) {', '.join(missing)}")
    if unknown:
        problems.append(f"{path}: row 1: header: unknown column(s) {', '.join(unknown)}; known: {', '.join(COLUMNS)}")
    if problems:
        raise ActivityError(problems)
    rows: list[FuelMonth] = []
    seen: dict[tuple[str, str, str], int] = {}
    for line, record in enumerate(reader, start=2):
        where = f"{path}: row {line}"
        if None in record:
            problems.append(f"{where}: more fields than the header's {len(header)}")
            continue
        fields = {k: (v or "").strip() for k, v in record.items()}
        bad = False
        for name in ("unit", "fuel"):
            if not fields[name]:
                problems.append(f"{where}: {name}: empty")
                bad = True
        if not _MONTH.match(fields["month"]):
            problems.append(f"{where}: month: {fields['month']!r} is not YYYY-MM")
            bad = True
        parsed: dict[str, float | None] = {}
        for name, parse in _FIELDS.items():
            if name == "carbon_tc_per_gj" and not fields[name]:
                parsed[name] = None
                if fields["fuel"].lower() not in DEFAULTABLE_FUELS:
                    problems.append(f"{where}: carbon_tc_per_gj: empty, and only coal has a default "
                                    f"(fuel {fields['fuel']!r})")
                    bad = True
                continue
            try:
                parsed[name] = parse(fields[name])
            except ValueError as exc:
                problems.append(f"{where}: {name}: {'empty' if not fields[name] else exc}")
                bad = True
        key = (fields["unit"], fields["month"], fields["fuel"].lower())
        if key in seen:
            problems.append(f"{where}: fuel: {fields['fuel']!r} for {key[0]} {key[1]} already on row {seen[key]}")
            bad = True
        seen.setdefault(key, line)
        if not bad:
            rows.append(FuelMonth(unit=fields["unit"], month=fields["month"], fuel=fields["fuel"],
                                  consumption_t=parsed["consumption_t"], ncv_gj_per_t=parsed["ncv_gj_per_t"],
                                  carbon_tc_per_gj=parsed["carbon_tc_per_gj"],
                                  oxidation_fraction=parsed["oxidation_fraction"]))
    if problems:
        raise ActivityError(problems)
    return rows
