"""content.link: links that take the buyer off the marketplace, written out (with or
without scheme, "www.", a bare domain under any public suffix, spelled out) or behind HTML
whose text hides the target. Hosts on the allow-list (carriers, the marketplace) pass."""

from __future__ import annotations

from gateway.core.content import Hyperlink
from gateway.core.model import Direction, Violation
from gateway.policy.rule import MessageContext
from gateway.policy.rules.content.base import EVERYTHING, folded_texts, hit
from gateway.policy.rules.content.business_name import BusinessName
from gateway.policy.rules.content.contacts import ContactScanner, Match, host_of

_WEB_SCHEMES = ("http://", "https://", "ftp://", "//", "www.")


def is_mailto(target: str) -> bool:
    return target.strip().lower().startswith("mailto:")


def is_web(target: str) -> bool:
    return target.strip().lower().startswith(_WEB_SCHEMES)


class OffMarketplaceLink:
    id = "content.link"
    description = "no links off the marketplace, except to allowed domains such as carriers"

    def __init__(
        self,
        scanner: ContactScanner,
        names: BusinessName,
        named: frozenset[Direction] = frozenset(),
    ) -> None:
        """`named`: the directions where `names` refuses a seller's suffixed name, and so
        reports that name where the body writes it bare."""
        self._scanner = scanner
        self._names = names
        self._named = named

    def refuses(self, link: Hyperlink) -> bool:
        """Whether this HTML link leads off the marketplace (the sanitiser unwraps those)."""
        if not is_web(link.target):
            return False
        host = host_of(link.target.strip())
        return not host or not self._scanner.allowed(host)

    def check(self, ctx: MessageContext) -> list[Violation]:
        for link in ctx.content.links:
            if self.refuses(link):
                return [hit(self.id, link.target)]
        for where, text in folded_texts(ctx, EVERYTHING):
            for match in self._scanner.links(self._scanner.unmask(text)):
                if not self._scanner.allowed(match.host) and not self._names_sender(ctx, match):
                    return [hit(self.id, match.text, where)]
        return []

    def _names_sender(self, ctx: MessageContext, match: Match) -> bool:
        """Whether the match is the seller's name as its display name writes it ("Thanks,
        TechTrendz.net"), bare, where content.business_name refuses that name: that rule's
        to report. With a scheme, "www." or a path it is a link."""
        return (
            match.text == match.host
            and ctx.conversation.direction in self._named
            and match.host in self._names.hosts(ctx)
        )
