"""A real mosquitto broker on a free loopback port, for tests and for `station-agent demo`.

The config is generated per instance: persistence in the given folder, `set_tcp_nodelay true`
(without it mosquitto delays acknowledgements by Nagle's algorithm; mosquitto.conf(5)), one
plain listener, optionally users with passwords and an ACL file, optionally a TLS listener.
With users, every listener binds client ids to user names (`use_username_as_clientid`), as
configs/mosquitto/mosquitto.conf does, so tests and the demo run the identities that ship.
`stop()` is a SIGTERM (mosquitto saves its persistence file), `kill()` a SIGKILL (whatever was
not yet saved is gone, as after a power cut).
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

MOSQUITTO_CANDIDATES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/usr/bin/mosquitto")


class BrokerError(RuntimeError):
    """The broker could not be started (no binary, bad config, port taken)."""


def find_mosquitto() -> str | None:
    """Path of the mosquitto binary, or None when it is not installed."""
    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in MOSQUITTO_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def user_lines() -> list[str]:
    # mosquitto started as root drops to the "mosquitto" user, which cannot write our folders.
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return [f"user {getpass.getuser()}"]
    return []


def password_line(user: str, password: str, iterations: int = 101) -> str:
    """A mosquitto 2.x password-file line (`$7$`: PBKDF2-SHA512, as mosquitto_passwd writes it)."""
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"{user}:$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """PEM files for a TLS listener and its clients; the server certificate is for 127.0.0.1 and
    localhost, signed by `ca`."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise BrokerError("openssl is not installed: cannot generate TLS certificates")
    proc = subprocess.run([openssl, *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BrokerError(f"openssl {' '.join(args[:2])} failed: {proc.stderr.strip()}")


def generate_certificates(folder: Path, days: int = 30, client_cn: str = "ghgnet-client") -> TlsFiles:
    """A throw-away CA, a server certificate for 127.0.0.1/localhost and a client certificate
    (CN = `client_cn`), with the openssl CLI (EC P-256 keys: fast to make)."""
    folder.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", str(days),
             "-subj", "/CN=ghgnet test CA", cwd=folder)
    (folder / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
    )
    (folder / "client.ext").write_text("basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")
    for name, cn in (("server", "localhost"), ("client", client_cn)):
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}",
                 cwd=folder)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.crt", "-days", str(days),
                 "-extfile", f"{name}.ext", cwd=folder)
    for key in ("ca.key", "server.key", "client.key"):
        (folder / key).chmod(0o600)
    return TlsFiles(folder / "ca.crt", folder / "server.crt", folder / "server.key",
                    folder / "client.crt", folder / "client.key")


