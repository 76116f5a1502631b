"""The processes that claim deliveries, on both stores: a process known dead (its pid gone
on this host, or silent past dead_after elsewhere) has its claims given back at once; a
live one keeps them, and a retry's due time is never mistaken for a claim."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from gateway.core import status
from gateway.core.addresses import new_alias_token, new_message_id
from gateway.core.model import ArchiveEntry, Delivery, Direction
from gateway.storage import instances, queue
from gateway.storage.database import Database
from gateway.storage.instances import ProcessIdentity
from gateway.storage.migrate import open_database
from gateway.storage.queue import QueueState, Settlement
from gateway.storage.schema import Outbound

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
DEAD_AFTER = 30.0
LEASE = 120.0

ME = ProcessIdentity("me", "host-a/boot/1", 100, "5000")
NEIGHBOUR = ProcessIdentity("neighbour", "host-a/boot/1", 101, "5001")  # same host, pid gone
FAR = ProcessIdentity("far", "host-b/boot/9", 100, "7000")  # another host


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    database = open_database(db_url)
    yield database
    database.dispose()


def _queue_one(database: Database, holder: str | None) -> int:
    token = new_alias_token()
    entry = ArchiveEntry(
        direction=Direction.SELLER_TO_BUYER,
        pair_id=None,
        envelope_from="owner@shop.example",
        recipient="alias@relay.example.test",
        received_at=T0,
        raw_received=b"Subject: s\r\n\r\nhi\r\n",
        raw_delivered=f"Subject: {token}\r\n\r\nhi\r\n".encode(),
        gateway_message_id=new_message_id("relay.example.test"),
        original_message_id=None,
        reply=status.QUEUED,
        delivery=Delivery(f"bounce-{token}@relay.example.test", "b@mail.example", token),
    )
    with database.engine.begin() as connection:
        leased = at(LEASE) if holder else None
        _, outbound = queue.archive_and_enqueue(connection, [(entry, leased)], holder)
    return next(iter(outbound.values()))


def _due(database: Database) -> dict[int, datetime]:
    with database.engine.begin() as connection:
        rows = connection.execute(select(Outbound.id, Outbound.next_attempt_at)).all()
    return {row.id: row.next_attempt_at for row in rows}


def _only_pid_101_is_gone(pid: int, started: str) -> bool:
    return pid != NEIGHBOUR.pid


def _take_over(database: Database, now: datetime) -> tuple[list[str], int]:
    with database.engine.begin() as connection:
        instances.beat(connection, ME, now)
        dead = instances.find_dead(connection, ME, now, DEAD_AFTER, _only_pid_101_is_gone)
        given = queue.give_back(connection, dead, now)
        instances.forget(connection, dead)
    return sorted(dead), given


def test_a_dead_processs_claims_come_back_at_once_a_live_ones_stay(database: Database) -> None:
    with database.engine.begin() as connection:
        for process in (NEIGHBOUR, FAR):
            instances.beat(connection, process, at(0))
    neighbours = _queue_one(database, NEIGHBOUR.id)
    fars = _queue_one(database, FAR.id)
    unclaimed = _queue_one(database, None)

    # The neighbour's pid is gone: its claim is due now, not at the end of its lease.
    assert _take_over(database, at(1)) == (["neighbour"], 1)
    due = _due(database)
    assert due[neighbours] == at(1)
    assert due[fars] == at(LEASE)  # alive elsewhere: its heartbeat is recent
    assert due[unclaimed] == at(0)

    # The far process writes its heartbeat no more: known dead once silent for dead_after.
    assert _take_over(database, at(DEAD_AFTER - 1)) == ([], 0)
    assert _take_over(database, at(DEAD_AFTER + 1)) == (["far"], 1)
    assert _due(database)[fars] == at(DEAD_AFTER + 1)


def test_a_retry_is_no_claim_and_a_process_taken_for_dead_comes_back(
    database: Database,
) -> None:
    with database.engine.begin() as connection:
        instances.beat(connection, FAR, at(0))
    row = _queue_one(database, FAR.id)
    with database.engine.begin() as connection:
        retry = Settlement(row, QueueState.QUEUED, at(600), "451 4.4.1 try later")
        queue.settle(connection, [retry])
    assert _take_over(database, at(DEAD_AFTER + 1)) == (["far"], 0)
    assert _due(database)[row] == at(600)  # the retry keeps its time

    # A process that was only cut off writes its heartbeat again: it is known once more.
    with database.engine.begin() as connection:
        instances.beat(connection, FAR, at(DEAD_AFTER + 2))
    assert _take_over(database, at(DEAD_AFTER + 3)) == ([], 0)


def test_a_claim_names_its_process_and_a_release_clears_it(database: Database) -> None:
    _queue_one(database, None)
    with database.engine.begin() as connection:
        [claimed] = queue.claim(connection, limit=5, now=at(1), lease_seconds=LEASE, holder="me")
        holder = connection.scalar(select(Outbound.claimed_by))
        assert holder == "me"
        queue.release(connection, [claimed.outbound_id], at(2))
        assert connection.scalar(select(Outbound.claimed_by)) is None


def test_a_claim_takes_no_more_bytes_than_asked_but_always_one(database: Database) -> None:
    for _ in range(3):
        _queue_one(database, None)  # 18 bytes each as received
    with database.engine.begin() as connection:
        two = queue.claim(connection, limit=5, now=at(1), lease_seconds=LEASE, holder="me",
                          max_bytes=40)  # fmt: skip
        one = queue.claim(connection, limit=5, now=at(1), lease_seconds=LEASE, holder="me",
                          max_bytes=0)  # fmt: skip
    assert (len(two), len(one)) == (2, 1)
