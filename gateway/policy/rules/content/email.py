"""content.email: an e-mail address in the text, also spelled out ("name (at) shop dot com",
"ｎａｍｅ＠ｓｈｏｐ．ｊｐ"). Addresses on the alias domain (quoted replies) are the gateway's."""

from __future__ import annotations

from gateway.core.model import Violation
from gateway.policy.domains import within
from gateway.policy.rule import MessageContext
from gateway.policy.rules.content.base import EVERYTHING, folded_texts, hit
from gateway.policy.rules.content.contacts import ContactScanner
from gateway.policy.rules.content.links import is_mailto


class EmailAddress:
    id = "content.email"
    description = "no e-mail addresses: buyer and seller write only through their aliases"

    def __init__(self, scanner: ContactScanner) -> None:
        self._scanner = scanner

    def check(self, ctx: MessageContext) -> list[Violation]:
        own = (ctx.conversation.sender.alias.rpartition("@")[2].lower(),)
        for where, text in folded_texts(ctx, EVERYTHING):
            for match in self._scanner.emails(self._scanner.unmask(text)):
                if not within(match.host, own) and not self._scanner.allowed(match.host):
                    return [hit(self.id, match.text, where)]
        for link in ctx.content.links:
            if is_mailto(link.target):
                host = link.target.partition("@")[2].partition("?")[0]
                if not within(host, own) and not self._scanner.allowed(host):
                    return [hit(self.id, link.target.strip()[7:])]
        return []
