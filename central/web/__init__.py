"""The operations center: central's web app (ASGI, FastAPI on uvicorn), its users and its UI.

`WebServer` runs it in a thread on a socket bound before it starts (port 0: any free port), over
TLS when [serve] certfile and keyfile are set; `central-receiver serve` and the demo use it."""

from __future__ import annotations

import asyncio
import socket
import threading
from datetime import UTC, datetime
from typing import Any

import structlog
import uvicorn

from ..config import CentralConfig
from ..store import open_configured_store
from .app import create_app

log = structlog.get_logger(component="web")


class WebServer:
    def __init__(self, config: CentralConfig, host: str | None = None, port: int | None = None, store: Any = None,
                 now=lambda: datetime.now(UTC)) -> None:
        self._own_store = store is None
        self.store = store if store is not None else open_configured_store(config)
        self.tls = config.serve.certfile is not None
        self.app = create_app(config, self.store, now, secure_cookie=self.tls)
        host = host or config.serve.host
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # accepted connections inherit it: uvicorn writes a response's head and body apart, and
        # Nagle's wait for the client's delayed ACK added 40 ms to every answer
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.bind((host, config.serve.port if port is None else port))
        self.sock.listen(128)
        self.server = uvicorn.Server(uvicorn.Config(
            self.app, log_config=None, access_log=False, lifespan="off", h11_max_incomplete_event_size=128 * 1024,
            ssl_certfile=str(config.serve.certfile) if self.tls else None,
            ssl_keyfile=str(config.serve.keyfile) if self.tls else None))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.sock.getsockname()[:2]
        host = f"[{host}]" if ":" in host else host
        return f"{'https' if self.tls else 'http'}://{host}:{port}"

    def run(self) -> None:
        """Serve in this thread until `stop` (or SIGINT/SIGTERM, which uvicorn handles in the main thread)."""
        asyncio.run(self.server.serve(sockets=[self.sock]))

    def start(self) -> WebServer:
        self._thread = threading.Thread(target=self.run, name="central-web", daemon=True)
        self._thread.start()
        while not self.server.started and self._thread.is_alive():
            threading.Event().wait(0.02)
        log.info("web_serving", url=self.url)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self.sock.close()
        if self._own_store:
            self.store.close()
