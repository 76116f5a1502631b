"""Decide: each recipient's verdict from the facts gathered, by the policy's chains. Pure:
no I/O, the same facts give the same verdict."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from gateway.core import status
from gateway.core.addresses import Mailbox, new_message_id
from gateway.core.content import ContentFacts
from gateway.core.message import ParsedMessage
from gateway.core.model import (
    ArchiveEntry,
    Conversation,
    Direction,
    Party,
    SellerLogin,
    Side,
    Violation,
)
from gateway.core.status import Reply
from gateway.intake.model import Outcome, Received
from gateway.intake.policy import Policy
from gateway.policy.chains import Link, judge, refusal
from gateway.policy.rule import MessageContext, RecipientContext
from gateway.policy.rules.marketplace import is_important


@dataclass(frozen=True, slots=True)
class Judged:
    """A pair's alias: its verdict, before anything is built. A passing one is rewritten
    next (gateway.intake.build)."""

    rcpt: str
    conversation: Conversation
    entry: ArchiveEntry  # as received, with the reply, the rules that hit, the policy version

    @property
    def passed(self) -> bool:
        return not self.entry.violations


def as_received(
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
        raw_received=received.archived_raw or received.raw,
        raw_delivered=None,
        gateway_message_id=new_message_id(received.alias_domain),
        original_message_id=parsed.message_id if parsed else None,
        reply=reply,
        session_id=received.session_id,
    )


def recipient(
    mailbox: Mailbox,
    alias_domain: str,
    found: Conversation | None,
    envelope_from: str,
    login: SellerLogin | None,
    policy: Policy,
    now: datetime | None = None,
) -> Violation | None:
    """RCPT time: the first violation of the recipient chain (relay, alias, sender, a
    suppressed recipient), if any."""
    context = RecipientContext(mailbox, alias_domain, found, envelope_from, login, now)
    chain = policy.rcpt_chain if login is None else policy.submission_rcpt_chain
    judgement = judge(chain, context)
    if judgement.passed and found is not None:
        return None
    return judgement.rejections[0]


def judge_alias(
    received: Received, rcpt: str, conversation: Conversation, policy: Policy
) -> Judged:
    """A message to a pair's alias, judged by its direction's chain. The policy version and
    any shadowed hits are archived either way."""
    pair_id = conversation.pair_id
    parsed = received.parsed
    if parsed is None:
        unreadable = received.unreadable
        entry = as_received(received, rcpt, conversation.direction, pair_id, unreadable.reply)
        return Judged(rcpt, conversation, replace(entry, violations=(unreadable,)))
    entry = as_received(received, rcpt, conversation.direction, pair_id, status.QUEUED)
    context = MessageContext(
        received.envelope_from,
        parsed,
        conversation,
        received.received_at,
        received.authentication,
        received.content,
    )
    judgement = judge(policy.data_chains[conversation.direction], context)
    entry = replace(
        entry,
        important=is_important(context, policy.marketplace),
        policy_version=policy.version,
        shadowed=judgement.shadowed,
    )
    if not judgement.passed:
        reply = refusal(judgement.rejections, policy.help_url)
        entry = replace(entry, reply=reply, violations=judgement.rejections)
    return Judged(rcpt, conversation, entry)


def unprocessable(received: Received, rcpt: str, conversation: Conversation) -> Outcome:
    """Judging or rewriting failed on these bytes: refused, and kept for the operators."""
    reply = status.UNPROCESSABLE
    entry = as_received(received, rcpt, conversation.direction, conversation.pair_id, reply)
    violation = Violation("message.unprocessable", reply)
    return Outcome(rcpt, conversation.pair_id, replace(entry, violations=(violation,)))


def refusal_reply(refused: Sequence[Outcome]) -> Reply:
    """The reply when every recipient was refused."""
    replies = list(dict.fromkeys(o.entry.reply for o in refused))
    if len(replies) == 1:
        return replies[0]
    # Different reasons for different recipients: name each one, with what it found.
    return status.refused_each([(o.rcpt, o.entry.reply) for o in refused])


@dataclass(frozen=True, slots=True)
class ContentVerdict:
    """The content rules' verdict on one message, without a session (`policy check`)."""

    direction: Direction
    policy_version: str
    refused: tuple[Violation, ...]
    shadowed: tuple[Violation, ...]
    reply: Reply | None  # the SMTP reply a session would get; None: it passes

    @property
    def passed(self) -> bool:
        return not self.refused


def judge_content(
    parsed: ParsedMessage | None,
    content: ContentFacts,
    policy: Policy,
    direction: Direction,
    alias_domain: str,
    sender_addresses: tuple[str, ...] = (),
    now: datetime | None = None,
) -> ContentVerdict:
    """Only the content rules: the pair's facts (window, quota, opt-out) need a real pair.
    `alias_domain`: addresses on it (aliases, as quoted replies show them) are the gateway's
    own, not contact details. `sender_addresses`: the sender's registered mailboxes (in a
    session, its From must be one), which the leak guard replaces."""
    sender = Side.SELLER if direction is Direction.SELLER_TO_BUYER else Side.BUYER
    conversation = Conversation(
        0,
        0,
        _party(sender, alias_domain, sender_addresses),
        _party(sender.other, alias_domain),
    )
    chain: tuple[Link[MessageContext], ...] = policy.content_chains[direction]
    context = MessageContext(
        "",
        parsed,  # type: ignore[arg-type]  # the content rules read only the content
        conversation,
        now or datetime.now(UTC),
        None,
        content,
    )
    judgement = judge(chain, context)
    reply = refusal(judgement.rejections, policy.help_url) if judgement.rejections else None
    return ContentVerdict(
        direction, policy.version, judgement.rejections, judgement.shadowed, reply
    )


def _party(side: Side, alias_domain: str, registered: tuple[str, ...] = ()) -> Party:
    return Party(side, f"{side.value}@{alias_domain}", "", registered, "")
