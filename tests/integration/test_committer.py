"""The group committer on both stores: jobs ready at the same moment share one transaction,
each gets its own result, a job that fails does not fail the others, and messages of one
seller written together are counted against its day exactly as one by one."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Connection, func, select

from gateway.core import status
from gateway.core.addresses import new_alias_token, new_message_id
from gateway.core.clock import SystemClock
from gateway.core.model import ArchiveEntry, Delivery, Direction, QuotaClaim
from gateway.intake.commit import UnitWrite
from gateway.intake.model import Outcome, Received, Unit, Variant
from gateway.storage.committer import Committer
from gateway.storage.database import Database
from gateway.storage.migrate import open_database
from gateway.storage.registry import Registry
from gateway.storage.schema import Message, QuotaUsage

NOW = datetime(2026, 12, 6, 12, tzinfo=UTC)
LIMIT = 3


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    database = open_database(db_url)
    yield database
    database.dispose()


def _entry(pair_id: int, delivered: bool) -> ArchiveEntry:
    token = new_alias_token()
    return ArchiveEntry(
        direction=Direction.SELLER_TO_BUYER,
        pair_id=pair_id,
        envelope_from="owner@shop.example",
        recipient="alias@relay.example.test",
        received_at=NOW,
        raw_received=b"Subject: same bytes for every message\r\n\r\nhi\r\n",
        raw_delivered=f"Subject: {token}\r\n\r\nhi\r\n".encode() if delivered else None,
        gateway_message_id=new_message_id("relay.example.test"),
        original_message_id=None,
        reply=status.QUEUED if delivered else status.OVER_QUOTA,
        delivery=Delivery(f"bounce-{token}@relay.example.test", "b@mail.example", token)
        if delivered
        else None,
    )


def _unit(seller_id: int, pair_id: int) -> Unit:
    received = Received("owner@shop.example", b"", None, NOW, "s1", "relay.example.test")
    claim = QuotaClaim(seller_id, NOW.date(), 1, LIMIT)
    accepted = Outcome(
        "alias@relay.example.test", pair_id, _entry(pair_id, True), quota_claim=claim
    )
    refused = replace(accepted, entry=_entry(pair_id, False), quota_claim=None)
    return Unit(received, Variant((accepted,)), claim, lambda: Variant((refused,)))


async def _commit_all(database: Database, jobs: list[Any]) -> list[Any]:
    committer = Committer(database)
    committer.start()
    try:
        return await asyncio.gather(*(committer.run(job) for job in jobs), return_exceptions=True)
    finally:
        await committer.stop()


async def test_one_sellers_messages_written_together_stop_at_its_limit(database: Database) -> None:
    registry = Registry(database, "relay.example.test", SystemClock())
    seller = registry.add_seller("Shop", ["owner@shop.example"])
    buyer, _ = registry.add_buyer("b@mail.example")
    pair = registry.add_pair(seller, buyer).pair_id
    writes = [UnitWrite(_unit(seller, pair), None) for _ in range(LIMIT + 2)]
    committed = await _commit_all(database, writes)
    accepted = [c.variant.accepted for c in committed]
    assert accepted == [1] * LIMIT + [0, 0]
    with database.reading() as session:
        assert session.scalar(select(QuotaUsage.used)) == LIMIT
        verdicts = session.scalars(select(Message.verdict).order_by(Message.id)).all()
        # One body as received for every record: the bytes are stored once.
        bodies = session.scalar(select(func.count(func.distinct(Message.received_sha256))))
    assert verdicts == ["accepted"] * LIMIT + ["refused"] * 2
    assert bodies == 1


async def test_a_failing_job_fails_alone(database: Database) -> None:
    def good(connection: Connection) -> int:
        return int(connection.scalar(select(func.count()).select_from(Message)) or 0)

    def bad(connection: Connection) -> int:
        raise ValueError("a job that cannot be written")

    results = await _commit_all(database, [good, bad, good])
    assert results[0] == results[2] == 0
    assert isinstance(results[1], ValueError)
