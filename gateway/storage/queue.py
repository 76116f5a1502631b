"""The queue's owner (outbound): a delivery is enqueued with its archive record, claimed
under a lease, retried, and finished; its states are QueueState.

A claimed row is one whose next_attempt_at lies a lease ahead: other workers and processes
leave it alone until then, and a crashed worker's rows come back when the lease runs out,
or sooner: a row names the process that claimed it (claimed_by), whose rows are given back
at once when it is known dead (storage/instances.py).
The intake enqueues its rows already leased to its own process, which delivers them from
memory: the database row is the durable record and the fallback, not the hand-off.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import Connection, bindparam, case, func, select, type_coerce, update

from gateway.core.model import (
    ArchiveEntry,
    BounceContext,
    Delivery,
    Direction,
    HardBounce,
    QueueLoad,
)
from gateway.storage import sql
from gateway.storage.archive import add_records, bodies, load_bounce_context
from gateway.storage.schema import Message, Outbound, UTCDateTime, table_of
from gateway.storage.sql import Statement


class QueueState(StrEnum):
    QUEUED = "queued"  # to be delivered: due at next_attempt_at (a lease, once claimed)
    DELIVERED = "delivered"
    FAILED = "failed"  # given up: a 5xx, a bounce received later, or too old


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """A delivery this process holds the lease of, with the bytes to send."""

    outbound_id: int
    message_id: int
    envelope_from: str
    recipient: str
    token: str
    content: bytes
    attempts: int  # including the one about to be made
    queued_at: datetime
    is_notice: bool


@dataclass(frozen=True, slots=True)
class Settlement:
    """What became of one claimed delivery, to be written back to its queue row."""

    outbound_id: int
    state: QueueState  # DELIVERED, QUEUED (retried at `when`), or FAILED
    when: datetime  # finished at, or the next attempt
    error: str | None = None
    notice: ArchiveEntry | None = None  # the DSN a failure sends, queued in the same commit
    hard_bounce: HardBounce | None = None  # a failure that counts against the address


_OUTBOUND = table_of(Outbound)
_MESSAGES = table_of(Message)

_ENQUEUE = Statement(
    """INSERT INTO outbound
        (message_id, envelope_from, recipient, token, state, attempts, queued_at,
         next_attempt_at, claimed_by)
    VALUES (:message_id, :envelope_from, :recipient, :token, :state, :attempts, :queued_at,
        :next_attempt_at, :claimed_by)
    RETURNING id"""
)

_RETRY = (
    update(_OUTBOUND)
    .where(_OUTBOUND.c.id == bindparam("oid"))
    .values(next_attempt_at=bindparam("at"), last_error=bindparam("why"), claimed_by=None)
)

_FINISH = (
    update(_OUTBOUND)
    .where(_OUTBOUND.c.id == bindparam("oid"))
    .values(state=bindparam("new_state"), finished_at=bindparam("at"), last_error=bindparam("why"))
)

# Built once: the due rows nobody else holds, with their messages' sizes; then those taken
# pushed a lease into the future and returned.
_DUE = (
    select(_OUTBOUND.c.id, _MESSAGES.c.size)
    .join(_MESSAGES, _MESSAGES.c.id == _OUTBOUND.c.message_id)
    .where(
        _OUTBOUND.c.state == QueueState.QUEUED.value,
        _OUTBOUND.c.next_attempt_at <= bindparam("now"),
    )
    .order_by(_OUTBOUND.c.next_attempt_at)
    .limit(bindparam("limit"))
    .with_for_update(of=_OUTBOUND, skip_locked=True)
)
_CLAIM = (
    update(_OUTBOUND)
    .where(
        _OUTBOUND.c.id.in_(bindparam("ids", expanding=True)),
        _OUTBOUND.c.state == QueueState.QUEUED.value,
    )
    .values(
        next_attempt_at=bindparam("until"),
        attempts=_OUTBOUND.c.attempts + 1,
        claimed_by=bindparam("holder"),
    )
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

_RELEASE = (
    update(_OUTBOUND)
    .where(
        _OUTBOUND.c.id == bindparam("oid"),
        _OUTBOUND.c.state == QueueState.QUEUED.value,
        _OUTBOUND.c.attempts > 0,
    )
    .values(next_attempt_at=bindparam("now"), attempts=_OUTBOUND.c.attempts - 1, claimed_by=None)
)


def enqueue(
    connection: Connection,
    deliveries: Sequence[tuple[int, Delivery, datetime, datetime | None]],
    holder: str | None = None,
) -> list[int]:
    """Queue rows for (record id, delivery, queued at, leased until); their outbound ids, in
    order. A row leased until a time is claimed by the caller already (its first attempt),
    the process `holder`."""
    if not deliveries:
        return []
    rows = [
        {
            "message_id": message_id,
            "envelope_from": delivery.envelope_from,
            "recipient": delivery.recipient,
            "token": delivery.token,
            "state": QueueState.QUEUED.value,
            "attempts": 0 if leased_until is None else 1,
            "queued_at": queued_at,
            "next_attempt_at": queued_at if leased_until is None else leased_until,
            "claimed_by": None if leased_until is None else holder,
        }
        for message_id, delivery, queued_at, leased_until in deliveries
    ]
    return sql.insert_ids(connection, _ENQUEUE, rows)


def archive_and_enqueue(
    connection: Connection,
    entries: Sequence[tuple[ArchiveEntry, datetime | None]],
    holder: str | None = None,
) -> tuple[list[int], dict[int, int]]:
    """Archive the entries and queue the deliveries of those that have one, leased to the
    process `holder` until the time given with each (None: due now, for any worker): the
    record ids, and the outbound id of each delivered record."""
    ids = add_records(connection, [entry for entry, _ in entries])
    delivered = [
        (message_id, entry.delivery, entry.received_at, leased_until)
        for (entry, leased_until), message_id in zip(entries, ids, strict=True)
        if entry.delivery is not None
    ]
    outbound_ids = enqueue(connection, delivered, holder)
    return ids, {row[0]: oid for row, oid in zip(delivered, outbound_ids, strict=True)}


def claim(
    connection: Connection,
    limit: int,
    now: datetime,
    lease_seconds: float,
    holder: str,
    max_bytes: int | None = None,
) -> list[ClaimedDelivery]:
    """Take up to `limit` due rows for the process `holder`, and no more than `max_bytes` of
    messages (at least one): their contents are loaded. A claimed row stays invisible for
    the lease; if its holder dies, it comes back when the lease runs out or the holder is
    known dead, whichever comes first."""
    due = connection.execute(_DUE, {"now": now, "limit": limit}).all()
    ids: list[int] = []
    size = 0
    for row in due:
        if ids and max_bytes is not None and size + row.size > max_bytes:
            break
        ids.append(row.id)
        size += row.size
    if not ids:
        return []
    until = now + timedelta(seconds=lease_seconds)
    claimed = connection.execute(_CLAIM, {"ids": ids, "until": until, "holder": holder}).all()
    if not claimed:
        return []
    records = {
        row.id: row
        for row in connection.execute(
            select(_MESSAGES.c.id, _MESSAGES.c.delivered_sha256, _MESSAGES.c.direction).where(
                _MESSAGES.c.id.in_([row.message_id for row in claimed])
            )
        )
    }
    contents = bodies(connection, (r.delivered_sha256 for r in records.values()))
    return [
        ClaimedDelivery(
            outbound_id=row.id,
            message_id=row.message_id,
            envelope_from=row.envelope_from,
            recipient=row.recipient,
            token=row.token,
            content=contents[records[row.message_id].delivered_sha256],
            attempts=row.attempts,
            queued_at=row.queued_at,
            is_notice=records[row.message_id].direction == Direction.NOTICE,
        )
        for row in sorted(claimed, key=lambda row: row.id)
    ]


_IS_DUE = _OUTBOUND.c.next_attempt_at <= bindparam("now", type_=UTCDateTime())
_LOAD = select(
    func.count(),
    func.count(case((_IS_DUE, 1))),
    type_coerce(func.min(case((_IS_DUE, _OUTBOUND.c.next_attempt_at))), UTCDateTime()),
).where(_OUTBOUND.c.state == QueueState.QUEUED)


def load(connection: Connection, now: datetime) -> QueueLoad:
    waiting, due, oldest = connection.execute(_LOAD, {"now": now}).one()
    return QueueLoad(waiting, due, (now - oldest).total_seconds() if oldest else 0.0)


def finish(
    connection: Connection, finished: Sequence[tuple[int, QueueState, datetime, str | None]]
) -> None:
    """Mark deliveries (outbound id, DELIVERED | FAILED, when, why) as done."""
    if finished:
        connection.execute(
            _FINISH,
            [
                {"oid": oid, "new_state": state.value, "at": at, "why": why}
                for oid, state, at, why in finished
            ],
        )


def settle(connection: Connection, settlements: Sequence[Settlement]) -> dict[int, int]:
    """Record outcomes and queue the DSNs of failures; the outbound ids of those DSNs, by
    the outbound id of the delivery each one reports."""
    retries = [
        {"oid": s.outbound_id, "at": s.when, "why": s.error}
        for s in settlements
        if s.state is QueueState.QUEUED
    ]
    if retries:
        connection.execute(_RETRY, retries)
    finish(
        connection,
        [
            (s.outbound_id, s.state, s.when, s.error)
            for s in settlements
            if s.state is not QueueState.QUEUED
        ],
    )
    reported = [s for s in settlements if s.notice is not None]
    notices = [s.notice for s in reported if s.notice is not None]
    ids, outbound_ids = archive_and_enqueue(connection, [(n, None) for n in notices])
    return {s.outbound_id: outbound_ids[i] for s, i in zip(reported, ids, strict=True)}


def release(connection: Connection, outbound_ids: Sequence[int], now: datetime) -> None:
    """Give back leases of deliveries that were never attempted (a shutdown): due now, for
    whichever worker of whichever process comes first."""
    if outbound_ids:
        connection.execute(_RELEASE, [{"oid": oid, "now": now} for oid in outbound_ids])


def give_back(connection: Connection, holders: Sequence[str], now: datetime) -> int:
    """The leases held by processes known dead, due again now; how many. Their attempts
    count (one may have reached the recipient before the process died)."""
    if not holders:
        return 0
    given = connection.execute(
        update(_OUTBOUND)
        .where(
            _OUTBOUND.c.claimed_by.in_(holders),
            _OUTBOUND.c.state == QueueState.QUEUED.value,
        )
        .values(next_attempt_at=now, claimed_by=None)
    )
    return given.rowcount


def bounce_context(connection: Connection, outbound_id: int) -> BounceContext:
    """A delivery as its sender knew it, for the DSN that reports its failure."""
    context = load_bounce_context(connection, _OUTBOUND.c.id == outbound_id)
    assert context is not None, "a claimed delivery has its record"
    return context


def find_bounce(connection: Connection, token: str) -> BounceContext | None:
    """The delivery whose bounce address carries `token`."""
    return load_bounce_context(connection, _OUTBOUND.c.token == token)
