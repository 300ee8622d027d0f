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
    {"cmd": "set_aside_list", "seqs": [N, ...] | null, "records": false}   -> set-aside records (records: export)
    {"cmd": "set_aside_retry", "seqs": [N, ...] | null}  -> put back in the outbox (null: all of them)
    {"cmd": "assign", "candidate": "WS-1", "references": ["A", "B"], "cycles": 6}   value assignment

Errors come back as {"ok": false, "error": "..."} naming what was wrong; the server never dies of
a bad request.

Requests are checked here, before the daemon sees them (`parse_request`): UTF-8, one JSON object
nested at most MAX_DEPTH deep, a known `cmd`, and exactly the fields that command takes with the
types it takes (COMMANDS, derived from the request models in station_agent/service/requests.py).
Anything else is answered with what was wrong, and the connection keeps serving; a line longer
than MAX_REQUEST bytes is refused and the connection closed.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from station_agent.service.requests import REQUESTS, Check, socket_checks

Handler = Callable[[dict[str, Any]], dict[str, Any]]
MAX_REQUEST = 1 << 20
"""Bytes in one request line at most."""
MAX_DEPTH = 8
"""JSON nesting a request may have at most (a cylinder's assigned values are 3 deep)."""


class RequestError(ValueError):
    """A request that cannot be run; the message says what was wrong."""


COMMANDS: dict[str, tuple[dict[str, Check], dict[str, Check]]] = {
    cmd: socket_checks(model) for cmd, model in REQUESTS.items()
}
"""cmd: (required fields, optional fields), each field with the check of its JSON value; from the
request models (station_agent/service/requests.py), the one list of commands."""


def _check_values(value: Any) -> None:
    """Refuse nesting deeper than MAX_DEPTH and strings that are not Unicode text (a lone
    surrogate from a \\ud800 escape), walking without recursion."""
    stack = [(value, 0)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                raise RequestError(f"request holds a string that is not text (a lone surrogate): {v[:40]!r}") from None
        elif isinstance(v, dict | list):
            if depth >= MAX_DEPTH:
                raise RequestError(f"request nested deeper than {MAX_DEPTH} levels")
            items = [*v.keys(), *v.values()] if isinstance(v, dict) else v
            stack.extend((c, depth + 1) for c in items)


def _no_constant(name: str) -> Any:
    raise RequestError(f"request holds {name}, which is not a JSON number")


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def parse_request(line: bytes) -> dict[str, Any]:
    """One request line as the command's fields; RequestError naming what was wrong."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(f"request is not UTF-8 (byte 0x{line[exc.start]:02x} at offset {exc.start})") from None
    try:
        request = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise RequestError(f"request nested deeper than {MAX_DEPTH} levels") from None
    except RequestError:
        raise
    except ValueError as exc:
        raise RequestError(f"malformed JSON: {exc}") from None
    if not isinstance(request, dict):
        raise RequestError(f"a request is a JSON object with a string 'cmd', got {_kind(request)}")
    _check_values(request)
    cmd = request.get("cmd")
    if not isinstance(cmd, str):
        raise RequestError(f"'cmd' must be a string, got {_kind(cmd)}" if "cmd" in request else "'cmd' missing")
    if cmd not in COMMANDS:
        raise RequestError(f"unknown command {cmd[:40]!r}; known: {', '.join(COMMANDS)}")
    required, optional = COMMANDS[cmd]
    for name, (what, _) in required.items():
        if name not in request:
            raise RequestError(f"{cmd}: '{name}' missing ({what})")
    for name, value in request.items():
        if name == "cmd":
            continue
        check = required.get(name) or optional.get(name)
        if check is None:
            takes = ", ".join([*required, *optional]) or "no fields"
            raise RequestError(f"{cmd}: unknown field {name[:40]!r} (takes: {takes})")
        what, ok = check
        if not ok(value):
            raise RequestError(f"{cmd}: '{name}' must be {what}, got {_kind(value)}")
    return request


def validation_message(exc: ValidationError) -> str:
    """A pydantic error as `field.path: message; ...` (no URLs, no echoed input)."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or '(value)'}: {e['msg']}"
                     for e in exc.errors(include_url=False))


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
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    self._reply(conn, self._handle(line))
                if len(buf) > MAX_REQUEST:  # no end of line in sight: refuse, and drop the link
                    self._reply(conn, {"ok": False, "error": f"request line longer than {MAX_REQUEST} bytes"})
                    return

    def _handle(self, line: bytes) -> dict[str, Any]:
        if len(line) > MAX_REQUEST:
            return {"ok": False, "error": f"request line longer than {MAX_REQUEST} bytes"}
        try:
            request = parse_request(line)
        except RequestError as exc:
            self.log.info("control_refused", error=str(exc)[:200])
            return {"ok": False, "error": str(exc)}
        try:
            return self.handler(request)
        except ValidationError as exc:
            return {"ok": False, "error": f"{request['cmd']}: {validation_message(exc)}"}
        except Exception as exc:  # a bug behind a valid request must not take the server down
            self.log.exception("control_error", cmd=request["cmd"], error=repr(exc))
            return {"ok": False, "error": f"{request['cmd']}: {exc}"}

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
