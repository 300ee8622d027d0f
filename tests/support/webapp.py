"""The operations center's test kit: an HTTP client keeping a session, users of each role, and the
app served by uvicorn in-process on a free port over a synthetic network (support/network.py)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit

import pytest

from central.aggregation.worker import aggregate_all
from central.config import CentralConfig
from central.store import open_store
from central.users import Accounts
from central.web import WebServer

from .network import START, fill_network, station_config

NOW = START + timedelta(days=3, minutes=1)
PASSWORDS = {"ada": "admin-pass-1", "otto": "operator-pass-1", "vera": "viewer-pass-1"}
ROLES = {"ada": "admin", "otto": "operator", "vera": "viewer"}


@dataclass
class Client:
    """An HTTP client of the served app, keeping its session cookie and CSRF token."""

    url: str
    cookie: str | None = None
    csrf: str | None = None
    token: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def request(self, method: str, path: str, body=None, csrf: bool = True) -> tuple[int, object]:
        u = urlsplit(self.url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if self.cookie:
            headers["Cookie"] = self.cookie
        if self.csrf and csrf:
            headers["X-CSRF-Token"] = self.csrf
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            conn.request(method, path, None if body is None else json.dumps(body), headers)
            res = conn.getresponse()
            raw = res.read()
            set_cookie = res.getheader("Set-Cookie")
            if set_cookie and set_cookie.startswith("ghg_session="):
                self.cookie = set_cookie.split(";")[0]
            return res.status, json.loads(raw) if raw else None
        finally:
            conn.close()

    def login(self, name: str) -> Client:
        status, doc = self.request("POST", "/api/login", {"name": name, "password": PASSWORDS[name]})
        assert status == 200, doc
        self.csrf = doc["csrf"]
        return self


@dataclass
class Served:
    url: str
    store: object
    config: CentralConfig
    accounts: Accounts
    app: object

    def client(self, user: str | None = None) -> Client:
        c = Client(self.url)
        return c.login(user) if user else c


def serve_network(tmp_path, aggregate: bool = True, **sections: dict) -> Iterator[Served]:
    """The operations center on the demo network's data; `sections`: more central config tables."""
    config = CentralConfig.model_validate({"central": {"name": "demo network"},
                                           "storage": {"path": str(tmp_path / "c.sqlite")},
                                           "stations": station_config(), **sections})
    store = open_store("sqlite", path=tmp_path / "c.sqlite")
    fill_network(store)
    if aggregate:
        aggregate_all(store, config, lambda: NOW)
    accounts = Accounts(store)
    for name, role in ROLES.items():
        accounts.add(name, role, PASSWORDS[name])
    server = WebServer(config, "127.0.0.1", 0, store=store, now=lambda: NOW).start()
    try:
        yield Served(server.url, store, config, accounts, server.app)
    finally:
        server.stop()
        store.close()


@pytest.fixture
def served(tmp_path):
    """The operations center on a synthetic three-station network, with one user of each role."""
    yield from serve_network(tmp_path)
