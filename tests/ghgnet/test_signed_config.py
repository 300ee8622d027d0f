"""The signed config envelope: what the signature covers, and every way it is refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from ghgnet.signed_config import (
    SignatureError,
    load_public_key,
    new_private_key,
    parse_signed_config,
    public_key_text,
    sign_config,
    verify_config,
)

T = datetime(2026, 12, 7, 12, 0, 0, 123456, tzinfo=UTC)


def test_a_signed_config_survives_the_wire_and_verifies():
    key = new_private_key()
    env = parse_signed_config(sign_config(key, "st-a", 3, T, "[station]\nid = \"st-a\"\n").encode())
    verify_config(env, load_public_key(public_key_text(key.public_key())))
    assert env.version == 3 and env.config.startswith("[station]")


@pytest.mark.parametrize("field,value", [("config", "[station]\nid = \"evil\"\n"), ("version", 4), ("station", "st-b")])
def test_any_change_to_a_signed_field_breaks_the_signature(field, value):
    key = new_private_key()
    doc = json.loads(sign_config(key, "st-a", 3, T, "[station]\nid = \"st-a\"\n").encode())
    doc[field] = value
    with pytest.raises(SignatureError, match="does not match"):
        verify_config(parse_signed_config(json.dumps(doc).encode()), key.public_key())


def test_unsigned_malformed_and_foreign_schema_are_refused():
    key = new_private_key()
    doc = json.loads(sign_config(key, "st-a", 3, T, "x").encode())
    with pytest.raises(SignatureError, match="unsigned"):
        verify_config(parse_signed_config(json.dumps(doc | {"signature": ""}).encode()), key.public_key())
    with pytest.raises(SignatureError, match="not base64"):
        verify_config(parse_signed_config(json.dumps(doc | {"signature": "%%%"}).encode()), key.public_key())
    with pytest.raises(SignatureError, match="not a signed config: version"):
        parse_signed_config(json.dumps(doc | {"version": "three"}).encode())
    with pytest.raises(SignatureError, match="schema 2"):
        parse_signed_config(json.dumps(doc | {"schema": 2}).encode())


def test_a_bad_public_key_is_named():
    with pytest.raises(ValueError, match="16 bytes"):
        load_public_key("AAAAAAAAAAAAAAAAAAAAAA==")
