"""The migrations build exactly the schema the models describe, on both stores."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from gateway.storage import migrate
from gateway.storage.database import Database
from gateway.storage.migrate import open_database
from gateway.storage.schema import Base


def _modelled(name: str | None, kind: str, parents: Mapping[str, str | None]) -> bool:
    """Whether the comparison looks at it: the full-text index's own objects (SQLite's FTS5
    table and its shadow tables, PostgreSQL's tsvector column and its index) are made by
    the migration alone, for one store each; login_failures is left, unread, for the
    previous version's replicas during a rolling upgrade (migration 0013)."""
    if kind == "table":
        return not (name or "").startswith("message_fts") and name != "login_failures"
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


def test_failed_logins_survive_the_move_to_client_failures_and_the_old_table_stays(
    db_url: str,
) -> None:
    """0013 expands: the previous version, still running in a rolling upgrade, keeps its
    login_failures table, and the lockouts counted there carry over."""
    database = Database.from_url(db_url)
    try:
        migrate.upgrade(database, "0012")
        with database.engine.begin() as connection:
            connection.execute(
                text("INSERT INTO login_failures (scope, key, at) VALUES ('smtp', :k, :at)"),
                {"k": "f" * 64, "at": datetime(2026, 12, 7, 12, 0)},
            )
        migrate.upgrade(database)
        with database.engine.connect() as connection:
            copied = connection.execute(text("SELECT scope, key FROM client_failures")).all()
            kept = connection.execute(text("SELECT count(*) FROM login_failures")).scalar()
        assert copied == [("smtp", "f" * 64)] and kept == 1
    finally:
        database.dispose()
