"""`central-receiver medium-precision calibrate | report | export` (hooked into central/cli.py)."""

from __future__ import annotations

import csv
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from central.cli_config import ConfigOpt
from central.cli_config import load_or_exit as _load
from central.store import StoreError, open_configured_store
from ghgnet.timeutil import iso_utc, parse_utc

from .fit import FitError
from .service import EXPORT_COLUMNS, calibrate, export_rows, find_site, latest_models, site_label

medium_precision_app = typer.Typer(
    no_args_is_help=True,
    help="Medium-precision (low-cost NDIR) sites calibrated against the high-precision network.")

SiteOpt = Annotated[str | None, typer.Option("--site", help="a station id or site/device/species; default: every "
                                             "[[medium_precision]] entry")]
FromOpt = Annotated[str, typer.Option("--from", help="start time, ISO 8601 (inclusive)")]
ToOpt = Annotated[str, typer.Option("--to", help="end time, ISO 8601 (exclusive)")]


def _time(text: str, name: str) -> datetime:
    try:
        return parse_utc(text)
    except ValueError:
        typer.echo(f"error: {name}: not an ISO 8601 time: {text!r}", err=True)
        raise typer.Exit(2) from None


def _setup(config: Path, site: str | None) -> tuple[Any, Any, list]:
    cfg = _load(config)
    try:
        sites = find_site(cfg, site)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if not sites:
        typer.echo(f"error: {config}: no [[medium_precision]] entries", err=True)
        raise typer.Exit(2)
    try:
        store = open_configured_store(cfg)
    except StoreError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    return cfg, store, sites


def _fmt(v: float | None, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


@medium_precision_app.command("calibrate")
def calibrate_cmd(config: ConfigOpt, from_: FromOpt, to: ToOpt, site: SiteOpt = None,
                  as_json: Annotated[bool, typer.Option("--json", help="one JSON object per site")] = False) -> None:
    """Fit each site's sensor model over [--from, --to) against its reference, store the model and
    the corrected hours of the window (a data level of their own). Exit 1 if a site could not be fitted."""
    start, end = _time(from_, "--from"), _time(to, "--to")
    cfg, store, sites = _setup(config, site)
    failed = 0
    try:
        for m in sites:
            try:
                cal = calibrate(cfg, store, m, start, end, datetime.now(UTC))
            except FitError as exc:
                failed += 1
                typer.echo(f"error: {site_label(m)}: {exc}", err=True)
                continue
            res = cal.residuals
            if as_json:
                typer.echo(json.dumps({"site": site_label(m), "model_id": cal.model_id, "hours": cal.hours,
                                       "model": cal.model.to_json(), "residuals": res}))
                continue
            coef = ", ".join(f"{k} {v:.6g}" for k, v in cal.model.coefficients.items())
            c, u = res["corrected"], res["uncorrected"]
            typer.echo(f"{site_label(m)} against {m.reference} ({m.mode}): {cal.hours} hours corrected, "
                       f"{c['n']} paired; {coef}")
            typer.echo(f"  corrected - reference: bias {_fmt(c['bias'])}, RMSE {_fmt(c['rmse'])}, "
                       f"max {_fmt(c['max_abs'])} ppm; uncorrected: bias {_fmt(u['bias'])}, RMSE {_fmt(u['rmse'])} ppm")
            for term, why in cal.model.dropped.items():
                typer.echo(f"  {term} not fitted: {why}")
    finally:
        store.close()
    raise typer.Exit(1 if failed else 0)


@medium_precision_app.command("report")
def report_cmd(config: ConfigOpt, site: SiteOpt = None,
               as_json: Annotated[bool, typer.Option("--json", help="the whole report as JSON")] = False) -> None:
    """The latest model of each site: its coefficients, uncertainty and residuals against the
    reference (in all and per period)."""
    _, store, sites = _setup(config, site)
    try:
        latest = latest_models(store, sites)
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps([{"site": site_label(m), "model_id": r.id if r else None,
                                "fit_start": iso_utc(r.fit_start) if r else None,
                                "fit_end": iso_utc(r.fit_end) if r else None,
                                "model": r.model if r else None, "residuals": r.residuals if r else None}
                               for m, r in latest], indent=2))
        return
    for m, r in latest:
        if r is None:
            typer.echo(f"{site_label(m)}: not calibrated yet (central-receiver medium-precision calibrate)")
            continue
        names, cov = r.model["names"], r.model["covariance"]
        typer.echo(f"{site_label(m)} against {r.reference} ({r.mode}), fit {iso_utc(r.fit_start)} to "
                   f"{iso_utc(r.fit_end)}, model {r.id}")
        for i, name in enumerate(names):
            typer.echo(f"  {name:<12} {r.model['coefficients'][name]: .6g} +- {cov[i][i] ** 0.5:.3g}")
        typer.echo(f"  residual std of an hour: {r.model['s']:.3f} ppm over {r.model['n']} hours")
        typer.echo(f"  {'period':<12} {'n':>4} {'bias':>8} {'rmse':>8} {'max':>8}   uncorrected bias, rmse")
        rows = [("all", r.residuals["corrected"], r.residuals["uncorrected"])]
        rows += [(p, v["corrected"], v["uncorrected"]) for p, v in r.residuals["by_period"].items()]
        for p, c, u in rows:
            typer.echo(f"  {p:<12} {c['n']:>4} {_fmt(c['bias']):>8} {_fmt(c['rmse']):>8} {_fmt(c['max_abs']):>8}"
                       f"   {_fmt(u['bias'])}, {_fmt(u['rmse'])}")


@medium_precision_app.command("export")
def export_cmd(config: ConfigOpt, from_: FromOpt, to: ToOpt, site: SiteOpt = None,
               out: Annotated[Path | None, typer.Option("--out", help="CSV file; default standard output")] = None
               ) -> None:
    """The corrected hourly values with their uncertainty (level medium_precision) as CSV."""
    start, end = _time(from_, "--from"), _time(to, "--to")
    _, store, sites = _setup(config, site)
    try:
        rows = [row for m in sites for row in export_rows(store, m, start, end)]
    finally:
        store.close()
    stream = out.open("w", newline="") if out else sys.stdout
    try:
        writer = csv.DictWriter(stream, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)
    finally:
        if out:
            stream.close()
    if out:
        typer.echo(f"wrote {len(rows)} hours to {out}", err=True)
