"""`central-receiver run` and `central-receiver serve` speak sd_notify as Type=notify services:
READY=1 once started, then WATCHDOG=1 pings while they progress, STOPPING=1 on SIGTERM. A real
datagram socket stands in for systemd's (NOTIFY_SOCKET, WATCHDOG_USEC); no broker is needed for
the receiver to be ready (it connects in the background; an idle ingest counts as progress)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _messages(sock: socket.socket, until: str, timeout_s: float) -> list[str]:
    """Datagrams received until one holds `until` (or the time is up)."""
    out: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            out.append(sock.recv(4096).decode())
        except TimeoutError:
            break
        if until in out[-1]:
            break
    return out


@pytest.mark.parametrize("command", ["run", "serve"])
def test_central_processes_notify_ready_ping_the_watchdog_and_say_stopping(tmp_path, command):
    conf = tmp_path / "central.toml"
    conf.write_text(f'[storage]\npath = "{tmp_path / "central.sqlite"}"\n[mqtt]\nport = {_free_port()}\n'
                    f'[serve]\nport = {_free_port()}\n')
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"}
    proc = subprocess.Popen([str(BIN / "central-receiver"), command, "--config", str(conf)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        got = _messages(sock, "READY=1", 60)
        assert any("READY=1" in m for m in got), (got, proc.poll())
        pings = _messages(sock, "WATCHDOG=1", 30)
        assert any(m == "WATCHDOG=1" for m in pings), pings
        proc.send_signal(signal.SIGTERM)
        assert any("STOPPING=1" in m for m in _messages(sock, "STOPPING=1", 30))
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sock.close()
