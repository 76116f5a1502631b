"""The one way to get an engine and a transaction."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 15000
READ_ONLY = "bsm_read_only"


def make_engine(url: str, **kwargs: Any) -> Engine:
    # Statement parameters are real addresses and message bodies: keep them out of error
    # texts, which end up in logs.
    kwargs.setdefault("hide_parameters", True)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **kwargs)
        _configure_sqlite(engine)
        return engine
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    # Pre-ping costs a round trip per checkout, but without it every connection the pool
    # kept through a database outage fails once afterwards: a spurious 451 each.
    return create_engine(parsed, pool_pre_ping=True, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed transaction (and so a 250) survives power loss in WAL mode.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A writer takes the write lock up front: two writers never deadlock on a lock
        # upgrade, and a claim by one process excludes every other (SQLite has no SKIP
        # LOCKED). A reader takes none: in WAL mode it never waits for a writer.
        if connection.get_execution_options().get(READ_ONLY):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


class WriterTurn:
    """SQLite has one writer at a time. Writers of every process sharing the file queue on a
    lock file (flock) and wake the moment it is free, where SQLite's own busy handler would
    make them sleep and poll; writers within a process queue on a lock first, since flock
    does not tell one thread of a process from another."""

    def __init__(self, database_file: Path) -> None:
        self._threads = threading.Lock()
        self._path = database_file.with_name(database_file.name + ".writer-lock")
        self._fd: int | None = None
        self._pid = 0

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._threads:
            fd = self._descriptor()
            fcntl.flock(fd, fcntl.LOCK_EX)  # releases the GIL while it waits
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _descriptor(self) -> int:
        # Opened lazily and per process: a descriptor inherited across fork() would share
        # its lock with the parent.
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
        return self._fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Database:
    """An engine, its session factory, and the turn its writers take."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._turn: WriterTurn | None = None
        if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
            self._turn = WriterTurn(Path(str(engine.url.database)))
        # Reads on PostgreSQL need no transaction of their own (one statement each, or
        # registry data that changes rarely): autocommit saves BEGIN and COMMIT.
        read_options: dict[str, Any] = {READ_ONLY: True}
        if engine.dialect.name != "sqlite":
            read_options["isolation_level"] = "AUTOCOMMIT"
        self._read_engine = engine.execution_options(**read_options)
        self._read_sessions = sessionmaker(self._read_engine, expire_on_commit=False)

    @classmethod
    def from_url(cls, url: str) -> Database:
        return cls(make_engine(url))

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @property
    def is_postgresql(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def _writer_turn(self) -> AbstractContextManager[None]:
        return self._turn() if self._turn is not None else nullcontext()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A read-write transaction (ORM session), for registry and operator commands."""
        with self._writer_turn(), self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        """A read-write transaction on a plain connection (SQLAlchemy Core): the hot path's
        writes, which need no ORM unit of work."""
        with self._writer_turn(), self.engine.begin() as connection:
            yield connection

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A transaction that only reads (on SQLite it does not wait for writers)."""
        with self._read_sessions() as session, session.begin():
            yield session

    @contextmanager
    def read_connection(self) -> Iterator[Connection]:
        """`reading`, on a plain connection."""
        with self._read_engine.begin() as connection:
            yield connection

    def dispose(self) -> None:
        self.engine.dispose()
        if self._turn is not None:
            self._turn.close()
