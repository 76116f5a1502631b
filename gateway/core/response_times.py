"""Sellers' response times (SPEC, "Response time"): pure arithmetic over waits.

A buyer's message opens a wait; the seller's next message in the pair closes it, or an
operator marks it "no response needed". Time while the seller is on vacation does not count,
except in a pair with an order placed before the vacation began.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

ANSWER_EXPECTED_WITHIN = timedelta(hours=24)
REPLIED, NO_RESPONSE_NEEDED = "reply", "no_response_needed"


@dataclass(frozen=True, slots=True)
class Period:
    starts: datetime
    ends: datetime


@dataclass(frozen=True, slots=True)
class WaitRecord:
    opened_at: datetime
    closed_at: datetime | None
    closed_by: str | None  # REPLIED | NO_RESPONSE_NEEDED | None (still open)
    first_order_at: datetime | None  # the pair's first order; None before any


@dataclass(frozen=True, slots=True)
class ResponseSummary:
    seller_id: int
    seller_name: str
    waits: int  # buyer messages that expect an answer (not marked "no response needed")
    answered_in_time: int
    answered_late: int
    unanswered: int
    no_response_needed: int
    average_seconds: float | None  # over answered waits

    def share(self, count: int) -> float | None:
        return count / self.waits if self.waits else None


def counted_seconds(wait: WaitRecord, vacations: Sequence[Period], now: datetime) -> float:
    """How long the wait lasted (or has lasted), minus vacation time that does not count."""
    end = wait.closed_at or now
    seconds = (end - wait.opened_at).total_seconds()
    for vacation in vacations:
        if wait.first_order_at is not None and wait.first_order_at < vacation.starts:
            continue  # an order placed before the vacation still expects answers
        overlap = (min(end, vacation.ends) - max(wait.opened_at, vacation.starts)).total_seconds()
        seconds -= max(overlap, 0.0)
    return max(seconds, 0.0)


def summarise(
    seller_id: int,
    seller_name: str,
    waits: Sequence[WaitRecord],
    vacations: Sequence[Period],
    now: datetime,
) -> ResponseSummary:
    answered: list[float] = []
    unanswered = skipped = 0
    for wait in waits:
        if wait.closed_by == NO_RESPONSE_NEEDED:
            skipped += 1
        elif wait.closed_by == REPLIED:
            answered.append(counted_seconds(wait, vacations, now))
        else:
            unanswered += 1
    limit = ANSWER_EXPECTED_WITHIN.total_seconds()
    in_time = sum(1 for seconds in answered if seconds <= limit)
    return ResponseSummary(
        seller_id=seller_id,
        seller_name=seller_name,
        waits=len(waits) - skipped,
        answered_in_time=in_time,
        answered_late=len(answered) - in_time,
        unanswered=unanswered,
        no_response_needed=skipped,
        average_seconds=sum(answered) / len(answered) if answered else None,
    )
