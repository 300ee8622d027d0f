"""`central-receiver archive ...`: what central holds of the stations' raw readings (L0)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ..cli_config import ConfigOpt
from ..cli_config import load_or_exit as _load

archive_app = typer.Typer(no_args_is_help=True, help="The stations' raw readings (L0) archived at central.")


@archive_app.command("status")
def archive_status_command(
    config: ConfigOpt,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """Per station and device: the archived span (first chunk's start, last chunk's end), chunks,
    rows, bytes kept (compressed) and what the rows take uncompressed, and the last chunk's arrival."""
    from ..store import StoreError, open_configured_store
    from .reader import archive_status

    cfg = _load(config)
    try:
        store = open_configured_store(cfg)
    except StoreError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        rows = archive_status(store)
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps({"retention_days": cfg.archive.raw_retention_days, "devices": rows}, indent=2))
        return
    if not rows:
        typer.echo("no raw readings archived")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"raw archive (kept {cfg.archive.raw_retention_days:g} days)")
    for col in ("station", "device", "store", "from", "to", "chunks", "rows", "bytes", "bytes/row", "last received"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["station"], r["device"], r["store"][:8], r["first"], r["last"], str(r["chunks"]),
                      str(r["rows"]), str(r["bytes"]), f"{r['bytes'] / max(1, r['rows']):.1f}", r["last_received"])
    Console().print(table)
