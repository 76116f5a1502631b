"""The archive's Merkle log in the database (owner of archive_log, archive_log_head,
archive_checkpoints and messages.log_seq): appending the records committed since the last
append, one appender at a time (it holds the head row), checkpoints, and the whole log read
back in order for verification.

Intake never waits for the log: a message is committed with no place in it (log_seq NULL)
and appended later, in the order the appender finds them. A message committed late with a
lower id than others already appended is simply found the next time."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    RowMapping,
    Table,
    and_,
    bindparam,
    func,
    insert,
    select,
    update,
)

from gateway.core.merkle import Frontier, leaf_hash
from gateway.core.records import SignedCheckpoint, record_bytes, timestamp
from gateway.storage.schema import (
    AuditorAccess,
    Checkpoint,
    LegalHold,
    LogHead,
    LogLeaf,
    Message,
    Purge,
    table_of,
)

APPEND_BATCH = 500  # records per transaction: the SQLite write lock is held only briefly

_LOG = table_of(LogLeaf)
_HEAD = table_of(LogHead)
_CHECKPOINTS = table_of(Checkpoint)
_MESSAGES = table_of(Message)
_HOLDS = table_of(LegalHold)
_PURGES = table_of(Purge)
_ACCESS = table_of(AuditorAccess)
HEAD_ID = 1

# The message columns a leaf binds: all but its place in the log. The body columns are the
# SHA-256 of the bytes as received and as delivered, so the leaf binds the bytes too.
MESSAGE_FIELDS = (
    "id", "pair_id", "direction", "session_id", "envelope_from", "recipient", "received_at",
    "verdict", "smtp_reply", "rule_hits", "shadow_hits", "gateway_message_id",
    "original_message_id", "received_sha256", "delivered_sha256", "size", "important",
    "policy_version",
)  # fmt: skip
_MESSAGE_COLUMNS = [_MESSAGES.c[name] for name in (*MESSAGE_FIELDS, "about_id")]


def message_record(row: Mapping[Any, Any]) -> bytes:
    """A message row as the log hashes it."""
    fields = {name: row[name] for name in MESSAGE_FIELDS}
    fields["received_at"] = timestamp(row["received_at"])
    if row["about_id"] is not None:  # bound only where set: earlier leaves stay as they were
        fields["about_id"] = row["about_id"]
    return record_bytes("message", fields)


def hold_record(row: Mapping[Any, Any]) -> bytes:
    """A legal hold as placed."""
    return record_bytes(
        "hold",
        {"id": row["id"], "scope": row["scope"], "value": row["value"],
         "reason": row["reason"], "placed_at": timestamp(row["placed_at"])},
    )  # fmt: skip


def release_record(row: Mapping[Any, Any]) -> bytes:
    """A legal hold's release."""
    released_at = row["released_at"]
    return record_bytes(
        "release",
        {"id": row["id"], "released_at": timestamp(released_at) if released_at else None,
         "release_reason": row["release_reason"]},
    )  # fmt: skip


def purge_record(row: Mapping[Any, Any]) -> bytes:
    """A batch of purged records: which, and when."""
    return record_bytes(
        "purge",
        {"id": row["id"], "purged_at": timestamp(row["purged_at"]),
         "message_ids": row["message_ids"]},
    )  # fmt: skip


