"""What every `central-receiver` command shares: the `--config` option and loading the config or
exiting 2 with one line per error (`FILE: field.path: message`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ghgnet.config import ConfigError

from .config import CentralConfig, load_central_config

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="central TOML config file")]


def load_or_exit(path: Path) -> CentralConfig:
    """The central config at `path`; on a bad config its errors on stderr and exit status 2."""
    try:
        return load_central_config(path)
    except ConfigError as exc:
        for line in exc.lines:
            typer.echo(line, err=True)
        raise typer.Exit(2) from None
