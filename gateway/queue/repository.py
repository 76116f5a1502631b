"""core.ports.DeliveryQueue on the database: claim with SKIP LOCKED, record each outcome."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select, update

from gateway.archive.store import add_entry, decompress, finish_deliveries, load_bounce_context
from gateway.core.model import BounceContext, Direction
from gateway.core.ports import ClaimedDelivery, Settlement
from gateway.db.models import Message, Outbound, table_of
from gateway.db.session import Database

_OUTBOUND = table_of(Outbound)

_RETRY = (
    update(_OUTBOUND)
    .where(_OUTBOUND.c.id == bindparam("oid"))
    .values(next_attempt_at=bindparam("at"), last_error=bindparam("why"))
)

# Built once: the due rows nobody else holds, pushed a lease into the future and returned.
_CLAIM = (
    update(_OUTBOUND)
    .where(
        _OUTBOUND.c.id.in_(
            select(_OUTBOUND.c.id)
            .where(
                _OUTBOUND.c.state == "queued",
                _OUTBOUND.c.next_attempt_at <= bindparam("now"),
            )
            .order_by(_OUTBOUND.c.next_attempt_at)
            .limit(bindparam("limit"))
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
    )
    .values(next_attempt_at=bindparam("until"), attempts=_OUTBOUND.c.attempts + 1)
    .returning(
        _OUTBOUND.c.id,
        _OUTBOUND.c.message_id,
        _OUTBOUND.c.envelope_from,
        _OUTBOUND.c.recipient,
        _OUTBOUND.c.token,
        _OUTBOUND.c.attempts,
        _OUTBOUND.c.queued_at,
    )
)


class DatabaseQueue:
    def __init__(self, database: Database) -> None:
        self._db = database

    def claim(self, limit: int, now: datetime, lease_seconds: float) -> list[ClaimedDelivery]:
        """Take up to `limit` due rows for this worker. A claimed row stays invisible for the
        lease; if the worker dies, it comes back when the lease runs out."""
        with self._db.transaction() as session:
            claimed = session.execute(
                _CLAIM,
                {"now": now, "limit": limit, "until": now + timedelta(seconds=lease_seconds)},
            ).all()
            if not claimed:
                return []
            messages = {
                row.id: row
                for row in session.execute(
                    select(Message.id, Message.raw_delivered, Message.direction).where(
                        Message.id.in_([row.message_id for row in claimed])
                    )
                )
            }
        return [
            ClaimedDelivery(
                outbound_id=row.id,
                message_id=row.message_id,
                envelope_from=row.envelope_from,
                recipient=row.recipient,
                token=row.token,
                content=decompress(messages[row.message_id].raw_delivered),
                attempts=row.attempts,
                queued_at=row.queued_at,
                is_notice=messages[row.message_id].direction == Direction.NOTICE,
            )
            for row in sorted(claimed, key=lambda row: row.id)
        ]

    def settle(self, settlements: Sequence[Settlement]) -> None:
        retries = [
            {"oid": s.outbound_id, "at": s.when, "why": s.error}
            for s in settlements
            if s.state == "queued"
        ]
        finished = [
            (s.outbound_id, s.state, s.when, s.error) for s in settlements if s.state != "queued"
        ]
        with self._db.transaction() as session:
            if retries:
                session.execute(_RETRY, retries)
            finish_deliveries(session, finished)
            for item in settlements:
                if item.notice is not None:
                    add_entry(session, item.notice)

    def bounce_context(self, outbound_id: int) -> BounceContext:
        with self._db.reading() as session:
            context = load_bounce_context(session, Outbound.id == outbound_id)
        assert context is not None, "a claimed delivery has its message"
        return context
