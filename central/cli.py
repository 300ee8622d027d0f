"""`central-receiver`: the receiver daemon and the operators' commands."""

from __future__ import annotations

import csv
import json
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer

from station_agent.configbase import ConfigError
from station_agent.timeutil import iso_utc, parse_utc

from .config import CentralConfig, load_central_config

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="ghgnet central: ingest station data over MQTT, store it, export it.")
config_app = typer.Typer(no_args_is_help=True, help="Configuration files.")
app.add_typer(config_app, name="config")

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="central TOML config file")]

SPECIES_ORDER = ("co2", "ch4", "co", "n2o")
SPECIES_FIELDS = ("mean", "std", "n", "raw_mean", "cal_mean")


def _load(path: Path) -> CentralConfig:
    try:
        return load_central_config(path)
    except ConfigError as exc:
        for line in exc.lines:
            typer.echo(line, err=True)
        raise typer.Exit(2) from None


def _open_store(config: CentralConfig):
    from .receiver import open_configured_store
    from .store import StoreError

    try:
        return open_configured_store(config)
    except StoreError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _time(text: str, name: str) -> datetime:
    try:
        return parse_utc(text)
    except ValueError:
        typer.echo(f"error: {name}: {text!r} is not an ISO 8601 time", err=True)
        raise typer.Exit(2) from None


@app.command()
def run(config: ConfigOpt) -> None:
    """Run the receiver daemon until SIGTERM or Ctrl-C."""
    from station_agent.logs import configure_logging

    from .receiver import Receiver

    cfg = _load(config)
    configure_logging(station=None, level=cfg.logging.level, fmt=cfg.logging.format)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    Receiver(cfg, store=_open_store(cfg)).run(stop)


def _age(t: datetime | None, now: datetime) -> str:
    if t is None:
        return "-"
    s = (now - t).total_seconds()
    if s < 120:
        return f"{s:.0f} s ago"
    if s < 7200:
        return f"{s / 60:.0f} min ago"
    return f"{s / 3600:.1f} h ago"


def station_state(summary: Any, now: datetime) -> str:
    """up / down / stale: stale when no status for two status intervals (default 60 s each)."""
    st = summary.status
    if st is None:
        return "unknown"
    if st.state == "down":
        return "down"
    interval = st.interval_s or 60.0
    return "up" if (now - st.received_at).total_seconds() <= 2 * interval else "stale"


