"""content.email: an e-mail address in the text, also spelled out ("name (at) shop dot com",
"ｎａｍｅ＠ｓｈｏｐ．ｊｐ"). Addresses on the alias domain (quoted replies) are the gateway's,
and the sender's own registered mailboxes (an Outlook signature) are the leak guard's: it
puts the alias in their place, so they never reach the other side."""

from __future__ import annotations

from gateway.core.model import Violation
from gateway.core.text import fold
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
        sender = ctx.conversation.sender
        own_domain = (sender.alias.rpartition("@")[2].lower(),)
        own = {fold(address) for address in sender.registered}

        def counts(address: str, host: str) -> bool:
            if address in own or within(host, own_domain):
                return False
            return not self._scanner.allowed(host)

        for where, text in folded_texts(ctx, EVERYTHING):
            for match in self._scanner.emails(self._scanner.unmask(text)):
                if counts(match.text, match.host):
                    return [hit(self.id, match.text, where)]
        for link in ctx.content.links:
            if is_mailto(link.target):
                address = fold(link.target.strip()[7:].partition("?")[0])
                if counts(address, address.partition("@")[2]):
                    return [hit(self.id, address)]
        return []
