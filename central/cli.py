"""`central-receiver`: the receiver daemon and the operators' commands."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, TextIO

import typer

from ghgnet.timeutil import iso_utc, parse_utc

from .archive.cli import archive_app
from .cli_config import ConfigOpt
from .cli_config import load_or_exit as _load
from .config import CentralConfig
from .fleet.cli import keys_app, station_app, stations_app
from .medium_precision.cli import medium_precision_app

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="ghgnet central: ingest station data over MQTT, store it, export it.")
config_app = typer.Typer(no_args_is_help=True, help="Configuration files.")
app.add_typer(config_app, name="config")
cems_app = typer.Typer(no_args_is_help=True, help="Stack CEMS: emissions against the accounting method.")
app.add_typer(cems_app, name="cems")
app.add_typer(keys_app, name="keys")
app.add_typer(station_app, name="station")
app.add_typer(stations_app, name="stations")
app.add_typer(medium_precision_app, name="medium-precision")
app.add_typer(archive_app, name="archive")

SpeedOpt = Annotated[
    float | None, typer.Option(help="run the clock X times faster than real time (simulated time, as the "
                               "station's: the demo and the tests)")
]
StartOpt = Annotated[str | None, typer.Option(help="simulated start time (ISO 8601), to line up with a station")]
AnchorOpt = Annotated[
    str | None, typer.Option(help="real instant (ISO 8601) at which simulated time is --start (default: now)")
]




def _open_store(config: CentralConfig):
    from .store import StoreError, open_configured_store

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
def run(config: ConfigOpt, speed: SpeedOpt = None, start: StartOpt = None, anchor: AnchorOpt = None) -> None:
    """Run the receiver daemon until SIGTERM or Ctrl-C. --speed, --start and --anchor put it on
    the same simulated clock as a station run with them (ghgnet/clock.py): central refuses
    what is stamped beyond its clock ([ingest] future_tolerance_s)."""
    from ghgnet.clock import make_clock
    from ghgnet.logs import configure_logging

    from .receiver import Receiver

    if speed is not None and not (speed > 0 and math.isfinite(speed)):
        typer.echo(f"error: --speed must be a finite number > 0, got {speed:g}", err=True)
        raise typer.Exit(2)
    clock = make_clock(speed, _time(start, "--start") if start else None, _time(anchor, "--anchor") if anchor else None)
    cfg = _load(config)
    configure_logging(station=None, level=cfg.logging.level, fmt=cfg.logging.format)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    Receiver(cfg, store=_open_store(cfg), now=clock.now).run(stop)


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


STATE_STYLE = {"up": "green", "down": "bold red", "unknown": "yellow"}


@app.command()
def status(
    config: ConfigOpt,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
    dead_letters: Annotated[int, typer.Option(help="how many recent dead letters to list")] = 5,
    alarms: Annotated[int, typer.Option(help="how many recent alarms to list")] = 5,
) -> None:
    """Stations and their health: state (down after two missed status intervals or on the last
    will), last seen, latency, backlog, oldest unacked, instrument, completeness today, alarms;
    then recent alarms (e.g. seq_conflict: a station sent a seq it had sent before with other
    content) and recent dead letters."""
    from . import views

    cfg = _load(config)
    store = _open_store(cfg)
    now = datetime.now(UTC)
    try:
        rows = views.station_health(store, cfg, now)
        letters = store.dead_letters(limit=dead_letters)
        total_dead = store.dead_letter_count()
        recent_alarms = views.alarms(store, limit=alarms)
        total_alarms = store.alarm_count()
    finally:
        store.close()
    recent = [
        {"id": d.id, "received_at": iso_utc(d.received_at), "topic": d.topic, "station": d.station,
         "store": d.store, "seq": d.seq, "reason_code": d.reason_code, "reason": d.reason,
         "payload_size": d.payload_size}
        for d in letters
    ]
    if as_json:
        typer.echo(json.dumps({"network": cfg.central.name, "time": iso_utc(now), "stations": rows,
                               "alarms": {"total": total_alarms, "recent": recent_alarms},
                               "dead_letters": {"total": total_dead, "recent": recent}}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"{cfg.central.name}: {len(rows)} station(s)")
    for col in ("station", "role", "state", "last seen", "latency", "backlog", "oldest unacked", "data lag",
                "complete today", "instrument", "minutes", "cal", "emis", "flux", "dup", "dead", "alarms"):
        table.add_column(col)
    for r in rows:
        comp = r["completeness_today"]
        table.add_row(
            r["station"], r["role"], f"[{STATE_STYLE.get(r['state'], '')}]{r['state']}[/]",
            _dur(r["last_seen_age_s"]) + (" ago" if r["last_seen_age_s"] is not None else ""),
            _dur(r["latency_s"]), "-" if r["backlog"] is None else str(r["backlog"]),
            _dur(r["oldest_unacked_age_s"]), _dur(r["data_lag_s"]),
            "-" if comp is None else f"{comp:.0%}", r["instrument"], str(r["minutes"]), str(r["calibrations"]),
            str(r["emissions"]), str(r["fluxes"]), str(r["duplicates"]), str(r["dead_letters"]), str(r["alarms"]),
        )
    console.print(table)
    for r in rows:
        if r["state"] != "up":
            console.print(f"  {r['station']}: {r['state']}: {r['reason']}")
    console.print(f"alarms: {total_alarms}", markup=False)
    for a in recent_alarms:
        console.print(f"  #{a['id']} {a['time']} {a['station']} [{a['kind']}] {a['message']}", markup=False)
    console.print(f"dead letters: {total_dead}", markup=False)
    for d in recent:
        store_id = f" store {d['store']}" if d["store"] else ""
        console.print(f"  #{d['id']} {d['received_at']} {d['topic']}{store_id} [{d['reason_code']}] {d['reason']}",
                      markup=False)


@app.command()
def records(
    config: ConfigOpt,
    station: Annotated[str, typer.Option("--station", help="station id")],
    as_json: Annotated[bool, typer.Option("--json", help="every record, as JSON")] = False,
) -> None:
    """What central holds of one station: per record kind (minute, event, calibration, target)
    every record stored, by seq, with its station database (store) and what identifies it; the
    fit RMSE of each calibration and the bias of each target per species; and how many redelivered
    records central absorbed as duplicates (stored once). To compare with `station-agent records`."""
    cfg = _load(config)
    if cfg.storage.backend == "sqlite" and not cfg.storage.path.exists():
        typer.echo(f"error: no central database at {cfg.storage.path} (central-receiver has not run yet)", err=True)
        raise typer.Exit(2)
    store = _open_store(cfg)
    try:
        held = store.record_identities(station)
        duplicates = next((s.duplicates for s in store.stations() if s.station == station), 0)
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps({"station": station, "duplicates": duplicates, "records": held},
                              separators=(",", ":")))
        return
    typer.echo(f"{station}: {duplicates} redelivered record(s) absorbed as duplicates")
    for kind, rows in held.items():
        stores = sorted({r["store"] or "(legacy)" for r in rows})
        seqs = [r["seq"] for r in rows]
        span = f" seqs {min(seqs)}..{max(seqs)}" if seqs else ""
        typer.echo(f"  {kind:<12} {len(rows):>7}{span}" + (f" from {', '.join(stores)}" if stores else ""))


@app.command()
def export(
    config: ConfigOpt,
    station: Annotated[str, typer.Option("--station", help="station id")],
    from_: Annotated[str, typer.Option("--from", help="start (inclusive), ISO 8601, UTC if no zone")],
    to: Annotated[str, typer.Option("--to", help="end (exclusive), ISO 8601, UTC if no zone")],
    level: Annotated[str, typer.Option(help="data level: minute or hourly")] = "minute",
    fmt: Annotated[str, typer.Option("--format", help="minute: csv; hourly: icos-csv or obspack-nc")] = "csv",
    species: Annotated[str, typer.Option(help="hourly: the species (co2, ch4, co, n2o)")] = "co2",
    stream: Annotated[str | None, typer.Option(help="hourly: one inlet stream (default: every inlet)")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="output file (default: stdout; required for netCDF)")] = None,
    version: Annotated[str, typer.Option(
        "--version", help="data version: latest (each value's newest, the default), nrt (near real time); "
        "minute level also all (every version)")] = "latest",
) -> None:
    """Export a station's data.

    Minute level (--format csv), one row per minute (its version: --version), ordered by time,
    device, stream. Columns: time_utc (start of the minute, ISO 8601 Z), station, seq, store (the station database the
    record came from; empty for a station older than store identities), device, stream; then for each species
    present in the range (co2, ch4, co, n2o first, others alphabetically) <sp>_mean, <sp>_std,
    <sp>_n, <sp>_raw_mean, <sp>_cal_mean (CO2 ppm; CH4, CO, N2O ppb; mean is the calibrated value
    when calibrated, else the raw dry mean) and <sp>_flag; then h2o (%), flag, reasons (reason codes
    joined by |), station_flag, manual_flag_ids and manual_reason. station_flag is the ICOS letter
    the station sent (U valid, N invalid); flag is the effective one, overridden by the operators'
    manual flags (`flag`): H under a K, R under an O; <sp>_flag also applies flags limited to that
    species; manual_reason gives the reasons of the manual flags that set a letter of the row.
    Empty cells are missing values. Then calibration_id, version (1 near real time, higher
    reprocessed), processing (the processing version) and reprocess_run: the data level of the row
    (--version picks which: latest by default, nrt, or all).

    Hourly level: --format icos-csv (ICOS-L2-like, `;`-separated, -999.99 for missing) or
    obspack-nc (ObsPack-like netCDF, values in mol mol-1); see central/export.py for the columns.
    """
    formats = {"minute": ("csv",), "hourly": ("icos-csv", "obspack-nc")}
    if level not in formats:
        typer.echo(f"error: --level {level!r} is not available (minute or hourly)", err=True)
        raise typer.Exit(2)
    if level == "hourly" and fmt == "csv":
        fmt = "icos-csv"
    if fmt not in formats[level]:
        typer.echo(f"error: --format {fmt!r} is not available for --level {level} "
                   f"({' or '.join(formats[level])})", err=True)
        raise typer.Exit(2)
    if fmt == "obspack-nc" and out is None:
        typer.echo("error: --format obspack-nc needs --out FILE", err=True)
        raise typer.Exit(2)
    versions = ("latest", "nrt", "all") if level == "minute" else ("latest", "nrt")
    if version not in versions:
        typer.echo(f"error: --version {version!r} is not available for --level {level} ({', '.join(versions)})",
                   err=True)
        raise typer.Exit(2)
    start, end = _time(from_, "--from"), _time(to, "--to")
    cfg = _load(config)
    store = _open_store(cfg)
    try:
        if level == "minute":
            from .export import write_minute_csv

            def write(fh: TextIO) -> int:
                return write_minute_csv(store, station, start, end, fh, version)
        else:
            from .export import hourly_rows_for_export, write_icos_csv, write_obspack_nc
            from .fleet.serials import hourly_serials

            rows = hourly_rows_for_export(store, station, species, start, end, stream, version)
            serials = hourly_serials(store, station, species, rows)
            if fmt == "obspack-nc":
                assert out is not None
                n = write_obspack_nc(rows, cfg, station, species, out, serials=serials, version=version)
                typer.echo(f"{n} hourly value(s) exported", err=True)
                return

            def write(fh: TextIO) -> int:
                return write_icos_csv(rows, cfg, station, species, fh, serials=serials, version=version)
        if out is None:
            n = write(sys.stdout)
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            with out.open("w", newline="") as fh:
                n = write(fh)
    finally:
        store.close()
    typer.echo(f"{n} {level} {'record' if level == 'minute' else 'value'}(s) exported (version: {version})", err=True)


@app.command("flux-daily")
def flux_daily(
    config: ConfigOpt,
    station: Annotated[str, typer.Option("--station", help="station id")],
    from_: Annotated[str, typer.Option("--from", help="start (inclusive), ISO 8601, UTC if no zone")],
    to: Annotated[str, typer.Option("--to", help="end (exclusive), ISO 8601, UTC if no zone")],
    ustar: Annotated[list[str] | None, typer.Option(help="SEASON=M/S, a u* threshold (DJF, MAM, JJA, SON); repeat")] = None,
    min_coverage: Annotated[float, typer.Option(help="share of the day valid for a daily estimate")] = 0.8,
    out: Annotated[Path | None, typer.Option("--out", help="output file (default: stdout)")] = None,
) -> None:
    """A flux station's daily sums of its valid half hours as CSV (central/aggregation/flux_daily.py:
    CO2 g C m-2, H and LE MJ m-2; u* filtered by season; no gap filling)."""

    from .aggregation.flux_daily import SEASONS, DailyFlux, daily_sums

    thresholds: dict[str, float] = {}
    for item in ustar or []:
        season, _, value = item.partition("=")
        try:
            if season not in set(SEASONS.values()):
                raise ValueError
            thresholds[season] = float(value)
        except ValueError:
            typer.echo(f"error: --ustar {item!r} is not SEASON=M/S with a season of DJF, MAM, JJA, SON", err=True)
            raise typer.Exit(2) from None
    start, end = _time(from_, "--from"), _time(to, "--to")
    store = _open_store(_load(config))
    try:
        records = store.fluxes(station, start, end)
    finally:
        store.close()
    try:
        days = daily_sums(records, thresholds or None, min_coverage=min_coverage)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    fh = out.open("w", newline="") if out else sys.stdout
    try:
        w = csv.writer(fh)
        w.writerow([f.name for f in dataclasses.fields(DailyFlux)])
        for d in days:
            w.writerow(["" if v is None else v for v in dataclasses.astuple(d)])
    finally:
        if out:
            fh.close()
    typer.echo(f"{len(days)} day(s) from {len(records)} half hour(s) exported", err=True)


UserOpt = Annotated[str | None, typer.Option("--user", help="who (kept in the audit trail; default: the login name)")]


def _user(user: str | None) -> str:
    import getpass

    return user or getpass.getuser()


@app.command()
def flag(
    config: ConfigOpt,
    station: Annotated[str, typer.Option("--station", help="station id")],
    from_: Annotated[str, typer.Option("--from", help="start (inclusive), ISO 8601, UTC if no zone")],
    to: Annotated[str, typer.Option("--to", help="end (exclusive), ISO 8601, UTC if no zone")],
    flag_letter: Annotated[str, typer.Option("--flag", help="K: invalid after manual QC; O: valid after manual QC")],
    reason: Annotated[str, typer.Option("--reason", help="why (kept in the audit trail)")],
    operator: Annotated[str | None, typer.Option("--operator", "--user", help="who (default: the login name)")] = None,
    stream: Annotated[str | None, typer.Option(help="only this stream, e.g. inlet:100m")] = None,
    species: Annotated[str | None, typer.Option(help="only this species")] = None,
    code: Annotated[str, typer.Option("--code", help="reason code (central/flags/reasons.py)")] = "other",
    no_aggregate: Annotated[bool, typer.Option("--no-aggregate", help="leave recomputing to the receiver")] = False,
) -> None:
    """Flag a station's data by hand (ICOS O/K on the hours, R/H on the minutes), with an audit
    trail; the same as `flags add`."""
    from .flags.manual import add_flag

    start, end = _time(from_, "--from"), _time(to, "--to")
    if end <= start:
        typer.echo("error: --to must be after --from", err=True)
        raise typer.Exit(2)
    if not reason.strip():
        typer.echo("error: --reason must say why", err=True)
        raise typer.Exit(2)
    who = _user(operator)
    cfg = _load(config)
    store = _open_store(cfg)
    try:
        f = add_flag(store, cfg, station, start, end, flag_letter, reason, who, datetime.now(UTC), stream, species,
                     code, recompute=not no_aggregate)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        store.close()
    typer.echo(f"flag #{f.id}: {station} {iso_utc(start)}..{iso_utc(end)} {flag_letter} by {who}: {reason}")


flags_app = typer.Typer(no_args_is_help=True, help="Manual flags: add, list, remove (audited, reversible).")
app.add_typer(flags_app, name="flags")
flags_app.command("add")(flag)


@flags_app.command("list")
def flags_list(
    config: ConfigOpt,
    station: Annotated[str | None, typer.Option("--station", help="one station (default: all)")] = None,
    active: Annotated[bool, typer.Option("--active", help="only the flags in force")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The manual-flag audit trail: who flagged what, when and why, and who removed it."""
    from .flags.manual import flag_doc, list_flags

    cfg = _load(config)
    store = _open_store(cfg)
    try:
        rows = [flag_doc(f) for f in list_flags(store, station, include_removed=not active)]
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        scope = " ".join(x for x in (r["stream"], r["species"]) if x)
        removed = "" if r["active"] else f" [removed {r['removed_at']} by {r['removed_by']}: {r['removal_reason']}]"
        typer.echo(f"#{r['id']} {r['created_at']} {r['operator']}: {r['station']} {r['from']}..{r['to']} "
                   f"{r['flag']}{' ' + scope if scope else ''} ({r['reason_code'] or '-'}): {r['reason']}{removed}")


