"""The monthly comparison as CSV: one row per unit-month, empty cells where a side has no data.

Columns: unit, month, cems_t, accounting_t, difference_t (CEMS - accounting), relative_difference_pct,
availability_pct (CEMS measured / operating hours), substituted_hours, carbon_content_default
(yes when a fuel's carbon content was the guideline's default), note.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from central.cems.comparison import ComparisonRow

HEADER = ("unit", "month", "cems_t", "accounting_t", "difference_t", "relative_difference_pct",
          "availability_pct", "substituted_hours", "carbon_content_default", "note")


def _fmt(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def comparison_csv_rows(rows: Iterable[ComparisonRow]) -> list[list[str]]:
    """The cells, header first (the numbers as text: tonnes to 0.001 t, percentages to 0.01)."""
    out = [list(HEADER)]
    for r in rows:
        rel = r.relative_difference
        out.append([
            r.unit, r.month, _fmt(r.cems_t, 3), _fmt(r.accounting_t, 3), _fmt(r.difference_t, 3),
            _fmt(None if rel is None else rel * 100.0, 2),
            _fmt(None if r.availability is None else r.availability * 100.0, 2),
            "" if r.substituted_hours is None else str(r.substituted_hours),
            "" if r.carbon_defaulted is None else ("yes" if r.carbon_defaulted else "no"),
            r.note,
        ])
    return out


def write_comparison_csv(rows: Iterable[ComparisonRow], out: str | Path | TextIO) -> None:
    """Write the comparison to a path or an open text stream."""
    cells = comparison_csv_rows(rows)
    if isinstance(out, (str, Path)):
        with open(out, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows(cells)
    else:
        csv.writer(out).writerows(cells)
