"""Who is who, as the intake looks it up: the pair behind an alias, a seller's quota, the
earlier messages of a thread, the delivery behind a bounce address.

Aliases and quota facts are read-mostly and cached in each process; the registry's change
log (gateway.storage.changes) tells every process what to drop, within a second. Threads
and bounces are per message and read each time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar

from sqlalchemy import Connection, func, or_, select

from gateway.core.addresses import alias_address
from gateway.core.clock import Clock
from gateway.core.model import (
    BounceContext,
    Conversation,
    Direction,
    PairStanding,
    Party,
    QuotaStatus,
    Side,
    ThreadEntry,
)
from gateway.obs.log import get_logger
from gateway.storage import changes, queue, suppressions
from gateway.storage.changes import Change
from gateway.storage.database import Database
from gateway.storage.schema import Buyer, Message, Order, Pair, QuotaUsage, Seller, SellerMailbox

BUYER_DISPLAY_NAME = "Buyer"
SUSPENDED = "suspended"
# An alias nobody registered is remembered this long: long enough to spare the database a
# client guessing aliases, short enough that nothing needs to announce a new pair.
UNKNOWN_ALIAS_SECONDS = 5.0
# Orders age out of the quota's trailing window with the clock, which no change announces.
QUOTA_FACTS_SECONDS = 60.0
MAX_ALIASES = 200_000  # cached aliases; past it the cache starts afresh
T = TypeVar("T")
_log = get_logger("directory")


@dataclass(frozen=True, slots=True)
class _Pair:
    conversation: Conversation
    buyer_id: int


@dataclass(frozen=True, slots=True)
class _QuotaFacts:
    orders_in_window: int
    read_at: float  # monotonic


class Directory:
    """The cache lives on the event loop; the database is read on the loop (SQLite, whose
    reads come from its page cache) or in one reader thread (a networked database)."""

    def __init__(self, database: Database, alias_domain: str, reads_inline: bool = True) -> None:
        self._db = database
        self._domain = alias_domain
        self._aliases: dict[str, _Pair | float] = {}  # float: unknown, as of that moment
        self._by_seller: defaultdict[int, set[str]] = defaultdict(set)
        self._by_buyer: defaultdict[int, set[str]] = defaultdict(set)
        self._quota: dict[int, _QuotaFacts] = {}
        self._used: dict[int, tuple[date, int]] = {}  # the latest count this process saw
        # Raised by every change applied: what was read before it is not cached after it.
        self._generation = 0
        self._reader = None if reads_inline else ThreadPoolExecutor(1, "directory-reader")
        self.last_change = 0

    async def _read(self, work: Callable[[Connection], T]) -> T:
        def run() -> T:
            with self._db.read_connection() as connection:
                return work(connection)

        if self._reader is None:
            return run()
        return await asyncio.get_running_loop().run_in_executor(self._reader, run)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.shutdown(wait=False)

    # -- aliases --------------------------------------------------------------------

    async def find_alias(self, token: str) -> Conversation | None:
        """The pair behind an alias, seen from a message sent to it (no thread yet)."""
        cached = self._aliases.get(token)
        if isinstance(cached, _Pair):
            return cached.conversation
        if cached is not None and time.monotonic() - cached < UNKNOWN_ALIAS_SECONDS:
            return None
        generation = self._generation
        found = await self._read(lambda c: read_pair(c, token, self._domain))
        if generation == self._generation:
            self._remember(token, found)
        return found.conversation if found else None

    def _remember(self, token: str, found: _Pair | None) -> None:
        if len(self._aliases) >= MAX_ALIASES:
            self.clear()
        if found is None:
            self._aliases[token] = time.monotonic()
            return
        self._aliases[token] = found
        self._by_seller[found.conversation.seller_id].add(token)
        self._by_buyer[found.buyer_id].add(token)

    # -- quota ----------------------------------------------------------------------

    async def quota(self, seller_id: int, now: datetime, window_days: int) -> QuotaStatus:
        """The seller's orders in the trailing window and its messages to buyers today, as
        far as this process knows: the commit counts exactly."""
        facts = self._quota.get(seller_id)
        if facts is None or time.monotonic() - facts.read_at > QUOTA_FACTS_SECONDS:
            generation = self._generation
            orders, used = await self._read(lambda c: _read_quota(c, seller_id, now, window_days))
            facts = _QuotaFacts(orders, time.monotonic())
            if generation == self._generation:
                self._quota[seller_id] = facts
            self.counted(seller_id, now.date(), used)
        day, used = self._used.get(seller_id, (now.date(), 0))
        return QuotaStatus(facts.orders_in_window, used if day == now.date() else 0)

    def counted(self, seller_id: int, day: date, used: int) -> None:
        """A count of the seller's day read or left by a commit (counts only grow)."""
        known_day, known = self._used.get(seller_id, (day, 0))
        self._used[seller_id] = (day, max(used, known) if known_day == day else used)

    # -- per message ----------------------------------------------------------------

    async def thread(self, pair_id: int, references: Sequence[str]) -> tuple[ThreadEntry, ...]:
        """The pair's earlier messages among `references` (Message-IDs of either side)."""
        if not references:
            return ()
        return await self._read(lambda c: _read_thread(c, pair_id, references))

    async def find_bounce(self, token: str) -> BounceContext | None:
        """The delivery whose bounce address carries `token`."""
        return await self._read(lambda c: queue.find_bounce(c, token))

    # -- keeping fresh --------------------------------------------------------------

    def apply(self, change: Change) -> None:
        """Drop what a registry change touched."""
        self._generation += 1
        if change.seller_id is None and change.buyer_id is None:
            self.clear()
            return
        tokens: set[str] = set()
        if change.seller_id is not None:
            tokens |= self._by_seller.pop(change.seller_id, set())
            self._quota.pop(change.seller_id, None)
        if change.buyer_id is not None:
            tokens |= self._by_buyer.pop(change.buyer_id, set())
        for token in tokens:
            self._aliases.pop(token, None)

    def clear(self) -> None:
        self._generation += 1
        self._aliases.clear()
        self._by_seller.clear()
        self._by_buyer.clear()
        self._quota.clear()

    async def start_reading_changes(self) -> None:
        """From now on, changes past the newest logged one are applied (a fresh cache)."""
        self.last_change = await self._read(changes.latest)

    async def read_changes(self) -> int:
        """Apply the changes logged since the last one seen; how many there were."""
        last = self.last_change
        found = await self._read(lambda c: changes.since(c, last))
        for change_id, change in found:
            self.apply(change)
            self.last_change = change_id
        return len(found)


