"""One analyzer's performance-test report from the minutes central stored.

`series_from_minutes` turns stored minutes into the pure analysis' arrays (the analyzer's raw dry
means by default: an acceptance test judges the analyzer, not the calibration), `result_rows` the
analysis into the CSV's rows, and `write_report` writes `results.csv` and a self-contained
`report.html` (figures embedded as PNG, as central/inversion/report/document.py does).
"""

from __future__ import annotations

import base64
import csv
import html
import io
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402 (after choosing the backend)

from ghgnet import species as species_registry  # noqa: E402
from ghgnet.processing.performance_test import (  # noqa: E402
    MinuteSeries,
    PerformanceReport,
    Phases,
    injection_means,
    performance_test,
)

CSV_HEADER = ("part", "stream", "species", "metric", "value", "unit")
RESULTS_CSV = "results.csv"
REPORT_HTML = "report.html"


def _unit(sp: str) -> str:
    return species_registry.units().get(sp, "")


def series_from_minutes(minutes: Iterable, device: str, values: str = "raw") -> MinuteSeries:
    """Stored minutes (central.store.base.StoredMinute) of `device` as arrays. `values`: "raw"
    (raw_mean, uncalibrated dry) or "calibrated" (mean)."""
    if values not in ("raw", "calibrated"):
        raise ValueError(f"values must be raw or calibrated, got {values!r}")
    rows = [m for m in minutes if m.device == device]
    if not rows:
        raise ValueError(f"no minute of device {device!r} in that period")
    names = sorted({sp for m in rows for sp in m.species})
    pick = (lambda s: s.raw_mean) if values == "raw" else (lambda s: s.mean)
    vals = {sp: [float("nan") if (s := m.species.get(sp)) is None or pick(s) is None else pick(s) for m in rows]
            for sp in names}
    return MinuteSeries.of([m.time.timestamp() for m in rows], [m.stream for m in rows],
                           [m.flag == "U" for m in rows], vals,
                           [float("nan") if m.h2o is None else m.h2o for m in rows])


def result_rows(rep: PerformanceReport) -> list[tuple[str, str, str, str, float | None, str]]:
    """The CSV's rows: (part, stream, species, metric, value, unit); drift per day in unit/day."""
    out: list[tuple[str, str, str, str, float | None, str]] = []
    for c in rep.continuous:
        u = _unit(c.species)
        out += [("continuous", c.stream, c.species, "n_minutes", float(c.n_minutes), ""),
                ("continuous", c.stream, c.species, "mean", c.mean, u),
                ("continuous", c.stream, c.species, "cmr_1min", c.cmr_1min, u),
                ("continuous", c.stream, c.species, "cmr_1h", c.cmr_1h, u),
                ("continuous", c.stream, c.species, "drift_p2p_1min", c.drift_p2p_1min, u),
                ("continuous", c.stream, c.species, "drift_p2p_1h", c.drift_p2p_1h, u),
                ("continuous", c.stream, c.species, "drift_per_day", c.drift_per_day, f"{u}/day")]
    for r in rep.long_term:
        u = _unit(r.species)
        out += [("long_term", r.stream, r.species, "n_injections", float(len(r.injection_means)), ""),
                ("long_term", r.stream, r.species, "mean", r.mean, u),
                ("long_term", r.stream, r.species, "ltr", r.ltr, u),
                ("long_term", r.stream, r.species, "drift_per_day", r.drift_per_day, f"{u}/day")]
    for w in rep.water:
        u = _unit(w.species)
        out += [("water", w.stream, w.species, "n_minutes", float(w.n_minutes), ""),
                ("water", w.stream, w.species, "h2o_min", w.h2o_min, "%"),
                ("water", w.stream, w.species, "h2o_max", w.h2o_max, "%"),
                ("water", w.stream, w.species, "slope_per_h2o", w.slope_per_h2o, f"{u}/%H2O"),
                ("water", w.stream, w.species, "dry_reference", w.dry_reference, u),
                ("water", w.stream, w.species, "max_abs_deviation", w.max_abs_deviation, u)]
    return out


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _times(seconds) -> list[datetime]:
    return [datetime.fromtimestamp(float(s), UTC) for s in seconds]


