"""The archive's owner: message records (messages) and their bytes (bodies), written in the
caller's transaction and read back for the queue, for bounces and for auditors.

Bytes are content-addressed: a body is stored once, under the SHA-256 of its raw bytes,
however many records name it (a message to several aliases is one body as received).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import zstandard
from sqlalchemy import ColumnElement, Connection, select

from gateway.core.model import ArchiveEntry, BounceContext
from gateway.pipeline.dsn import header_block
from gateway.storage import sql
from gateway.storage.schema import Body, Message, Order, Outbound, table_of
from gateway.storage.sql import Statement

_LEVEL = 3
_MESSAGES = table_of(Message)
_BODIES = table_of(Body)
_ORDERS = table_of(Order)


def body_key(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def compress(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=_LEVEL).compress(data)


def decompress(blob: bytes) -> bytes:
    return zstandard.ZstdDecompressor().decompress(blob)


_INSERT_BODY = Statement(
    """INSERT INTO bodies (sha256, size, data) VALUES (:sha256, :size, :data)
    ON CONFLICT (sha256) DO NOTHING"""
)
_RECORD_COLUMNS = (
    "pair_id", "direction", "session_id", "envelope_from", "recipient", "received_at",
    "verdict", "smtp_reply", "rule_hits", "gateway_message_id", "original_message_id",
    "received_sha256", "delivered_sha256", "size", "important", "policy_version",
    "shadow_hits", "about_id",
)  # fmt: skip
_INSERT_RECORD = Statement(
    f"INSERT INTO messages ({', '.join(_RECORD_COLUMNS)}) "  # noqa: S608 (fixed column names)
    f"VALUES ({', '.join(':' + c for c in _RECORD_COLUMNS)}) RETURNING id"
)


def store_bodies(connection: Connection, datas: Iterable[bytes]) -> dict[bytes, str]:
    """Each distinct body once (those already stored are left as they are); their keys."""
    keys: dict[bytes, str] = {}
    for data in datas:
        if data not in keys:
            keys[data] = body_key(data)
    sql.execute_many(
        connection,
        _INSERT_BODY,
        [{"sha256": key, "size": len(data), "data": compress(data)} for data, key in keys.items()],
    )
    return keys


def add_records(connection: Connection, entries: Sequence[ArchiveEntry]) -> list[int]:
    """Archive the entries (their bytes in bodies); their record ids, in order."""
    if not entries:
        return []
    keys = store_bodies(
        connection,
        (raw for e in entries for raw in (e.raw_received, e.raw_delivered) if raw is not None),
    )
    rows = [
        {
            "pair_id": entry.pair_id,
            "direction": entry.direction.value,
            "session_id": entry.session_id,
            "envelope_from": entry.envelope_from,
            "recipient": entry.recipient,
            "received_at": entry.received_at,
            "verdict": "accepted" if entry.accepted else "refused",
            "smtp_reply": str(entry.reply),
            "rule_hits": ",".join(v.rule_id for v in entry.violations),
            "gateway_message_id": entry.gateway_message_id,
            "original_message_id": entry.original_message_id,
            "received_sha256": keys[entry.raw_received] if entry.raw_received else None,
            "delivered_sha256": keys[entry.raw_delivered] if entry.raw_delivered else None,
            "size": len(entry.raw_received or entry.raw_delivered or b""),
            "important": entry.important,
            "policy_version": entry.policy_version,
            "shadow_hits": ",".join(v.rule_id for v in entry.shadowed),
            "about_id": entry.about_id,
        }
        for entry in entries
    ]
    return sql.insert_ids(connection, _INSERT_RECORD, rows)


def bodies(connection: Connection, keys: Iterable[str]) -> dict[str, bytes]:
    """The raw bytes of the given bodies."""
    wanted = list(set(keys))
    found = connection.execute(
        select(_BODIES.c.sha256, _BODIES.c.data).where(_BODIES.c.sha256.in_(wanted))
    )
    return {row.sha256: decompress(row.data) for row in found}


def stored_bodies(connection: Connection, chunk: int = 1000) -> Iterator[tuple[str, bytes]]:
    """Every stored body, its key and its bytes, in key order, `chunk` at a time."""
    after = ""
    while True:
        rows = connection.execute(
            select(_BODIES.c.sha256, _BODIES.c.data)
            .where(_BODIES.c.sha256 > after)
            .order_by(_BODIES.c.sha256)
            .limit(chunk)
        ).all()
        for key, blob in rows:
            yield key, decompress(blob)
        if len(rows) < chunk:
            return
        after = rows[-1][0]


def message_ids(
    connection: Connection,
    *,
    pair_id: int | None = None,
    order_ref: str | None = None,
    ids: Sequence[int] = (),
) -> list[int]:
    """The archive records of a pair, of the pair of an order, or of the given ids."""
    query = select(_MESSAGES.c.id).order_by(_MESSAGES.c.id)
    if pair_id is not None:
        query = query.where(_MESSAGES.c.pair_id == pair_id)
    elif order_ref is not None:
        pair = select(_ORDERS.c.pair_id).where(_ORDERS.c.ref == order_ref).scalar_subquery()
        query = query.where(_MESSAGES.c.pair_id == pair)
    else:
        query = query.where(_MESSAGES.c.id.in_(list(ids)))
    return list(connection.execute(query).scalars())


def missing_bodies(connection: Connection) -> list[tuple[int, str]]:
    """Messages that name bytes no longer stored: (message id, which), a few at most."""
    found = []
    for column in ("received_sha256", "delivered_sha256"):
        key = _MESSAGES.c[column]
        rows = connection.execute(
            select(_MESSAGES.c.id)
            .select_from(_MESSAGES.outerjoin(_BODIES, _BODIES.c.sha256 == key))
            .where(key.is_not(None), _BODIES.c.sha256.is_(None))
            .limit(10)
        ).scalars()
        found += [(message_id, column.removesuffix("_sha256")) for message_id in rows]
    return found


@dataclass(frozen=True, slots=True)
class ArchivedMessage:
    """One archive record as read back, with its bytes."""

    id: int
    pair_id: int | None
    direction: str
    session_id: str | None
    envelope_from: str
    recipient: str
    received_at: datetime
    verdict: str
    smtp_reply: str
    rule_hits: str
    shadow_hits: str
    gateway_message_id: str
    original_message_id: str | None
    raw_received: bytes | None
    raw_delivered: bytes | None
    size: int
    important: bool
    policy_version: str
    log_seq: int | None = None  # its leaf; None until the checkpointer appends it
    purged_at: datetime | None = None
    about_id: int | None = None  # a bounce's or a DSN's: the record it reports on


def read_records(
    connection: Connection, which: ColumnElement[bool] | None = None
) -> list[ArchivedMessage]:
    """The records selected by `which` (a condition on Message; all if None), oldest first."""
    received, delivered = _BODIES.alias("received_body"), _BODIES.alias("delivered_body")
    columns = [c for c in _MESSAGES.c if c.name not in ("received_sha256", "delivered_sha256")]
    query = (
        select(*columns, received.c.data.label("received"), delivered.c.data.label("delivered"))
        .outerjoin(received, received.c.sha256 == _MESSAGES.c.received_sha256)
        .outerjoin(delivered, delivered.c.sha256 == _MESSAGES.c.delivered_sha256)
        .order_by(_MESSAGES.c.id)
    )
    if which is not None:
        query = query.where(which)
    records = []
    for row in connection.execute(query).mappings():
        values = dict(row)
        raw_received, raw_delivered = values.pop("received"), values.pop("delivered")
        records.append(
            ArchivedMessage(
                **values,
                raw_received=decompress(raw_received) if raw_received is not None else None,
                raw_delivered=decompress(raw_delivered) if raw_delivered is not None else None,
            )
        )
    return records


def load_bounce_context(connection: Connection, which: ColumnElement[bool]) -> BounceContext | None:
    """The delivery selected by `which` (a condition on Outbound), as its sender knew it."""
    row = connection.execute(
        select(
            Outbound.id,
            Outbound.message_id,
            Outbound.state,
            Message.pair_id,
            Outbound.recipient.label("delivered_to"),
            Message.envelope_from,
            Message.recipient,
            Message.received_sha256,
            Message.received_at,
        )
        .join(Message, Message.id == Outbound.message_id)
        .where(which)
    ).first()
    if row is None:
        return None
    raw = b""
    if row.received_sha256 is not None:
        raw = bodies(connection, [row.received_sha256]).get(row.received_sha256, b"")
    return BounceContext(
        outbound_id=row.id,
        record_id=row.message_id,
        state=row.state,
        pair_id=row.pair_id,
        original_sender=row.envelope_from,
        alias_written_to=row.recipient,
        delivered_to=row.delivered_to,
        original_headers=header_block(raw),
        received_at=row.received_at,
    )
