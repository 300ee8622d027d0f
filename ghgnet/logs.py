"""structlog set-up: JSON lines for journald when stdout is not a terminal, key=value on one.

Every event carries the station id (added by a processor, so threads get it too) and, from device code, the device id
(`log.bind(device=...)`).
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def configure_logging(
    station: str | None = None,
    level: str = "info",
    fmt: Literal["auto", "json", "console"] = "auto",
    stream=None,
) -> None:
    stream = stream or sys.stdout
    json_lines = fmt == "json" or (fmt == "auto" and not stream.isatty())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if json_lines
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    def add_station(_logger, _name, event_dict):
        # Bound here, not in contextvars: poller threads start with an empty context.
        if station:
            event_dict.setdefault("station", station)
        return event_dict

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            add_station,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )


def get_logger(**bind) -> structlog.typing.FilteringBoundLogger:
    return structlog.get_logger().bind(**bind)
