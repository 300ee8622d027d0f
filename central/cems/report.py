"""`central-receiver cems compare`: the monthly comparison CSV and one self-contained HTML page.

The page holds the comparison table and an SVG chart drawn with matplotlib (inline, so the page is
one file): the months' CO2 by CEMS and by the accounting method, and the unit's hourly CO2 with the
substituted hours marked.
"""

from __future__ import annotations

import html
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from central.cems.comparison import CemsHour, ComparisonRow
from central.cems.comparison_csv import comparison_csv_rows, write_comparison_csv

MEASURED = "01"


def cems_hours(unit: str, records: Sequence[dict[str, Any]]) -> list[CemsHour]:
    """Stored emission hours (CentralStore.emissions(unit, "hour", ...)) as CemsHour: measured when
    both monitors' values were (MODC 01), substituted when a value was substituted."""
    out = []
    for r in records:
        measured = r["co2_modc"] == MEASURED and r["flow_modc"] == MEASURED
        operating = r["operating_h"] > 0
        out.append(CemsHour(unit=unit, hour=r["time"], mass_kg=r["mass_kg"] or 0.0,
                            operating_hours=r["operating_h"], measured=operating and measured,
                            substituted=operating and not measured and r["mass_kg"] is not None))
    return out


def chart_svg(rows: Sequence[ComparisonRow], hours: Sequence[CemsHour]) -> str:
    """The two panels as SVG text (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 7), constrained_layout=True)
    months = [r.month for r in rows]
    x = range(len(rows))
    top.bar([i - 0.2 for i in x], [r.cems_t or 0.0 for r in rows], 0.4, label="CEMS")
    top.bar([i + 0.2 for i in x], [r.accounting_t or 0.0 for r in rows], 0.4, label="accounting")
    top.set_xticks(list(x), months)
    top.set_ylabel("CO2 (t)")
    top.set_title("CO2 by month")
    top.legend()
    measured = [h for h in hours if not h.substituted]
    subst = [h for h in hours if h.substituted]
    bottom.plot([h.hour for h in measured], [h.mass_kg / 1000.0 for h in measured], ".", ms=2, label="measured")
    bottom.plot([h.hour for h in subst], [h.mass_kg / 1000.0 for h in subst], "o", ms=4, color="tab:red",
                label=f"substituted ({len(subst)} h)")
    bottom.set_ylabel("CO2 (t/h)")
    bottom.set_title("CO2 by hour (CEMS)")
    bottom.legend()
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def report_html(unit: str, rows: Sequence[ComparisonRow], hours: Sequence[CemsHour]) -> str:
    cells = comparison_csv_rows(rows)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cells[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in cells[1:])
    return (f"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>CEMS vs accounting: {html.escape(unit)}"
            "</title><style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #999;padding:.2em .5em;text-align:right;white-space:nowrap;font-size:90%}</style></head><body>"
            f"<h1>CO2 of {html.escape(unit)}: CEMS against the accounting method</h1>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
            f"<figure>{chart_svg(rows, hours)}</figure></body></html>\n")


def write_report(unit: str, rows: Sequence[ComparisonRow], hours: Sequence[CemsHour], out: Path) -> tuple[Path, Path]:
    """comparison.csv and comparison.html in `out` (made if needed); their paths."""
    out.mkdir(parents=True, exist_ok=True)
    csv_path, html_path = out / "comparison.csv", out / "comparison.html"
    write_comparison_csv(rows, csv_path)
    html_path.write_text(report_html(unit, rows, hours), encoding="utf-8")
    return csv_path, html_path
