"""What one DATA command means for each recipient, as archive entries: pure, no I/O.

The handler looks the facts up and commits; everything between is decided here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime

from gateway.core import status
from gateway.core.addresses import bounce_address, new_alias_token, new_message_id
from gateway.core.content import EMPTY_CONTENT, ContentFacts
from gateway.core.message import ParsedMessage
from gateway.core.model import (
    ArchiveEntry,
    BounceContext,
    Conversation,
    Delivery,
    Direction,
    QuotaClaim,
    SenderAuthentication,
    Violation,
)
from gateway.core.status import Reply
from gateway.inbound.judging import Judging
from gateway.pipeline.authresults import stamp
from gateway.pipeline.dsn import (
    FailedRecipient,
    delivery_failed_notice,
    failure_notice,
    header_block,
    read_report,
    scrub_addresses,
)
from gateway.pipeline.leakguard import LeakFound
from gateway.pipeline.rewrite import rewrite
from gateway.policy.chains import judge, refusal
from gateway.policy.rule import MessageContext
from gateway.policy.rules.marketplace import (
    MarketplacePolicy,
    daily_limit,
    is_important,
    over_quota_reply,
)

UNREADABLE = Violation("message.format", status.MALFORMED)
MIME_TOO_DEEP = Violation("message.mime_depth", status.MIME_TOO_DEEP)


@dataclass(frozen=True, slots=True)
class Received:
    """One DATA command as it arrived."""

    envelope_from: str
    raw: bytes
    parsed: ParsedMessage | None  # None: the bytes could not be read, for `unreadable`
    received_at: datetime
    session_id: str
    alias_domain: str
    unreadable: Violation = UNREADABLE
    authentication: SenderAuthentication | None = None  # None: not checked (bounces)
    content: ContentFacts = EMPTY_CONTENT  # read only when a content rule runs


@dataclass(frozen=True, slots=True)
class Outcome:
    """One recipient's fate: its archive entry, and what else it sets off."""

    rcpt: str
    pair_id: int | None
    entry: ArchiveEntry
    notice: ArchiveEntry | None = None  # a DSN to a sender
    failed_delivery: tuple[int, str] | None = None  # a delivery a bounce reports as failed
    quota_claim: QuotaClaim | None = None  # a seller's message counted against its day


def _as_received(
    received: Received, rcpt: str, direction: Direction, pair_id: int | None, reply: Reply
) -> ArchiveEntry:
    """The archive entry of the message as it arrived, with nothing delivered yet."""
    parsed = received.parsed
    return ArchiveEntry(
        direction=direction,
        pair_id=pair_id,
        envelope_from=received.envelope_from,
        recipient=rcpt,
        received_at=received.received_at,
        raw_received=(
            stamp(received.raw, received.authentication, received.alias_domain)
            if received.authentication is not None
            else received.raw
        ),
        raw_delivered=None,
        gateway_message_id=new_message_id(received.alias_domain),
        original_message_id=parsed.message_id if parsed else None,
        reply=reply,
        session_id=received.session_id,
    )


def for_alias(
    received: Received,
    rcpt: str,
    conversation: Conversation,
    judging: Judging,
    marketplace: MarketplacePolicy,
) -> Outcome:
    """A message to a pair's alias: judged by its direction's chain, and if it passes,
    rewritten. The policy version and any shadowed hits are archived either way."""
    pair_id = conversation.pair_id
    parsed = received.parsed
    if parsed is None:
        unreadable = received.unreadable
        entry = _as_received(received, rcpt, conversation.direction, pair_id, unreadable.reply)
        return Outcome(rcpt, pair_id, replace(entry, violations=(unreadable,)))
    entry = _as_received(received, rcpt, conversation.direction, pair_id, status.QUEUED)
    context = MessageContext(
        received.envelope_from,
        parsed,
        conversation,
        received.received_at,
        received.authentication,
        received.content,
    )
    judgement = judge(judging.chains[conversation.direction], context)
    entry = replace(
        entry,
        important=is_important(context, marketplace),
        policy_version=judging.version,
        shadowed=judgement.shadowed,
    )
    if not judgement.passed:
        rejections = judgement.rejections
        reply = refusal(rejections, judging.help_url)
        return Outcome(rcpt, pair_id, replace(entry, reply=reply, violations=rejections))
    html = judging.html
    if html is not None:
        unwrap = frozenset(
            link.target.strip() for link in received.content.links if judging.rules.unwraps(link)
        )
        html = html.with_unwrapped(unwrap)
    try:
        delivered = rewrite(
            parsed, conversation, entry.gateway_message_id, received.received_at, html
        )
    except LeakFound as leak:
        where = ", ".join(leak.places)
        reply = status.LEAK_REFUSED.with_details(f"Your address appears in: {where}")
        violation = Violation("leak.guard", reply, where)
        return Outcome(rcpt, pair_id, replace(entry, reply=reply, violations=(violation,)))
    token = new_alias_token()
    delivery = Delivery(
        envelope_from=bounce_address(token, received.alias_domain),
        recipient=conversation.recipient.delivery_address,
        token=token,
    )
    accepted = replace(entry, reply=status.QUEUED, raw_delivered=delivered, delivery=delivery)
    claim = None
    if conversation.quota is not None and conversation.direction is Direction.SELLER_TO_BUYER:
        limit = daily_limit(conversation.quota, marketplace)
        claim = QuotaClaim(conversation.seller_id, received.received_at.date(), 1, limit)
    return Outcome(rcpt, pair_id, accepted, quota_claim=claim)


