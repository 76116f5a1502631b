"""content.business_name: a seller's name that carries an e-mail suffix ("BestDeals.com
Store", "好物优选.com旗舰店"), read from the From display name and the registered shop name."""

from __future__ import annotations

import re

from gateway.core.model import Violation
from gateway.core.text import fold
from gateway.policy.config import BusinessNameSettings
from gateway.policy.rule import MessageContext
from gateway.policy.rules.content.base import hit


class BusinessName:
    id = "content.business_name"
    description = "no business names containing an e-mail suffix such as .com, .net or .biz"

    def __init__(self, settings: BusinessNameSettings) -> None:
        suffixes = "|".join(re.escape(fold(s)) for s in settings.suffixes) or "(?!)"
        self._suffix = re.compile(rf"\.(?:{suffixes})(?![0-9a-z])")

    def check(self, ctx: MessageContext) -> list[Violation]:
        for name in (ctx.content.sender_name, ctx.conversation.sender.display_name):
            if name and self._suffix.search(fold(name)):
                return [hit(self.id, name, "sender name")]
        return []
