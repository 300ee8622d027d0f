"""Helpers the central tests share: a central config for a test broker, and a store at an old schema
(importable as `support.central`; a module named `conftest` is ambiguous under xdist)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest

from central.config import CentralConfig
from central.store import CentralStore, open_store
from central.store.sql import migrations
from simulators.broker import MosquittoBroker


def central_config(broker: MosquittoBroker, db: Path, **sections: dict[str, Any]) -> CentralConfig:
    data: dict[str, Any] = {
        "mqtt": {"host": broker.host, "port": broker.port, "client_id": "central-test"},
        "storage": {"backend": "sqlite", "path": str(db)},
        "ingest": {"max_payload_bytes": 65536, "queue_size": 64},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return CentralConfig.model_validate(data)


def open_at_schema(location: dict[str, Any], version: int) -> CentralStore:
    """A store as ghgnet created it when its schema was `version` (only the first migrations
    run), to test the migrations after it on real old databases."""
    backend = importlib.import_module("central.store.sqlite" if location["backend"] == "sqlite"
                                      else "central.store.postgres")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(backend, "migrations", lambda types: migrations(types)[:version])
        return open_store(**location)
