"""Addresses that bounced hard (the suppressions family): each hard bounce is counted, and
`after` of them within `window` suppress the address for `pause`. The directory reads an
address's suppression with its pair; a change is announced so that every process's cache
drops the pairs it touched. Operators list and lift suppressions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, insert, select, update

from gateway.core.model import HardBounce, SuppressionRules
from gateway.storage import changes
from gateway.storage.changes import EVERYTHING, Change
from gateway.storage.schema import Pair, Suppression, table_of

_SUPPRESSIONS = table_of(Suppression)
_PAIRS = table_of(Pair)


@dataclass(frozen=True, slots=True)
class SuppressedAddress:
    address: str
    hard_bounces: int
    first_bounce_at: datetime
    last_bounce_at: datetime
    suppressed_until: datetime | None
    last_status: str


def record(
    connection: Connection, bounces: Sequence[HardBounce], rules: SuppressionRules
) -> list[str]:
    """Count the hard bounces; the addresses they suppressed (newly, or for longer)."""
    suppressed = []
    for bounce in bounces:
        row = connection.execute(
            select(_SUPPRESSIONS).where(_SUPPRESSIONS.c.address == bounce.address)
        ).first()
        if row is None or row.first_bounce_at < bounce.at - rules.window:
            count, first, until = 1, bounce.at, row.suppressed_until if row else None
        else:
            count, first, until = row.hard_bounces + 1, row.first_bounce_at, row.suppressed_until
        if count >= rules.after:
            until = bounce.at + rules.pause
            suppressed.append(bounce.address)
        values = {
            "hard_bounces": count,
            "first_bounce_at": first,
            "last_bounce_at": bounce.at,
            "suppressed_until": until,
            "last_status": bounce.status,
        }
        if row is None:
            connection.execute(insert(_SUPPRESSIONS).values(address=bounce.address, **values))
        else:
            connection.execute(
                update(_SUPPRESSIONS)
                .where(_SUPPRESSIONS.c.address == bounce.address)
                .values(**values)
            )
        if count >= rules.after and bounce.pair_id is not None:
            pair = connection.execute(
                select(_PAIRS.c.seller_id, _PAIRS.c.buyer_id).where(_PAIRS.c.id == bounce.pair_id)
            ).first()
            if pair is not None:
                changes.log(connection, bounce.at, Change(pair.seller_id, pair.buyer_id))
    return suppressed


def suppressed_until(connection: Connection, addresses: Iterable[str]) -> dict[str, datetime]:
    """Of `addresses`, those ever suppressed, and until when (past or not: the cache that
    keeps this compares it with the time of each message)."""
    rows = connection.execute(
        select(_SUPPRESSIONS.c.address, _SUPPRESSIONS.c.suppressed_until).where(
            _SUPPRESSIONS.c.address.in_(list(addresses)),
            _SUPPRESSIONS.c.suppressed_until.is_not(None),
        )
    )
    return {row.address: row.suppressed_until for row in rows}


def listing(connection: Connection, now: datetime, everything: bool) -> list[SuppressedAddress]:
    """The addresses suppressed at `now` (with `everything`: every address that bounced
    hard and is remembered), latest bounce first."""
    query = select(_SUPPRESSIONS).order_by(_SUPPRESSIONS.c.last_bounce_at.desc())
    if not everything:
        query = query.where(_SUPPRESSIONS.c.suppressed_until > now)
    return [
        SuppressedAddress(
            row.address,
            row.hard_bounces,
            row.first_bounce_at,
            row.last_bounce_at,
            row.suppressed_until,
            row.last_status,
        )
        for row in connection.execute(query)
    ]


def remove(connection: Connection, address: str, now: datetime) -> bool:
    """Lift an address's suppression and forget its bounces; whether there was any."""
    removed = connection.execute(delete(_SUPPRESSIONS).where(_SUPPRESSIONS.c.address == address))
    if removed.rowcount:
        changes.log(connection, now, EVERYTHING)  # rare: every cache starts afresh
    return bool(removed.rowcount)