def read_pair(connection: Connection, token: str, domain: str) -> _Pair | None:
    """The pair behind an alias, as the directory caches it."""
    rows = connection.execute(
        select(
            Pair.id,
            Pair.seller_id,
            Pair.buyer_id,
            Pair.buyer_alias,
            Pair.seller_alias,
            Seller.name,
            Seller.status,
            Seller.pre_purchase,
            Buyer.address.label("buyer_address"),
            Buyer.opted_out,
            SellerMailbox.address.label("mailbox"),
            select(func.max(Order.placed_at))
            .where(Order.pair_id == Pair.id)
            .scalar_subquery()
            .label("latest_order_at"),
        )
        .join(Seller, Seller.id == Pair.seller_id)
        .join(Buyer, Buyer.id == Pair.buyer_id)
        .join(SellerMailbox, SellerMailbox.seller_id == Pair.seller_id)
        .where(or_(Pair.buyer_alias == token, Pair.seller_alias == token))
        .order_by(SellerMailbox.id)
    ).all()
    if not rows:
        return None
    first = rows[0]
    mailboxes = tuple(row.mailbox for row in rows)
    suppressed = suppressions.suppressed_until(connection, (mailboxes[0], first.buyer_address))
    seller = Party(
        side=Side.SELLER,
        alias=alias_address(first.seller_alias, domain),
        display_name=first.name,
        registered=mailboxes,
        delivery_address=mailboxes[0],
        suppressed_until=suppressed.get(mailboxes[0]),
    )
    buyer = Party(
        side=Side.BUYER,
        alias=alias_address(first.buyer_alias, domain),
        display_name=BUYER_DISPLAY_NAME,
        registered=(first.buyer_address,),
        delivery_address=first.buyer_address,
        suppressed_until=suppressed.get(first.buyer_address),
    )
    latest_order = first.latest_order_at
    standing = PairStanding(
        # A scalar subquery bypasses the column type: make it aware UTC like the others.
        latest_order_at=_as_utc(latest_order) if latest_order is not None else None,
        seller_suspended=first.status == SUSPENDED,
        pre_purchase_allowed=first.pre_purchase,
        buyer_opted_out=first.opted_out,
    )
    sender, recipient = (seller, buyer) if first.buyer_alias == token else (buyer, seller)
    conversation = Conversation(first.id, first.seller_id, sender, recipient, standing=standing)
    return _Pair(conversation, first.buyer_id)