def access_record(row: Mapping[Any, Any]) -> bytes:
    """One request of an auditor: who, when, what was asked, which records it showed."""
    return record_bytes(
        "access",
        {"id": row["id"], "auditor": row["auditor"], "at": timestamp(row["at"]),
         "action": row["action"], "query": row["query"], "records": row["records"]},
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Source:
    """Records of one kind that wait for their leaf: those whose `place` column is NULL."""

    kind: str
    table: Table
    place: str
    record: Callable[[Mapping[Any, Any]], bytes]
    ready: ColumnElement[bool] | None = None  # besides having no place yet

    def waiting(self) -> ColumnElement[bool]:
        unplaced = self.table.c[self.place].is_(None)
        return unplaced if self.ready is None else and_(unplaced, self.ready)


_RELEASED = _HOLDS.c.released_at.is_not(None)
_SOURCES = (
    _Source("message", _MESSAGES, "log_seq", message_record),
    _Source("hold", _HOLDS, "log_seq", hold_record),
    _Source("release", _HOLDS, "release_log_seq", release_record, _RELEASED),
    _Source("purge", _PURGES, "log_seq", purge_record),
    _Source("access", _ACCESS, "log_seq", access_record),
)


def append_committed(
    connection: Connection, now: datetime, limit: int = APPEND_BATCH
) -> tuple[Frontier, int]:
    """Appends up to `limit` committed records not yet in the log (messages, then holds,
    releases, purges and auditors' requests); the log's new right edge, and how many were
    appended. Holds the head row until the transaction ends."""
    head = connection.execute(
        select(_HEAD.c.tree_size, _HEAD.c.frontier).where(_HEAD.c.id == HEAD_ID).with_for_update()
    ).one()
    frontier = Frontier.from_bytes(head.tree_size, head.frontier)
    appended = 0
    for source in _SOURCES:
        if appended < limit:
            appended += _append(connection, source, frontier, now, limit - appended)
    if appended:
        connection.execute(
            update(_HEAD)
            .where(_HEAD.c.id == HEAD_ID)
            .values(tree_size=frontier.size, frontier=frontier.to_bytes())
        )
    return frontier, appended


def _append(
    connection: Connection, source: _Source, frontier: Frontier, now: datetime, limit: int
) -> int:
    table = source.table
    rows = (
        connection.execute(select(table).where(source.waiting()).order_by(table.c.id).limit(limit))
        .mappings()
        .all()
    )
    if not rows:
        return 0
    leaves, places = [], []
    for row in rows:
        seq = frontier.size
        leaf = leaf_hash(source.record(row))
        frontier.append(leaf)
        leaves.append(
            {"seq": seq, "kind": source.kind, "ref_id": row["id"], "leaf_hash": leaf.hex(),
             "appended_at": now}
        )  # fmt: skip
        places.append({"b_id": row["id"], "b_seq": seq})
    connection.execute(insert(_LOG), leaves)
    connection.execute(
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .values({source.place: bindparam("b_seq")}),
        places,
    )
    return len(rows)


def head(connection: Connection) -> Frontier:
    row = connection.execute(
        select(_HEAD.c.tree_size, _HEAD.c.frontier).where(_HEAD.c.id == HEAD_ID)
    ).one()
    return Frontier.from_bytes(row.tree_size, row.frontier)


def unlogged(connection: Connection) -> int:
    """Committed records waiting for their place in the log."""
    return sum(
        int(
            connection.execute(
                select(func.count()).select_from(source.table).where(source.waiting())
            ).scalar_one()
        )
        for source in _SOURCES
    )


def add_checkpoint(connection: Connection, checkpoint: SignedCheckpoint) -> None:
    connection.execute(
        insert(_CHECKPOINTS).values(
            tree_size=checkpoint.tree_size,
            root_hash=checkpoint.root_hash.hex(),
            signed_at=checkpoint.signed_at,
            key_id=checkpoint.key_id,
            signature=base64.b64encode(checkpoint.signature).decode("ascii"),
        )
    )


def latest_checkpoint(connection: Connection) -> SignedCheckpoint | None:
    row = connection.execute(
        select(_CHECKPOINTS).order_by(_CHECKPOINTS.c.tree_size.desc()).limit(1)
    ).first()
    return _checkpoint(row._mapping) if row else None


def checkpoints(connection: Connection) -> Iterator[SignedCheckpoint]:
    """Every checkpoint, smallest tree first."""
    result = connection.execute(select(_CHECKPOINTS).order_by(_CHECKPOINTS.c.tree_size))
    for row in result.mappings():
        yield _checkpoint(row)


def _checkpoint(row: Mapping[Any, Any]) -> SignedCheckpoint:
    return SignedCheckpoint(
        tree_size=row["tree_size"],
        root_hash=bytes.fromhex(row["root_hash"]),
        signed_at=row["signed_at"],
        key_id=row["key_id"],
        signature=base64.b64decode(row["signature"]),
    )


@dataclass(frozen=True, slots=True)
class LoggedRecord:
    """A leaf as stored, with the record it stands for as it is now (None: it is gone)."""

    seq: int
    kind: str
    ref_id: int
    leaf_hash: bytes
    message: Mapping[Any, Any] | None
    log_seq: int | None  # the place the message itself names


def logged_records(connection: Connection, chunk: int = 5000) -> Iterator[LoggedRecord]:
    """The log in order, each leaf with its record, read `chunk` leaves at a time."""
    joined = _LOG.outerjoin(
        _MESSAGES, and_(_LOG.c.kind == "message", _MESSAGES.c.id == _LOG.c.ref_id)
    )
    after = -1
    while True:
        rows = (
            connection.execute(
                select(
                    _LOG.c.seq,
                    _LOG.c.kind,
                    _LOG.c.ref_id,
                    _LOG.c.leaf_hash,
                    _MESSAGES.c.log_seq,
                    _MESSAGES.c.purged_at,
                    *_MESSAGE_COLUMNS,
                )
                .select_from(joined)
                .where(_LOG.c.seq > after)
                .order_by(_LOG.c.seq)
                .limit(chunk)
            )
            .mappings()
            .all()
        )
        for row in rows:
            present = row["id"] is not None
            yield LoggedRecord(
                seq=row["seq"],
                kind=row["kind"],
                ref_id=row["ref_id"],
                leaf_hash=bytes.fromhex(row["leaf_hash"]),
                message=row if present else None,
                log_seq=row["log_seq"],
            )
        if len(rows) < chunk:
            return
        after = rows[-1]["seq"]


def leaf_hashes(connection: Connection, size: int) -> list[bytes]:
    """The first `size` leaf hashes, in order."""
    rows = connection.execute(
        select(_LOG.c.leaf_hash).where(_LOG.c.seq < size).order_by(_LOG.c.seq)
    ).scalars()
    return [bytes.fromhex(value) for value in rows]


def logged_messages(connection: Connection, ids: Sequence[int], size: int) -> list[RowMapping]:
    """The messages of `ids` that are among the first `size` leaves and not purged: their
    fields and their place (log_seq), by id."""
    if not ids:
        return []
    return list(
        connection.execute(
            select(*_MESSAGE_COLUMNS, _MESSAGES.c.log_seq)
            .where(
                _MESSAGES.c.id.in_(ids),
                _MESSAGES.c.log_seq < size,
                _MESSAGES.c.purged_at.is_(None),
            )
            .order_by(_MESSAGES.c.id)
        )
        .mappings()
        .all()
    )


def other_records(connection: Connection) -> dict[tuple[str, int], bytes]:
    """The records of every hold, release and purge as the log hashes them, by kind and id
    (few: a batch of purged messages is one record)."""
    found: dict[tuple[str, int], bytes] = {}
    for source in _SOURCES[1:]:
        query = select(source.table)
        if source.ready is not None:
            query = query.where(source.ready)
        for row in connection.execute(query).mappings():
            found[(source.kind, row["id"])] = source.record(row)
    return found


def purged_message_ids(connection: Connection) -> set[int]:
    """Every message a purge batch names."""
    ids: set[int] = set()
    for listed in connection.execute(select(_PURGES.c.message_ids)).scalars():
        ids.update(json.loads(listed))
    return ids


@dataclass(frozen=True, slots=True)
class Access:
    """An auditor's request as the access log keeps it."""

    id: int
    auditor: str
    at: datetime
    action: str
    query: dict[str, Any]
    records: list[int]
    log_seq: int | None  # None until the checkpointer appends it


def record_access(
    connection: Connection,
    auditor: str,
    at: datetime,
    action: str,
    query: Mapping[str, Any],
    records: Sequence[int],
) -> None:
    """Keeps one auditor request; the checkpointer appends it to the log like a message."""
    connection.execute(
        insert(_ACCESS).values(
            auditor=auditor, at=at, action=action,
            query=json.dumps(dict(query), sort_keys=True, ensure_ascii=False),
            records=json.dumps(list(records)),
        )
    )  # fmt: skip


def accesses(connection: Connection, auditor: str | None = None, limit: int = 100) -> list[Access]:
    """The newest requests first, of one auditor or of all."""
    query = select(_ACCESS).order_by(_ACCESS.c.id.desc()).limit(limit)
    if auditor is not None:
        query = query.where(_ACCESS.c.auditor == auditor)
    return [
        Access(r["id"], r["auditor"], r["at"], r["action"], json.loads(r["query"]),
               json.loads(r["records"]), r["log_seq"])
        for r in connection.execute(query).mappings()
    ]  # fmt: skip
