"""What operators and the marketplace read back: response times, [Important] use, and
marking a buyer message as needing no response."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, select

from gateway.core.clock import Clock
from gateway.core.model import Direction
from gateway.core.response_times import (
    Period,
    ResponseSummary,
    WaitRecord,
    summarise,
)
from gateway.storage import waits
from gateway.storage.database import Database
from gateway.storage.schema import Message, Order, Pair, Seller, Vacation, Wait, is_row_id


class ReportError(ValueError):
    """A request that cannot be carried out; the text says why."""


@dataclass(frozen=True, slots=True)
class ImportantShare:
    seller_id: int
    seller_name: str
    messages: int  # the seller's messages to buyers in the period, whatever their verdict
    important: int  # of which marked [Important]

    @property
    def share(self) -> float:
        return self.important / self.messages if self.messages else 0.0


class Reports:
    def __init__(self, database: Database, clock: Clock) -> None:
        self._db = database
        self._clock = clock

    def response_times(
        self, seller_id: int | None = None, since: datetime | None = None
    ) -> list[ResponseSummary]:
        """Per seller, over the buyer messages received since `since` (all if None)."""
        first_order = (
            select(func.min(Order.placed_at))
            .where(Order.pair_id == Wait.pair_id)
            .scalar_subquery()
            .label("first_order_at")
        )
        query = (
            select(Wait, Seller.name, first_order)
            .join(Seller, Seller.id == Wait.seller_id)
            .order_by(Wait.seller_id, Wait.opened_at)
        )
        vacations = select(Vacation)
        if seller_id is not None:
            query = query.where(Wait.seller_id == seller_id)
            vacations = vacations.where(Vacation.seller_id == seller_id)
        if since is not None:
            query = query.where(Wait.opened_at >= since)
        waits: dict[int, list[WaitRecord]] = defaultdict(list)
        names: dict[int, str] = {}
        away: dict[int, list[Period]] = defaultdict(list)
        with self._db.reading() as session:
            for wait, name, first_order_at in session.execute(query):
                names[wait.seller_id] = name
                waits[wait.seller_id].append(
                    WaitRecord(wait.opened_at, wait.closed_at, wait.closed_by, first_order_at)
                )
            for vacation in session.scalars(vacations):
                away[vacation.seller_id].append(Period(vacation.starts_at, vacation.ends_at))
        now = self._clock.now()
        return [
            summarise(seller, names[seller], records, away[seller], now)
            for seller, records in waits.items()
        ]

    def important_shares(self, since: datetime | None = None) -> list[ImportantShare]:
        """Per seller: its messages to buyers, and how many of them were marked [Important]."""
        query = (
            select(
                Pair.seller_id,
                Seller.name,
                func.count(Message.id),
                func.sum(case((Message.important, 1), else_=0)),
            )
            .join(Pair, Pair.id == Message.pair_id)
            .join(Seller, Seller.id == Pair.seller_id)
            .where(Message.direction == Direction.SELLER_TO_BUYER.value)
            .group_by(Pair.seller_id, Seller.name)
            .order_by(Pair.seller_id)
        )
        if since is not None:
            query = query.where(Message.received_at >= since)
        with self._db.reading() as session:
            rows = session.execute(query).all()
        return [ImportantShare(row[0], row[1], row[2], int(row[3] or 0)) for row in rows]

    def no_response_needed(self, message: str) -> int:
        """Close the wait a buyer message opened, without a reply. `message` is the archive
        id (as in "accepted for delivery as N") or the gateway's Message-ID."""
        text = message.strip()
        if text.isascii() and text.isdecimal():
            if not is_row_id(int(text)):
                raise ReportError(f"no message {message}")
            which = Message.id == int(text)
        else:
            which = Message.gateway_message_id == text
        with self._db.transaction() as session:
            found = session.execute(select(Message.id, Message.direction).where(which)).first()
            if found is None:
                raise ReportError(f"no message {message}")
            if found.direction != Direction.BUYER_TO_SELLER.value:
                raise ReportError(f"message {message} is not a buyer's message")
            if not waits.close_unanswered(session, found.id, self._clock.now()):
                raise ReportError(
                    f"message {message} opened no wait: it was refused, or an earlier "
                    "message of the buyer is still waiting"
                )
            return int(found.id)
