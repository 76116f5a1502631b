"""The owner of quota_usage: how many messages each seller sent to buyers per UTC day."""

from __future__ import annotations

from sqlalchemy import Connection, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from gateway.core.model import QuotaClaim
from gateway.storage.schema import QuotaUsage, table_of

_QUOTA = table_of(QuotaUsage)


def count(connection: Connection, claim: QuotaClaim) -> int | None:
    """Raise the seller's count for the day by `claim.count`, but never past its limit: the
    new count, or None (and nothing counted) if the limit would be passed.

    One statement: the day's first message inserts the row; later ones update it, only while
    the sum stays within the limit. The conditional upsert is atomic: concurrent processes
    queue on the row (PostgreSQL's row lock, SQLite's single writer) and each sees the count
    the previous one left."""
    if claim.count > claim.limit:
        return None
    upsert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    counted = upsert(_QUOTA).values(seller_id=claim.seller_id, day=claim.day, used=claim.count)
    raised = connection.execute(
        counted.on_conflict_do_update(
            index_elements=[_QUOTA.c.seller_id, _QUOTA.c.day],
            set_={"used": _QUOTA.c.used + claim.count},
            where=_QUOTA.c.used + claim.count <= claim.limit,
        ).returning(_QUOTA.c.used)
    ).first()
    return None if raised is None else int(raised[0])


def used(connection: Connection, seller_id: int, day: object) -> int:
    """Messages the seller has sent to buyers on `day` so far."""
    found = connection.scalar(
        select(_QUOTA.c.used).where(_QUOTA.c.seller_id == seller_id, _QUOTA.c.day == day)
    )
    return int(found or 0)
