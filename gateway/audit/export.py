"""`archive export`: messages of a pair, an order or a list, as a zip that proves itself.
Each message as received and as delivered (.eml), its record as the log hashed it, its
place in the log with an inclusion proof (RFC 9162 2.1.3), and the signed checkpoint the
proofs lead to. `audit/bundle.py` checks such a zip with nothing but it and the public key.
Purged messages are left out: their bytes are gone, their leaves prove only a tombstone."""

from __future__ import annotations

import base64
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gateway.audit.checkpointer import Checkpointer
from gateway.core.merkle import Tree
from gateway.core.records import LOG_ORIGIN, timestamp
from gateway.storage import archive, archive_log
from gateway.storage.database import Database

BUNDLE_FORMAT = "bsm-gateway archive export 1"
MANIFEST = "manifest.json"


class ExportError(ValueError):
    """An export that cannot be made; the text says why."""


@dataclass(frozen=True, slots=True)
class Selection:
    pair_id: int | None = None
    order_ref: str | None = None
    ids: Sequence[int] = ()


@dataclass(frozen=True, slots=True)
class Exported:
    messages: int
    tree_size: int
    path: Path


def export_bundle(
    database: Database, checkpointer: Checkpointer, selection: Selection, out: Path
) -> Exported:
    checkpointer.run_once()  # every committed record in the log, under a signed checkpoint
    with database.read_connection() as connection:
        checkpoint = archive_log.latest_checkpoint(connection)
        ids = archive.message_ids(
            connection,
            pair_id=selection.pair_id,
            order_ref=selection.order_ref,
            ids=selection.ids,
        )
        if not ids:
            raise ExportError("no archived message matches")
        if checkpoint is None:
            raise ExportError("the archive log has no checkpoint yet")
        rows = archive_log.logged_messages(connection, ids, checkpoint.tree_size)
        if not rows:
            raise ExportError("every matching message has been purged")
        tree = Tree(archive_log.leaf_hashes(connection, checkpoint.tree_size))
        keys = {row[k] for row in rows for k in ("received_sha256", "delivered_sha256")}
        bodies = archive.bodies(connection, [k for k in keys if k])
    if tree.root() != checkpoint.root_hash:
        raise ExportError("the log does not match its latest checkpoint: run archive verify")
    entries = []
    tmp = out.with_name(out.name + ".partial")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for row in rows:
            folder = f"messages/{row['id']}"
            bundle.writestr(f"{folder}/record.json", archive_log.message_record(row))
            entry: dict[str, object] = {
                "message_id": row["id"],
                "seq": row["log_seq"],
                "leaf_hash": tree.leaves[row["log_seq"]].hex(),
                "proof": [node.hex() for node in tree.path(row["log_seq"])],
                "record": f"{folder}/record.json",
            }
            for which in ("received", "delivered"):
                key = row[f"{which}_sha256"]
                entry[which] = f"{folder}/{which}.eml" if key else None
                if key:
                    bundle.writestr(f"{folder}/{which}.eml", bodies[key])
            entries.append(entry)
        manifest = {
            "format": BUNDLE_FORMAT,
            "log": LOG_ORIGIN,
            "checkpoint": {
                "tree_size": checkpoint.tree_size,
                "root_hash": checkpoint.root_hash.hex(),
                "signed_at": timestamp(checkpoint.signed_at),
                "key_id": checkpoint.key_id,
                "signature": base64.b64encode(checkpoint.signature).decode("ascii"),
            },
            "messages": entries,
        }
        bundle.writestr(MANIFEST, json.dumps(manifest, indent=1, ensure_ascii=False))
    tmp.replace(out)
    return Exported(len(entries), checkpoint.tree_size, out)
