"""Real mosquitto brokers for tests, on free loopback ports (never the system one on 1883)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from simulators.broker import MosquittoBroker, TlsFiles, find_mosquitto, generate_certificates

REPO = Path(__file__).resolve().parents[2]
ACL_TEMPLATE = REPO / "configs" / "mosquitto" / "acl.template"
CENTRAL_USER = "ghgnet-central"
TEST_USERS = {CENTRAL_USER: "central-secret", "st-a": "secret-a", "st-b": "secret-b"}


def _require_mosquitto() -> None:
    if find_mosquitto() is None:
        pytest.fail("mosquitto is needed for these tests (apt-get install mosquitto)")


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A plain broker (anonymous, no ACL), persistence under tmp_path; stopped after the test."""
    _require_mosquitto()
    broker = MosquittoBroker(tmp_path / "mosquitto").start()
    try:
        yield broker
    finally:
        broker.kill()


@pytest.fixture
def mosquitto_acl(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A broker with passwords (`broker.users`: central and stations st-a, st-b) and the shipped
    ACL template (configs/mosquitto/acl.template)."""
    _require_mosquitto()
    broker = MosquittoBroker(tmp_path / "mosquitto-acl", users=TEST_USERS,
                             acl=ACL_TEMPLATE.read_text()).start()
    try:
        yield broker
    finally:
        broker.kill()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate, made now."""
    return generate_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def mosquitto_tls(tmp_path: Path, tls_files: TlsFiles) -> Iterator[MosquittoBroker]:
    """A broker with a plain listener (`port`) and a TLS listener (`tls_port`) that requires a
    client certificate signed by `tls_files.ca`; anonymous otherwise."""
    _require_mosquitto()
    broker = MosquittoBroker(tmp_path / "mosquitto-tls", tls=tls_files, require_client_cert=True).start()
    try:
        yield broker
    finally:
        broker.kill()
