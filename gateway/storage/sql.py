"""Statements of the hot path, run on the database driver's own connection (the one under
the caller's SQLAlchemy transaction): prepared once by the driver (sqlite3's statement
cache, psycopg's automatic preparation), with none of SQLAlchemy's per-call machinery.

They are written once, with :name parameters; values are given as the schema stores them
(naive UTC times; on SQLite, times as SQLAlchemy writes them), so that what is written
here reads back through the models like anything else.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection

Row = Mapping[str, Any]
_NAMED = re.compile(r"(?<!:):([a-z_][a-z0-9_]*)")
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # SQLAlchemy's SQLite DATETIME storage format


class Statement:
    """One statement, in each dialect's parameter style."""

    def __init__(self, sql: str) -> None:
        self.sql = " ".join(sql.split())
        self._postgresql = _NAMED.sub(r"%(\1)s", self.sql.replace("%", "%%"))

    def text(self, dialect: str) -> str:
        return self._postgresql if dialect == "postgresql" else self.sql


def _stored(value: Any, sqlite: bool) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        naive = value.astimezone(UTC).replace(tzinfo=None)
        return naive.strftime(_SQLITE_TIME) if sqlite else naive
    if sqlite and isinstance(value, date):
        return value.isoformat()
    return value


def _params(row: Row, sqlite: bool) -> dict[str, Any]:
    return {name: _stored(value, sqlite) for name, value in row.items()}


def _cursor(connection: Connection) -> tuple[Any, str]:
    driver = connection.connection.driver_connection
    assert driver is not None, "a connection in a transaction has its driver's"
    return driver.cursor(), connection.dialect.name


def execute(connection: Connection, statement: Statement, row: Row | None = None) -> list[Any]:
    """Run one statement; the rows it returns (RETURNING, SELECT), as tuples."""
    cursor, dialect = _cursor(connection)
    try:
        cursor.execute(statement.text(dialect), _params(row or {}, dialect == "sqlite"))
        return list(cursor.fetchall()) if cursor.description else []
    finally:
        cursor.close()


def execute_many(connection: Connection, statement: Statement, rows: Sequence[Row]) -> None:
    """Run one statement for each row (no rows back)."""
    if not rows:
        return
    cursor, dialect = _cursor(connection)
    sqlite = dialect == "sqlite"
    try:
        cursor.executemany(statement.text(dialect), [_params(r, sqlite) for r in rows])
    finally:
        cursor.close()


def insert_ids(connection: Connection, statement: Statement, rows: Sequence[Row]) -> list[int]:
    """Insert the rows (`statement` ends RETURNING id); their ids, in order."""
    if not rows:
        return []
    cursor, dialect = _cursor(connection)
    sqlite = dialect == "sqlite"
    sql = statement.text(dialect)
    try:
        if sqlite:  # one at a time, in order: sqlite3 returns no rows from executemany
            ids = []
            for row in rows:
                cursor.execute(sql, _params(row, sqlite))
                ids.append(int(cursor.fetchone()[0]))
            return ids
        cursor.executemany(sql, [_params(r, sqlite) for r in rows], returning=True)
        ids = []
        while True:
            ids.append(int(cursor.fetchone()[0]))
            if not cursor.nextset():
                return ids
    finally:
        cursor.close()
