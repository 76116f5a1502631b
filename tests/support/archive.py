"""The archive as the tests read it back: records with their bytes (storage.archive)."""

from __future__ import annotations

from sqlalchemy import ColumnElement, func, select

from gateway.storage.archive import ArchivedMessage, read_records
from gateway.storage.database import Database
from gateway.storage.migrate import open_database
from gateway.storage.schema import Message, QuotaUsage


def archived(database: Database, which: ColumnElement[bool] | None = None) -> list[ArchivedMessage]:
    """The records `which` selects (a condition on storage.schema.Message), oldest first."""
    with database.read_connection() as connection:
        return read_records(connection, which)


def seller_day(database_url: str) -> tuple[int, int]:
    """(accepted seller messages in the archive, the quota row's count) of a one-seller day."""
    database = open_database(database_url)
    try:
        with database.reading() as session:
            accepted = session.scalar(
                select(func.count(Message.id)).where(
                    Message.direction == "seller_to_buyer", Message.verdict == "accepted"
                )
            )
            used = session.scalar(select(QuotaUsage.used))
    finally:
        database.dispose()
    return accepted or 0, used or 0
