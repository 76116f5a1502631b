"""The migrations build exactly the schema the models describe, on both stores."""

from __future__ import annotations

from collections.abc import Mapping

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from gateway.storage import migrate
from gateway.storage.migrate import open_database
from gateway.storage.schema import Base


def _modelled(name: str | None, kind: str, parents: Mapping[str, str | None]) -> bool:
    """Whether the comparison looks at it: the full-text index's own objects (SQLite's FTS5
    table and its shadow tables, PostgreSQL's tsvector column and its index) are made by
    the migration alone, for one store each."""
    if kind == "table":
        return not (name or "").startswith("message_fts")
    if kind == "column":
        return not (parents.get("table_name") == "message_text" and name == "terms")
    return name != "ix_message_text_terms"


def test_migrations_match_the_models(db_url: str) -> None:
    database = open_database(db_url)  # an empty database: created by the migrations
    try:
        with database.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"include_name": _modelled})
            differences = compare_metadata(context, Base.metadata)
    finally:
        database.dispose()
    assert differences == []


def test_the_revision_the_gateway_needs_is_the_newest_migration() -> None:
    assert migrate.head_revision() == migrate.SCHEMA_REVISION
