"""`[fleet]` of the station config: central's public key and how long a pushed config has to prove itself."""

from __future__ import annotations

from pydantic import Field, field_validator

from ghgnet.config import RelPath, StrictModel
from ghgnet.signed_config import load_public_key


class FleetConfig(StrictModel):
    central_public_key: str | None = Field(
        default=None, max_length=64,
        description="central's Ed25519 public key (base64, `central-receiver keys init` prints it); "
        "unset: the station takes no remote configuration")
    health_check_s: float = Field(
        default=600.0, gt=0, le=86400,
        description="seconds a pushed config has to show devices answering, minutes closing and "
        "forwarding moving before the station rolls back to the previous one")
    history_dir: RelPath | None = Field(
        default=None, description="versions and history of pushed configs; default: config-versions/ beside the config")

    @field_validator("central_public_key")
    @classmethod
    def _key(cls, v: str | None) -> str | None:
        if v is not None:
            load_public_key(v)
        return v
