"""Ed25519 keys that sign the archive log's checkpoints (RFC 8032, through `cryptography`)."""

from __future__ import annotations

import base64
import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from gateway.core.records import LogKey


def key_id_of(public_key: str) -> str:
    return hashlib.sha256(base64.b64decode(public_key)).hexdigest()[:16]


def new_log_key() -> LogKey:
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    raw = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    public = base64.b64encode(raw).decode("ascii")
    return LogKey(key_id_of(public), pem, public)


def sign(key: LogKey, text: bytes) -> bytes:
    private = serialization.load_pem_private_key(key.private_key_pem.encode(), password=None)
    assert isinstance(private, Ed25519PrivateKey), "archive log keys are Ed25519"
    return private.sign(text)


def verify(public_key: str, text: bytes, signature: bytes) -> bool:
    """Whether `signature` is the key's signature of `text`; False for a malformed key."""
    try:
        raw = base64.b64decode(public_key, validate=True)
        Ed25519PublicKey.from_public_bytes(raw).verify(signature, text)
    except (InvalidSignature, ValueError):
        return False
    return True
