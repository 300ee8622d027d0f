"""`[fleet]` of central's config: the key that signs station configs and who publishes them."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from ghgnet.config import RelPath, StrictModel


class FleetConfig(StrictModel):
    signing_key: RelPath = Field(
        default=Path("keys/config-signing.pem"),
        description="central's Ed25519 private key (PEM) that signs pushed station configs; "
        "`central-receiver keys init` makes it. Keep it on the admin's machine only")
    push_username: str | None = Field(
        default=None, description="broker user that publishes configs (ghgnet-admin in the ACL template); "
        "unset: [mqtt]'s user. Never a receiver's user: the broker binds client ids to user names, so the "
        "push would take the receiver's session")
    push_password_file: RelPath | None = Field(default=None, description="that user's password file")