@flags_app.command("remove")
def flags_remove(
    config: ConfigOpt,
    flag_id: Annotated[int, typer.Argument(help="the flag's id (flags list)")],
    reason: Annotated[str, typer.Option("--reason", help="why it no longer applies")] = "",
    user: UserOpt = None,
    no_aggregate: Annotated[bool, typer.Option("--no-aggregate", help="leave recomputing to the receiver")] = False,
) -> None:
    """Stop a manual flag applying (it stays in the audit trail) and recompute its hours."""
    from .flags.manual import remove_flag

    who = _user(user)
    cfg = _load(config)
    store = _open_store(cfg)
    try:
        f = remove_flag(store, cfg, flag_id, who, datetime.now(UTC), reason, recompute=not no_aggregate)
    except (LookupError, ValueError) as exc:
        typer.echo(f"error: {exc.args[0] if exc.args else exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        store.close()
    typer.echo(f"flag #{f.id} removed by {who}")


alarms_app = typer.Typer(no_args_is_help=True, help="Alarms raised by the rules in [alarms]: list, acknowledge.")
app.add_typer(alarms_app, name="alarms")


def _alarm_doc(a) -> dict:
    return {"id": a.id, "time": iso_utc(a.time), "rule": a.rule, "kind": a.kind, "station": a.station,
            "subject": a.subject, "severity": a.severity, "state": a.state, "value": a.value, "message": a.message,
            "updated_at": iso_utc(a.updated_at) if a.updated_at else None, "acknowledged_by": a.acknowledged_by,
            "acknowledged_at": iso_utc(a.acknowledged_at) if a.acknowledged_at else None,
            "cleared_at": iso_utc(a.cleared_at) if a.cleared_at else None, "data": a.data}


@alarms_app.command("list")
def alarms_list(
    config: ConfigOpt,
    state: Annotated[str | None, typer.Option(help="open, acknowledged, cleared or active (default: all)")] = None,
    station: Annotated[str | None, typer.Option("--station")] = None,
    limit: Annotated[int, typer.Option(help="newest N")] = 100,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Alarms, newest first."""
    cfg = _load(config)
    store = _open_store(cfg)
    try:
        rows = [_alarm_doc(a) for a in store.alarm_list(state, station, limit)]
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        who = f" by {r['acknowledged_by']} {r['acknowledged_at']}" if r["acknowledged_by"] else ""
        typer.echo(f"#{r['id']} {r['time']} {r['state']}{who} [{r['severity']}] {r['rule']} "
                   f"{r['station'] or '-'}{' ' + r['subject'] if r['subject'] else ''}: {r['message']}")


@alarms_app.command("ack")
def alarms_ack(
    config: ConfigOpt,
    alarm_id: Annotated[int, typer.Argument(help="the alarm's id (alarms list)")],
    user: UserOpt = None,
) -> None:
    """Acknowledge an open alarm: who and when are kept; it clears when its rule says so."""
    from .store.operations import AlarmCleared, AlarmNotFound

    who = _user(user)
    cfg = _load(config)
    store = _open_store(cfg)
    try:
        a = store.acknowledge_alarm(alarm_id, who, datetime.now(UTC))
    except (AlarmNotFound, AlarmCleared, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        store.close()
    typer.echo(f"alarm #{a.id} acknowledged by {a.acknowledged_by} at {iso_utc(a.acknowledged_at)}")


deadletters_app = typer.Typer(no_args_is_help=True, help="Dead letters: list them, replay them after a fix.")
app.add_typer(deadletters_app, name="deadletters")


@deadletters_app.command("list")
def deadletters_list(
    config: ConfigOpt,
    station: Annotated[str | None, typer.Option("--station")] = None,
    unresolved: Annotated[bool, typer.Option("--unresolved", help="only those not resolved")] = False,
    limit: Annotated[int, typer.Option(help="newest N")] = 100,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Dead letters, newest first: reason and an excerpt of the payload."""
    from .deadletters.replay import dead_letter_doc, list_dead_letters

    cfg = _load(config)
    store = _open_store(cfg)
    try:
        rows = [dead_letter_doc(d) for d in list_dead_letters(store, station, unresolved, limit)]
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        state = f"resolved {r['resolved_at']}" if r["resolved_at"] else "unresolved"
        seq = f" seq {r['seq']}" if r["seq"] is not None else ""
        typer.echo(f"#{r['id']} {r['received_at']} {r['topic']}{seq} [{r['reason_code']}] {state}: {r['reason']}\n"
                   f"    {r['payload_size']} bytes: {r['excerpt']}")


@deadletters_app.command("replay")
def deadletters_replay(
    config: ConfigOpt,
    ids: Annotated[list[int] | None, typer.Argument(help="letter ids (default: every unresolved one)")] = None,
    station: Annotated[str | None, typer.Option("--station", help="without ids: only this station's")] = None,
    force: Annotated[bool, typer.Option("--force", help="replay resolved letters too")] = False,
) -> None:
    """Ingest dead letters again through the normal path (after a fix); idempotent."""
    from .deadletters.replay import replay_dead_letters

    cfg = _load(config)
    store = _open_store(cfg)
    try:
        results = replay_dead_letters(store, cfg, datetime.now(UTC), ids or None, station, force=force)
    except LookupError as exc:
        typer.echo(f"error: {exc.args[0] if exc.args else exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        store.close()
    for r in results:
        typer.echo(f"#{r.id} {r.result}: {r.detail}")
    resolved = sum(r.resolved for r in results)
    typer.echo(f"{resolved} of {len(results)} letter(s) resolved", err=True)


@app.command()
def aggregate(
    config: ConfigOpt,
    station: Annotated[str | None, typer.Option("--station", help="with --from/--to: mark these hours dirty first")] = None,
    from_: Annotated[str | None, typer.Option("--from")] = None,
    to: Annotated[str | None, typer.Option("--to")] = None,
) -> None:
    """Recompute the hourly aggregates of every dirty hour (what the receiver's aggregation thread
    does); with --station/--from/--to, recompute that range too."""
    from .aggregation.worker import aggregate_all

    cfg = _load(config)
    store = _open_store(cfg)
    try:
        if station and from_ and to:
            store.mark_dirty(station, _time(from_, "--from"), _time(to, "--to"))
        r = aggregate_all(store, cfg)
    finally:
        store.close()
    typer.echo(f"{r.hours} hour(s) recomputed, {r.rows} hourly row(s) written")


@app.command()
def reprocess(
    config: ConfigOpt,
    station: Annotated[str | None, typer.Option("--station", help="station id")] = None,
    from_: Annotated[str | None, typer.Option("--from", help="start (inclusive), ISO 8601, UTC if no zone")] = None,
    to: Annotated[str | None, typer.Option("--to", help="end (exclusive), ISO 8601, UTC if no zone")] = None,
    cylinders: Annotated[Path | None, typer.Option(
        "--cylinders", help="revised cylinder values: TOML ([[cylinders]] id, species, value, scale, uncertainty) "
        "or CSV (cylinder,species,value,scale,uncertainty)")] = None,
    reason: Annotated[str, typer.Option("--reason", help="why (kept with the run)")] = "reprocessed at central",
    operator: Annotated[str | None, typer.Option("--user", help="who (default: the login name)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
    from_raw: Annotated[bool, typer.Option("--from-raw", help="rebuild every minute from the raw archive (L0); "
                                           "an error when it holds no raw rows of the period")] = False,
    from_stored: Annotated[bool, typer.Option("--from-stored", help="use the stored minutes' raw means, "
                                              "not the raw archive")] = False,
    processing: Annotated[Path | None, typer.Option(
        "--processing", help="the station's config (TOML): its [processing] limits and the devices' "
        "water_correction, for minutes rebuilt from raw (default: the station's default limits)")] = None,
    pending: Annotated[bool, typer.Option("--pending", help="look for cylinders whose value or scale changed "
                                          "between a station's calibrations and list the pending reprocess runs "
                                          "(central/reprocess/revisions.py)")] = False,
    run: Annotated[bool, typer.Option("--run", help="with --pending: run each pending reprocess")] = False,
    record: Annotated[bool, typer.Option("--record", help="record the --cylinders values as pending revisions "
                                         "of --station from --from to --to (run later by --pending --run)")] = False,
) -> None:
    """Reprocess a station's period at central: refit its calibrations with the revised cylinder
    values, interpolate coefficients in time between them, recalibrate each minute's raw dry mean,
    and write the result as a new version of the minutes and of the hours they touch (the previous
    versions stay: export --version nrt). Minutes are rebuilt from the raw archive (L0) where it holds
    their raw rows, otherwise taken from the stored minutes; the summary says which.
    See central/reprocess/period.py and raw.py."""
    from ghgnet.logs import configure_logging

    from .reprocess import CylinderFileError, load_revised_values, reprocess_period
    from .reprocess.raw import load_station_processing

    if pending or run:
        if not pending:
            typer.echo("error: --run goes with --pending", err=True)
            raise typer.Exit(2)
        _reprocess_pending(config, run, operator, as_json)
        return
    missing = [name for name, v in (("--station", station), ("--from", from_), ("--to", to)) if v is None]
    if missing:
        typer.echo(f"error: {', '.join(missing)} missing (or give --pending)", err=True)
        raise typer.Exit(2)
    start, end = _time(from_, "--from"), _time(to, "--to")
    if record:
        _reprocess_record(config, station, start, end, cylinders)
        return
    if from_raw and from_stored:
        typer.echo("error: --from-raw and --from-stored: choose one", err=True)
        raise typer.Exit(2)
    source = "raw" if from_raw else "stored" if from_stored else "auto"
    try:
        station_processing = load_station_processing(processing) if processing is not None else None
    except ValueError as exc:
        typer.echo(f"error: --processing {exc}", err=True)
        raise typer.Exit(2) from None
    cfg = _load(config)
    configure_logging(station=None, level=cfg.logging.level, fmt=cfg.logging.format, stream=sys.stderr)
    try:
        revised = load_revised_values(cylinders) if cylinders is not None else []
    except CylinderFileError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    store = _open_store(cfg)
    try:
        summary = reprocess_period(store, cfg, station, start, end, revised, reason, _user(operator),
                                   datetime.now(UTC), source, station_processing)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        store.close()
    typer.echo(json.dumps(summary.as_dict()) if as_json else summary.text())


def _reprocess_record(config: Path, station: str, start: datetime, end: datetime, cylinders: Path | None) -> None:
    """`reprocess --record`: an operator's cylinder revisions recorded as pending reprocess runs."""
    from ghgnet.logs import configure_logging

    from .reprocess import CylinderFileError, load_revised_values
    from .reprocess.revisions import describe, record_revisions

    if cylinders is None:
        typer.echo("error: --record needs --cylinders (the revised values)", err=True)
        raise typer.Exit(2)
    cfg = _load(config)
    configure_logging(station=None, level=cfg.logging.level, fmt=cfg.logging.format, stream=sys.stderr)
    try:
        revised = load_revised_values(cylinders)
    except CylinderFileError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    store = _open_store(cfg)
    try:
        rows = record_revisions(store, station, start, end, revised, datetime.now(UTC))
        rows = [r for r in store.scale_revisions() if any(
            (r.cylinder, r.species, r.time_to) == (x.cylinder, x.species, x.time_to) for x in rows)]
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        store.close()
    typer.echo(f"{len(rows)} revision(s) recorded as pending")
    for r in rows:
        typer.echo(describe(r))


def _reprocess_pending(config: Path, run: bool, operator: str | None, as_json: bool) -> None:
    """`reprocess --pending [--run]`: the detection pass, the pending list, and the runs."""
    from ghgnet.logs import configure_logging

    from .reprocess.revisions import describe, detect_revisions, run_pending

    cfg = _load(config)
    configure_logging(station=None, level=cfg.logging.level, fmt=cfg.logging.format, stream=sys.stderr)
    store = _open_store(cfg)
    try:
        now = datetime.now(UTC)
        new = detect_revisions(store, now)
        results = run_pending(store, cfg, _user(operator), now) if run else []
        rows = store.scale_revisions(pending_only=not run)
        if run:
            ran = {r.revision.id for r in results}
            rows = [r for r in rows if r.id in ran]
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps({"new": len(new), "revisions": [
            {"id": r.id, "station": r.station, "cylinder": r.cylinder, "species": r.species, "old_value": r.old_value,
             "old_scale": r.old_scale, "new_value": r.new_value, "new_scale": r.new_scale,
             "revised_value": r.revised_value, "revised_scale": r.revised_scale, "from": r.time_from.isoformat(),
             "to": r.time_to.isoformat(), "run_id": r.run_id, "done": r.done_at is not None, "note": r.note}
            for r in rows]}))
        return
    typer.echo(f"{len(new)} new cylinder revision(s) found; {'run' if run else 'pending'}: {len(rows)}")
    for r in rows:
        typer.echo(describe(r))


@app.command()
def qc(
    config: ConfigOpt,
    from_: Annotated[str, typer.Option("--from", help="start, ISO 8601")],
    to: Annotated[str, typer.Option("--to", help="end, ISO 8601")],
    station: Annotated[str | None, typer.Option("--station", help="one station (default: all)")] = None,
) -> None:
    """QC report as JSON: target bias, calibration drift and residuals against the goals, daily
    completeness, and the cross-station consistency of background stations."""
    from . import views

    start, end = _time(from_, "--from"), _time(to, "--to")
    cfg = _load(config)
    store = _open_store(cfg)
    try:
        names = [station] if station else sorted({s.station for s in store.stations()} | set(cfg.stations))
        doc = {
            "stations": {
                n: {"targets": views.targets(store, cfg, n, start, end)["targets"],
                    "calibrations": views.calibrations(store, cfg, n, start, end)["calibrations"],
                    "completeness": views.completeness(store, n, start, end)}
                for n in names
            },
            "consistency": [views.consistency(store, cfg, sp, start, end) for sp in ("co2", "ch4")],
        }
    finally:
        store.close()
    typer.echo(json.dumps(doc, indent=2))


@app.command()
def serve(
    config: ConfigOpt,
    host: Annotated[str | None, typer.Option(help="listen address (default: [serve] host, 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default: [serve] port; 0: any free port)")] = None,
) -> None:
    """The operations center (central/web: JSON API, /openapi.json, UI), HTTPS when [serve] certfile
    and keyfile are set, until SIGTERM or Ctrl-C. Prints one JSON line, {"url": ...}, on stdout once
    serving; logs go to stderr. Users: `central-receiver users add`."""
    from ghgnet.logs import configure_logging

    from .service import serve_as_service
    from .web import WebServer

    cfg = _load(config)
    configure_logging(station=None, level=cfg.logging.level, fmt=cfg.logging.format, stream=sys.stderr)
    server = WebServer(cfg, host, port)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server.start()
    typer.echo(json.dumps({"url": server.url}), err=False)
    service = serve_as_service(server.url)  # READY=1, and a watchdog fed while it answers
    try:
        stop.wait()
    finally:
        service.stop()
        server.stop()


users_app = typer.Typer(no_args_is_help=True, help="Users of the operations center (roles: viewer, operator, admin).")
app.add_typer(users_app, name="users")
UserArg = Annotated[str, typer.Argument(help="user name (a-z, 0-9, . _ -)")]
PasswordStdin = Annotated[bool, typer.Option("--password-stdin", help="read the password from standard input")]


def _accounts(config: Path):
    from .users import Accounts

    store = _open_store(_load(config))
    return store, Accounts(store)


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return typer.prompt("password", hide_input=True, confirmation_prompt=True)


def _user_command(config: Path, action) -> None:
    from .users import AccountError

    store, accounts = _accounts(config)
    try:
        action(accounts)
    except AccountError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        store.close()


@users_app.command("add")
def users_add(config: ConfigOpt, name: UserArg,
              role: Annotated[str, typer.Option(help="viewer | operator | admin")] = "viewer",
              password_stdin: PasswordStdin = False) -> None:
    """Add a user (the password is asked for, or read with --password-stdin)."""
    password = _password(password_stdin)
    _user_command(config, lambda a: typer.echo(f"added {a.add(name, role, password).name} ({role})"))


@users_app.command("list")
def users_list(config: ConfigOpt, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Users, their roles and their API tokens (ids only)."""
    def show(a) -> None:
        rows = [{"name": u.name, "role": u.role, "created_at": u.created_at,
                 "tokens": [t["id"] for t in a.tokens(u.name)]} for u in a.users()]
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
        for r in [] if as_json else rows:
            typer.echo(f"{r['name']:<24} {r['role']:<9} {r['created_at']}  tokens: {', '.join(r['tokens']) or '-'}")
    _user_command(config, show)


@users_app.command("remove")
def users_remove(config: ConfigOpt, name: UserArg) -> None:
    """Remove a user: their sessions and API tokens stop working at once."""
    _user_command(config, lambda a: (a.remove(name), typer.echo(f"removed {name}")))


@users_app.command("passwd")
def users_passwd(config: ConfigOpt, name: UserArg, password_stdin: PasswordStdin = False) -> None:
    """Change a user's password; their browser sessions end."""
    password = _password(password_stdin)
    _user_command(config, lambda a: (a.set_password(name, password), typer.echo(f"password of {name} changed")))


@users_app.command("token")
def users_token(config: ConfigOpt, name: UserArg,
                label: Annotated[str, typer.Option(help="what the token is for")] = "",
                revoke: Annotated[str | None, typer.Option(help="revoke this token id instead")] = None) -> None:
    """Print a new API token for a user (scripts: Authorization: Bearer TOKEN), or revoke one."""
    if revoke:
        _user_command(config, lambda a: (a.revoke_token(revoke), typer.echo(f"revoked {revoke}")))
    else:
        _user_command(config, lambda a: typer.echo(a.new_token(name, label)))


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


prior_app = typer.Typer(no_args_is_help=True, help="The inversion's prior from a city's inventory.")
app.add_typer(prior_app, name="prior")


@prior_app.command("build")
def prior_build(
    config: Annotated[Path, typer.Option("--config", "-c", help="prior TOML config file")],
    out: Annotated[Path, typer.Option("--out", help="prior netCDF to write (flux and region)")],
) -> None:
    """Build prior.nc from point sources, proxies and gridded inventories (central.inversion.prior)."""
    try:
        from central.inversion.prior.build import prior_build as run_prior_build
    except ImportError as exc:
        typer.echo(f"error: the prior builder is not available in this installation: {exc}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(int(run_prior_build(config, out) or 0))


@config_app.command("schema")
def config_schema(
    out: Annotated[Path | None, typer.Option(help="write here instead of standard output")] = None,
    inversion: Annotated[bool, typer.Option("--inversion", help="the inversion config's schema")] = False,
) -> None:
    """Write the JSON schema of the central config (or, with --inversion, of the inversion
    config); both are kept in configs/."""
    if inversion:
        from central.inversion.config import InversionConfig as model
    else:
        from central.config import CentralConfig as model
    from ghgnet.config import write_schema

    write_schema(model.model_json_schema(), out)


@cems_app.command("compare")
def cems_compare(
    config: ConfigOpt,
    unit: Annotated[str, typer.Option("--unit", help="the unit (stack) id, as the station's [cems] unit")],
    from_: Annotated[str, typer.Option("--from", help="start time, ISO 8601 (inclusive)")],
    to: Annotated[str, typer.Option("--to", help="end time, ISO 8601 (exclusive)")],
    activity: Annotated[Path, typer.Option("--activity", help="monthly activity data (CSV)")],
    out: Annotated[Path, typer.Option("--out", help="output folder")],
) -> None:
    """Monthly CO2 by CEMS (the emission hours central stored) against the accounting method:
    comparison.csv and comparison.html (table and chart in one file) in --out."""
    from central.cems import ActivityError, accounting_months, cems_months, compare_months, read_activity_csv
    from central.cems.report import cems_hours, write_report

    start, end = _time(from_, "--from"), _time(to, "--to")
    try:
        fuels = [f for f in read_activity_csv(activity) if f.unit == unit]
    except ActivityError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    cfg = _load(config)
    store = _open_store(cfg)
    try:
        hours = cems_hours(unit, store.emissions(unit, "hour", start, end))
    finally:
        store.close()
    if not hours:
        typer.echo(f"error: no emission hours of unit {unit!r} from {iso_utc(start)} to {iso_utc(end)}", err=True)
        raise typer.Exit(1)
    months = {h.hour.strftime("%Y-%m") for h in hours}
    rows = compare_months(cems_months(hours), [a for a in accounting_months(fuels) if a.month in months])
    csv_path, html_path = write_report(unit, rows, hours, out)
    for r in rows:
        rel = r.relative_difference
        typer.echo(f"{r.unit} {r.month}: CEMS {r.cems_t if r.cems_t is not None else float('nan'):.1f} t, "
                   f"accounting {r.accounting_t if r.accounting_t is not None else float('nan'):.1f} t, "
                   f"difference {'-' if rel is None else f'{rel * 100:+.2f} %'}")
    typer.echo(f"wrote {csv_path} and {html_path}")


@app.command("instrument-test")
def instrument_test(
    config: ConfigOpt,
    station: Annotated[str, typer.Option("--station", help="station id")],
    device: Annotated[str, typer.Option("--device", help="the analyzer's device id")],
    from_: Annotated[str, typer.Option("--from", help="start of the test, ISO 8601")],
    to: Annotated[str, typer.Option("--to", help="end of the test, ISO 8601")],
    out: Annotated[Path, typer.Option("--out", help="output folder (results.csv, report.html)")],
    continuous: Annotated[str | None, typer.Option(help="stream measured continuously (default: inferred)")] = None,
    cycle: Annotated[str | None, typer.Option(help="streams of the cycles, comma-separated (default: inferred)")] = None,
    water: Annotated[str | None, typer.Option(help="humidified stream (default: inferred)")] = None,
    water_reference: Annotated[str | None, typer.Option(help="the same cylinder dry")] = None,
    values: Annotated[str, typer.Option(help="raw (uncalibrated dry means) or calibrated")] = "raw",
    last_minutes: Annotated[int, typer.Option(help="minutes kept at the end of each injection")] = 10,
    skip_minutes: Annotated[int, typer.Option(help="minutes dropped at the start of the continuous run")] = 10,
) -> None:
    """Instrument performance test report of one analyzer from its forwarded minutes (ICOS ATC
    protocol: CMR and short-term drift, long-term repeatability and drift, water vapour test)."""
    from ghgnet.processing.performance_test import Phases, infer_phases

    from .instrument_test.report import series_from_minutes, write_report

    start, end = _time(from_, "--from"), _time(to, "--to")
    cfg = _load(config)
    store = _open_store(cfg)
    try:
        minutes = list(store.minutes(station, start, end))
    finally:
        store.close()
    try:
        phases = None
        if continuous or cycle or water:
            guess = infer_phases(series_from_minutes(minutes, device, values))
            phases = Phases(continuous or guess.continuous,
                            tuple(s for s in cycle.split(",") if s) if cycle else guess.cycle,
                            water or guess.water, water_reference or guess.water_reference)
        csv_path, html_path, _ = write_report(out, station, device, start, end, minutes, phases, values,
                                              last_minutes, skip_minutes)
    except ValueError as exc:
        typer.echo(f"error: {station}/{device}: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"wrote {csv_path} and {html_path}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
