"""The owner of waits: a buyer's message waits for the seller's answer (SPEC, Response time)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, insert, select, update

from gateway.core.model import ArchiveEntry, Direction
from gateway.storage.schema import Pair, Wait, table_of

_WAITS = table_of(Wait)
_PAIRS = table_of(Pair)


def track(connection: Connection, entries: Sequence[tuple[ArchiveEntry, int]]) -> None:
    """For accepted messages between parties (entry, record id), in order: a buyer's message
    opens a wait for the seller unless one is open already; the seller's message in the
    pair closes the open one."""
    for entry, message_id in entries:
        if not entry.accepted or entry.pair_id is None:
            continue
        open_wait = (_WAITS.c.pair_id == entry.pair_id) & _WAITS.c.closed_at.is_(None)
        if entry.direction is Direction.SELLER_TO_BUYER:
            connection.execute(
                update(_WAITS)
                .where(open_wait)
                .values(closed_at=entry.received_at, closed_by="reply")
            )
        elif (
            entry.direction is Direction.BUYER_TO_SELLER
            and connection.execute(select(_WAITS.c.id).where(open_wait)).first() is None
        ):
            seller = select(_PAIRS.c.seller_id).where(_PAIRS.c.id == entry.pair_id)
            connection.execute(
                insert(_WAITS).values(
                    pair_id=entry.pair_id,
                    seller_id=seller.scalar_subquery(),
                    message_id=message_id,
                    opened_at=entry.received_at,
                )
            )
