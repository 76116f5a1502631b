"""The archive as the tests read it back: records with their bytes (storage.archive)."""

from __future__ import annotations

from sqlalchemy import ColumnElement, func, select

from gateway.storage.archive import ArchivedMessage, read_records
from gateway.storage.database import Database
from gateway.storage.migrate import open_database
from gateway.storage.schema import Message, Pair, QuotaUsage


def archived(database: Database, which: ColumnElement[bool] | None = None) -> list[ArchivedMessage]:
    """The records `which` selects (a condition on storage.schema.Message), oldest first."""
    with database.read_connection() as connection:
        return read_records(connection, which)


def seller_day(database_url: str, seller_id: int | None = None) -> tuple[int, int]:
    """(accepted seller messages in the archive, the quota row's count) of a seller's day:
    `seller_id`'s, or the only seller's."""
    database = open_database(database_url)
    try:
        with database.reading() as session:
            accepted = select(func.count(Message.id)).where(
                Message.direction == "seller_to_buyer", Message.verdict == "accepted"
            )
            used = select(QuotaUsage.used)
            if seller_id is not None:
                pairs = select(Pair.id).where(Pair.seller_id == seller_id)
                accepted = accepted.where(Message.pair_id.in_(pairs))
                used = used.where(QuotaUsage.seller_id == seller_id)
            counted, raised = session.scalar(accepted), session.scalar(used)
    finally:
        database.dispose()
    return counted or 0, raised or 0
