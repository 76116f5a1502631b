"""Schema migrations through Alembic, driven from the CLI and from `serve`.

Alembic is imported only to migrate: it costs half a second, which every CLI command would
pay for a check that one row answers (the alembic_version table).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import inspect, text

from gateway.obs.log import get_logger
from gateway.storage.database import Database

if TYPE_CHECKING:
    from alembic.config import Config

SCRIPT_LOCATION = "gateway.storage:migrations"
# The newest migration's revision; a test holds it equal to Alembic's head.
SCHEMA_REVISION = "0013"
_log = get_logger("db")


def _config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    return config


def upgrade(database: Database, revision: str = "head") -> None:
    from alembic import command

    config = _config()
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def current_revision(database: Database) -> str | None:
    with database.engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        revision: str | None = connection.execute(
            text("SELECT version_num FROM alembic_version")
        ).scalar()
        return revision


def schema_problem(database: Database) -> str | None:
    """None when the database answers with the schema this code needs, or a later one (a
    rolling upgrade migrates before it replaces the running replicas, and a migration only
    adds what older code does not read); else what is wrong."""
    revision = current_revision(database)
    if revision is None or not revision.isdigit() or int(revision) < int(SCHEMA_REVISION):
        return f"the schema is at {revision or 'nothing'}, this gateway needs {SCHEMA_REVISION}"
    return None


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

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
        _log.info("schema_created", revision=SCHEMA_REVISION)
    current = current_revision(database)
    if current != SCHEMA_REVISION:
        database.dispose()
        raise SchemaError(
            f"database schema is at {current}, this gateway needs {SCHEMA_REVISION}: "
            "run `bsm-gateway db upgrade`"
        )
    return database
