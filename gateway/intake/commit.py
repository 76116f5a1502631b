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

from gateway.core.model import QuotaClaim
from gateway.intake.model import Committed, Unit, Variant
from gateway.storage import queue, quota, waits
from gateway.storage.queue import QueueState


@dataclass(frozen=True, slots=True)
class UnitWrite:
    """The job that writes one message's unit. With `leased_until`, its deliveries are
    enqueued already claimed by this process, which then makes them from memory."""

    unit: Unit
    leased_until: datetime | None

    def __call__(self, connection: Connection) -> Committed:
        return write_units(connection, [self])[0]

    @staticmethod
    def together(connection: Connection, writes: Sequence[UnitWrite]) -> list[Committed]:
        return write_units(connection, writes)


def write_units(connection: Connection, writes: Sequence[UnitWrite]) -> list[Committed]:
    counted = _count_quotas(connection, [w.unit.claim for w in writes])
    variants: list[Variant] = []
    for write, used in zip(writes, counted, strict=True):
        unit = write.unit
        if unit.claim is not None and used is None:
            assert unit.over_quota is not None
            variants.append(unit.over_quota)
        else:
            variants.append(unit.passing)
    entries = [
        (entry, w.leased_until)
        for w, v in zip(writes, variants, strict=True)
        for entry in v.entries
    ]
    ids, outbound_ids = queue.archive_and_enqueue(connection, entries)
    waits.track(connection, [(entry, i) for (entry, _), i in zip(entries, ids, strict=True)])
    failed = [
        (oid, QueueState.FAILED, w.unit.received.received_at, why)
        for w, v in zip(writes, variants, strict=True)
        for oid, why in (o.failed_delivery for o in v.outcomes if o.failed_delivery is not None)
    ]
    queue.finish(connection, failed)
    committed, start = [], 0
    for write, variant, used in zip(writes, variants, counted, strict=True):
        end = start + len(variant.entries)
        own = ids[start:end]
        committed.append(
            Committed(
                variant,
                own,
                {i: outbound_ids[i] for i in own if i in outbound_ids},
                used,
                write.leased_until,
            )
        )
        start = end
    return committed


def _count_quotas(connection: Connection, claims: Sequence[QuotaClaim | None]) -> list[int | None]:
    """Each claim counted, in order (None: over the limit, or no claim). A seller's claims
    on one day are tried together first: one statement when they all fit."""
    counted: list[int | None] = [None] * len(claims)
    by_day: defaultdict[tuple[int, date], list[int]] = defaultdict(list)
    for position, claim in enumerate(claims):
        if claim is not None:
            by_day[(claim.seller_id, claim.day)].append(position)
    for positions in by_day.values():
        group = [claims[p] for p in positions]
        first = group[0]
        assert first is not None
        if len(group) > 1 and all(c is not None and c.limit == first.limit for c in group):
            total = sum(c.count for c in group if c is not None)
            used = quota.count(connection, replace(first, count=total))
            if used is not None:
                for position in positions:
                    counted[position] = used
                continue
        for position, claim in zip(positions, group, strict=True):
            assert claim is not None
            counted[position] = quota.count(connection, claim)
    return counted
