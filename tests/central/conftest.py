"""Fixtures for central's tests: a receiver against a real broker, stores on both backends."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from central.config import CentralConfig
from central.receiver import Receiver
from central.store import CentralStore, open_store


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
def store_location(request, tmp_path: Path) -> dict[str, Any]:
    """Where a fresh store lives, on each backend: `open_store(**store_location)`."""
    if request.param == "sqlite":
        return {"backend": "sqlite", "path": tmp_path / "central.sqlite"}
    return {"backend": "postgresql", "dsn": request.getfixturevalue("pg_dsn"),
            "schema": request.getfixturevalue("pg_schema")}


@pytest.fixture
def store(store_location: dict[str, Any]) -> Iterator[CentralStore]:
    """A fresh store on each backend (the same suite runs on both)."""
    s = open_store(**store_location)
    yield s
    s.close()
