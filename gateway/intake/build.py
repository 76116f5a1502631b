"""Build: what the accepted recipients receive (rewritten once per pair, leak-checked), the
DSNs refusals and bounces set off, and the quota the seller's messages claim, as one unit
to commit. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from functools import partial

from gateway.core import status
from gateway.core.addresses import bounce_address, new_alias_token
from gateway.core.model import (
    ArchiveEntry,
    BounceContext,
    Delivery,
    Direction,
    HardBounce,
    QuotaClaim,
    Violation,
)
from gateway.intake.decide import Judged, as_received
from gateway.intake.model import MailboxOrigin, Outcome, Received, Unit, Variant
from gateway.intake.policy import Policy
from gateway.pipeline.bounces import REMOTE_REFUSED, Returned, ReturnReport, safe_diagnostic
from gateway.pipeline.dsn import (
    FailedRecipient,
    delivery_failed_notice,
    failure_notice,
    header_block,
)
from gateway.pipeline.leakguard import LeakFound
from gateway.pipeline.rewrite import rewrite
from gateway.policy.rules.marketplace import daily_limit, over_quota_reply


def deliverable(received: Received, judged: Judged, policy: Policy) -> Outcome:
    """A recipient that passed its chain: the message it receives, or a refusal if a real
    address of the sender would remain in it."""
    conversation, entry = judged.conversation, judged.entry
    parsed = received.parsed
    assert parsed is not None, "a message that passed its chain was read"
    html = policy.html
    if html is not None:
        unwrap = frozenset(
            link.target.strip() for link in received.content.links if policy.rules.unwraps(link)
        )
        html = html.with_unwrapped(unwrap)
    try:
        delivered = rewrite(
            parsed, conversation, entry.gateway_message_id, received.received_at, html
        )
    except LeakFound as leak:
        where = ", ".join(leak.places)
        reply = status.leak_refused(where)
        violation = Violation("leak.guard", reply, where)
        refused = replace(entry, reply=reply, violations=(violation,))
        return Outcome(judged.rcpt, conversation.pair_id, refused)
    token = new_alias_token()
    delivery = Delivery(
        envelope_from=bounce_address(token, received.alias_domain),
        recipient=conversation.recipient.delivery_address,
        token=token,
    )
    accepted = replace(entry, reply=status.QUEUED, raw_delivered=delivered, delivery=delivery)
    claim = None
    if conversation.quota is not None and conversation.direction is Direction.SELLER_TO_BUYER:
        limit = daily_limit(conversation.quota, policy.marketplace)
        claim = QuotaClaim(conversation.seller_id, received.received_at.date(), 1, limit)
    return Outcome(judged.rcpt, conversation.pair_id, accepted, quota_claim=claim)


def refused(judged: Judged) -> Outcome:
    return Outcome(judged.rcpt, judged.conversation.pair_id, judged.entry)


def for_bounce(
    received: Received, rcpt: str, context: BounceContext, report: ReturnReport
) -> Outcome:
    """A report sent to a delivery's bounce address, archived as about that delivery. If it
    says the delivery failed, the delivery is marked failed, its sender is told in the
    gateway's words (once, and never a DSN's sender, who is <>), and a hard failure counts
    against the recipient's address."""
    entry = as_received(received, rcpt, Direction.BOUNCE, context.pair_id, status.QUEUED)
    entry = replace(entry, about_id=context.record_id)
    if report.kind is not Returned.FAILED or context.state == "failed":
        return Outcome(rcpt, context.pair_id, entry)
    diagnostic = safe_diagnostic(
        report.diagnostic, context.delivered_to, received.alias_domain, REMOTE_REFUSED
    )
    failed = (context.outbound_id, f"bounced after delivery: {report.status} {diagnostic}")
    at = received.received_at
    hard = HardBounce(context.delivered_to, report.status, at, context.pair_id)
    notice = None
    if context.original_sender:
        notice = delivery_failed_notice(
            context,
            report.status,
            diagnostic,
            alias_domain=received.alias_domain,
            now=received.received_at,
            session_id=received.session_id,
        )
    return Outcome(
        rcpt, context.pair_id, entry, notice, failed, hard_bounce=hard if report.hard else None
    )


