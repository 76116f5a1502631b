"""The registry's change log: every change to who is who is recorded in the transaction
that makes it, so that each process's directory cache drops what it touched within a
second. On PostgreSQL the change is also announced (NOTIFY, delivered at commit, in commit
order) to every listening process; on SQLite, whose writers commit one at a time, the
processes read the log past the last change they saw."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, func, insert, select, text
from sqlalchemy.orm import Session

from gateway.storage.schema import RegistryChange, table_of

CHANNEL = "bsm_registry"  # the PostgreSQL notification channel
KEEP = timedelta(hours=1)  # how long the log keeps a change for processes polling it
RECORDED = "bsm_registry_changes"  # where a session keeps the changes it recorded

_CHANGES = table_of(RegistryChange)


@dataclass(frozen=True, slots=True)
class Change:
    """Who a change touched; None for both: anything may have changed (drop everything)."""

    seller_id: int | None = None
    buyer_id: int | None = None


EVERYTHING = Change()


def record(session: Session, now: datetime, change: Change) -> None:
    """Log a change in the caller's transaction (and announce it on PostgreSQL). The
    session keeps it too, for whoever announces it in this process after the commit."""
    session.info.setdefault(RECORDED, []).append(change)
    log(session.connection(), now, change)


def log(connection: Connection, now: datetime, change: Change) -> None:
    """Log a change in the caller's transaction, and announce it on PostgreSQL: every
    process's watcher (this one's too) drops what it touched."""
    connection.execute(
        insert(_CHANGES).values(
            changed_at=now, seller_id=change.seller_id, buyer_id=change.buyer_id
        )
    )
    if connection.dialect.name == "postgresql":
        payload = json.dumps([change.seller_id, change.buyer_id])
        connection.execute(
            text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": payload}
        )


def parse_notification(payload: str) -> Change:
    try:
        seller_id, buyer_id = json.loads(payload)
        return Change(seller_id, buyer_id)
    except (ValueError, TypeError):
        return EVERYTHING


def latest(connection: Connection) -> int:
    """The newest change's id (0 for none): where a fresh cache starts reading the log."""
    return int(connection.scalar(select(func.max(_CHANGES.c.id))) or 0)


def since(connection: Connection, last: int) -> list[tuple[int, Change]]:
    """The changes logged after `last`, oldest first."""
    rows = connection.execute(
        select(_CHANGES.c.id, _CHANGES.c.seller_id, _CHANGES.c.buyer_id)
        .where(_CHANGES.c.id > last)
        .order_by(_CHANGES.c.id)
    )
    return [(row.id, Change(row.seller_id, row.buyer_id)) for row in rows]


def prune(connection: Connection, now: datetime) -> None:
    """Forget changes every process has long read."""
    connection.execute(delete(_CHANGES).where(_CHANGES.c.changed_at < now - KEEP))
