"""Station configs from the operations pages (issue 22): an admin pushes a new config to a station
from its registry page, and everyone sees the versions pushed and every step the station reported.

- GET /api/registry/{station}/config (viewer): the config versions pushed to the station (central's
  push log: time, user, source, sha256) and the steps the station reported for each (its
  `config.*` events: received, applied, healthy, failed_health, rolled_back, refused_<why>, with
  their times); see central.fleet.config_push.config_history.
- POST /api/registry/{station}/config (admin, with the CSRF token from a session): `{"config": TOML}`
  checked, signed and published through central.fleet.config_push.push_config, the function behind
  `central-receiver station config push`. A config central refuses is 400 naming the field
  (`station`, `config` with the TOML error's line and column, `station.id`); no signing key is 503;
  a broker that does not take the message is 502. 201 with the push's log row otherwise: the
  station's steps then arrive as events (GET above).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path as FilePath
from typing import Annotated, Any

import structlog
from fastapi import Body, Depends, FastAPI, HTTPException, Path
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from ghgnet.wire import STATION_ID_PATTERN

from .. import query
from ..config import CentralConfig
from ..fleet.config_push import MAX_CONFIG_BYTES, NoSigningKey, PushFailed, PushRefused, config_history, push_config
from .auth import Caller, need

log = structlog.get_logger(component="web")

Viewer = Annotated[Caller, Depends(need("viewer"))]
AdminWrite = Annotated[Caller, Depends(need("admin", write=True))]
StationPath = Annotated[str, Path(description="station id", pattern=STATION_ID_PATTERN)]
ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}


class ConfigPushBody(BaseModel):
    config: str = Field(max_length=MAX_CONFIG_BYTES, description="the station's new config (TOML text); its "
                        "[station] id must be the station pushed to; the station validates the rest")


def add_config_push_views(app: FastAPI, config: CentralConfig, store: Any, lock: Any,
                          now: Callable[[], datetime]) -> None:
    """The two routes on the app (central/web/app.py), sharing its store lock."""

    @app.get("/api/registry/{station}/config", tags=["registry"])
    def station_config_versions(station: StationPath, caller: Viewer) -> Any:
        """The config versions pushed to the station and each step it reported, oldest first:
        `versions` (version, `pushes` from central: time, user, source, sha256; `steps` from the
        station: time, step, severity, message; `state`: the last step, or "pushed") and `steps`
        (every step in time order). A `rolled_back` step belongs to the version rolled back to.
        Empty lists for a station nothing was pushed to."""
        with lock:
            events = store.registry_events(station)
        return config_history(FilePath(config.fleet.signing_key), station, events)

    @app.post("/api/registry/{station}/config", tags=["registry"], status_code=201, responses={
        502: {"description": "the broker did not take the signed config", "content": ERROR},
        503: {"description": "central has no signing key (central-receiver keys init)", "content": ERROR}})
    async def push_station_config(station: StationPath, caller: AdminWrite,
                                  body: Annotated[ConfigPushBody, Body()]) -> Any:
        """Sign the config with central's key and publish it, retained, on ghg/v1/{station}/config
        (as `central-receiver station config push` does, through the same function). The next
        version is one above the last pushed; the answer is the push log's row (time, station,
        version, file, sha256, user). The station's steps follow as events: GET this path."""
        try:
            row = await run_in_threadpool(push_config, config, station, body.config, "operations center",
                                          caller.user.name, None, now())
        except PushRefused as exc:
            raise query.BadParameter(exc.field, exc.problem) from None
        except NoSigningKey as exc:
            raise HTTPException(503, str(exc)) from None
        except PushFailed as exc:
            log.error("config_push_failed", station=station, by=caller.user.name, error=str(exc))
            raise HTTPException(502, str(exc)) from None
        log.info("config_pushed", station=station, version=row["version"], by=caller.user.name)
        return row
