"""`station-agent`: the daemon and the technician's commands.

Exit codes: 0 ok; 1 the command ran but found a problem (e.g. status of a station that is down);
2 bad input (a config with errors, a bad argument); 3 the database or daemon is unreachable.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from station_agent.configbase import ConfigError

app = typer.Typer(
    name="station-agent",
    help="ghgnet station agent: runs a greenhouse-gas monitoring station.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Check the configuration and write its JSON schema.", no_args_is_help=True)
drivers_app = typer.Typer(help="Instrument drivers known to this installation.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(drivers_app, name="drivers")

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
DEFAULT_CONFIG = Path("/etc/ghgnet/station.toml")

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="station config file (TOML)")]
SpeedOpt = Annotated[
    Optional[float], typer.Option(help="run the clock X times faster than real time (simulated time)")
]
StartOpt = Annotated[
    Optional[str], typer.Option(help="simulated start time (ISO 8601), to line up with a simulator")
]


def _err(msg: str) -> None:
    Console(stderr=True).print(msg, style="bold red", markup=False, highlight=False)


def _load(config: Path):
    from station_agent.config import load_station_config

    try:
        return load_station_config(config)
    except ConfigError as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        raise typer.Exit(EXIT_USAGE) from None


def _parse_time(text: str, what: str) -> datetime:
    from station_agent.timeutil import parse_utc

    try:
        return parse_utc(text)
    except ValueError:
        _err(f"{what}: {text!r} is not an ISO 8601 time (e.g. 2026-11-22T00:00:00Z)")
        raise typer.Exit(EXIT_USAGE) from None


@app.command()
def run(config: ConfigOpt, speed: SpeedOpt = None, start: StartOpt = None) -> None:
    """Run the station daemon (what systemd runs). Stops cleanly on SIGTERM or Ctrl-C."""
    from station_agent.agent import Agent
    from station_agent.clock import make_clock
    from station_agent.logs import configure_logging

    cfg = _load(config)
    configure_logging(cfg.station.id, cfg.logging.level, cfg.logging.format)
    clock = make_clock(speed, _parse_time(start, "--start") if start else None)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    agent = Agent(cfg, clock)
    agent.run_until(stop)


@app.command()
def status(
    config: ConfigOpt = DEFAULT_CONFIG,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """State, devices, backlog and the last minute, read from the station database.

    Exit 0 when the agent is running and every device answers, 1 when it is down or a device is
    in fault, 3 when there is no database yet.
    """
    import time

    from station_agent.store import StationStore, StoreError

    cfg = _load(config)
    try:
        store = StationStore(cfg.storage.path, read_only=True)
    except StoreError as exc:
        _err(str(exc))
        raise typer.Exit(EXIT_UNREACHABLE) from None
    try:
        state = store.get_state("agent")
        info = {
            "station": cfg.station.id,
            "database": str(cfg.storage.path),
            "counts": store.counts(),
            "outbox": store.outbox_stats(),
            "last_minute": store.last_minute(),
            "recent_events": store.event_rows(5),
        }
    finally:
        store.close()
    agent = state[0] if state else {}
    age = time.time() - agent.get("heartbeat_wall", 0) if agent else None
    running = age is not None and age < 30 and agent.get("state") in ("starting", "running")
    info["state"] = agent.get("state", "unknown") if running else ("stopped" if agent else "never ran")
    info["heartbeat_age_s"] = None if age is None else round(age, 1)
    info["agent"] = agent
    problem = not running or any(d.get("faults") for d in agent.get("devices", {}).values())
    if as_json:
        print(json.dumps(info, indent=2, default=str))
    else:
        _print_status(info)
    raise typer.Exit(EXIT_PROBLEM if problem else EXIT_OK)


def _print_status(info: dict) -> None:
    con = Console()
    colour = "green" if info["state"] == "running" else "red"
    beat = f" (last heartbeat {info['heartbeat_age_s']} s ago)" if info["heartbeat_age_s"] is not None else ""
    con.print(f"[bold]{info['station']}[/] agent [{colour}]{info['state']}[/]{beat}")
    devices = info["agent"].get("devices", {})
    if devices:
        t = Table("device", "driver", "connected", "last reading", "readings", "faults")
        for dev, d in devices.items():
            t.add_row(dev, d["driver"], "yes" if d["connected"] else "[red]no[/]", d["last_reading"] or "-",
                      str(d["readings"]), ", ".join(d["faults"]) or "-")
        con.print(t)
    c = info["counts"]
    con.print(f"raw {c['raw']}  minutes {c['minute']}  events {c['event']}  "
              f"backlog {info['outbox']['backlog']} (oldest {info['outbox']['oldest_unacked'] or '-'})")
    lm = info["last_minute"]
    if lm:
        for r in lm["records"]:
            vals = "  ".join(f"{sp} {s['mean']:.3f}" for sp, s in r["species"].items() if s["mean"] is not None)
            con.print(f"last minute {lm['time']} {r['device']} {r['stream']} [{r['flag']}] {vals}")


@app.command()
def export(
    config: ConfigOpt,
    from_: Annotated[str, typer.Option("--from", help="start time, ISO 8601 (inclusive)")],
    to: Annotated[str, typer.Option("--to", help="end time, ISO 8601 (exclusive)")],
    level: Annotated[str, typer.Option(help="raw | minute")] = "minute",
    fmt: Annotated[str, typer.Option("--format", help="csv")] = "csv",
    device: Annotated[Optional[str], typer.Option(help="only this device")] = None,
    out: Annotated[Optional[Path], typer.Option(help="output file (default: standard output)")] = None,
) -> None:
    """Export raw readings or minute records as CSV (columns: see station_agent/export.py)."""
    from station_agent.export import write_minute_csv, write_raw_csv
    from station_agent.store import StationStore, StoreError

    if level not in ("raw", "minute"):
        _err(f"--level: {level!r} is not one of raw, minute")
        raise typer.Exit(EXIT_USAGE)
    if fmt != "csv":
        _err(f"--format: {fmt!r} is not supported (csv)")
        raise typer.Exit(EXIT_USAGE)
    cfg = _load(config)
    start, end = _parse_time(from_, "--from"), _parse_time(to, "--to")
    try:
        store = StationStore(cfg.storage.path, read_only=True)
    except StoreError as exc:
        _err(str(exc))
        raise typer.Exit(EXIT_UNREACHABLE) from None
    fh = out.open("w", newline="") if out else sys.stdout
    try:
        if level == "minute":
            n = write_minute_csv(list(store.minute_rows(start, end, device)), cfg.station.id, fh)
        else:
            quantities = store.raw_quantities(start, end, device)
            n = write_raw_csv(store.raw_rows(start, end, device), cfg.station.id, fh, quantities)
    finally:
        store.close()
        if out:
            fh.close()
    if out:
        Console(stderr=True).print(f"{n} {level} rows written to {out}")


@config_app.command("check")
def config_check(file: Annotated[Path, typer.Argument(help="station config file (TOML)")]) -> None:
    """Exit 0 if FILE is a valid station config; else exit 2, one `FILE: field.path: message` per error."""
    _load(file)
    print(f"{file}: ok")


@config_app.command("schema")
def config_schema(
    out: Annotated[Optional[Path], typer.Option(help="write here instead of standard output")] = None,
) -> None:
    """Write the JSON schema of the station config (kept in configs/station.schema.json)."""
    from station_agent.config import station_schema

    text = json.dumps(station_schema(), indent=2) + "\n"
    if out:
        out.write_text(text)
    else:
        sys.stdout.write(text)


@drivers_app.command("list")
def drivers_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The registered drivers (entry-point group ghgnet.drivers)."""
    from station_agent.registry import all_drivers

    rows = [
        {"name": n, "kind": c.kind, "class": f"{c.__module__}.{c.__qualname__}", "simulator": c.simulator}
        for n, c in all_drivers().items()
    ]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    t = Table("driver", "kind", "class", "simulator")
    for r in rows:
        t.add_row(r["name"], r["kind"], r["class"], r["simulator"])
    Console().print(t)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
