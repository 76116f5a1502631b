"""Sellers, buyers, orders and pairs: what the marketplace registers, and who is who."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.core.addresses import alias_address, new_alias_token, normalise
from gateway.core.clock import Clock
from gateway.core.model import (
    Conversation,
)
from gateway.storage.changes import RECORDED, Change, record
from gateway.storage.database import Database
from gateway.storage.directory import read_pair
from gateway.storage.schema import (
    Buyer,
    Order,
    Pair,
    Seller,
    SellerMailbox,
    Vacation,
    is_row_id,
)

ACTIVE, SUSPENDED = "active", "suspended"


class RegistryError(ValueError):
    """A registry request that cannot be carried out; the text says why."""


@dataclass(frozen=True, slots=True)
class PairView:
    pair_id: int
    seller_id: int
    buyer_id: int
    buyer_alias: str
    seller_alias: str


@dataclass(frozen=True, slots=True)
class OrderView:
    order_id: int
    created: bool
    pair: PairView


class Registry:
    """Registry commands (CLI, admin API) and the Directory the SMTP side looks things up in."""

    def __init__(
        self,
        database: Database,
        alias_domain: str,
        clock: Clock,
        on_change: Callable[[Change], None] | None = None,
    ) -> None:
        self._db = database
        self._domain = alias_domain
        self._clock = clock
        # Told of each change once it is committed: this process's directory drops what
        # the change touched at once, where other processes learn it from the change log.
        self._on_change = on_change

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        with self._db.transaction() as session:
            yield session
            recorded: list[Change] = session.info.pop(RECORDED, [])
        if self._on_change is not None:
            for change in recorded:
                self._on_change(change)

    # -- registration ---------------------------------------------------------------

    def add_seller(self, name: str, mailboxes: Sequence[str]) -> int:
        if not name.strip():
            raise RegistryError("a seller needs a name")
        if not mailboxes:
            raise RegistryError("a seller needs at least one --mailbox")
        addresses = [_address(m) for m in mailboxes]
        with self._transaction() as session:
            taken = session.scalars(
                select(SellerMailbox.address).where(SellerMailbox.address.in_(addresses))
            ).first()
            if taken is not None:
                raise RegistryError("a mailbox given is already registered to a seller")
            seller = Seller(name=name.strip(), status="active", created_at=self._clock.now())
            session.add(seller)
            session.flush()
            session.add_all(SellerMailbox(seller_id=seller.id, address=a) for a in addresses)
            record(session, self._clock.now(), Change(seller_id=seller.id))
            return seller.id

    def add_buyer(self, address: str) -> tuple[int, bool]:
        """The buyer's id, and whether it was created now (adding twice is harmless)."""
        normalised = _address(address)
        with self._transaction() as session:
            existing = session.scalar(select(Buyer.id).where(Buyer.address == normalised))
            if existing is not None:
                return existing, False
            buyer = Buyer(address=normalised, opted_out=False, created_at=self._clock.now())
            session.add(buyer)
            session.flush()
            record(session, self._clock.now(), Change(buyer_id=buyer.id))
            return buyer.id, True

    def add_order(
        self, seller_id: int, buyer_id: int, ref: str | None, placed_at: datetime | None
    ) -> OrderView:
        placed = placed_at or self._clock.now()
        if placed.tzinfo is None:
            raise RegistryError("--placed-at needs a timezone, e.g. 2026-11-01T10:00:00Z")
        for _attempt in range(3):
            try:
                return self._add_order_once(seller_id, buyer_id, ref, placed)
            except IntegrityError:
                # Another writer created the same pair (or ref) just now: look again.
                continue
        raise RegistryError("could not register the order; try again")

    def _add_order_once(
        self, seller_id: int, buyer_id: int, ref: str | None, placed: datetime
    ) -> OrderView:
        with self._transaction() as session:
            self._seller(session, seller_id)
            self._buyer(session, buyer_id)
            pair = self._pair(session, seller_id, buyer_id) or self._new_pair(
                session, seller_id, buyer_id
            )
            if ref is not None:
                known = session.scalar(select(Order).where(Order.ref == ref))
                if known is not None:
                    if known.pair_id != pair.id:
                        raise RegistryError(f"order ref {ref!r} belongs to another pair")
                    return OrderView(known.id, False, self._view(pair))
            order = Order(ref=ref, pair_id=pair.id, placed_at=placed)
            session.add(order)
            session.flush()
            # The pair's latest order and the seller's daily quota change with it.
            record(session, self._clock.now(), Change(seller_id, buyer_id))
            return OrderView(order.id, True, self._view(pair))

    def add_pair(self, seller_id: int, buyer_id: int) -> PairView:
        """A pair before any order, for a buyer's pre-purchase question (adding twice is
        harmless)."""
        for _attempt in range(3):
            try:
                with self._transaction() as session:
                    self._seller(session, seller_id)
                    self._buyer(session, buyer_id)
                    pair = self._pair(session, seller_id, buyer_id) or self._new_pair(
                        session, seller_id, buyer_id
                    )
                    return self._view(pair)
            except IntegrityError:
                continue  # made by another writer just now: look again
        raise RegistryError("could not register the pair; try again")

    def import_order(
        self, seller_id: int, buyer_address: str, ref: str, placed_at: datetime
    ) -> OrderView:
        """One order as the marketplace exports it: the buyer by address, made if new."""
        with self._db.reading() as session:
            self._seller(session, seller_id)  # before registering the buyer for nothing
        buyer_id, _ = self.add_buyer(buyer_address)
        return self.add_order(seller_id, buyer_id, ref, placed_at)

    def set_opted_out(self, address: str, opted_out: bool) -> tuple[int, bool]:
        """Opt a buyer out of (or back into) non-essential messages; a buyer not yet known
        is registered. Returns the buyer id and whether anything changed."""
        buyer_id, _ = self.add_buyer(address)
        with self._transaction() as session:
            buyer = session.get(Buyer, buyer_id)
            assert buyer is not None
            changed = buyer.opted_out != opted_out
            buyer.opted_out = opted_out
            record(session, self._clock.now(), Change(buyer_id=buyer_id))
        return buyer_id, changed

    def set_suspended(self, seller_id: int, suspended: bool) -> bool:
        """Suspend or reinstate a seller; whether anything changed."""
        with self._transaction() as session:
            seller = self._seller(session, seller_id)
            status = SUSPENDED if suspended else ACTIVE
            changed = seller.status != status
            seller.status = status
            record(session, self._clock.now(), Change(seller_id=seller_id))
        return changed

    def set_pre_purchase(self, seller_id: int, allowed: bool) -> None:
        with self._transaction() as session:
            self._seller(session, seller_id).pre_purchase = allowed
            record(session, self._clock.now(), Change(seller_id=seller_id))

    def add_vacation(self, seller_id: int, starts: datetime, ends: datetime) -> int:
        if starts.tzinfo is None or ends.tzinfo is None:
            raise RegistryError("vacation times need a timezone, e.g. 2026-12-20T00:00:00Z")
        if ends <= starts:
            raise RegistryError("a vacation must end after it starts")
        with self._transaction() as session:
            self._seller(session, seller_id)
            vacation = Vacation(seller_id=seller_id, starts_at=starts, ends_at=ends)
            session.add(vacation)
            session.flush()
            return vacation.id

    @staticmethod
    def _seller(session: Session, seller_id: int) -> Seller:
        seller = session.get(Seller, seller_id) if is_row_id(seller_id) else None
        if seller is None:
            raise RegistryError(f"no seller {seller_id}")
        return seller

    @staticmethod
    def _buyer(session: Session, buyer_id: int) -> Buyer:
        buyer = session.get(Buyer, buyer_id) if is_row_id(buyer_id) else None
        if buyer is None:
            raise RegistryError(f"no buyer {buyer_id}")
        return buyer

    def find_alias(self, token: str) -> Conversation | None:
        """The pair behind an alias, as a message to it finds it (read now, not cached)."""
        with self._db.read_connection() as connection:
            found = read_pair(connection, token, self._domain)
        return found.conversation if found else None

    def show_pair(self, seller_id: int, buyer_id: int) -> PairView:
        with self._db.reading() as session:
            self._seller(session, seller_id)
            self._buyer(session, buyer_id)
            pair = self._pair(session, seller_id, buyer_id)
            if pair is None:
                raise RegistryError(f"seller {seller_id} and buyer {buyer_id} have no pair yet")
            return self._view(pair)

    def _pair(self, session: Session, seller_id: int, buyer_id: int) -> Pair | None:
        return session.scalar(
            select(Pair).where(Pair.seller_id == seller_id, Pair.buyer_id == buyer_id)
        )

    def _new_pair(self, session: Session, seller_id: int, buyer_id: int) -> Pair:
        pair = Pair(
            seller_id=seller_id,
            buyer_id=buyer_id,
            buyer_alias=new_alias_token(),
            seller_alias=new_alias_token(),
            created_at=self._clock.now(),
        )
        session.add(pair)
        session.flush()
        record(session, self._clock.now(), Change(seller_id, buyer_id))
        return pair

    def _view(self, pair: Pair) -> PairView:
        return PairView(
            pair_id=pair.id,
            seller_id=pair.seller_id,
            buyer_id=pair.buyer_id,
            buyer_alias=alias_address(pair.buyer_alias, self._domain),
            seller_alias=alias_address(pair.seller_alias, self._domain),
        )


def _address(text: str) -> str:
    try:
        return normalise(text)
    except ValueError as error:
        raise RegistryError(str(error)) from None
