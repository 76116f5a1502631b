"""Schema migrations through Alembic, driven from the CLI and from `serve`."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from gateway.db.session import Database
from gateway.obs.log import get_logger

SCRIPT_LOCATION = "gateway.db:migrations"
_log = get_logger("db")


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    return config


def upgrade(database: Database, revision: str = "head") -> None:
    config = _config()
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def current_revision(database: Database) -> str | None:
    with database.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()


def is_empty(database: Database) -> bool:
    """No schema at all yet: safe to create it without asking."""
    return not inspect(database.engine).get_table_names()


class SchemaError(RuntimeError):
    """The database schema is not the one this version of the gateway needs."""


def open_database(url: str) -> Database:
    """The database, with its schema created if it is empty, and checked to be current."""
    database = Database.from_url(url)
    if is_empty(database):
        upgrade(database)
        _log.info("schema_created", revision=head_revision())
    current, head = current_revision(database), head_revision()
    if current != head:
        database.dispose()
        raise SchemaError(
            f"database schema is at {current}, this gateway needs {head}: "
            "run `bsm-gateway db upgrade`"
        )
    return database
