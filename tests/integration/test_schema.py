"""The migrations build exactly the schema the models describe, on both stores."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from gateway.storage import migrate
from gateway.storage.migrate import open_database
from gateway.storage.schema import Base


def test_migrations_match_the_models(db_url: str) -> None:
    database = open_database(db_url)  # an empty database: created by the migrations
    try:
        with database.engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    finally:
        database.dispose()
    assert differences == []


def test_the_revision_the_gateway_needs_is_the_newest_migration() -> None:
    assert migrate.head_revision() == migrate.SCHEMA_REVISION
