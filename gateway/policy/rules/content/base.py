"""What every content rule shares: which text it reads, and how a hit is reported."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from gateway.core import status
from gateway.core.content import TextBlock
from gateway.core.model import Violation
from gateway.core.text import shorten
from gateway.policy.rule import MessageContext


@dataclass(frozen=True, slots=True)
class Scope:
    """The text a rule reads."""

    subject: bool = True
    attachments: bool = True
    quoted: bool = True  # lines quoting an earlier message


EVERYTHING = Scope()
OWN_WORDS = Scope(attachments=False, quoted=False)  # what the sender wrote in this message


def blocks(ctx: MessageContext, scope: Scope) -> Iterator[TextBlock]:
    for block in ctx.content.blocks:
        if block.source == "subject" and not scope.subject:
            continue
        if block.source.startswith("attachment") and not scope.attachments:
            continue
        yield block


def folded_texts(ctx: MessageContext, scope: Scope) -> Iterator[tuple[str, str]]:
    """(where, folded text) of each block in scope."""
    for block in blocks(ctx, scope):
        yield block.source, block.folded
        if scope.quoted and block.folded_quoted:
            yield block.source, block.folded_quoted


def hit(rule_id: str, found: str, where: str = "") -> Violation:
    """A violation as the sender reads it: the rule, and what matched, quoted and short."""
    place = f" in {where}" if where.startswith(("attachment", "subject", "sender")) else ""
    quoted = shorten(found).replace('"', "'")
    return Violation(rule_id, status.CONTENT_REFUSED, f'"{quoted}"{place}')