def figures(rep: PerformanceReport, m: MinuteSeries, phases: Phases, last_minutes: int) -> list[tuple[str, Figure]]:
    """(caption, figure) for each part the report holds."""
    out: list[tuple[str, Figure]] = []
    names = list(m.values)
    if rep.continuous:
        stream = rep.continuous[0].stream
        sel = (m.streams == stream) & m.valid
        fig = Figure(figsize=(8, 1.2 + 1.8 * len(names)), layout="constrained")
        for i, sp in enumerate(names):
            ax = fig.add_subplot(len(names), 1, i + 1)
            ax.plot(_times(m.times[sel]), m.values[sp][sel], ".", ms=2)
            ax.set_ylabel(f"{sp} ({_unit(sp)})")
        fig.suptitle(f"continuous measurement of {stream}: 1-min means")
        out.append((f"Continuous measurement of {stream} (CMR, short-term drift)", fig))
    if rep.long_term:
        fig = Figure(figsize=(8, 1.2 + 1.8 * len(names)), layout="constrained")
        for i, sp in enumerate(names):
            ax = fig.add_subplot(len(names), 1, i + 1)
            for stream in phases.cycle:
                inj = [(t, v[sp]) for t, v in injection_means(m, stream, last_minutes) if sp in v]
                if inj:
                    ax.plot(_times([t for t, _ in inj]), [v - inj[0][1] for _, v in inj], "o-", ms=3, label=stream)
            ax.set_ylabel(f"{sp} - first ({_unit(sp)})")
            ax.legend(fontsize=7)
        fig.suptitle("cycles: injection means against the first injection")
        out.append(("Long-term repeatability and drift (injection means)", fig))
    if rep.water:
        stream = rep.water[0].stream
        sel = (m.streams == stream) & m.valid
        fig = Figure(figsize=(8, 1.2 + 1.8 * len(names)), layout="constrained")
        for i, sp in enumerate(names):
            ax = fig.add_subplot(len(names), 1, i + 1)
            ax.plot(m.h2o[sel], m.values[sp][sel], ".", ms=3)
            ref = next((w.dry_reference for w in rep.water if w.species == sp), None)
            if ref is not None:
                ax.axhline(ref, color="k", lw=0.8, label="same cylinder, dry")
                ax.legend(fontsize=7)
            ax.set_xlabel("H2O (%)")
            ax.set_ylabel(f"{sp} dry ({_unit(sp)})")
        fig.suptitle(f"water vapour test on {stream}")
        out.append((f"Water vapour test on {stream}", fig))
    return out


def _fmt(v: float | None) -> str:
    return "" if v is None else f"{v:.6g}"


def write_report(out_dir: Path, station: str, device: str, start: datetime, end: datetime, minutes: Iterable,
                 phases: Phases | None = None, values: str = "raw", last_minutes: int = 10,
                 skip_minutes: int = 10) -> tuple[Path, Path, PerformanceReport]:
    """Analyse `device`'s minutes and write results.csv and report.html into `out_dir`."""
    from ghgnet.processing.performance_test import infer_phases

    m = series_from_minutes(minutes, device, values)
    ph = phases or infer_phases(m)
    rep = performance_test(device, m, ph, last_minutes, skip_minutes)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = result_rows(rep)
    csv_path = out_dir / RESULTS_CSV
    with csv_path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(CSV_HEADER)
        for part, stream, sp, metric, value, unit in rows:
            w.writerow((part, stream, sp, metric, "" if value is None else repr(float(value)), unit))
    body = [f"<h1>Instrument performance test: {html.escape(station)} / {html.escape(device)}</h1>",
            f"<p>Minutes from {start.isoformat()} to {end.isoformat()} ({values} values). Protocol after the "
            "ICOS ATC Metrology Laboratory (Yver Kwok et al. 2015, AMT 8, 3867): continuous measurement "
            "repeatability (CMR, SD of 1-min and 1-h means) and short-term drift (peak to peak), long-term "
            "repeatability (SD of injection means) and drift, water vapour test.</p>",
            f"<p>Phases: continuous {html.escape(str(ph.continuous))}, cycles {html.escape(', '.join(ph.cycle))}, "
            f"water {html.escape(str(ph.water))} (dry reference {html.escape(str(ph.water_reference))}).</p>",
            "<table border='1' cellspacing='0' cellpadding='3'><tr>"
            + "".join(f"<th>{h}</th>" for h in CSV_HEADER) + "</tr>"]
    for row in rows:
        body.append("<tr>" + "".join(f"<td>{html.escape(_fmt(c) if isinstance(c, float) or c is None else c)}</td>"
                                     for c in row) + "</tr>")
    body.append("</table>")
    for caption, fig in figures(rep, m, ph, last_minutes):
        body.append(f"<h2>{html.escape(caption)}</h2><img alt='{html.escape(caption)}' "
                    f"src='data:image/png;base64,{_png(fig)}'/>")
    html_path = out_dir / REPORT_HTML
    html_path.write_text("<!doctype html><html><head><meta charset='utf-8'><title>Performance test "
                         f"{html.escape(device)}</title></head><body>" + "\n".join(body) + "</body></html>")
    return csv_path, html_path, rep
