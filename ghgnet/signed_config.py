"""A station config signed by central (Ed25519), as it travels on `ghg/v1/<station>/config`.

Central signs the canonical bytes of (station, version, issued, config text); the station checks
them against central's public key before it reads a line of the config. The version is what makes
a replay visible: a station takes only a version above every one it has seen.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ghgnet.timeutil import iso_utc

SIGNED_CONFIG_SCHEMA = 1
MAX_CONFIG_BYTES = 256 * 1024
"""A station config is a few kB; anything near this is not one."""


class SignatureError(ValueError):
    """The envelope is unsigned, malformed or signed by another key: never to be applied."""


class SignedConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_: int = Field(alias="schema")
    station: str
    version: int = Field(ge=1)
    issued: datetime
    config: str = Field(max_length=MAX_CONFIG_BYTES, description="the station config, TOML text")
    signature: str = Field(default="", description="Ed25519 over signed_bytes(), base64")

    def signed_bytes(self) -> bytes:
        """What the signature covers: every field but the signature, canonical JSON."""
        body = {"schema": self.schema_, "station": self.station, "version": self.version,
                "issued": iso_utc(self.issued), "config": self.config}
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    def encode(self) -> bytes:
        return json.dumps({"schema": self.schema_, "station": self.station, "version": self.version,
                           "issued": iso_utc(self.issued), "config": self.config,
                           "signature": self.signature}).encode()


def sign_config(key: Ed25519PrivateKey, station: str, version: int, issued: datetime, text: str) -> SignedConfig:
    env = SignedConfig(schema=SIGNED_CONFIG_SCHEMA, station=station, version=version, issued=issued, config=text)
    env.signature = base64.b64encode(key.sign(env.signed_bytes())).decode()
    return env


def parse_signed_config(payload: bytes) -> SignedConfig:
    """The envelope from its bytes; SignatureError names what is wrong (not yet verified)."""
    try:
        env = SignedConfig.model_validate_json(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise SignatureError(f"not a signed config: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    if env.schema_ != SIGNED_CONFIG_SCHEMA:
        raise SignatureError(f"signed config schema {env.schema_} is not {SIGNED_CONFIG_SCHEMA}")
    return env


def verify_config(env: SignedConfig, public_key: Ed25519PublicKey) -> None:
    """Raise SignatureError unless `env` carries central's signature over its content."""
    if not env.signature:
        raise SignatureError(f"config version {env.version} is unsigned")
    try:
        sig = base64.b64decode(env.signature, validate=True)
    except ValueError:
        raise SignatureError(f"config version {env.version}: signature is not base64") from None
    try:
        public_key.verify(sig, env.signed_bytes())
    except InvalidSignature:
        raise SignatureError(f"config version {env.version}: signature does not match central's key") from None


def new_private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def public_key_text(key: Ed25519PublicKey) -> str:
    """The public key as one base64 line (32 raw bytes): what a station config's [fleet] holds."""
    return base64.b64encode(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()


def load_private_key(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key


def load_public_key(text: str) -> Ed25519PublicKey:
    """A public key from its base64 line; ValueError names what is wrong."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except ValueError:
        raise ValueError("central_public_key is not base64") from None
    if len(raw) != 32:
        raise ValueError(f"central_public_key is {len(raw)} bytes, an Ed25519 key is 32")
    return Ed25519PublicKey.from_public_bytes(raw)
