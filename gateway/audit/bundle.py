"""`archive verify-export`: an export checked offline, with nothing but the zip and the
archive's public key. The checkpoint's signature; for each message, its record's leaf and
the inclusion proof that leads from it to the signed root; and the bytes of each .eml
against the SHA-256 its record names."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.audit.signing import key_id_of, verify
from gateway.core.merkle import leaf_hash, verify_inclusion
from gateway.core.records import LOG_ORIGIN, checkpoint_text

_STAMP = "%Y-%m-%dT%H:%M:%S.%fZ"


@dataclass
class BundleCheck:
    messages: int = 0
    tree_size: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_bundle(path: Path, public_key: str) -> BundleCheck:
    check = BundleCheck()
    try:
        with zipfile.ZipFile(path) as bundle:
            _check(bundle, public_key, check)
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, binascii.Error) as error:
        check.problems.append(f"not a readable export: {error}")
    return check


def _check(bundle: zipfile.ZipFile, public_key: str, check: BundleCheck) -> None:
    manifest: dict[str, Any] = json.loads(bundle.read("manifest.json"))
    signed = manifest["checkpoint"]
    size, root = int(signed["tree_size"]), bytes.fromhex(signed["root_hash"])
    check.tree_size = size
    if manifest.get("log") != LOG_ORIGIN:
        check.problems.append(f"the export is of another log: {manifest.get('log')!r}")
    if signed["key_id"] != key_id_of(public_key):
        check.problems.append(f"the checkpoint is signed by key {signed['key_id']}, not this one")
    signed_at = datetime.strptime(signed["signed_at"], _STAMP).replace(tzinfo=UTC)
    text = checkpoint_text(size, root, signed_at)
    if not verify(public_key, text, base64.b64decode(signed["signature"])):
        check.problems.append(f"checkpoint at size {size}: its signature does not verify")
    for entry in manifest["messages"]:
        check.messages += 1
        _check_message(bundle, entry, size, root, check)


def _check_message(
    bundle: zipfile.ZipFile, entry: dict[str, Any], size: int, root: bytes, check: BundleCheck
) -> None:
    where = f"message {entry['message_id']}"
    record_bytes = bundle.read(entry["record"])
    leaf = leaf_hash(record_bytes)
    proof = [bytes.fromhex(node) for node in entry["proof"]]
    if leaf.hex() != entry["leaf_hash"]:
        check.problems.append(f"{where}: its record is not the one logged")
    elif not verify_inclusion(leaf, int(entry["seq"]), size, proof, root):
        check.problems.append(f"{where}: not in the signed log at place {entry['seq']}")
    record = json.loads(record_bytes)
    if record.get("id") != entry["message_id"]:
        check.problems.append(f"{where}: its record is of message {record.get('id')}")
    for which in ("received", "delivered"):
        named = record.get(f"{which}_sha256")
        name = entry.get(which)
        if named is None and name is None:
            continue
        if named is None or name is None:
            check.problems.append(f"{where}: the message as {which} is missing or extra")
            continue
        if hashlib.sha256(bundle.read(name)).hexdigest() != named:
            check.problems.append(f"{where}: the message as {which} is not the archived one")
