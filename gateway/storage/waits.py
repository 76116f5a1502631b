"""The owner of waits: a buyer's message waits for the seller's answer (SPEC, Response time)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection

from gateway.core.model import ArchiveEntry, Direction
from gateway.storage import sql
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
    for entry, message_id in entries:
        if not entry.accepted or entry.pair_id is None:
            continue
        if entry.direction is Direction.SELLER_TO_BUYER:
            sql.execute(connection, _CLOSE, {"pair_id": entry.pair_id, "at": entry.received_at})
        elif entry.direction is Direction.BUYER_TO_SELLER:
            row = {"pair_id": entry.pair_id, "message_id": message_id, "at": entry.received_at}
            sql.execute(connection, _OPEN, row)
