"""`report.html` (self-contained: figures embedded as PNG) and `report.pdf` (matplotlib's PdfPages:
the same figures as vectors, tables as monospaced text pages), from one ReportContent."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
from matplotlib import rc_context  # noqa: E402 (after choosing the backend)
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from . import figures  # noqa: E402
from .content import ReportContent  # noqa: E402

LINES_PER_PAGE = 62


def diagnostic_lines(content: ReportContent) -> list[str]:
    """The diagnostics with a line on how to read each."""
    d = content.diagnostics
    m, n = d["n_obs"], d["n_state"]
    lines = [
        f"state elements n            {n:,}",
        f"observations used m         {m:,}",
        f"DOFS                        {d['dofs']:.1f}  ({d['dofs'] / m:.0%} of m: how many independent",
        "                             pieces of information the observations gave the fluxes)",
        f"reduced chi-square          {d['chi2_reduced']:.2f}  (about 1: prior and observation errors fit the",
        "                             data; well above 1: errors too small; well below: too large)",
        f"rcond of H B H' + R         {d['rcond']:.1e}  (lower bound; below 1e-13 the run is refused)",
        f"innovation y - H xa         RMS {d['innovation']['rms_ppm']:.3f} ppm, mean {d['innovation']['mean_ppm']:+.3f} ppm",
        f"residual   y - H x          RMS {d['residual']['rms_ppm']:.3f} ppm, mean {d['residual']['mean_ppm']:+.3f} ppm",
        "",
        "uncertainty reduction of the region total, 1 - posterior/prior 1-sigma:",
    ]
    for row in content.totals:
        lines.append(f"  {row['month']}  {row['sector']:<16} {row['uncertainty_reduction']:6.1%}")
    per = d.get("innovation_by_station")
    if per:
        lines += ["", "innovation by station (normalised RMS: about 1 when M's diagonal fits):"]
        for name, st in per.items():
            lines.append(f"  {name:<16} n {st['n']:>5}  mean {st['mean_ppm']:+8.3f} ppm  RMS {st['rms_ppm']:7.3f} ppm"
                         f"  normalised RMS {st['normalised_rms']:5.2f}")
    return lines


def observation_lines(content: ReportContent) -> list[str]:
    return [f"  {name:<44} {count:>8,}" for name, count in content.observation_counts.items()]


COMPARISON_HEADER = ("month", "sector", "inventory Mt", "top-down Mt", "1-sigma Mt", "difference Mt",
                     "relative", "in sigma")


def comparison_cells(content: ReportContent) -> list[tuple[str, ...]]:
    return [(r["month"], r["sector"], f"{r['inventory_Mt']:.4g}", f"{r['posterior_Mt']:.4g}",
             f"{r['posterior_sigma_Mt']:.2g}", f"{r['difference_Mt']:+.3g}", f"{r['relative_difference']:+.1%}",
             f"{r['difference_in_sigma']:+.1f}") for r in content.comparison]


def _text_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" if i < 2 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return [fmt.format(*header), fmt.format(*("-" * w for w in widths)), *(fmt.format(*r) for r in rows)]


def _text_pages(title: str, lines: list[str]) -> list[Figure]:
    pages = []
    for first in range(0, max(1, len(lines)), LINES_PER_PAGE):
        fig = Figure(figsize=(figures.PAGE_W, figures.PAGE_H))
        fig.text(0.07, 0.95, title if first == 0 else f"{title} (continued)", fontsize=13, weight="bold", va="top")
        fig.text(0.07, 0.92, "\n".join(lines[first : first + LINES_PER_PAGE]), family="monospace", fontsize=8.5,
                 va="top", linespacing=1.35)
        pages.append(fig)
    return pages


def _summary_lines(content: ReportContent) -> list[str]:
    g = content.grid
    return [f"configuration   {content.config_path}",
            f"species         {content.species}",
            f"period          {g.step_start[0]}Z .. {g.step_end[-1]}Z, {g.n_steps} flux steps",
            f"grid            {g.ny} x {g.nx} cells, lat {g.lat[0]:.3f}..{g.lat[-1]:.3f},"
            f" lon {g.lon[0]:.3f}..{g.lon[-1]:.3f}",
            f"sectors         {', '.join(content.sectors)}",
            f"inventory       {content.inventory_label}",
            "", "Diagnostics", "", *diagnostic_lines(content),
            "", "Observations", "", *observation_lines(content),
            "", "Inventory vs top-down (region, per month and sector)", "",
            *_text_table(COMPARISON_HEADER, comparison_cells(content))]


def write_pdf(path: Path, content: ReportContent) -> int:
    """Write the PDF; returns its page count."""
    with rc_context(figures.STYLE):
        pages = [*_text_pages(f"ghgnet inversion report: {content.species}", _summary_lines(content)),
                 figures.maps(content), figures.totals(content), *figures.station_series(content),
                 *_text_pages("Configuration", content.config_text.splitlines())]
        with PdfPages(path, metadata={"Title": f"ghgnet inversion report ({content.species})",
                                      "Creator": "ghgnet central.inversion"}) as pdf:
            for fig in pages:
                pdf.savefig(fig)
    return len(pages)


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _html_table(header, rows) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


CSS = """body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #bbb;padding:0.2em 0.6em;text-align:right}
td:first-child,td:nth-child(2),th{text-align:left}img{max-width:100%}pre{background:#f4f4f4;padding:0.8em;
overflow-x:auto}h2{border-bottom:1px solid #ccc;margin-top:2em}"""


def write_html(path: Path, content: ReportContent) -> None:
    g = content.grid
    with rc_context(figures.STYLE):
        maps, totals = _png(figures.maps(content)), _png(figures.totals(content))
        series = [_png(fig) for fig in figures.station_series(content)]
    totals_rows = [(r["month"], r["sector"], f"{r['prior_Mt']:.4g}", f"{r['prior_sigma_Mt']:.2g}",
                    f"{r['posterior_Mt']:.4g}", f"{r['posterior_sigma_Mt']:.2g}", f"{r['uncertainty_reduction']:.1%}")
                   for r in content.totals]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>ghgnet inversion report: {html.escape(content.species)}</title><style>{CSS}</style></head><body>",
        f"<h1>Inversion report: {html.escape(content.species)}</h1>",
        f"<p>{html.escape(str(g.step_start[0]))}Z to {html.escape(str(g.step_end[-1]))}Z, {g.n_steps} flux steps,"
        f" {g.ny} x {g.nx} cells, sectors {html.escape(', '.join(content.sectors))};"
        f" configuration <code>{html.escape(content.config_path)}</code>.</p>",
        "<h2>Inventory vs top-down</h2>",
        f"<p>Region total per month and sector. Inventory: {html.escape(content.inventory_label)}. Relative:"
        " (top-down - inventory) / inventory; in sigma: the difference in posterior 1-sigma (beyond &plusmn;2 the"
        " inventory lies outside the posterior's 95&nbsp;% interval).</p>",
        _html_table(COMPARISON_HEADER, comparison_cells(content)),
        "<h2>Monthly totals</h2>", f"<img alt='monthly totals' src='data:image/png;base64,{totals}'>",
        _html_table(("month", "sector", "prior Mt", "prior 1-sigma", "posterior Mt", "posterior 1-sigma",
                     "uncertainty reduction"), totals_rows),
        "<h2>Maps</h2>", f"<img alt='maps' src='data:image/png;base64,{maps}'>",
        "<h2>Diagnostics</h2>", f"<pre>{html.escape(chr(10).join(diagnostic_lines(content)), quote=False)}</pre>",
        "<h2>Observations used and dropped</h2>",
        _html_table(("", "count"), [(k, f"{v:,}") for k, v in content.observation_counts.items()]),
        "<h2>Stations: observed vs modelled enhancements</h2>",
        *(f"<img alt='station time series' src='data:image/png;base64,{png}'>" for png in series),
        "<h2>Configuration</h2>", f"<pre>{html.escape(content.config_text, quote=False)}</pre>",
        "</body></html>",
    ]
    path.write_text("\n".join(parts))


def write_report(html_path: Path, pdf_path: Path, content: ReportContent) -> int:
    """Write both documents; returns the PDF's page count."""
    write_html(html_path, content)
    return write_pdf(pdf_path, content)
