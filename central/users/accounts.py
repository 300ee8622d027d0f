"""Users, roles, passwords (argon2id), API tokens and the session signing key, in central's store.

Roles are ordered: viewer (reads) < operator (writes: flags, acknowledgements, replays) < admin
(users). A password is kept only as its argon2id hash (argon2-cffi's defaults, RFC 9106's second
recommended option). An API token is `ghg_<id>_<secret>`; only the SHA-256 of the secret is kept
(a random 256-bit secret needs no slow hash). `generation` rises when a password changes or a user
is removed, which ends every session signed before.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ghgnet.timeutil import iso_utc

ROLES = ("viewer", "operator", "admin")
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
MIN_PASSWORD_CHARS = 8

TABLES = (
    "CREATE TABLE IF NOT EXISTS web_user (name TEXT PRIMARY KEY, role TEXT NOT NULL, "
    "password_hash TEXT NOT NULL, generation INTEGER NOT NULL, created_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS web_token (id TEXT PRIMARY KEY, user_name TEXT NOT NULL, "
    "secret_sha256 TEXT NOT NULL, label TEXT NOT NULL, created_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS web_secret (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
)


class AccountError(ValueError):
    """A user command that cannot be done; the message says why."""


@dataclass(frozen=True)
class User:
    name: str
    role: str
    generation: int
    created_at: str


def role_at_least(role: str, needed: str) -> bool:
    return ROLES.index(role) >= ROLES.index(needed)


def check_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise AccountError(f"user name {name[:40]!r}: use a-z, 0-9, '.', '_' and '-' (at most 64, first a letter or digit)")
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise AccountError(f"role {role[:40]!r}: one of {', '.join(ROLES)}")
    return role


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise AccountError(f"password: at least {MIN_PASSWORD_CHARS} characters")
    return password


class Accounts:
    """Account operations on a central store (central.store.sql.SqlStore); one lock for its connection
    (the web app shares the store with its answers and passes the same lock)."""

    def __init__(self, store, lock: threading.Lock | None = None) -> None:
        self.store = store
        self.lock = lock or threading.Lock()
        self.hasher = PasswordHasher()
        with self.lock:
            self._write(lambda: [store._execute(sql) for sql in TABLES])

    # -- helpers -------------------------------------------------------------------------------

    def _q(self, sql: str, params=()) -> list[tuple]:
        return self.store._query(sql, params)

    def _x(self, sql: str, params=()) -> int:
        return self.store._execute(self.store._sql(sql), params).rowcount

    def _write(self, fn):
        self.store._begin()
        try:
            out = fn()
            self.store._commit()
            return out
        except Exception:
            self.store._rollback()
            raise

    # -- users ---------------------------------------------------------------------------------

    def add(self, name: str, role: str, password: str) -> User:
        check_name(name), check_role(role), check_password(password)
        digest = self.hasher.hash(password)
        with self.lock:
            if self._q("SELECT 1 FROM web_user WHERE name = ?", (name,)):
                raise AccountError(f"user {name!r} exists (passwd changes the password)")
            now = iso_utc(datetime.now(UTC))
            self._write(lambda: self._x("INSERT INTO web_user (name, role, password_hash, generation, created_at) "
                                        "VALUES (?, ?, ?, 1, ?)", (name, role, digest, now)))
        return User(name, role, 1, now)

    def users(self) -> list[User]:
        with self.lock:
            rows = self._q("SELECT name, role, generation, created_at FROM web_user ORDER BY name")
        return [User(*r) for r in rows]

    def get(self, name: str) -> User | None:
        with self.lock:
            rows = self._q("SELECT name, role, generation, created_at FROM web_user WHERE name = ?", (name,))
        return User(*rows[0]) if rows else None

    def remove(self, name: str) -> None:
        with self.lock:
            def go() -> int:
                self._x("DELETE FROM web_token WHERE user_name = ?", (name,))
                return self._x("DELETE FROM web_user WHERE name = ?", (name,))
            if not self._write(go):
                raise AccountError(f"no user {name[:64]!r}")

    def set_password(self, name: str, password: str) -> None:
        check_password(password)
        digest = self.hasher.hash(password)
        with self.lock:
            n = self._write(lambda: self._x("UPDATE web_user SET password_hash = ?, generation = generation + 1 "
                                            "WHERE name = ?", (digest, name)))
        if not n:
            raise AccountError(f"no user {name[:64]!r}")

    def verify(self, name: str, password: str) -> User | None:
        """The user when the password is theirs; None otherwise (same work for an unknown name)."""
        with self.lock:
            rows = self._q("SELECT name, role, generation, created_at, password_hash FROM web_user WHERE name = ?",
                           (name,))
        digest = rows[0][4] if rows else _DUMMY_HASH
        try:
            self.hasher.verify(digest, password)
        except (VerificationError, InvalidHashError):
            return None
        return User(*rows[0][:4]) if rows else None

    # -- tokens --------------------------------------------------------------------------------

    def new_token(self, name: str, label: str = "") -> str:
        token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        with self.lock:
            if not self._q("SELECT 1 FROM web_user WHERE name = ?", (name,)):
                raise AccountError(f"no user {name[:64]!r}")
            self._write(lambda: self._x("INSERT INTO web_token (id, user_name, secret_sha256, label, created_at) "
                                        "VALUES (?, ?, ?, ?, ?)",
                                        (token_id, name, _sha256(secret), label[:200], iso_utc(datetime.now(UTC)))))
        return f"ghg_{token_id}_{secret}"

    def token_user(self, token: str) -> User | None:
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != "ghg" or len(parts[1]) > 32:
            return None
        with self.lock:
            rows = self._q("SELECT u.name, u.role, u.generation, u.created_at, t.secret_sha256 FROM web_token t "
                           "JOIN web_user u ON u.name = t.user_name WHERE t.id = ?", (parts[1],))
        if not rows or not hmac.compare_digest(rows[0][4], _sha256(parts[2])):
            return None
        return User(*rows[0][:4])

    def tokens(self, name: str | None = None) -> list[dict]:
        sql = "SELECT id, user_name, label, created_at FROM web_token"
        with self.lock:
            rows = self._q(sql + " WHERE user_name = ? ORDER BY id" if name else sql + " ORDER BY id",
                           (name,) if name else ())
        return [{"id": r[0], "user": r[1], "label": r[2], "created_at": r[3]} for r in rows]

    def revoke_token(self, token_id: str) -> None:
        with self.lock:
            if not self._write(lambda: self._x("DELETE FROM web_token WHERE id = ?", (token_id,))):
                raise AccountError(f"no token {token_id[:32]!r}")

    # -- the session key -----------------------------------------------------------------------

    def session_key(self) -> str:
        """The key that signs session cookies: made once, kept in the store for every server."""
        with self.lock:
            rows = self._q("SELECT value FROM web_secret WHERE name = 'session_key'")
            if rows:
                return rows[0][0]
            key = secrets.token_hex(32)
            self._write(lambda: self._x("INSERT INTO web_secret (name, value) VALUES ('session_key', ?) "
                                        "ON CONFLICT (name) DO NOTHING", (key,)))
            # another server may have made it first: read back the one kept
            return self._q("SELECT value FROM web_secret WHERE name = 'session_key'")[0][0]


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


_DUMMY_HASH = PasswordHasher().hash(secrets.token_hex(16))
