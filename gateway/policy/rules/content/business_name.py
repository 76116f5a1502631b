"""content.business_name: a seller's name that carries an e-mail or web suffix ("BestDeals.com
Store", "好物优选.com旗舰店", "Technik-Welt.de"), read from the From display name and the
registered shop name. Abbreviations and initials are no suffix: "Harbour Candle Co.",
"Suministros S.L.", "ИП Соколова А.В.", "Dr. Green Garden"."""

from __future__ import annotations

import re

import phonenumbers

from gateway.core.model import Violation
from gateway.core.text import fold
from gateway.policy.config import BusinessNameSettings
from gateway.policy.rule import MessageContext
from gateway.policy.rules.content.base import hit

# A dot between a name and a suffix, written against both ("Shop.com"), with a space
# before it ("Shop .com") or after it ("Shop. com"). "。" is the CJK full stop; "．" and
# "｡" fold to "." and "。". A name is letters or digits of any script, "-" and "&" inside.
_DOTTED = re.compile(
    r"(?P<name>[^\W_](?:[\w&-]{0,62}[^\W_])?)?(?P<before> ?)[.。](?P<after> ?)"
    r"(?P<suffix>[a-z]+|[а-яё]+)(?![a-z0-9а-яё])"
)
_LETTER = re.compile(r"[^\W\d_]")
_LABELS = re.compile(r"(?:\.[^\W_][\w-]{0,62})*")  # the labels after a suffix: ".co" ".uk"
# The countries' codes: the regions phone numbers know, and the codes of domains only.
COUNTRY_CODES = frozenset(
    {code.lower() for code in phonenumbers.SUPPORTED_REGIONS} | {"uk", "eu", "su"}
)


class BusinessName:
    id = "content.business_name"
    description = "no business names containing an e-mail suffix such as .com, .net or .biz"

    def __init__(self, settings: BusinessNameSettings) -> None:
        self._suffixes = frozenset(settings.suffixes)
        self._countries = settings.country_suffixes
        self._abbreviations = frozenset(settings.abbreviations)

    def check(self, ctx: MessageContext) -> list[Violation]:
        for name in (ctx.content.sender_name, ctx.conversation.sender.display_name):
            if name and self._suffixed(fold(name)):
                return [hit(self.id, name, "sender name")]
        return []

    def hosts(self, ctx: MessageContext) -> frozenset[str]:
        """The hosts this rule finds in the sender's names, as a body would write them:
        "TechTrendz.net" -> "techtrendz.net", "Tokyo Camera Works.jp" -> "works.jp",
        "PrintPalace.co.uk" -> "printpalace.co.uk"."""
        hosts = set()
        for name in (ctx.content.sender_name, ctx.conversation.sender.display_name):
            folded = fold(name or "")
            for found in _DOTTED.finditer(folded):
                if self._is_suffix(found):
                    more = _LABELS.match(folded, found.end())
                    labels = more.group() if more else ""
                    hosts.add(f"{found['name']}.{found['suffix']}{labels}")
        return frozenset(hosts)

    def _suffixed(self, name: str) -> bool:
        return any(self._is_suffix(found) for found in _DOTTED.finditer(name))

    def _is_suffix(self, found: re.Match[str]) -> bool:
        name, suffix = found["name"] or "", found["suffix"]
        if len(name) < 2 or name in self._abbreviations or not _LETTER.search(name):
            return False
        if suffix in self._suffixes:
            # "Co. Shop" is an abbreviation before a word; "Sakura Zakka. shop" a suffix
            return not found["after"] or bool(found["before"]) or len(name) >= 3
        # a country's code: "Spielwaren.de", not "Müller GmbH.Co" nor "Foto .de Luca"
        return (
            self._countries
            and suffix in COUNTRY_CODES
            and len(name) >= 3
            and not found["before"]
            and not found["after"]
        )
