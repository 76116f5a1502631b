"""The owner of imap_messages and imap_sources: which messages of a mailbox were taken in
(written in the archive's own transaction), and which process polls each source (a lease)
in which state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
    Connection,
    and_,
    case,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from gateway.storage.database import Database
from gateway.storage.schema import MailboxMessage, MailboxSource, table_of

_TAKEN = table_of(MailboxMessage)
_SOURCES = table_of(MailboxSource)


@dataclass(frozen=True, slots=True)
class Taken:
    """A message of a mailbox, and the first archive record it made."""

    source: str
    uidvalidity: int
    uid: int
    digest: str
    message_id: str | None
    record_id: int


@dataclass(frozen=True, slots=True)
class SourceState:
    """A source as the database knows it: who polls it, in which state, how much it took."""

    name: str
    holder: str | None
    lease_until: datetime | None
    state: str
    detail: str
    uidvalidity: int | None
    changed_at: datetime
    last_ok_at: datetime | None
    taken: int
    last_taken_at: datetime | None


def record_taken(connection: Connection, taken: Sequence[Taken], at: datetime) -> None:
    """In the transaction that archives them. A message already recorded (another process
    took it meanwhile) fails the transaction: nothing of it is written twice."""
    if not taken:
        return
    connection.execute(
        insert(_TAKEN),
        [
            {
                "source": t.source,
                "uidvalidity": t.uidvalidity,
                "uid": t.uid,
                "digest": t.digest,
                "message_id": t.message_id,
                "record_id": t.record_id,
                "taken_at": at,
            }
            for t in taken
        ],
    )


def forget(connection: Connection, record_ids: Sequence[int]) -> None:
    """The places and digests of purged records' messages go with their bytes (retention)."""
    connection.execute(delete(_TAKEN).where(_TAKEN.c.record_id.in_(record_ids)))


class MailboxLedger:
    """What the pollers ask and record outside the intake's commit."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def known(self, source: str, uidvalidity: int, uids: Sequence[int]) -> set[int]:
        """Those of `uids` taken in already under this UIDVALIDITY."""
        found: set[int] = set()
        with self._db.read_connection() as connection:
            for start in range(0, len(uids), 500):
                chunk = list(uids[start : start + 500])
                rows = connection.execute(
                    select(_TAKEN.c.uid).where(
                        _TAKEN.c.source == source,
                        _TAKEN.c.uidvalidity == uidvalidity,
                        _TAKEN.c.uid.in_(chunk),
                    )
                )
                found.update(int(row.uid) for row in rows)
        return found

    def taken_before(self, source: str, digest: str, message_id: str | None) -> int | None:
        """The record a message with these bytes (and Message-ID) made when this source
        handed it over before, under any UIDVALIDITY; None if it never did."""
        condition = [_TAKEN.c.source == source, _TAKEN.c.digest == digest]
        if message_id is not None:
            condition.append(_TAKEN.c.message_id == message_id)
        with self._db.read_connection() as connection:
            record = connection.scalar(select(_TAKEN.c.record_id).where(*condition).limit(1))
        return int(record) if record is not None else None

    def seen_again(self, taken: Taken, at: datetime) -> None:
        """A message taken in before found at a new place (the folder's UIDVALIDITY changed):
        its new place recorded, pointing at the record it made then."""
        try:
            with self._db.writing() as connection:
                record_taken(connection, [taken], at)
        except IntegrityError:
            pass  # recorded meanwhile by another process

    def acquire(self, source: str, holder: str, now: datetime, until: datetime) -> bool:
        """Take or renew the lease of `source`: true if `holder` holds it until `until`."""
        with self._db.writing() as connection:
            exists = connection.scalar(select(_SOURCES.c.name).where(_SOURCES.c.name == source))
            if exists is None:
                try:
                    with connection.begin_nested():
                        connection.execute(
                            insert(_SOURCES).values(
                                name=source,
                                holder=holder,
                                lease_until=until,
                                state="starting",
                                detail="",
                                changed_at=now,
                            )
                        )
                    return True
                except IntegrityError:
                    pass  # another process made the row first: contend below
            result = connection.execute(
                update(_SOURCES)
                .where(
                    _SOURCES.c.name == source,
                    or_(
                        _SOURCES.c.holder == holder,
                        _SOURCES.c.holder.is_(None),
                        _SOURCES.c.lease_until.is_(None),
                        _SOURCES.c.lease_until < now,
                    ),
                )
                .values(holder=holder, lease_until=until)
            )
            return result.rowcount == 1

    def release(self, source: str, holder: str) -> None:
        with self._db.writing() as connection:
            connection.execute(
                update(_SOURCES)
                .where(_SOURCES.c.name == source, _SOURCES.c.holder == holder)
                .values(holder=None, lease_until=None, state="stopped", detail="")
            )

    def set_state(
        self,
        source: str,
        holder: str,
        state: str,
        detail: str,
        now: datetime,
        *,
        uidvalidity: int | None = None,
        ok: bool = False,
    ) -> None:
        """The state of the source the lease holder polls (a process that lost the lease
        writes nothing); `changed_at` moves only when the state or its detail changes."""
        changed = or_(_SOURCES.c.state != state, _SOURCES.c.detail != detail)
        values: dict[str, object] = {
            "state": state,
            "detail": detail,
            "changed_at": case(
                (changed, literal(now, _SOURCES.c.changed_at.type)),
                else_=_SOURCES.c.changed_at,
            ),
        }
        if uidvalidity is not None:
            values["uidvalidity"] = uidvalidity
        if ok:
            values["last_ok_at"] = now
        with self._db.writing() as connection:
            connection.execute(
                update(_SOURCES)
                .where(_SOURCES.c.name == source, _SOURCES.c.holder == holder)
                .values(**values)
            )

    def states(self) -> list[SourceState]:
        """Every source the database knows, with how many messages each took in."""
        counts = (
            select(
                _TAKEN.c.source,
                func.count().label("taken"),
                func.max(_TAKEN.c.taken_at).label("last_taken_at"),
            )
            .group_by(_TAKEN.c.source)
            .subquery()
        )
        query = (
            select(_SOURCES, counts.c.taken, counts.c.last_taken_at)
            .select_from(_SOURCES.outerjoin(counts, and_(counts.c.source == _SOURCES.c.name)))
            .order_by(_SOURCES.c.name)
        )
        with self._db.read_connection() as connection:
            rows = connection.execute(query).all()
        return [
            SourceState(
                name=row.name,
                holder=row.holder,
                lease_until=row.lease_until,
                state=row.state,
                detail=row.detail,
                uidvalidity=row.uidvalidity,
                changed_at=row.changed_at,
                last_ok_at=row.last_ok_at,
                taken=int(row.taken or 0),
                last_taken_at=_as_utc(row.last_taken_at),
            )
            for row in rows
        ]


def _as_utc(value: datetime | str | None) -> datetime | None:
    """max() of a UTC column comes back as the driver reads it, without the column's type."""
    if value is None:
        return None
    if isinstance(value, str):  # SQLite returns an aggregate of DATETIME as text
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
