"""The sd_notify client against a real AF_UNIX datagram socket, as systemd listens on one."""

from __future__ import annotations

import os
import socket
import uuid

import pytest

from ghgnet.sdnotify import SdNotifier, socket_address, watchdog_interval


@pytest.fixture
def notify_socket(tmp_path):
    """A bound datagram socket in the file system: (NOTIFY_SOCKET value, socket)."""
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2.0)
    yield str(path), sock
    sock.close()


def test_ready_status_watchdog_stopping_arrive_as_newline_separated_fields(notify_socket):
    address, sock = notify_socket
    n = SdNotifier(environ={"NOTIFY_SOCKET": address})
    assert n.enabled
    assert n.ready(status="acquiring from 2 analyzers")
    assert n.watchdog()
    assert n.status("backlog 12 records\nbroker down")
    assert n.stopping()
    assert n.extend_timeout(30)
    n.close()
    got = [sock.recv(4096).decode() for _ in range(5)]
    assert got == [
        "READY=1\nSTATUS=acquiring from 2 analyzers",
        "WATCHDOG=1",
        "STATUS=backlog 12 records broker down",  # a newline would start a new field
        "STOPPING=1",
        "EXTEND_TIMEOUT_USEC=30000000",
    ]
    assert n.sent == 5 and n.failed == 0


def test_abstract_namespace_address_starting_with_at():
    name = f"ghgnet-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(2.0)
        n = SdNotifier(environ={"NOTIFY_SOCKET": "@" + name})
        assert n.watchdog()
        assert sock.recv(4096) == b"WATCHDOG=1"
        n.close()
    finally:
        sock.close()


def test_without_notify_socket_every_call_is_a_no_op():
    n = SdNotifier(environ={})
    assert not n.enabled
    assert n.ready() is False and n.watchdog() is False and n.stopping() is False
    assert n.sent == 0 and n.failed == 0


def test_a_vanished_socket_is_reported_by_the_return_value_not_raised(tmp_path):
    path = tmp_path / "gone"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    n = SdNotifier(environ={"NOTIFY_SOCKET": str(path)})
    assert n.watchdog()
    sock.close()
    os.unlink(path)
    assert n.watchdog() is False
    assert n.failed == 1
    n.close()


def test_socket_address_forms():
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert socket_address("@abc") == b"\0abc"
    assert socket_address("") is None
    assert socket_address(None) is None
    assert socket_address("relative/path") is None
    assert socket_address("vsock:2:1234") is None


def test_watchdog_interval_is_ours_only_when_watchdog_pid_is_unset_or_ours():
    me = os.getpid()
    assert watchdog_interval({"WATCHDOG_USEC": "60000000"}) == 60.0
    assert watchdog_interval({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(me)}) == 60.0
    assert watchdog_interval({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(me + 1)}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "x"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}) is None
    assert watchdog_interval({}) is None


def test_unset_environment_keeps_children_from_notifying(notify_socket):
    address, sock = notify_socket
    env = {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid()), "PATH": "/bin"}
    n = SdNotifier(environ=env, unset_environment=True)
    assert env == {"PATH": "/bin"}
    assert n.enabled and n.watchdog_s == 2.0
    assert n.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"
    n.close()
