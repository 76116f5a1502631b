"""The owner of waits: a buyer's message waits for the seller's answer (SPEC, Response time)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, select, update
from sqlalchemy.orm import Session

from gateway.core.model import ArchiveEntry, Direction
from gateway.core.response_times import NO_RESPONSE_NEEDED
from gateway.storage import sql
from gateway.storage.schema import Wait
from gateway.storage.sql import Statement

_CLOSE = Statement(
    """UPDATE waits SET closed_at = :at, closed_by = 'reply'
    WHERE pair_id = :pair_id AND closed_at IS NULL"""
)
_OPEN = Statement(
    """INSERT INTO waits (pair_id, seller_id, message_id, opened_at)
    SELECT :pair_id, pairs.seller_id, :message_id, :at FROM pairs
    WHERE pairs.id = :pair_id AND NOT EXISTS
        (SELECT 1 FROM waits WHERE waits.pair_id = :pair_id AND waits.closed_at IS NULL)"""
)


def track(connection: Connection, entries: Sequence[tuple[ArchiveEntry, int]]) -> None:
    """For accepted messages between parties (entry, record id), in order: a buyer's message
    opens a wait for the seller unless one is open already; the seller's message in the
    pair closes the open one."""
    # Runs of the same statement go out as one batch, in order: a wait opened and closed in
    # one commit ends closed, as it would message by message.
    runs: list[tuple[Statement, list[dict[str, object]]]] = []
    for entry, message_id in entries:
        if not entry.accepted or entry.pair_id is None:
            continue
        if entry.direction is Direction.SELLER_TO_BUYER:
            statement, row = _CLOSE, {"pair_id": entry.pair_id, "at": entry.received_at}
        elif entry.direction is Direction.BUYER_TO_SELLER:
            statement = _OPEN
            row = {"pair_id": entry.pair_id, "message_id": message_id, "at": entry.received_at}
        else:
            continue
        if runs and runs[-1][0] is statement:
            runs[-1][1].append(row)
        else:
            runs.append((statement, [row]))
    for statement, rows in runs:
        sql.execute_many(connection, statement, rows)


def close_unanswered(session: Session, message_id: int, now: datetime) -> bool:
    """Close the wait the buyer message `message_id` opened, without a reply (it needs
    none); False if it opened none."""
    wait = session.scalar(select(Wait).where(Wait.message_id == message_id))
    if wait is None:
        return False
    if wait.closed_at is None:
        session.execute(
            update(Wait)
            .where(Wait.id == wait.id)
            .values(closed_at=now, closed_by=NO_RESPONSE_NEEDED)
        )
    return True
