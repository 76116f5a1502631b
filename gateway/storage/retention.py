"""Retention (owner of legal_holds and archive_purges, and of the purge of messages and
bodies): a record may go two years after it was received unless a legal hold covers it, and
never while its delivery is queued or before it has its leaf in the archive log. A purge
batch is one transaction: the records it names lose their bytes and addresses together and
become tombstones of their leaves, the batch itself a record for the log. Killed in the
middle, nothing is half-done; run again, it goes on where it stopped."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    ColumnElement,
    Connection,
    String,
    and_,
    cast,
    delete,
    exists,
    insert,
    or_,
    select,
    update,
)

from gateway.storage import imap, search
from gateway.storage.queue import QueueState
from gateway.storage.schema import (
    Body,
    Buyer,
    LegalHold,
    Message,
    Order,
    Outbound,
    Pair,
    Purge,
    table_of,
)

PURGE_BATCH = 100  # records per transaction: each holds the write lock ~20 ms
SCOPES = ("pair", "seller", "buyer", "order")

_HOLDS = table_of(LegalHold)
_PURGES = table_of(Purge)
_MESSAGES = table_of(Message)
_BODIES = table_of(Body)
_PAIRS = table_of(Pair)
_BUYERS = table_of(Buyer)
_ORDERS = table_of(Order)
_OUTBOUND = table_of(Outbound)


class HoldError(ValueError):
    """A hold request that cannot be carried out; the text says why."""


@dataclass(frozen=True, slots=True)
class Hold:
    id: int
    scope: str
    value: str
    reason: str
    placed_at: datetime
    released_at: datetime | None
    release_reason: str | None


def place_hold(connection: Connection, scope: str, value: str, reason: str, now: datetime) -> int:
    if scope not in SCOPES:
        raise HoldError(f"a hold covers a {', a '.join(SCOPES)}, not a {scope!r}")
    if not reason.strip():
        raise HoldError("a hold needs its reason")
    value = value.strip().lower() if scope == "buyer" else value.strip()
    if scope in ("pair", "seller") and not value.isdigit():
        raise HoldError(f"a {scope} is named by its id, not {value!r}")
    hold_id = connection.execute(
        insert(_HOLDS)
        .values(scope=scope, value=value, reason=reason.strip(), placed_at=now)
        .returning(_HOLDS.c.id)
    ).scalar_one()
    return int(hold_id)


def release_hold(connection: Connection, hold_id: int, reason: str, now: datetime) -> None:
    if not reason.strip():
        raise HoldError("a release needs its reason")
    released = connection.execute(
        update(_HOLDS)
        .where(_HOLDS.c.id == hold_id, _HOLDS.c.released_at.is_(None))
        .values(released_at=now, release_reason=reason.strip())
    ).rowcount
    if not released:
        raise HoldError(f"hold {hold_id}: no such hold in force")


def holds(connection: Connection, include_released: bool = False) -> list[Hold]:
    query = select(_HOLDS).order_by(_HOLDS.c.id)
    if not include_released:
        query = query.where(_HOLDS.c.released_at.is_(None))
    return [
        Hold(
            row["id"],
            row["scope"],
            row["value"],
            row["reason"],
            row["placed_at"],
            row["released_at"],
            row["release_reason"],
        )
        for row in connection.execute(query).mappings()
    ]


def _held() -> ColumnElement[bool]:
    """A hold in force covers the message (of `_MESSAGES`, joined to its pair and buyer)."""
    as_text = String(40)
    return exists().where(
        _HOLDS.c.released_at.is_(None),
        or_(
            and_(_HOLDS.c.scope == "pair", _HOLDS.c.value == cast(_MESSAGES.c.pair_id, as_text)),
            and_(_HOLDS.c.scope == "seller", _HOLDS.c.value == cast(_PAIRS.c.seller_id, as_text)),
            and_(_HOLDS.c.scope == "buyer", _HOLDS.c.value == _BUYERS.c.address),
            and_(
                _HOLDS.c.scope == "order",
                exists().where(
                    _ORDERS.c.ref == _HOLDS.c.value, _ORDERS.c.pair_id == _MESSAGES.c.pair_id
                ),
            ),
        ),
    )


def purgeable(
    connection: Connection, received_before: datetime, limit: int | None = None, after: int = 0
) -> list[int]:
    """Records past their retention that may go now, oldest id first; those after the id
    `after` (where the previous batch ended)."""
    queued = exists().where(
        _OUTBOUND.c.message_id == _MESSAGES.c.id, _OUTBOUND.c.state == QueueState.QUEUED
    )
    joined = _MESSAGES.outerjoin(_PAIRS, _PAIRS.c.id == _MESSAGES.c.pair_id).outerjoin(
        _BUYERS, _BUYERS.c.id == _PAIRS.c.buyer_id
    )
    query = (
        select(_MESSAGES.c.id)
        .select_from(joined)
        .where(
            _MESSAGES.c.id > after,
            _MESSAGES.c.received_at < received_before,
            _MESSAGES.c.purged_at.is_(None),
            _MESSAGES.c.log_seq.is_not(None),
            ~queued,
            ~_held(),
        )
        .order_by(_MESSAGES.c.id)
        .limit(limit)
    )
    return [int(i) for i in connection.execute(query).scalars()]


def purge(connection: Connection, ids: Sequence[int], now: datetime) -> int:
    """Purges the records of `ids` in the caller's transaction: their bodies no other record
    needs are deleted, their addresses blanked, their words dropped from the search index,
    and the batch recorded. Bodies deleted."""
    if not ids:
        return 0
    keys: set[str] = set()
    for received, delivered in connection.execute(
        select(_MESSAGES.c.received_sha256, _MESSAGES.c.delivered_sha256).where(
            _MESSAGES.c.id.in_(ids)
        )
    ):
        keys.update(k for k in (received, delivered) if k)
    connection.execute(insert(_PURGES).values(purged_at=now, message_ids=json.dumps(sorted(ids))))
    search.forget(connection, ids)
    imap.forget(connection, ids)
    connection.execute(
        update(_MESSAGES)
        .where(_MESSAGES.c.id.in_(ids))
        .values(
            purged_at=now,
            envelope_from="",
            recipient="",
            received_sha256=None,
            delivered_sha256=None,
        )
    )
    # Two look-ups by index rather than one OR, which no index serves.
    named_as_received = exists().where(_MESSAGES.c.received_sha256 == _BODIES.c.sha256)
    named_as_delivered = exists().where(_MESSAGES.c.delivered_sha256 == _BODIES.c.sha256)
    deleted = connection.execute(
        delete(_BODIES).where(_BODIES.c.sha256.in_(keys), ~named_as_received, ~named_as_delivered)
    ).rowcount
    return int(deleted)
