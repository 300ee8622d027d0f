"""`central-receiver keys init` and `central-receiver station config push|history`."""

from __future__ import annotations

import getpass
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from ghgnet.signed_config import load_private_key, new_private_key, private_key_pem, public_key_text
from ghgnet.timeutil import iso_utc

from ..cli_config import ConfigOpt
from ..cli_config import load_or_exit as _load
from ..config import CentralConfig
from .config_push import NoSigningKey, PushFailed, PushRefused, push_config, pushes
from .registry import registry_detail, registry_row

keys_app = typer.Typer(no_args_is_help=True, help="Central's key that signs station configs.")
station_app = typer.Typer(no_args_is_help=True, help="One station, from the office.")
station_config_app = typer.Typer(no_args_is_help=True, help="Push a signed config to a station; its history.")
station_app.add_typer(station_config_app, name="config")





@keys_app.command("init")
def keys_init(config: ConfigOpt) -> None:
    """Make the Ed25519 key pair ([fleet] signing_key, mode 0600) and print the public key that
    goes in each station's `[fleet] central_public_key`. Never overwrites a key."""
    cfg = _load(config)
    path = Path(cfg.fleet.signing_key)
    if path.exists():
        key = load_private_key(path)
        typer.echo(f"error: {path} exists (public key {public_key_text(key.public_key())}); "
                   "move it away to make a new one", err=True)
        raise typer.Exit(2)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = new_private_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private_key_pem(key))
    typer.echo(json.dumps({"signing_key": str(path), "central_public_key": public_key_text(key.public_key())}))


@station_config_app.command("push")
def config_push(
    station: Annotated[str, typer.Argument(help="station id")],
    file: Annotated[Path, typer.Argument(help="the station's new config (TOML)")],
    config: ConfigOpt,
    version: Annotated[int | None, typer.Option(help="default: one above the last pushed to this station")] = None,
) -> None:
    """Sign FILE with central's key and publish it, retained, on ghg/v1/STATION/config. The
    station verifies, applies, health-checks (or rolls back) and reports each step as an event.
    Checked first as the operations pages check it (central.fleet.config_push.push_config)."""
    cfg = _load(config)
    try:
        text = file.read_text()
    except OSError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        row = push_config(cfg, station, text, str(file), getpass.getuser(), version)
    except PushRefused as exc:
        typer.echo(f"error: {file}: {exc}", err=True)
        raise typer.Exit(2) from None
    except PushFailed as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2 if isinstance(exc, NoSigningKey) else 3) from None
    typer.echo(json.dumps(row))


@station_config_app.command("history")
def config_history(
    station: Annotated[str, typer.Argument(help="station id")],
    config: ConfigOpt,
    days: Annotated[float, typer.Option(help="station events of the last DAYS days")] = 365.0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """What was pushed to STATION and every step the station reported (config.* events)."""
    from ..store import StoreError, open_configured_store

    cfg = _load(config)
    rows = [dict(r, source="central") for r in pushes(Path(cfg.fleet.signing_key), station)]
    try:
        store = open_configured_store(cfg)
    except StoreError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        end = datetime.now(UTC) + timedelta(days=3650)
        for e in store.events(station, end - timedelta(days=3650 + days), end):
            if e.kind.startswith("config."):
                rows.append({"time": iso_utc(e.time), "station": station, "version": e.data.get("version"),
                             "step": e.kind, "message": e.message, "source": "station"})
    finally:
        store.close()
    rows.sort(key=lambda r: r["time"])
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
        return
    for r in rows:
        what = f"pushed by {r['user']} from {r['file']}" if r["source"] == "central" else f"{r['step']}: {r['message']}"
        typer.echo(f"{r['time']}  v{r['version']}  {what}")


stations_app = typer.Typer(no_args_is_help=True, help="The registry: what is installed at each station.")


def _summaries(cfg: CentralConfig):
    from ..store import StoreError, open_configured_store

    try:
        store = open_configured_store(cfg)
    except StoreError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    return store


@stations_app.command("list")
def stations_list(config: ConfigOpt, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every station: state, agent and config versions, instrument serial numbers, clock."""
    store = _summaries(_load(config))
    try:
        rows = [registry_row(s) for s in store.stations()]
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
        return
    for r in rows:
        devices = ", ".join(f"{d}={sn or '?'}" for d, sn in r["devices"].items()) or "-"
        typer.echo(f"{r['station']:<16} {r['state'] or '?':<5} agent {r['agent_version'] or '?'}  "
                   f"config v{r['config_version'] if r['config_version'] is not None else '?'}  "
                   f"clock synced: {r['clock_synchronised']}  {devices}")


def _forecast_text(f: dict | None) -> str:
    if f is None:
        return ", no pressure readings"
    if f["status"] == "ok":
        return (f", {f['rate_bar_per_day']:+.2f} bar/day, reaches {f['low_bar']:g} bar on {f['empty_at'][:10]} "
                f"({f['points']} readings)")
    return f", no empty date: {f['status'].replace('_', ' ')} ({f['points']} readings since the last refill)"


@stations_app.command("show")
def stations_show(
    station: Annotated[str, typer.Argument(help="station id")],
    config: ConfigOpt,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """One station: its inventory now and the dated history of instrument swaps, cylinders and configs."""
    store = _summaries(_load(config))
    try:
        found = [s for s in store.stations() if s.station == station]
        if not found:
            typer.echo(f"error: central has never heard from station {station!r}", err=True)
            raise typer.Exit(1)
        end = datetime.now(UTC) + timedelta(days=3650)
        detail = registry_detail(found[0], store.events(station, datetime(1970, 1, 1, tzinfo=UTC), end))
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(detail, indent=1, default=str))
        return
    typer.echo(f"{station}: {detail['state']}, agent {detail['agent_version']}, config v{detail['config_version']}")
    for dev, sn in detail["devices"].items():
        typer.echo(f"  device {dev}: serial {sn or '?'}")
    forecasts = {f["cylinder"]: f for f in detail["cylinder_forecasts"]}
    for cyl, p in detail["cylinders"].items():
        typer.echo(f"  cylinder {cyl}: {p if p is not None else '?'} bar{_forecast_text(forecasts.get(cyl))}")
    typer.echo(f"  clock: {detail['clock_sync']}")
    for h in detail["history"]:
        typer.echo(f"{h['time']}  {h['kind']}  {h['message']}")
