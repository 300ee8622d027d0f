"""Users of the operations center: roles, argon2 password hashes, API tokens, the session key.

Kept in central's own store (SQLite or PostgreSQL) in tables of their own (`web_user`,
`web_token`, `web_secret`), so every `central-receiver serve` on one database shares them."""

from .accounts import (
    ROLES,
    AccountError,
    Accounts,
    User,
    role_at_least,
)

__all__ = ["ROLES", "Accounts", "AccountError", "User", "role_at_least"]
