"""The chains: which rules run at RCPT and at DATA, in order, and what a hit does."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

from gateway.core import status
from gateway.core.model import Direction, Violation
from gateway.core.status import Reply
from gateway.policy.config import Mode
from gateway.policy.content import ContentRuleSet
from gateway.policy.rule import MessageContext, RecipientContext, Rule
from gateway.policy.rules.alias import RecipientSuppressed, RelayDenied, UnknownAlias
from gateway.policy.rules.marketplace import (
    BuyerOptedOut,
    ContactWindow,
    DailyQuota,
    MarketplacePolicy,
    PrePurchaseQuestion,
    SellerSuspended,
)
from gateway.policy.rules.sender import (
    EnvelopeSender,
    FromSyntax,
    HeaderFrom,
    SenderAuthenticated,
)
from gateway.policy.rules.submission import OwnBuyerAlias

Ctx = TypeVar("Ctx", RecipientContext, MessageContext)


class Action(StrEnum):
    REJECT = "reject"  # the recipient is refused with the violation's reply
    SHADOW = "shadow"  # recorded and counted, never blocks


@dataclass(frozen=True, slots=True)
class Link(Generic[Ctx]):
    rule: Rule[Ctx]
    action: Action = Action.REJECT
    stop: bool = False  # a hit ends the chain: later rules would only repeat the point


@dataclass(frozen=True, slots=True)
class Judgement:
    rejections: tuple[Violation, ...] = ()
    shadowed: tuple[Violation, ...] = ()

    @property
    def passed(self) -> bool:
        return not self.rejections


def judge(chain: Sequence[Link[Ctx]], ctx: Ctx) -> Judgement:
    """Run the chain: every violation is collected, not only the first."""
    rejections: list[Violation] = []
    shadowed: list[Violation] = []
    for link in chain:
        hits = link.rule.check(ctx)
        (rejections if link.action is Action.REJECT else shadowed).extend(hits)
        if hits and link.stop:
            break
    return Judgement(tuple(rejections), tuple(shadowed))


RCPT_CHAIN: tuple[Link[RecipientContext], ...] = (
    Link(RelayDenied(), stop=True),
    Link(UnknownAlias(), stop=True),
    Link(EnvelopeSender(), stop=True),
    Link(RecipientSuppressed(), stop=True),  # only to the party: it names no address
)

# An authenticated seller: its credentials prove who it is, the alias must be its buyer's.
SUBMISSION_RCPT_CHAIN: tuple[Link[RecipientContext], ...] = (
    Link(RelayDenied(), stop=True),
    Link(OwnBuyerAlias(), stop=True),
    Link(RecipientSuppressed(), stop=True),
)


def data_chain(
    sender_auth: str,
    marketplace: MarketplacePolicy,
    content: ContentRuleSet,
    direction: Direction,
) -> tuple[Link[MessageContext], ...]:
    """The DATA chain for messages in `direction`: who sent it, the marketplace's rules, what
    it says; permanent refusals come before the quota's temporary one, whose reply the
    sender then sees first."""
    return (
        Link(FromSyntax(), stop=True),
        Link(HeaderFrom()),
        Link(SenderAuthenticated(sender_auth)),
        Link(SellerSuspended(), stop=True),
        Link(PrePurchaseQuestion()),
        Link(ContactWindow(marketplace)),
        Link(BuyerOptedOut(marketplace)),
        *(
            Link(rule, Action.REJECT if mode is Mode.ENFORCE else Action.SHADOW)
            for rule, mode in content.active(direction)
        ),
        Link(DailyQuota(marketplace)),
    )


def refusal(rejections: Sequence[Violation], help_url: str = "") -> Reply:
    """One reply for all of a message's violations: the first rule's, and when content
    rules refused it, every content violation on its own line with what matched."""
    first = rejections[0].reply
    if first != status.CONTENT_REFUSED:
        return first
    matches = [(v.rule_id, v.detail) for v in rejections if v.reply == first]
    return status.content_refused(matches, help_url)