def unit(
    received: Received,
    outcomes: Sequence[Outcome],
    policy: Policy,
    origin: MailboxOrigin | None = None,
) -> Unit:
    """The commit of one message: its outcomes and the notices they set off; and, if the
    seller's messages claim quota, the same with them refused, for a day found full. A
    mailbox's message (`origin`) has no session to refuse in: its refusals are told by DSN."""
    by_notice = origin is not None
    claim = _merged_claim(outcomes)
    passing = _variant(received, outcomes, by_notice)
    if claim is None:
        return Unit(received, passing, origin=origin)
    over_quota = partial(_full_day, received, outcomes, policy, by_notice)
    return Unit(received, passing, claim, over_quota, origin)


def _full_day(
    received: Received, outcomes: Sequence[Outcome], policy: Policy, by_notice: bool
) -> Variant:
    """The variant of a message whose seller's day turned out full at the commit."""
    full = [_over_quota(o, policy) if o.quota_claim is not None else o for o in outcomes]
    return _variant(received, full, by_notice)


def unrouted(received: Received, rcpt: str, violation: Violation) -> Outcome:
    """A mailbox's message to an address that leads to no pair (or from a sender who is not
    its party): archived as refused, told to nobody (the sender is unknown: backscatter)."""
    entry = as_received(received, rcpt, Direction.UNROUTED, None, violation.reply)
    return Outcome(rcpt, None, replace(entry, violations=(violation,)))


def _variant(received: Received, outcomes: Sequence[Outcome], by_notice: bool) -> Variant:
    notices = [o.notice for o in outcomes if o.notice is not None]
    refused = [o for o in outcomes if not o.entry.accepted]
    if by_notice:
        notices.extend(refusal_notices(received, refused))
    elif refused and len(refused) < len(outcomes):
        notices.append(partial_refusal_notice(received, refused))
    return Variant(tuple(outcomes), tuple(notices))


def refusal_notices(received: Received, refused: Sequence[Outcome]) -> list[ArchiveEntry]:
    """Refusals told by DSN, one per sending party's address: only where the message is
    proven to be that party's (a refusal by a sender rule goes untold, or a forger could
    send the party notices at will), and only to the address the gateway knows for it,
    never the envelope's."""
    told: dict[str, list[Outcome]] = {}
    for outcome in refused:
        if outcome.tell is None:
            continue
        if any(v.rule_id.startswith("sender.") for v in outcome.entry.violations):
            continue
        told.setdefault(outcome.tell, []).append(outcome)
    return [
        failure_notice(
            alias_domain=received.alias_domain,
            pair_id=outcomes[0].pair_id,
            original_sender=address,
            original_headers=header_block(received.raw),
            arrival=received.received_at,
            now=received.received_at,
            failed=[
                FailedRecipient(o.rcpt, _final(o.entry.reply.enhanced), o.entry.reply.text)
                for o in outcomes
            ],
            session_id=received.session_id,
        )
        for address, outcomes in told.items()
    ]


def _merged_claim(outcomes: Sequence[Outcome]) -> QuotaClaim | None:
    """The seller's messages of this commit, counted against its day at once. A mailbox is
    registered to one seller, so one message claims from one seller's day at most."""
    claims: dict[tuple[int, date], QuotaClaim] = {}
    for claim in (o.quota_claim for o in outcomes if o.quota_claim is not None):
        key = (claim.seller_id, claim.day)
        known = claims.get(key)
        claims[key] = replace(claim, count=claim.count + known.count) if known else claim
    assert len(claims) <= 1, "one message, one sending seller"
    return next(iter(claims.values()), None)


def _over_quota(outcome: Outcome, policy: Policy) -> Outcome:
    """An accepted seller message whose commit found the day's limit reached meanwhile."""
    claim = outcome.quota_claim
    assert claim is not None
    reply = over_quota_reply(claim.limit, outcome.entry.received_at, policy.marketplace)
    entry = replace(
        outcome.entry,
        reply=reply,
        violations=(Violation("quota.daily", reply),),
        raw_delivered=None,
        delivery=None,
    )
    return Outcome(outcome.rcpt, outcome.pair_id, entry, tell=outcome.tell)


def _final(enhanced: str) -> str:
    """A refusal told by DSN is final, a temporary one too (a full day): nothing will try
    the message again, and RFC 3464 2.3.4 gives a failed action a 5.x.x status. Its text
    says when it may be sent anew."""
    return "5" + enhanced[1:] if enhanced.startswith("4.") else enhanced


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
