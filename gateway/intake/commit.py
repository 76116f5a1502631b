"""Commit: messages as jobs of the group committer, written together when they are ready at
the same moment. The sellers' days are counted first (the conditional upsert: exact across
sessions and processes); the variant each count allows is archived with its deliveries,
waits and failed deliveries, all in one transaction and a few statements for the whole
group."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime

from sqlalchemy import Connection

from gateway.core.model import QuotaClaim, SuppressionRules
from gateway.intake.model import Committed, Unit, Variant
from gateway.storage import imap, queue, quota, suppressions, waits
from gateway.storage.queue import QueueState


@dataclass(frozen=True, slots=True)
class UnitWrite:
    """The job that writes one message's unit. With `leased_until`, its deliveries are
    enqueued already claimed by this process (`holder`), which makes them from memory."""

    unit: Unit
    leased_until: datetime | None
    holder: str | None = None
    suppression: SuppressionRules | None = None  # None: hard bounces are not counted

    def __call__(self, connection: Connection) -> Committed:
        return write_units(connection, [self])[0]

    @staticmethod
    def together(connection: Connection, writes: Sequence[UnitWrite]) -> list[Committed]:
        return write_units(connection, writes)


def write_units(connection: Connection, writes: Sequence[UnitWrite]) -> list[Committed]:
    """The units, each as its seller's day allows. Written as if every one passes, and only
    then counted, so that a seller's row in quota_usage (which every process's commits of
    that seller wait for) is held from the count to the commit and no longer; if a day turns
    out full, all is undone back to a savepoint, and counted first, message by message."""
    claims = [w.unit.claim for w in writes]
    if any(claim is not None for claim in claims):
        savepoint = connection.begin_nested()
        committed = _write(connection, writes, [w.unit.passing for w in writes])
        counted = _count_together(connection, claims)
        if counted is not None:
            savepoint.commit()
            return [replace(c, quota_used=used) for c, used in zip(committed, counted, strict=True)]
        savepoint.rollback()
    counted = _count_in_turn(connection, claims)
    variants = [
        w.unit.over_quota()
        if w.unit.claim is not None and used is None and w.unit.over_quota
        else w.unit.passing
        for w, used in zip(writes, counted, strict=True)
    ]
    committed = _write(connection, writes, variants)
    return [replace(c, quota_used=used) for c, used in zip(committed, counted, strict=True)]


def _write(
    connection: Connection, writes: Sequence[UnitWrite], variants: Sequence[Variant]
) -> list[Committed]:
    """The variants' records, queue rows, waits and failed deliveries, all units at once."""
    entries = [
        (entry, write.leased_until)
        for write, variant in zip(writes, variants, strict=True)
        for entry in variant.entries
    ]
    # One process's committer writes these: they all have its holder.
    holder = writes[0].holder if writes else None
    ids, outbound_ids = queue.archive_and_enqueue(connection, entries, holder)
    waits.track(connection, [(entry, i) for (entry, _), i in zip(entries, ids, strict=True)])
    failed = [
        (oid, QueueState.FAILED, w.unit.received.received_at, why)
        for w, v in zip(writes, variants, strict=True)
        for oid, why in (o.failed_delivery for o in v.outcomes if o.failed_delivery is not None)
    ]
    queue.finish(connection, failed)
    rules = writes[0].suppression if writes else None
    hard = [o.hard_bounce for v in variants for o in v.outcomes if o.hard_bounce is not None]
    if rules is not None and hard:
        suppressions.record(connection, hard, rules)
    committed, start, taken = [], 0, []
    for write, variant in zip(writes, variants, strict=True):
        end = start + len(variant.entries)
        own = ids[start:end]
        origin = write.unit.origin
        if origin is not None:
            taken.append(
                imap.Taken(
                    origin.source,
                    origin.uidvalidity,
                    origin.uid,
                    origin.digest,
                    origin.message_id,
                    own[0],
                )
            )
        outbound = {i: outbound_ids[i] for i in own if i in outbound_ids}
        committed.append(Committed(variant, own, outbound, None, write.leased_until))
        start = end
    if taken:
        imap.record_taken(connection, taken, writes[0].unit.received.received_at)
    return committed


def _by_seller_day(claims: Sequence[QuotaClaim | None]) -> list[list[int]]:
    """The positions of the claims, grouped by seller and day."""
    groups: defaultdict[tuple[int, date], list[int]] = defaultdict(list)
    for position, claim in enumerate(claims):
        if claim is not None:
            groups[(claim.seller_id, claim.day)].append(position)
    return list(groups.values())


def _count_together(
    connection: Connection, claims: Sequence[QuotaClaim | None]
) -> list[int | None] | None:
    """Every claim counted at once, one statement per seller and day; None (and some counted
    already: the caller undoes them) if one of those days cannot take all of its claims."""
    counted: list[int | None] = [None] * len(claims)
    for positions in _by_seller_day(claims):
        group = [claims[p] for p in positions]
        first = group[0]
        assert first is not None
        if any(c is None or c.limit != first.limit for c in group):
            return None
        total = sum(c.count for c in group if c is not None)
        used = quota.count(connection, replace(first, count=total))
        if used is None:
            return None
        for position in positions:
            counted[position] = used
    return counted


def _count_in_turn(connection: Connection, claims: Sequence[QuotaClaim | None]) -> list[int | None]:
    """Each claim counted in order (None: over the limit, or no claim)."""
    return [quota.count(connection, claim) if claim is not None else None for claim in claims]
