"""The marketplace's rules that depend on orders and time (SPEC, "The rules"): suspension,
the contact window, pre-purchase questions, opt-outs and the daily quota. Facts come in the
context; "now" is the message's arrival."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from gateway.core import status
from gateway.core.model import Direction, QuotaStatus, Side, Violation
from gateway.core.status import Reply
from gateway.policy.rule import MessageContext


@dataclass(frozen=True, slots=True)
class MarketplacePolicy:
    quota_base: int = 600
    quota_per_daily_order: int = 5
    quota_window_days: int = 30
    quota_permanent: bool = False  # over quota: 452 4.7.1 (retry tomorrow) or 550 5.7.1
    contact_window_days: int = 30
    important_tag: str = "[Important]"
    reason_tags: tuple[str, ...] = ("[Additional information required]",)


def daily_limit(quota: QuotaStatus, policy: MarketplacePolicy) -> int:
    """(average daily orders over the window x 5) + 600: 100 orders a day -> 1,100."""
    per_order = quota.orders_in_window * policy.quota_per_daily_order
    return policy.quota_base + per_order // policy.quota_window_days


def next_utc_midnight(moment: datetime) -> datetime:
    return datetime.combine(moment.date() + timedelta(days=1), time(), tzinfo=moment.tzinfo)


def subject_of(ctx: MessageContext) -> str:
    return str(ctx.message.message.get("Subject", ""))


def is_important(ctx: MessageContext, policy: MarketplacePolicy) -> bool:
    """A seller's message marked with the tag, brackets included, in its Subject."""
    return _from_seller(ctx) and policy.important_tag in subject_of(ctx)


def _from_seller(ctx: MessageContext) -> bool:
    return ctx.conversation.direction is Direction.SELLER_TO_BUYER


def _latest_buyer_message(ctx: MessageContext) -> datetime | None:
    """The latest buyer message of the pair this one answers (by In-Reply-To/References)."""
    times = [
        entry.sent_at
        for entry in ctx.conversation.thread
        if entry.sender_side is Side.BUYER and entry.sent_at is not None
    ]
    return max(times, default=None)


class SellerSuspended:
    id = "seller.suspended"
    description = "A suspended seller can send nothing; buyers' messages to it still arrive."

    def check(self, ctx: MessageContext) -> list[Violation]:
        if _from_seller(ctx) and ctx.conversation.standing.seller_suspended:
            return [Violation(self.id, status.SELLER_SUSPENDED)]
        return []


class ContactWindow:
    id = "window.contact"
    description = (
        "A seller may start a conversation only within 30 days of the pair's latest order; a "
        "reply to a buyer's message is allowed within 30 days of that message."
    )

    def __init__(self, policy: MarketplacePolicy) -> None:
        self._days = policy.contact_window_days

    def check(self, ctx: MessageContext) -> list[Violation]:
        if not _from_seller(ctx):
            return []
        window = timedelta(days=self._days)
        answered = _latest_buyer_message(ctx)
        if answered is not None and ctx.received_at - answered <= window:
            return []
        ordered = ctx.conversation.standing.latest_order_at
        if ordered is not None and ctx.received_at - ordered <= window:
            return []
        if ordered is None and answered is None:
            why = "no order with this buyer, and no message of theirs answered"
        else:
            last = max(t for t in (ordered, answered) if t is not None)
            why = (
                f"more than {self._days} days since the last order or the buyer message "
                f"answered ({last:%Y-%m-%d}); reply to a buyer message within {self._days} "
                "days of it"
            )
        return [Violation(self.id, status.outside_contact_window(why), why)]


class PrePurchaseQuestion:
    id = "window.pre_purchase"
    description = (
        "Before any order, a buyer may write to a seller only if the seller takes "
        "pre-purchase questions."
    )

    def check(self, ctx: MessageContext) -> list[Violation]:
        standing = ctx.conversation.standing
        if (
            ctx.conversation.direction is Direction.BUYER_TO_SELLER
            and standing.latest_order_at is None
            and not standing.pre_purchase_allowed
        ):
            return [Violation(self.id, status.NO_PRE_PURCHASE)]
        return []


class BuyerOptedOut:
    id = "optout"
    description = (
        "A buyer who opted out receives only replies to their own messages, messages marked "
        "[Important] in the subject, and messages giving a contact reason of the policy "
        "(such as [Additional information required])."
    )

    def __init__(self, policy: MarketplacePolicy) -> None:
        self._tags = (policy.important_tag, *policy.reason_tags)

    def check(self, ctx: MessageContext) -> list[Violation]:
        if not _from_seller(ctx) or not ctx.conversation.standing.buyer_opted_out:
            return []
        if _latest_buyer_message(ctx) is not None:
            return []  # a reply to the buyer's own message
        subject = subject_of(ctx)
        if any(tag in subject for tag in self._tags):
            return []
        hint = "only replies to the buyer, or a subject marked " + " or ".join(self._tags)
        return [Violation(self.id, status.opted_out(hint), hint)]


class DailyQuota:
    id = "quota.daily"
    description = (
        "A seller sends at most (average daily orders over 30 days x 5) + 600 messages to "
        "buyers per UTC day. This check refuses early; the commit counts atomically."
    )

    def __init__(self, policy: MarketplacePolicy) -> None:
        self._policy = policy

    def check(self, ctx: MessageContext) -> list[Violation]:
        quota = ctx.conversation.quota
        if not _from_seller(ctx) or quota is None:
            return []
        limit = daily_limit(quota, self._policy)
        if quota.used_today < limit:
            return []
        return [Violation(self.id, over_quota_reply(limit, ctx.received_at, self._policy))]


def over_quota_reply(limit: int, now: datetime, policy: MarketplacePolicy) -> Reply:
    resets = next_utc_midnight(now)
    hours = max(1, round((resets - now).total_seconds() / 3600))
    return status.over_quota(limit, hours, policy.quota_permanent)