@app.command()
def status(
    config: ConfigOpt,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
    dead_letters: Annotated[int, typer.Option(help="how many recent dead letters to list")] = 5,
) -> None:
    """Stations (state, last seen, counts, backlog) and recent dead letters."""
    cfg = _load(config)
    store = _open_store(cfg)
    now = datetime.now(UTC)
    try:
        stations = store.stations()
        letters = store.dead_letters(limit=dead_letters)
        total_dead = store.dead_letter_count()
    finally:
        store.close()
    rows = []
    for s in stations:
        st = s.status
        rows.append({
            "station": s.station, "state": station_state(s, now), "last_seen": iso_utc(s.last_seen),
            "first_seen": iso_utc(s.first_seen), "last_seq": s.last_seq, "minutes": s.minutes,
            "calibrations": s.calibrations, "targets": s.targets, "events": s.events,
            "duplicates": s.duplicates, "dead_letters": s.dead_letters,
            "backlog": st.backlog if st else None,
            "oldest_unacked_age_s": st.oldest_unacked_age_s if st else None,
            "agent_version": st.agent_version if st else None,
            "status_time": iso_utc(st.time) if st else None,
        })
    recent = [
        {"id": d.id, "received_at": iso_utc(d.received_at), "topic": d.topic, "station": d.station,
         "seq": d.seq, "reason_code": d.reason_code, "reason": d.reason, "payload_size": d.payload_size}
        for d in letters
    ]
    if as_json:
        typer.echo(json.dumps({"network": cfg.central.name, "time": iso_utc(now), "stations": rows,
                               "dead_letters": {"total": total_dead, "recent": recent}}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"{cfg.central.name}: {len(rows)} station(s)")
    for col in ("station", "state", "last seen", "last seq", "minutes", "cal", "target", "events",
                "dup", "dead", "backlog", "oldest unacked"):
        table.add_column(col)
    for s, r in zip(stations, rows):
        age = r["oldest_unacked_age_s"]
        table.add_row(r["station"], r["state"], _age(s.last_seen, now), str(r["last_seq"]), str(r["minutes"]),
                      str(r["calibrations"]), str(r["targets"]), str(r["events"]), str(r["duplicates"]),
                      str(r["dead_letters"]), "-" if r["backlog"] is None else str(r["backlog"]),
                      "-" if age is None else f"{age:.0f} s")
    console.print(table)
    console.print(f"dead letters: {total_dead}")
    for d in recent:
        console.print(f"  #{d['id']} {d['received_at']} {d['topic']} [{d['reason_code']}] {d['reason']}")


def write_minute_csv(store: Any, station: str, start: datetime, end: datetime, out: TextIO) -> int:
    """Write minute records as CSV (columns: see `export --help`); returns the row count."""
    found = store.minute_species(station, start, end)
    species = [s for s in SPECIES_ORDER if s in found] + [s for s in found if s not in SPECIES_ORDER]
    header = ["time_utc", "station", "seq", "device", "stream"]
    header += [f"{sp}_{f}" for sp in species for f in SPECIES_FIELDS]
    header += ["h2o", "flag", "reasons"]
    w = csv.writer(out, lineterminator="\n")
    w.writerow(header)
    n = 0
    for m in store.minutes(station, start, end):
        row: list[Any] = [iso_utc(m.time), m.station, m.seq, m.device, m.stream]
        for sp in species:
            s = m.species.get(sp)
            row += ["" if s is None else ("" if getattr(s, f) is None else getattr(s, f)) for f in SPECIES_FIELDS]
        row += ["" if m.h2o is None else m.h2o, m.flag, "|".join(m.reasons)]
        w.writerow(row)
        n += 1
    return n


@app.command()
def export(
    config: ConfigOpt,
    station: Annotated[str, typer.Option("--station", help="station id")],
    from_: Annotated[str, typer.Option("--from", help="start (inclusive), ISO 8601, UTC if no zone")],
    to: Annotated[str, typer.Option("--to", help="end (exclusive), ISO 8601, UTC if no zone")],
    level: Annotated[str, typer.Option(help="data level: minute")] = "minute",
    fmt: Annotated[str, typer.Option("--format", help="output format: csv")] = "csv",
    out: Annotated[Path | None, typer.Option("--out", help="output file (default: stdout)")] = None,
) -> None:
    """Export a station's data as CSV.

    Minute level, one row per minute record, ordered by time then seq. Columns: time_utc (start of
    the minute, ISO 8601 Z), station, seq, device, stream; then for each species present in the
    range (co2, ch4, co, n2o first, others alphabetically) <sp>_mean, <sp>_std, <sp>_n,
    <sp>_raw_mean, <sp>_cal_mean (CO2 ppm; CH4, CO, N2O ppb; mean is the calibrated value when
    calibrated, else the raw dry mean); then h2o (%), flag (ICOS letter: U valid, N invalid, ...)
    and reasons (reason codes joined by |). Empty cells are missing values.
    """
    if level != "minute":
        typer.echo(f"error: --level {level!r} is not available yet (only 'minute')", err=True)
        raise typer.Exit(2)
    if fmt != "csv":
        typer.echo(f"error: --format {fmt!r} is not available (only 'csv')", err=True)
        raise typer.Exit(2)
    start, end = _time(from_, "--from"), _time(to, "--to")
    cfg = _load(config)
    store = _open_store(cfg)
    try:
        if out is None:
            n = write_minute_csv(store, station, start, end, sys.stdout)
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            with out.open("w", newline="") as fh:
                n = write_minute_csv(store, station, start, end, fh)
    finally:
        store.close()
    typer.echo(f"{n} minute record(s) exported", err=True)


@config_app.command("check")
def config_check(file: Annotated[Path, typer.Argument(help="central TOML config file")]) -> None:
    """Validate a config file: exit 0, or exit 2 with `FILE: field.path: message` per error."""
    _load(file)
    typer.echo(f"{file}: ok")


@app.command()
def invert(
    config: ConfigOpt,
    out: Annotated[Path, typer.Option("--out", help="output folder")],
) -> None:
    """Run the inversion over stored data (central.inversion)."""
    try:
        from central.inversion.command import invert as run_inversion
    except ImportError as exc:
        typer.echo(f"error: the inversion is not available in this installation: {exc}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(int(run_inversion(config, out) or 0))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