def _read_quota(
    connection: Connection, seller_id: int, now: datetime, window_days: int
) -> tuple[int, int]:
    since = now - timedelta(days=window_days)
    orders = (
        select(func.count(Order.id))
        .join(Pair, Pair.id == Order.pair_id)
        .where(Pair.seller_id == seller_id, Order.placed_at > since)
        .scalar_subquery()
    )
    used = (
        select(QuotaUsage.used)
        .where(QuotaUsage.seller_id == seller_id, QuotaUsage.day == now.date())
        .scalar_subquery()
    )
    row = connection.execute(select(orders, used)).one()  # one round trip
    return int(row[0] or 0), int(row[1] or 0)


def _read_thread(
    connection: Connection, pair_id: int, references: Sequence[str]
) -> tuple[ThreadEntry, ...]:
    rows = connection.execute(
        select(
            Message.gateway_message_id,
            Message.original_message_id,
            Message.direction,
            Message.received_at,
        ).where(
            Message.pair_id == pair_id,
            Message.verdict == "accepted",
            Message.direction.in_(
                [Direction.SELLER_TO_BUYER.value, Direction.BUYER_TO_SELLER.value]
            ),
            or_(
                Message.gateway_message_id.in_(references),
                Message.original_message_id.in_(references),
            ),
        )
    ).all()
    return tuple(
        ThreadEntry(
            gateway_id=row.gateway_message_id,
            original_id=row.original_message_id,
            sender_side=Side.SELLER if row.direction == Direction.SELLER_TO_BUYER else Side.BUYER,
            sent_at=row.received_at,
        )
        for row in rows
    )


def _as_utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


POLL_SECONDS = 0.25  # SQLite: how often the change log is read
PRUNE_SECONDS = 600.0  # how often old changes are deleted from the log
RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0)  # PostgreSQL: reconnecting the listener


class ChangeWatcher:
    """Keeps one process's directory fresh: on PostgreSQL it LISTENs for the changes the
    registry announces; on SQLite it reads the log four times a second. While the watcher
    cannot tell what changed (the listener is reconnecting), the cache is dropped whole."""

    def __init__(self, directory: Directory, database: Database, clock: Clock) -> None:
        self._directory = directory
        self._db = database
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._directory.start_reading_changes()
        watch = self._listen if self._db.is_postgresql else self._poll
        self._task = asyncio.create_task(watch(), name="registry-changes")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _poll(self) -> None:
        pruned = time.monotonic()
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                await self._directory.read_changes()
                if time.monotonic() - pruned > PRUNE_SECONDS:
                    pruned = time.monotonic()
                    await asyncio.to_thread(self._prune)
            except Exception as error:
                self._directory.clear()
                _log.warning("registry_changes_unreadable", error=type(error).__name__)

    def _prune(self) -> None:
        with self._db.writing() as connection:
            changes.prune(connection, self._clock.now())

    async def _listen(self) -> None:
        import psycopg  # only PostgreSQL listens

        conninfo = self._db.engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False
        )
        failures = 0
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    conninfo, autocommit=True
                ) as connection:
                    await connection.execute(f"LISTEN {changes.CHANNEL}")
                    # Whatever changed while nobody listened is unknown: start afresh.
                    self._directory.clear()
                    failures = 0
                    async for notification in connection.notifies():
                        self._directory.apply(changes.parse_notification(notification.payload))
            except (psycopg.Error, OSError) as error:
                self._directory.clear()
                delay = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
                failures += 1
                _log.warning("registry_listener_lost", error=type(error).__name__, retry_in=delay)
                await asyncio.sleep(delay)
