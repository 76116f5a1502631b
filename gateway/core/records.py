"""What the archive log hashes: each record as canonical bytes, and the text a checkpoint
signs. Anyone holding a record's fields can recompute its leaf (gateway.core.merkle)."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

LOG_ORIGIN = "bsm-gateway archive log"

Field = str | int | bool | None


def record_bytes(kind: str, fields: Mapping[str, Field]) -> bytes:
    """One record, canonical: JSON with its keys sorted, no blanks, UTF-8 (not escaped)."""
    return json.dumps(
        {"kind": kind, **fields}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()


def timestamp(moment: datetime) -> str:
    """A time as a record states it: UTC, ISO 8601, to the microsecond."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class LogKey:
    """An Ed25519 key that signs checkpoints, named by the first 16 hex digits of the
    SHA-256 of its raw public key."""

    key_id: str
    private_key_pem: str
    public_key: str  # base64 of the 32 raw bytes: what auditors pin


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    """The log's size and root at a moment, with the signature of an archive key."""

    tree_size: int
    root_hash: bytes
    signed_at: datetime
    key_id: str
    signature: bytes

    def text(self) -> bytes:
        return checkpoint_text(self.tree_size, self.root_hash, self.signed_at)


def checkpoint_text(tree_size: int, root_hash: bytes, signed_at: datetime) -> bytes:
    """The bytes a checkpoint's signature covers: the log's name, its size, its root
    (base64) and the time, one per line."""
    root = base64.b64encode(root_hash).decode("ascii")
    return f"{LOG_ORIGIN}\n{tree_size}\n{root}\n{timestamp(signed_at)}\n".encode()
