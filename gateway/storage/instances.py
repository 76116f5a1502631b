"""The gateway processes that claim deliveries (the queue's family): each one's heartbeat,
so that the claims of a process known dead are given back at once, not a lease later."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, select, update

from gateway.storage.schema import Instance, table_of

_INSTANCES = table_of(Instance)


@dataclass(frozen=True, slots=True)
class ProcessIdentity:
    """One process: a fresh id, and where it runs. `host` names the kernel's boot and the
    pid namespace too, so that two processes with the same `host` can see each other's
    pids; `started` is the process's start time as the kernel counts it (pids are reused)."""

    id: str
    host: str
    pid: int
    started: str


def beat(connection: Connection, me: ProcessIdentity, now: datetime) -> None:
    """This process is alive at `now` (its row made again if another took it for dead)."""
    updated = connection.execute(
        update(_INSTANCES).where(_INSTANCES.c.id == me.id).values(heartbeat_at=now)
    )
    if not updated.rowcount:
        connection.execute(
            _INSTANCES.insert().values(
                id=me.id, host=me.host, pid=me.pid, started=me.started, heartbeat_at=now
            )
        )


def find_dead(
    connection: Connection,
    me: ProcessIdentity,
    now: datetime,
    dead_after: float,
    alive: Callable[[int, str], bool],
) -> list[str]:
    """The ids of the other processes known dead: silent for `dead_after` seconds, or, on
    this host, whose pid no longer runs the process that registered (`alive` says)."""
    silent_since = now - timedelta(seconds=dead_after)
    rows = connection.execute(select(_INSTANCES).where(_INSTANCES.c.id != me.id)).all()
    return [
        row.id
        for row in rows
        if row.heartbeat_at < silent_since
        or (row.host == me.host and not alive(row.pid, row.started))
    ]


def forget(connection: Connection, ids: Sequence[str]) -> None:
    if ids:
        connection.execute(delete(_INSTANCES).where(_INSTANCES.c.id.in_(ids)))


def leave(connection: Connection, me: ProcessIdentity) -> None:
    """This process stops: its row goes (what it held it gave back itself)."""
    forget(connection, [me.id])
