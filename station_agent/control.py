"""The local control socket: how the technician's CLI talks to the running daemon.

A Unix stream socket (by default `agent.sock` beside the database) with mode 0660, so only the
service's user and group may use it. One JSON object per line each way:

    {"cmd": "status"}                                  -> {"ok": true, "state": {...}}
    {"cmd": "maintenance", "on": true, "reason": "..."}
    {"cmd": "goto", "port": 3}                          (maintenance only)
    {"cmd": "calibrate", "name": null}
    {"cmd": "cylinder_add", "cylinder": {...CylinderConfig fields...}}
    {"cmd": "cylinder_retire", "id": "CAL-1"}
    {"cmd": "recalibrate", "from": ISO, "to": ISO}
    {"cmd": "events", "limit": 20}
    {"cmd": "tail", "after_seq": N}                     -> minute records stored after seq N

Errors come back as {"ok": false, "error": "..."} naming what was wrong; the server never dies of
a bad request.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

Handler = Callable[[dict[str, Any]], dict[str, Any]]
MAX_REQUEST = 1 << 20


class ControlError(Exception):
    """The daemon could not be reached (not running, no permission) or answered nonsense."""


class ControlServer:
    def __init__(self, path: str | Path, handler: Handler, log, mode: int = 0o660) -> None:
        self.path = Path(path)
        self.handler = handler
        self.log = log.bind(component="control")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() or self.path.is_symlink():
            self.path.unlink()  # a stale socket from a crash
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o117)
        try:
            self._sock.bind(str(self.path))
        finally:
            os.umask(old)
        os.chmod(self.path, mode)
        self._sock.listen(8)
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.thread = threading.Thread(target=self._accept, name="control", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(5)
        for t in self._threads:
            t.join(5)
        self._sock.close()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,), name="control-client", daemon=True)
            self._threads = [x for x in self._threads if x.is_alive()] + [t]
            t.start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(0.5)
        buf = b""
        with conn:
            while not self._stop.is_set():
                try:
                    chunk = conn.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not chunk:
                    return
                buf += chunk
                if len(buf) > MAX_REQUEST:
                    self._reply(conn, {"ok": False, "error": f"request longer than {MAX_REQUEST} bytes"})
                    return
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    self._reply(conn, self._handle(line))

    def _handle(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
            if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
                return {"ok": False, "error": "a request is a JSON object with a string 'cmd'"}
        except (ValueError, UnicodeDecodeError) as exc:
            return {"ok": False, "error": f"malformed JSON: {exc}"}
        try:
            return self.handler(request)
        except Exception as exc:  # a bad request must not take the server down
            self.log.exception("control_error", cmd=request.get("cmd"), error=repr(exc))
            return {"ok": False, "error": f"{request.get('cmd')}: {exc}"}

    @staticmethod
    def _reply(conn: socket.socket, reply: dict[str, Any]) -> None:
        try:
            conn.sendall(json.dumps(reply, default=str).encode() + b"\n")
        except OSError:
            pass


def call(path: str | Path, request: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    """Send one request to the daemon; ControlError when it cannot be reached."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(path))
            s.sendall(json.dumps(request).encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                buf += chunk
    except FileNotFoundError:
        raise ControlError(f"the agent is not running (no control socket at {path})") from None
    except ConnectionRefusedError:
        raise ControlError(f"the agent is not running (stale control socket at {path})") from None
    except PermissionError:
        raise ControlError(f"no permission to use {path}: run as the service user or its group") from None
    except OSError as exc:
        raise ControlError(f"cannot talk to the agent at {path}: {exc}") from None
    try:
        return json.loads(buf)
    except ValueError:
        raise ControlError(f"the agent answered something that is not JSON: {buf[:200]!r}") from None
