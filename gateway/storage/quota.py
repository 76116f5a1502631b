"""The owner of quota_usage: how many messages each seller sent to buyers per UTC day."""

from __future__ import annotations

from sqlalchemy import Connection, select

from gateway.core.model import QuotaClaim
from gateway.storage import sql
from gateway.storage.schema import QuotaUsage, table_of
from gateway.storage.sql import Statement

_QUOTA = table_of(QuotaUsage)


_COUNT = Statement(
    """INSERT INTO quota_usage (seller_id, day, used) VALUES (:seller_id, :day, :count)
    ON CONFLICT (seller_id, day) DO UPDATE SET used = quota_usage.used + :count
    WHERE quota_usage.used + :count <= :limit
    RETURNING used"""
)


def count(connection: Connection, claim: QuotaClaim) -> int | None:
    """Raise the seller's count for the day by `claim.count`, but never past its limit: the
    new count, or None (and nothing counted) if the limit would be passed.

    One statement: the day's first message inserts the row; later ones update it, only while
    the sum stays within the limit. The conditional upsert is atomic: concurrent processes
    queue on the row (PostgreSQL's row lock, SQLite's single writer) and each sees the count
    the previous one left."""
    if claim.count > claim.limit:
        return None
    raised = sql.execute(
        connection,
        _COUNT,
        {
            "seller_id": claim.seller_id,
            "day": claim.day,
            "count": claim.count,
            "limit": claim.limit,
        },
    )
    return int(raised[0][0]) if raised else None


def used(connection: Connection, seller_id: int, day: object) -> int:
    """Messages the seller has sent to buyers on `day` so far."""
    found = connection.scalar(
        select(_QUOTA.c.used).where(_QUOTA.c.seller_id == seller_id, _QUOTA.c.day == day)
    )
    return int(found or 0)
