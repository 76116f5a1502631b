"""The archive as the tests read it back: records with their bytes (storage.archive)."""

from __future__ import annotations

from sqlalchemy import ColumnElement

from gateway.storage.archive import ArchivedMessage, read_records
from gateway.storage.database import Database


def archived(database: Database, which: ColumnElement[bool] | None = None) -> list[ArchivedMessage]:
    """The records `which` selects (a condition on storage.schema.Message), oldest first."""
    with database.read_connection() as connection:
        return read_records(connection, which)
