"""A small sd_notify client: tell systemd we are ready, what we are doing, and that we are alive.

The protocol (sd_notify(3)): newline-separated `KEY=VALUE` fields in one datagram sent to the
AF_UNIX socket named by `$NOTIFY_SOCKET`, either a file-system path or, when it starts with '@',
an address in the abstract namespace (the '@' stands for a leading NUL byte). With no
`$NOTIFY_SOCKET` (run by hand, in tests, under another supervisor) every call is a no-op.

The watchdog interval comes from `$WATCHDOG_USEC` (microseconds); it is ours only when
`$WATCHDOG_PID` is unset or names this process, as sd_watchdog_enabled(3) says.

Sending never raises: a daemon must not die because its supervisor's socket went away. A failed
send is reported by the return value (and a missed WATCHDOG=1 is what systemd will act on).
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Mapping, MutableMapping

NOTIFY_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def socket_address(value: str | None) -> str | bytes | None:
    """The address to send to for a `$NOTIFY_SOCKET` value, or None when it names no AF_UNIX socket.

    '@name' is the abstract-namespace socket "\\0name"; an absolute path is a socket file. Anything
    else (empty, relative, or systemd 254's `vsock:` form, which this client does not speak) is None.
    """
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None


def watchdog_interval(environ: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """The watchdog interval in seconds that systemd expects pings within, or None when off.

    None when `$WATCHDOG_USEC` is unset, not a positive integer, or `$WATCHDOG_PID` names another
    process (a child that inherited the environment must not feed its parent's watchdog).
    """
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC", "")
    wpid = env.get("WATCHDOG_PID", "")
    if wpid:
        try:
            if int(wpid) != (os.getpid() if pid is None else pid):
                return None
        except ValueError:
            return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 1e6 if value > 0 else None


class SdNotifier:
    """Sends sd_notify messages to `$NOTIFY_SOCKET` (or `address`); a no-op when there is none.

    `unset_environment=True` removes NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID from
    `environ` after reading them, so child processes (a broker, a simulator) cannot notify on the
    daemon's behalf. Thread-safe: the watchdog thread and the main thread may both send.
    """

    def __init__(
        self,
        address: str | None = None,
        environ: MutableMapping[str, str] | None = None,
        unset_environment: bool = False,
    ) -> None:
        env = os.environ if environ is None else environ
        raw = address if address is not None else env.get("NOTIFY_SOCKET")
        self.address = socket_address(raw)
        self.watchdog_s = watchdog_interval(env)
        if unset_environment:
            for key in NOTIFY_ENV:
                env.pop(key, None)
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self.sent = 0
        self.failed = 0

    @property
    def enabled(self) -> bool:
        """True when there is a socket to notify (we run under systemd with Type=notify)."""
        return self.address is not None

    def notify(self, *fields: str, **named: str | int) -> bool:
        """Send one datagram of `KEY=VALUE` fields; True when sent (False when disabled or failed).

        `notify("READY=1", STATUS="up")` sends "READY=1\\nSTATUS=up". A value may not contain a
        newline (it would start a new field), so newlines in a STATUS text become spaces.
        """
        if self.address is None:
            return False
        parts = list(fields) + [f"{k}={v}" for k, v in named.items()]
        if not parts:
            return False
        message = "\n".join(p.replace("\n", " ") for p in parts).encode()
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.sendto(message, self.address)
            except OSError:
                self.failed += 1
                self._close_locked()
                return False
            self.sent += 1
            return True

    def ready(self, status: str | None = None) -> bool:
        """Startup is finished: systemd marks the unit active and starts the watchdog."""
        return self.notify("READY=1", **({"STATUS": status} if status else {}))

    def status(self, text: str) -> bool:
        """A one-line free-form status, shown by `systemctl status`."""
        return self.notify(STATUS=text)

    def watchdog(self) -> bool:
        """Keep-alive ping; must come more often than the watchdog interval."""
        return self.notify("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> bool:
        """Shutdown has begun (sent on SIGTERM before the slow part of stopping)."""
        return self.notify("STOPPING=1", **({"STATUS": status} if status else {}))

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for `seconds` more to finish starting or stopping (EXTEND_TIMEOUT_USEC)."""
        return self.notify(EXTEND_TIMEOUT_USEC=int(seconds * 1e6))

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