def over_quota(outcome: Outcome, marketplace: MarketplacePolicy) -> Outcome:
    """An accepted seller message whose commit found the day's limit reached meanwhile."""
    claim = outcome.quota_claim
    assert claim is not None
    reply = over_quota_reply(claim.limit, outcome.entry.received_at, marketplace)
    entry = replace(
        outcome.entry,
        reply=reply,
        violations=(Violation("quota.daily", reply),),
        raw_delivered=None,
        delivery=None,
    )
    return Outcome(outcome.rcpt, outcome.pair_id, entry)


def quota_claims(outcomes: Sequence[Outcome]) -> tuple[QuotaClaim, ...]:
    """The outcomes' claims, one per seller and day."""
    merged: dict[tuple[int, date], QuotaClaim] = {}
    for claim in (o.quota_claim for o in outcomes if o.quota_claim is not None):
        key = (claim.seller_id, claim.day)
        known = merged.get(key)
        merged[key] = replace(claim, count=claim.count + known.count) if known else claim
    return tuple(merged.values())


def unprocessable(received: Received, rcpt: str, conversation: Conversation) -> Outcome:
    """Judging or rewriting failed on these bytes: refused, and kept for the operators."""
    reply = status.UNPROCESSABLE
    entry = _as_received(received, rcpt, conversation.direction, conversation.pair_id, reply)
    violation = Violation("message.unprocessable", reply)
    return Outcome(rcpt, conversation.pair_id, replace(entry, violations=(violation,)))


def for_bounce(received: Received, rcpt: str, context: BounceContext) -> Outcome:
    """A report sent to a delivery's bounce address. It is archived; if it says the delivery
    failed, the delivery is marked failed and its sender is told, in the gateway's words."""
    entry = _as_received(received, rcpt, Direction.BOUNCE, context.pair_id, status.QUEUED)
    report = read_report(received.parsed.message) if received.parsed else None
    if (
        report is None
        or report.action != "failed"
        or context.state == "failed"
        or not context.original_sender
    ):
        return Outcome(rcpt, context.pair_id, entry)
    code = report.status if report.status.startswith("5.") else "5.0.0"
    diagnostic = scrub_addresses(
        report.diagnostic or "the recipient's mail server returned the message",
        received.alias_domain,
        "the recipient",
    )
    notice = delivery_failed_notice(
        context,
        code,
        diagnostic,
        alias_domain=received.alias_domain,
        now=received.received_at,
        session_id=received.session_id,
    )
    failed = (context.outbound_id, f"bounced after delivery: {code} {diagnostic}")
    return Outcome(rcpt, context.pair_id, entry, notice, failed)


def partial_refusal_notice(received: Received, refused: Sequence[Outcome]) -> ArchiveEntry:
    """Some recipients passed, others not: the sender learns which by a DSN."""
    return failure_notice(
        alias_domain=received.alias_domain,
        pair_id=refused[0].pair_id,
        original_sender=received.envelope_from,
        original_headers=header_block(received.raw),
        arrival=received.received_at,
        now=received.received_at,
        failed=[
            FailedRecipient(o.rcpt, o.entry.reply.enhanced, o.entry.reply.text) for o in refused
        ],
        session_id=received.session_id,
    )


def refusal_reply(refused: Sequence[Outcome]) -> Reply:
    """The reply when every recipient was refused."""
    replies = list(dict.fromkeys(o.entry.reply for o in refused))
    if len(replies) == 1:
        return replies[0]
    # Different reasons for different recipients: name each one, with what it found.
    return status.SOME_REFUSED.with_details(
        *(
            " ".join(
                (f"{o.rcpt}: {o.entry.reply.enhanced}", o.entry.reply.text, *o.entry.reply.details)
            )
            for o in refused
        )
    )
