"""core.ports.DeliveryQueue on the database: claim with SKIP LOCKED, record each outcome."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update

from gateway.archive.store import add_entry, decompress
from gateway.core.model import ArchiveEntry, Direction
from gateway.core.ports import BounceContext, ClaimedDelivery
from gateway.db.models import Message, Outbound
from gateway.db.session import Database
from gateway.pipeline.dsn import header_block


class DatabaseQueue:
    def __init__(self, database: Database) -> None:
        self._db = database

    def claim(self, limit: int, now: datetime, lease_seconds: float) -> list[ClaimedDelivery]:
        """Take up to `limit` due rows for this worker. A claimed row stays invisible for the
        lease; if the worker dies, it comes back when the lease runs out."""
        with self._db.transaction() as session:
            due = (
                session.execute(
                    select(Outbound.id)
                    .where(Outbound.state == "queued", Outbound.next_attempt_at <= now)
                    .order_by(Outbound.next_attempt_at)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
                .scalars()
                .all()
            )
            if not due:
                return []
            session.execute(
                update(Outbound)
                .where(Outbound.id.in_(due))
                .values(
                    next_attempt_at=now + timedelta(seconds=lease_seconds),
                    attempts=Outbound.attempts + 1,
                )
            )
            rows = session.execute(
                select(Outbound, Message.raw_delivered, Message.direction)
                .join(Message, Message.id == Outbound.message_id)
                .where(Outbound.id.in_(due))
                .order_by(Outbound.next_attempt_at, Outbound.id)
            ).all()
            return [
                ClaimedDelivery(
                    outbound_id=row.Outbound.id,
                    message_id=row.Outbound.message_id,
                    envelope_from=row.Outbound.envelope_from,
                    recipient=row.Outbound.recipient,
                    token=row.Outbound.token,
                    content=decompress(row.raw_delivered),
                    attempts=row.Outbound.attempts,
                    queued_at=row.Outbound.queued_at,
                    is_notice=row.direction == Direction.NOTICE,
                )
                for row in rows
            ]

    def delivered(self, outbound_id: int, now: datetime) -> None:
        self._finish(outbound_id, "delivered", now, None)

    def retry_at(self, outbound_id: int, when: datetime, error: str) -> None:
        with self._db.transaction() as session:
            session.execute(
                update(Outbound)
                .where(Outbound.id == outbound_id)
                .values(next_attempt_at=when, last_error=error)
            )

    def failed(
        self, outbound_id: int, now: datetime, error: str, notice: ArchiveEntry | None
    ) -> None:
        with self._db.transaction() as session:
            session.execute(
                update(Outbound)
                .where(Outbound.id == outbound_id)
                .values(state="failed", finished_at=now, last_error=error)
            )
            if notice is not None:
                add_entry(session, notice)

    def _finish(self, outbound_id: int, state: str, now: datetime, error: str | None) -> None:
        with self._db.transaction() as session:
            session.execute(
                update(Outbound)
                .where(Outbound.id == outbound_id)
                .values(state=state, finished_at=now, last_error=error)
            )

    def bounce_context(self, outbound_id: int) -> BounceContext:
        with self._db.transaction() as session:
            row = session.execute(
                select(
                    Message.pair_id,
                    Message.envelope_from,
                    Message.recipient,
                    Message.raw_received,
                    Message.received_at,
                )
                .join(Outbound, Outbound.message_id == Message.id)
                .where(Outbound.id == outbound_id)
            ).one()
        raw = decompress(row.raw_received) if row.raw_received is not None else b""
        return BounceContext(
            pair_id=row.pair_id,
            original_sender=row.envelope_from,
            alias_written_to=row.recipient,
            original_headers=header_block(raw),
            received_at=row.received_at,
        )
