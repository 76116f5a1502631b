"""content.social: social networks and messengers as a way to talk outside the marketplace:
their links, and handles or invitations ("WeChat ID: ...", "LINE: ...", "加微信")."""

from __future__ import annotations

import re

from gateway.core.model import Violation
from gateway.policy.config import SocialSettings
from gateway.policy.domains import within
from gateway.policy.rule import MessageContext
from gateway.policy.rules.content.base import EVERYTHING, folded_texts, hit
from gateway.policy.rules.content.contacts import ContactScanner, host_of
from gateway.policy.scan import TextScan, search


class SocialContact:
    id = "content.social"
    description = "no social media or messenger handles and links"

    def __init__(
        self,
        scanner: ContactScanner,
        settings: SocialSettings,
        phrases: re.Pattern[str] | None,
        scan: TextScan,
    ) -> None:
        self._scanner = scanner
        self._domains = settings.domains
        self._phrases = phrases
        self._scan = scan

    def check(self, ctx: MessageContext) -> list[Violation]:
        for link in ctx.content.links:
            if within(host_of(link.target.strip()), self._domains):
                return [hit(self.id, link.target)]
        for where, text in folded_texts(ctx, EVERYTHING):
            starts = self._scan.found(text).at("social")
            if self._phrases is not None and (found := search(self._phrases, text, starts)):
                return [hit(self.id, _with_context(text, found), where)]
            for match in self._scanner.links(self._scanner.unmask(text)):
                if within(match.host, self._domains):
                    return [hit(self.id, match.text, where)]
        return []


def _with_context(text: str, found: re.Match[str]) -> str:
    """The matched words and what follows on the line (the handle, usually)."""
    end = text.find("\n", found.end())
    return text[found.start() : end if 0 <= end - found.start() < 50 else found.end() + 30]