class MosquittoBroker:
    """One mosquitto process with a generated config.

    users: {username: password}; when given, anonymous clients are refused and each client's id is
    its user name (the shipped binding: no client can take another user's session).
    acl: the text of an ACL file (e.g. configs/mosquitto/acl.template) or None for no ACL.
    tls: certificates for a second, TLS listener on `tls_port` (clients must present a certificate
    signed by the same CA when `require_client_cert`).
    command_prefix: what mosquitto's command line is run through (e.g. `ip netns exec NAME` for
    a broker inside a network namespace); the readiness probe is run through it too.
    """

    def __init__(
        self,
        data_dir: str | Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        users: dict[str, str] | None = None,
        acl: str | None = None,
        tls: TlsFiles | None = None,
        tls_port: int | None = None,
        require_client_cert: bool = False,
        autosave_interval_s: int = 1800,
        max_queued_messages: int = 100_000,
        binary: str | None = None,
        extra_config: str = "",
        command_prefix: Sequence[str] = (),
    ) -> None:
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port or 0
        self.users = dict(users or {})
        self.acl = acl
        self.tls = tls
        self.tls_port = tls_port or 0
        self.require_client_cert = require_client_cert
        self.autosave_interval_s = autosave_interval_s
        self.max_queued_messages = max_queued_messages
        self.extra_config = extra_config
        self.command_prefix = list(command_prefix)
        self.binary = binary or find_mosquitto()
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = None
        self._log_offset = 0

    # -- config ------------------------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.data_dir / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "mosquitto.log"

    def _auth_lines(self) -> list[str]:
        lines = []
        if self.users:
            pw = self.data_dir / "passwords"
            pw.write_text("".join(password_line(u, p) + "\n" for u, p in self.users.items()))
            pw.chmod(0o600)
            # a listener option: it goes under each listener, as in the shipped mosquitto.conf
            lines += ["allow_anonymous false", f"password_file {pw}", "use_username_as_clientid true"]
        else:
            lines.append("allow_anonymous true")
        if self.acl is not None:
            acl = self.data_dir / "acl"
            acl.write_text(self.acl)
            acl.chmod(0o600)
            lines.append(f"acl_file {acl}")
        return lines

    def write_config(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        persistence = self.data_dir / "persistence"
        persistence.mkdir(exist_ok=True)
        lines = [
            "# generated by simulators.broker.MosquittoBroker",
            "per_listener_settings true",
            "persistence true",
            f"persistence_location {persistence}/",
            f"autosave_interval {self.autosave_interval_s}",
            "set_tcp_nodelay true",
            *user_lines(),
            f"max_queued_messages {self.max_queued_messages}",
            "max_inflight_messages 100",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "",
            f"listener {self.port} {self.host}",
            *self._auth_lines(),
        ]
        if self.tls is not None:
            lines += [
                "",
                f"listener {self.tls_port} {self.host}",
                *self._auth_lines(),
                f"cafile {self.tls.ca}",
                f"certfile {self.tls.server_cert}",
                f"keyfile {self.tls.server_key}",
                f"require_certificate {'true' if self.require_client_cert else 'false'}",
            ]
        if self.extra_config:
            lines += ["", self.extra_config]
        self.config_path.write_text("\n".join(lines) + "\n")
        return self.config_path

    # -- process -----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self, timeout_s: float = 10.0) -> MosquittoBroker:
        """Start on the configured ports (free ones picked on the first start, then kept, so
        clients reconnect to the same address after a restart)."""
        if self.running:
            raise BrokerError("broker already running")
        if self.binary is None:
            raise BrokerError("mosquitto is not installed (apt-get install mosquitto)")
        fixed = bool(self.port)
        for _ in range(5):
            if not fixed:
                self.port = free_port(self.host)
                if self.tls is not None and not self.tls_port:
                    self.tls_port = free_port(self.host)
            self.write_config()
            self._log = self.log_path.open("ab")
            self._log_offset = self._log.tell()
            self._proc = subprocess.Popen(
                [*self.command_prefix, self.binary, "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                self.wait_ready(timeout_s)
                return self
            except BrokerError:
                if fixed or self.running:
                    self.kill()
                    raise
                self._reap()
        raise BrokerError(f"mosquitto did not start; see {self.log_path}:\n{self.log_tail()}")

    def _says_running(self) -> bool:
        with self.log_path.open("rb") as fh:
            fh.seek(self._log_offset)
            return b" running" in fh.read()

    def wait_ready(self, timeout_s: float = 10.0) -> None:
        """Block until this process has logged that it runs (all listeners open: a port held by
        another process makes mosquitto exit first) and every listener accepts TCP connections."""
        deadline = time.monotonic() + timeout_s
        ports = [self.port] + ([self.tls_port] if self.tls is not None else [])
        while True:
            if self._proc is None or self._proc.poll() is not None:
                raise BrokerError(f"mosquitto exited; see {self.log_path}:\n{self.log_tail()}")
            try:
                if not self._says_running():
                    raise OSError("not running yet")
                for p in ports:
                    self._probe(p)
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise BrokerError(f"mosquitto not accepting connections after {timeout_s} s") from None
                time.sleep(0.02)

    def _probe(self, port: int) -> None:
        """Connect to a listener (OSError when it does not accept), from where mosquitto runs."""
        if not self.command_prefix:
            with socket.create_connection((self.host, port), timeout=0.5):
                return
        probe = "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 0.5).close()"
        if subprocess.run([*self.command_prefix, sys.executable, "-c", probe, self.host, str(port)],
                          capture_output=True, timeout=10).returncode != 0:
            raise OSError(f"{self.host}:{port} does not accept connections")

    def _reap(self, timeout_s: float = 10.0) -> int | None:
        rc = None
        if self._proc is not None:
            try:
                rc = self._proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                rc = self._proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        self._proc = None
        return rc

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM: mosquitto saves its persistence file and exits."""
        if self.running:
            assert self._proc is not None
            self._proc.send_signal(signal.SIGTERM)
        return self._reap(timeout_s)

    def kill(self) -> int | None:
        """SIGKILL: no save; messages and sessions since the last autosave are lost."""
        if self.running:
            assert self._proc is not None
            self._proc.kill()
        return self._reap()

    def reload(self, *, acl: str | None = None, users: dict[str, str] | None = None) -> None:
        """Rewrite the ACL and/or password file and send SIGHUP: mosquitto re-reads them without
        dropping any connection (an operator fixing a station's rights)."""
        if acl is not None:
            self.acl = acl
        if users is not None:
            self.users = dict(users)
        self._auth_lines()
        if not self.running:
            raise BrokerError("broker not running")
        assert self._proc is not None
        self._proc.send_signal(signal.SIGHUP)

    def restart(self, kill: bool = False, timeout_s: float = 10.0) -> MosquittoBroker:
        self.kill() if kill else self.stop()
        return self.start(timeout_s)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> MosquittoBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"MosquittoBroker({self.host}:{self.port}, pid={self.pid})"
