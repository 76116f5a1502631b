"""Commit: one message's unit of work, as a job of the group committer. The seller's day is
counted first (the conditional upsert: exact across sessions and processes); the variant
that count allows is archived with its deliveries, waits and failed deliveries, in the same
transaction as the other messages ready at that moment."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Connection

from gateway.intake.model import Committed, Unit
from gateway.storage import queue, quota, waits
from gateway.storage.queue import QueueState


def commit_job(unit: Unit, leased_until: datetime | None) -> Callable[[Connection], Committed]:
    """The job that writes `unit`. With `leased_until`, its deliveries are enqueued already
    claimed by this process, which then makes them from memory."""

    def write(connection: Connection) -> Committed:
        variant, used = unit.passing, None
        if unit.claim is not None:
            used = quota.count(connection, unit.claim)
            if used is None:
                assert unit.over_quota is not None
                variant = unit.over_quota
        entries = variant.entries
        ids, outbound_ids = queue.archive_and_enqueue(connection, entries, leased_until)
        waits.track(connection, list(zip(entries, ids, strict=True)))
        failed = [o.failed_delivery for o in variant.outcomes if o.failed_delivery is not None]
        if failed:
            at = unit.received.received_at
            queue.finish(connection, [(oid, QueueState.FAILED, at, why) for oid, why in failed])
        return Committed(variant, ids, outbound_ids, used, leased_until)

    return write
