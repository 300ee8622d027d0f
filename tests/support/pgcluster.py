"""A private PostgreSQL cluster for one test, started through a command prefix (e.g. inside a
network namespace, where the machine's own server on 127.0.0.1:5432 cannot be reached).

initdb runs as the `postgres` user (runuser) into a fresh folder under /tmp (pytest's folders
are not open to that user); the server listens on TCP `127.0.0.1:port` where it runs and on a
Unix socket in that folder, which any namespace reaches (sockets in the file system are not
namespaced): the test reads the store through it. Binaries come from /usr/lib/postgresql/*/bin
(the newest version), or the folder holding `pg_ctl` on PATH.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path


class PgClusterError(RuntimeError):
    """The cluster could not be made or (re)started; the message holds the command's output."""


def postgres_bin() -> Path:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                      key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    if versions:
        return versions[-1].parent
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    raise PgClusterError("PostgreSQL's server binaries are not installed (Debian: apt-get install postgresql; "
                         "./dev test does it)")


class PgCluster:
    """initdb, start, restart and stop one cluster; `dsn` is for processes where it runs (TCP),
    `local_dsn` for this process (the Unix socket)."""

    def __init__(self, prefix: Sequence[str] = (), port: int = 5432, user: str = "postgres",
                 dbname: str = "ghgnet") -> None:
        self.prefix = list(prefix)
        self.port = port
        self.user = user
        self.dbname = dbname
        self.bin = postgres_bin()
        self.root = Path(tempfile.mkdtemp(prefix="ghgnet-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.started = False

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.dbname}?connect_timeout=5"

    @property
    def local_dsn(self) -> str:
        return f"host={self.root} port={self.port} user={self.user} dbname={self.dbname} connect_timeout=5"

    def _as_user(self, *args: str, where: Sequence[str] = ()) -> str:
        cmd = [*where, "runuser", "-u", self.user, "--", *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise PgClusterError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}): "
                                 f"{(proc.stderr or proc.stdout).strip()}\n{self.log_tail()}")
        return proc.stdout

    def init(self) -> PgCluster:
        if os.geteuid() != 0:
            raise PgClusterError("a private cluster is made as root (initdb runs as the postgres user)")
        entry = pwd.getpwnam(self.user)
        os.chown(self.root, entry.pw_uid, entry.pw_gid)
        # trust: only this machine's test processes reach it (a socket in a private folder, and
        # TCP inside a namespace of this test). fsync off: a fast shutdown still writes
        # everything, and the disk is shared with other developers' runs.
        self._as_user(str(self.bin / "initdb"), "-D", str(self.data), "-U", self.user, "-A", "trust",
                      "--no-sync", "-E", "UTF8")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\n"
                       f"unix_socket_directories = '{self.root}'\nfsync = off\n"
                       "shared_buffers = 32MB\nmax_connections = 20\n")
        return self

    def _pg_ctl(self, *args: str) -> None:
        self._as_user(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                      *args, where=self.prefix)

    def start(self) -> PgCluster:
        self._pg_ctl("start")
        self.started = True
        self._as_user(str(self.bin / "createdb"), "-h", str(self.root), "-p", str(self.port), self.dbname)
        return self

    def restart(self) -> None:
        """A fast restart (clients disconnected, a shutdown checkpoint, up again), as an operator's
        `pg_ctl restart -m fast`; the new server runs where the old one did (the prefix)."""
        self._pg_ctl("restart", "-m", "fast")

    def stop(self) -> None:
        if self.started and (self.data / "postmaster.pid").exists():
            subprocess.run([*self.prefix, "runuser", "-u", self.user, "--", str(self.bin / "pg_ctl"), "-D",
                            str(self.data), "-m", "immediate", "-w", "-t", "30", "stop"],
                           capture_output=True, timeout=60)
        self.started = False

    def close(self) -> None:
        """Stop the server and remove its folder."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
