"""Schema migrations through Alembic, driven from the CLI and from `serve`."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from gateway.db.session import Database

SCRIPT_LOCATION = "gateway.db:migrations"


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
    from sqlalchemy import inspect

    return not inspect(database.engine).get_table_names()
