"""Who is asking, and may they: a signed session cookie (browsers) or a bearer token (scripts).

A session cookie carries the user, their password generation and a CSRF token, signed with the
store's session key (itsdangerous, timed). A request whose user comes from the cookie and that
writes must repeat the CSRF token in the `X-CSRF-Token` header (another site can make the browser
send the cookie, never read the token); a bearer token is never sent by a browser on its own, so it
needs none. Login takes JSON only: a cross-site form cannot send that without a CORS preflight,
which this app never grants.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import HTTPException, Request
from itsdangerous import BadSignature, URLSafeTimedSerializer

from ..users import Accounts, User, role_at_least

COOKIE = "ghg_session"
CSRF_HEADER = "X-CSRF-Token"


@dataclass(frozen=True)
class Caller:
    user: User
    via: str  # "session" or "token"
    csrf: str | None = None


class Sessions:
    def __init__(self, accounts: Accounts, max_age_s: float) -> None:
        self.accounts = accounts
        self.max_age_s = max_age_s
        self.signer = URLSafeTimedSerializer(accounts.session_key(), salt="ghgnet-session")

    def issue(self, user: User) -> tuple[str, str]:
        """The cookie value and the CSRF token it carries."""
        csrf = secrets.token_urlsafe(24)
        return self.signer.dumps({"u": user.name, "g": user.generation, "c": csrf}), csrf

    def caller(self, request: Request) -> Caller | None:
        header = request.headers.get("authorization", "")
        if header[:7].lower() == "bearer ":
            user = self.accounts.token_user(header[7:].strip())
            return Caller(user, "token") if user else None
        cookie = request.cookies.get(COOKIE)
        if not cookie:
            return None
        try:
            data = self.signer.loads(cookie, max_age=self.max_age_s)
        except BadSignature:
            return None
        if not isinstance(data, dict):
            return None
        user = self.accounts.get(str(data.get("u", "")))
        if user is None or user.generation != data.get("g"):
            return None  # removed, or the password changed since
        return Caller(user, "session", str(data.get("c", "")))


def need(role: str, write: bool = False) -> Callable[[Request], Caller]:
    """A FastAPI dependency: the caller, with at least `role`; a write from a session also needs its
    CSRF token. 401 without a valid login, 403 for a role too low or a missing token."""

    def dependency(request: Request) -> Caller:
        sessions: Sessions = request.app.state.sessions
        caller = sessions.caller(request)
        if caller is None:
            raise HTTPException(401, "log in (POST /api/login) or send Authorization: Bearer <token>",
                                headers={"WWW-Authenticate": "Bearer"})
        if not role_at_least(caller.user.role, role):
            raise HTTPException(403, f"needs the {role} role (you are {caller.user.role})")
        if write and caller.via == "session":
            sent = request.headers.get(CSRF_HEADER, "")
            if not caller.csrf or not hmac.compare_digest(sent.encode(), caller.csrf.encode()):
                raise HTTPException(403, f"missing or wrong {CSRF_HEADER} header (from /api/me)")
        request.state.caller = caller
        return caller

    dependency.role = role  # type: ignore[attr-defined]  (read by the tests and the OpenAPI text)
    dependency.write = write  # type: ignore[attr-defined]
    return dependency
