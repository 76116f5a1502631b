"""The content policy's verdict on one message without sending it: what `bsm-gateway policy
check` prints, and what the policy corpus and benchmark measure. Only the content rules
run; the pair's facts (window, quota, opt-out) need a real pair and a real session."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.core.content import ContentFacts
from gateway.core.model import Conversation, Direction, Party, Side, Violation
from gateway.core.status import Reply
from gateway.pipeline.content import read_content
from gateway.pipeline.parse import canonical_line_ends, parse_message
from gateway.policy.chains import Action, Link, judge, refusal
from gateway.policy.config import Mode
from gateway.policy.content import ContentRuleSet
from gateway.policy.rule import MessageContext


@dataclass(frozen=True, slots=True)
class PolicyVerdict:
    direction: Direction
    policy_version: str
    refused: tuple[Violation, ...]
    shadowed: tuple[Violation, ...]
    reply: Reply | None  # the SMTP reply a session would get; None: it passes

    @property
    def passed(self) -> bool:
        return not self.refused


def _party(side: Side, alias_domain: str, registered: tuple[str, ...] = ()) -> Party:
    return Party(side, f"{side.value}@{alias_domain}", "", registered, "")


def check_content(
    content: ContentFacts,
    rules: ContentRuleSet,
    direction: Direction,
    alias_domain: str,
    sender_addresses: tuple[str, ...] = (),
) -> PolicyVerdict:
    """`alias_domain`: addresses on it (the parties' aliases, as quoted replies show them)
    are the gateway's own, not contact details. `sender_addresses`: the sender's registered
    mailboxes (in a session, its From must be one), which the leak guard replaces."""
    sender = Side.SELLER if direction is Direction.SELLER_TO_BUYER else Side.BUYER
    conversation = Conversation(
        0,
        0,
        _party(sender, alias_domain, sender_addresses),
        _party(sender.other, alias_domain),
    )
    chain = [
        Link(rule, Action.REJECT if mode is Mode.ENFORCE else Action.SHADOW)
        for rule, mode in rules.active(direction)
    ]
    context = MessageContext("", None, conversation, datetime.now(UTC), None, content)  # type: ignore[arg-type]
    judgement = judge(chain, context)
    policy = rules.policy
    reply = (
        refusal(judgement.rejections, policy.settings.help_url) if judgement.rejections else None
    )
    return PolicyVerdict(direction, policy.version, judgement.rejections, judgement.shadowed, reply)


def check_message(
    raw: bytes, rules: ContentRuleSet, direction: Direction, alias_domain: str
) -> PolicyVerdict:
    """Raises pipeline.parse.MessageFormatError for bytes that are not a message."""
    parsed = parse_message(canonical_line_ends(raw))
    content = read_content(parsed)
    return check_content(content, rules, direction, alias_domain, parsed.from_addresses)
