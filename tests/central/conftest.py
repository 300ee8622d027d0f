"""Fixtures for central's tests: a receiver against a real broker, stores on both backends."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from central.config import CentralConfig
from central.receiver import Receiver
from central.store import CentralStore, open_store
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


@pytest.fixture
def start_receiver() -> Iterator[Callable[..., Receiver]]:
    """start_receiver(config) -> a started Receiver, subscribed; all stopped after the test."""
    started: list[Receiver] = []

    def start(config: CentralConfig, store: CentralStore | None = None) -> Receiver:
        r = Receiver(config, store=store).start()
        started.append(r)
        assert r.subscribed.wait(10), "receiver did not subscribe"
        return r

    yield start
    for r in started:
        r.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path: Path) -> Iterator[CentralStore]:
    """A fresh store on each backend (the same suite runs on both)."""
    if request.param == "sqlite":
        s = open_store("sqlite", path=tmp_path / "central.sqlite")
    else:
        dsn = request.getfixturevalue("pg_dsn")
        schema = request.getfixturevalue("pg_schema")
        s = open_store("postgresql", dsn=dsn, schema=schema)
    yield s
    s.close()
