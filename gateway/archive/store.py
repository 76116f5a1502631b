"""Writes archive records (and the queue rows that go with them) in the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import zstandard
from sqlalchemy import ColumnElement, bindparam, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from gateway.core.model import (
    ArchiveEntry,
    BounceContext,
    Direction,
    IntakeBatch,
    QuotaClaim,
    QuotaExceeded,
)
from gateway.db.models import Message, Outbound, Pair, QuotaUsage, Wait, table_of
from gateway.db.session import Database
from gateway.pipeline.dsn import header_block

_LEVEL = 3
# Core tables, not ORM entities: single-row inserts skip the unit-of-work machinery.
_MESSAGES = table_of(Message)
_OUTBOUND = table_of(Outbound)


def compress(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=_LEVEL).compress(data)


def decompress(blob: bytes) -> bytes:
    return zstandard.ZstdDecompressor().decompress(blob)


def add_entry(session: Session, entry: ArchiveEntry) -> int:
    """Archive one message; queue its delivery if it has one. Returns the message row id."""
    message_id: int = session.execute(
        insert(_MESSAGES)
        .values(
            pair_id=entry.pair_id,
            direction=entry.direction.value,
            session_id=entry.session_id,
            envelope_from=entry.envelope_from,
            recipient=entry.recipient,
            received_at=entry.received_at,
            verdict="accepted" if entry.accepted else "refused",
            smtp_reply=str(entry.reply),
            rule_hits=",".join(v.rule_id for v in entry.violations),
            gateway_message_id=entry.gateway_message_id,
            original_message_id=entry.original_message_id,
            raw_received=compress(entry.raw_received) if entry.raw_received is not None else None,
            raw_delivered=compress(entry.raw_delivered)
            if entry.raw_delivered is not None
            else None,
            size=len(entry.raw_received or entry.raw_delivered or b""),
            important=entry.important,
            policy_version=entry.policy_version,
            shadow_hits=",".join(v.rule_id for v in entry.shadowed),
        )
        .returning(_MESSAGES.c.id)
    ).scalar_one()
    if entry.delivery is not None:
        session.execute(
            insert(_OUTBOUND).values(
                message_id=message_id,
                envelope_from=entry.delivery.envelope_from,
                recipient=entry.delivery.recipient,
                token=entry.delivery.token,
                state="queued",
                attempts=0,
                queued_at=entry.received_at,
                next_attempt_at=entry.received_at,
            )
        )
    return message_id


def load_bounce_context(session: Session, which: ColumnElement[bool]) -> BounceContext | None:
    """The delivery selected by `which` (a condition on Outbound), as its sender knew it."""
    row = session.execute(
        select(
            Outbound.id,
            Outbound.state,
            Message.pair_id,
            Message.envelope_from,
            Message.recipient,
            Message.raw_received,
            Message.received_at,
        )
        .join(Message, Message.id == Outbound.message_id)
        .where(which)
    ).first()
    if row is None:
        return None
    raw = decompress(row.raw_received) if row.raw_received is not None else b""
    return BounceContext(
        outbound_id=row.id,
        state=row.state,
        pair_id=row.pair_id,
        original_sender=row.envelope_from,
        alias_written_to=row.recipient,
        original_headers=header_block(raw),
        received_at=row.received_at,
    )


_FINISH = (
    update(_OUTBOUND)
    .where(_OUTBOUND.c.id == bindparam("oid"))
    .values(state=bindparam("new_state"), finished_at=bindparam("at"), last_error=bindparam("why"))
)


def finish_deliveries(
    session: Session, finished: Sequence[tuple[int, str, datetime, str | None]]
) -> None:
    """Mark deliveries (outbound id, "delivered" | "failed", when, why) as done."""
    if finished:
        session.execute(
            _FINISH,
            [
                {"oid": oid, "new_state": state, "at": at, "why": why}
                for oid, state, at, why in finished
            ],
        )


class ArchiveIntake:
    """core.ports.Intake: one DATA command's records, committed together or not at all."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def commit(self, batch: IntakeBatch) -> list[int]:
        """Raises QuotaExceeded (and stores nothing) if a claim would pass its limit."""
        with self._db.transaction() as session:
            count_against_quota(session, batch.quota_claims)
            ids = [add_entry(session, entry) for entry in batch.entries]
            for entry, message_id in zip(batch.entries, ids, strict=True):
                if entry.accepted and entry.pair_id is not None:
                    track_waits(session, entry, message_id)
            if batch.failed_deliveries:
                at = batch.entries[0].received_at
                finish_deliveries(
                    session, [(oid, "failed", at, why) for oid, why in batch.failed_deliveries]
                )
        return ids


_QUOTA = table_of(QuotaUsage)
_WAITS = table_of(Wait)
_PAIRS = table_of(Pair)


def count_against_quota(session: Session, claims: Sequence[QuotaClaim]) -> None:
    """Raise each seller's count for the day, but never past its limit. The conditional
    upsert is atomic: concurrent sessions and processes queue on the row (PostgreSQL's row
    lock, SQLite's single writer) and each sees the count the previous one left."""
    exceeded = set()
    upsert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    for claim in claims:
        # One statement: the day's first message inserts the row; later ones update it,
        # only while the sum stays within the limit. No row back: the limit is reached.
        counted = upsert(_QUOTA).values(seller_id=claim.seller_id, day=claim.day, used=claim.count)
        raised = session.execute(
            counted.on_conflict_do_update(
                index_elements=[_QUOTA.c.seller_id, _QUOTA.c.day],
                set_={"used": _QUOTA.c.used + claim.count},
                where=_QUOTA.c.used + claim.count <= claim.limit,
            ).returning(_QUOTA.c.used)
        ).first()
        if raised is None or claim.count > claim.limit:
            exceeded.add(claim.seller_id)
    if exceeded:
        raise QuotaExceeded(exceeded)


def track_waits(session: Session, entry: ArchiveEntry, message_id: int) -> None:
    """A buyer's message opens a wait for the seller's answer unless one is open already;
    the seller's message in the pair closes the open one."""
    open_wait = (_WAITS.c.pair_id == entry.pair_id) & _WAITS.c.closed_at.is_(None)
    if entry.direction is Direction.SELLER_TO_BUYER:
        session.execute(
            update(_WAITS).where(open_wait).values(closed_at=entry.received_at, closed_by="reply")
        )
    elif (
        entry.direction is Direction.BUYER_TO_SELLER
        and session.execute(select(_WAITS.c.id).where(open_wait)).first() is None
    ):
        seller = select(_PAIRS.c.seller_id).where(_PAIRS.c.id == entry.pair_id)
        session.execute(
            insert(_WAITS).values(
                pair_id=entry.pair_id,
                seller_id=seller.scalar_subquery(),
                message_id=message_id,
                opened_at=entry.received_at,
            )
        )
