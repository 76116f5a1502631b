"""core.ports.DeliveryQueue on the database: claim with SKIP LOCKED, record each outcome."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update

from gateway.archive.store import add_entry, decompress, load_bounce_context, mark_failed
from gateway.core.model import ArchiveEntry, BounceContext, Direction
from gateway.core.ports import ClaimedDelivery
from gateway.db.models import Message, Outbound
from gateway.db.session import Database


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
        with self._db.transaction() as session:
            session.execute(
                update(Outbound)
                .where(Outbound.id == outbound_id)
                .values(state="delivered", finished_at=now)
            )

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
            mark_failed(session, outbound_id, now, error)
            if notice is not None:
                add_entry(session, notice)

    def bounce_context(self, outbound_id: int) -> BounceContext:
        with self._db.transaction() as session:
            context = load_bounce_context(session, Outbound.id == outbound_id)
        assert context is not None, "a claimed delivery has its message"
        return context
