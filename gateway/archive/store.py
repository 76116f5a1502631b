"""Writes archive records (and the queue rows that go with them) in the caller's transaction."""

from __future__ import annotations

import zstandard
from sqlalchemy.orm import Session

from gateway.core.model import ArchiveEntry, IntakeBatch
from gateway.db.models import Message, Outbound
from gateway.db.session import Database

_LEVEL = 3


def compress(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=_LEVEL).compress(data)


def decompress(blob: bytes) -> bytes:
    return zstandard.ZstdDecompressor().decompress(blob)


def add_entry(session: Session, entry: ArchiveEntry) -> int:
    """Archive one message; queue its delivery if it has one. Returns the message row id."""
    message = Message(
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
        raw_delivered=compress(entry.raw_delivered) if entry.raw_delivered is not None else None,
        size=len(entry.raw_received or entry.raw_delivered or b""),
    )
    session.add(message)
    session.flush()
    if entry.delivery is not None:
        session.add(
            Outbound(
                message_id=message.id,
                envelope_from=entry.delivery.envelope_from,
                recipient=entry.delivery.recipient,
                token=entry.delivery.token,
                state="queued",
                attempts=0,
                queued_at=entry.received_at,
                next_attempt_at=entry.received_at,
            )
        )
    return message.id


class ArchiveIntake:
    """core.ports.Intake: one DATA command's records, committed together or not at all."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def commit(self, batch: IntakeBatch) -> list[int]:
        with self._db.transaction() as session:
            ids = [add_entry(session, entry) for entry in batch.entries]
        return ids
