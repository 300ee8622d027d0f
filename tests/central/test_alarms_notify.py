"""Alarm notifications against real servers started here: an SMTP server (aiosmtpd) that requires
STARTTLS and a login, and an HTTP receiver that fails before it accepts (the webhook retries with
backoff). A full queue drops notifications instead of blocking whoever submits them."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from central.alarms.config import AlarmsConfig
from central.alarms.evaluator import AlarmEvaluator
from central.alarms.notify import Notifier
from central.config import CentralConfig
from central.store import open_store
from central.store.operations import AlarmChange
from ghgnet.wire import StatusMessage

T = datetime(2026, 3, 5, 12, tzinfo=UTC)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


class Inbox:
    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, envelope.rcpt_tos, message_from_bytes(envelope.content)))
        return "250 OK"


@pytest.fixture
def smtp_server(tls_files):
    cert, key = tls_files
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    inbox = Inbox()

    def authenticate(server, session, envelope, mechanism, auth_data):
        return AuthResult(success=(auth_data.login, auth_data.password) == (b"ghgnet", b"s3cret"), handled=False)

    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, tls_context=ctx, require_starttls=True,
                            authenticator=authenticate, auth_require_tls=True)
    controller.start()
    yield port, cert, inbox
    controller.stop()


class Hook(BaseHTTPRequestHandler):
    fail_first = 0
    bodies: list = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        server = self.server
        server.tries += 1  # type: ignore[attr-defined]
        if server.tries <= server.fail_first:  # type: ignore[attr-defined]
            self.send_response(503)
        else:
            server.bodies.append((self.headers.get("Authorization"), json.loads(body)))  # type: ignore[attr-defined]
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    server.tries, server.fail_first, server.bodies = 0, 2, []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _config(smtp_port: int, cert: Path, hook_port: int, password: str = "s3cret") -> CentralConfig:
    return CentralConfig.model_validate({"alarms": {
        "rules": [{"kind": "station_down", "raise_at": 300, "clear_at": 120}],
        "email": {"host": "127.0.0.1", "port": smtp_port, "starttls": True, "username": "ghgnet",
                  "password": password, "ca_file": str(cert), "sender": "ghgnet@example.org",
                  "to": ["noc@example.org", "oncall@example.org"]},
        "webhooks": [{"url": f"http://127.0.0.1:{hook_port}/hook", "backoff_s": 0.05, "retries": 4,
                      "headers": {"Authorization": "Bearer t0ken"}}],
    }})


def test_a_raised_and_a_cleared_alarm_reach_mail_and_webhook(tmp_path, smtp_server, webhook_server):
    smtp_port, cert, inbox = smtp_server
    cfg = _config(smtp_port, cert, webhook_server.server_address[1])
    notifier = Notifier(cfg.alarms).start()
    store = open_store("sqlite", path=tmp_path / "c.sqlite")
    try:
        store.store_status(StatusMessage(station="st-a", state="up", time=T, backlog=0, agent_version="t",
                                         interval_s=60.0), T)
        ev = AlarmEvaluator(cfg, notifier.submit)
        assert [c.change for c in ev.evaluate(store, T + timedelta(seconds=400))] == ["raised"]
        store.store_status(StatusMessage(station="st-a", state="up", time=T + timedelta(seconds=500), backlog=0,
                                         agent_version="t", interval_s=60.0), T + timedelta(seconds=500))
        assert [c.change for c in ev.evaluate(store, T + timedelta(seconds=510))] == ["cleared"]
        assert notifier.drain(30)
    finally:
        notifier.stop()
        store.close()
    assert [m[2]["Subject"] for m in inbox.messages] == ["[ghgnet] RAISED station_down st-a",
                                                         "[ghgnet] CLEARED station_down st-a"]
    sender, rcpts, msg = inbox.messages[0]
    assert sender == "ghgnet@example.org" and rcpts == ["noc@example.org", "oncall@example.org"]
    assert "no status for 400 s" in msg.get_payload()
    # two 503s, then both notifications delivered in order, with the configured header
    assert webhook_server.tries == 4
    assert [(auth, b["event"], b["alarm"]["rule"], b["alarm"]["station"]) for auth, b in webhook_server.bodies] == [
        ("Bearer t0ken", "raised", "station_down", "st-a"), ("Bearer t0ken", "cleared", "station_down", "st-a")]
    assert notifier.stats == {"emails_sent": 2, "webhooks_sent": 2}


def test_a_wrong_password_and_a_dead_webhook_are_counted_not_fatal(smtp_server):
    smtp_port, cert, inbox = smtp_server
    cfg = _config(smtp_port, cert, _free_port(), password="wrong")
    cfg.alarms.webhooks[0].retries = 1
    notifier = Notifier(cfg.alarms).start()
    change = AlarmChange(1, "station_down", "st-a", None, "raised", T, "warning", "down", 400.0, {})
    try:
        assert notifier.submit(change)
        assert notifier.drain(30)
        assert notifier.stats == {"emails_failed": 1, "webhooks_failed": 1}
        assert inbox.messages == []
        # still running: the next one is handled too
        assert notifier.submit(change) and notifier.drain(30)
        assert notifier.stats["emails_failed"] == 2
    finally:
        notifier.stop()


def test_a_full_queue_drops_instead_of_blocking():
    cfg = AlarmsConfig.model_validate({"notify_queue": 1, "webhooks": [
        {"url": f"http://127.0.0.1:{_free_port()}/", "retries": 3, "backoff_s": 0.5}]})
    notifier = Notifier(cfg)  # not started yet: nothing takes from the queue while it fills
    change = AlarmChange(1, "data_gap", "st-a", None, "raised", T, "warning", "gap", 4000.0, {})
    try:
        results = [notifier.submit(change) for _ in range(3)]
        notifier.start()
    finally:
        notifier.stop(timeout_s=1)
    assert results == [True, False, False] and notifier.stats["dropped"] == 2
