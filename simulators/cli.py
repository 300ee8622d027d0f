"""`station-sim`: serve the simulated instruments of a bench config until SIGTERM/SIGINT.

    station-sim run --config configs/bench.example.toml [--speed 60] [--start 2026-01-01T00:00:00Z]
    station-sim models [--json]      the registered bench models (entry points ghgnet.simulators)

Prints ONE JSON line naming the endpoints (every instrument, analyzers, the valve and Modbus
sensors, with its driver name, `url` for the station's driver config, tcp URL and pty path where
served; the control port), then serves; on SIGTERM or SIGINT it stops the servers and exits 0.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Optional

import typer

from drivers.registry import load_simulator, simulator_names
from ghgnet.clock import make_clock
from ghgnet.config import ConfigError
from ghgnet.timeutil import parse_utc
from simulators.bench import Bench
from simulators.config import load_bench_config

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Simulated instruments.")


@app.callback()
def _root() -> None:
    """Simulated instruments that speak the real wire protocols."""


@app.command()
def run(
    config: Annotated[Path, typer.Option("--config", help="bench config (TOML)")],
    speed: Annotated[float, typer.Option(help="simulated seconds per real second")] = 1.0,
    start: Annotated[
        Optional[str], typer.Option(help="simulated start time, ISO 8601 (default: now)")  # noqa: UP007
    ] = None,
    anchor: Annotated[
        Optional[str],  # noqa: UP007
        typer.Option(help="real instant (ISO 8601) at which simulated time is --start (default: now)"),
    ] = None,
) -> None:
    """Serve the bench's instruments; print one JSON line of endpoints; stop on SIGTERM/SIGINT."""
    try:
        bench_config = load_bench_config(config)
    except ConfigError as exc:
        for line in exc.lines:
            typer.echo(line, err=True)
        raise typer.Exit(2) from None
    if speed <= 0:
        typer.echo(f"--speed must be > 0, got {speed}", err=True)
        raise typer.Exit(2)
    try:
        start_time = parse_utc(start) if start else None
        anchor_time = parse_utc(anchor) if anchor else None
    except ValueError as exc:
        typer.echo(f"--start/--anchor: {exc}", err=True)
        raise typer.Exit(2) from None

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    bench = Bench(bench_config, make_clock(speed, start_time, anchor_time))
    try:
        bench.start()
    except (OSError, RuntimeError) as exc:
        typer.echo(f"cannot start the bench: {exc}", err=True)
        raise typer.Exit(1) from None
    try:
        sys.stdout.write(json.dumps(bench.endpoints()) + "\n")
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    finally:
        bench.stop()


@app.command()
def models(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The registered bench models (entry-point group ghgnet.simulators): what `model = "..."` may name."""
    rows = []
    for name in simulator_names():
        model = load_simulator(name)
        rows.append({"model": name, "kind": model.kind, "class": f"{model.__module__}.{model.__qualname__}"})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        typer.echo(f"{r['model']:<24} {r['kind']:<9} {r['class']}")


config_app = typer.Typer(no_args_is_help=True, help="Check the bench config and write its JSON schema.")
app.add_typer(config_app, name="config")


@config_app.command("check")
def config_check(file: Annotated[Path, typer.Argument(help="bench config (TOML)")]) -> None:
    """Exit 0 if FILE is a valid bench config; else exit 2, one `FILE: field.path: message` per error."""
    try:
        load_bench_config(file)
    except ConfigError as exc:
        for line in exc.lines:
            typer.echo(line, err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{file}: ok")


@config_app.command("schema")
def config_schema(
    out: Annotated[Optional[Path], typer.Option(help="write here instead of standard output")] = None,  # noqa: UP007
) -> None:
    """Write the JSON schema of the bench config (kept in configs/bench.schema.json)."""
    from ghgnet.config import write_schema
    from simulators.config import BenchConfig

    write_schema(BenchConfig.model_json_schema(), out)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
