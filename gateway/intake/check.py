"""A message's verdict under the content policy without a session: what `bsm-gateway policy
check` prints, and what the policy corpora and the benchmark measure. The same compiled
Policy and the same reading as the intake's; only the content rules run (the pair's facts
need a real pair and a real session)."""

from __future__ import annotations

from gateway.core.content import ContentFacts
from gateway.core.model import Direction
from gateway.intake.decide import ContentVerdict, judge_content
from gateway.intake.policy import Policy
from gateway.pipeline.content import read_content
from gateway.pipeline.parse import canonical_line_ends, parse_message


def check_message(
    raw: bytes, policy: Policy, direction: Direction, alias_domain: str
) -> ContentVerdict:
    """Raises pipeline.parse.MessageFormatError for bytes that are not a message."""
    parsed = parse_message(canonical_line_ends(raw))
    content = read_content(parsed)
    return judge_content(parsed, content, policy, direction, alias_domain, parsed.from_addresses)


def check_content(
    content: ContentFacts,
    policy: Policy,
    direction: Direction,
    alias_domain: str,
    sender_addresses: tuple[str, ...] = (),
) -> ContentVerdict:
    """The verdict on what a message says and carries, read already."""
    return judge_content(None, content, policy, direction, alias_domain, sender_addresses)
