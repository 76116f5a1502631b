"""Finding contact details in folded text: e-mail addresses (also spelled out), links
(with or without scheme, bare domains under any public suffix), phone numbers. The scan
says which tokens may hold an address or a link and where a phone-like run may start; the
exact patterns run only there."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

import phonenumbers

from gateway.policy.config import LinkSettings, PhoneSettings
from gateway.policy.domains import registrable, within
from gateway.policy.rules.content.shapes import CJK_DOMAIN, EMAIL, PHONE_CANDIDATE, TRAILING, URL
from gateway.policy.rules.content.spelled import Step
from gateway.policy.scan import TextScan, finditer

_DATE = re.compile(r"^\d{4}[-./]\d{1,2}[-./]\d{1,2}$|^\d{1,2}[-./]\d{1,2}[-./]\d{2,4}$")
_DECIMAL = re.compile(r"^\d{1,3}(?:[ .]\d{3})*[.,]\d{1,2}$")
_ZIP_PLUS_4 = re.compile(r"^\d{5}-\d{4}$")
# A national number written without "+" either starts with its trunk prefix "0" or has
# 9 to 11 digits (US, CN and IT mobiles, ES); other runs are references, serials, codes.
NATIONAL_DIGITS = range(9, 12)

# Keys of the scan (gateway.policy.scan) the finders read.
EMAIL_KEY = "contact.email"  # the white space before a token that may hold an address
LINK_KEY = "contact.link"  # the same for a link
PHONE_KEY = "contact.phone"  # where a phone-like run of digits may start
_SPACE = re.compile(r"\s")


@dataclass(frozen=True, slots=True)
class Match:
    text: str  # as found, in folded text
    host: str = ""


class ContactScanner:
    def __init__(
        self,
        steps: Sequence[Step],
        link: LinkSettings,
        phone: PhoneSettings,
        reference: re.Pattern[str] | None,
        scan: TextScan,
    ) -> None:
        self._steps = steps
        self._link = link
        self._phone = phone
        self._reference = reference
        self._scan = scan

        # Several rules read the same text's addresses and links: each is worked out once.
        # Bounded: a few messages' texts, never a growing store (attachment text is capped).
        self.unmask = lru_cache(maxsize=8)(self._unmask)
        self.links = lru_cache(maxsize=8)(self._links)

    def _unmask(self, folded: str) -> str:
        """The text with spelled-out "@" and "." written as characters again: each step
        runs only on a text its pattern may match."""
        text = folded
        for step in self._steps:
            if self._scan.found(text).may(step.key):
                text = step.pattern.sub(step.replacement, text)
        return text

    def emails(self, text: str) -> Iterator[Match]:
        for begin, end in self._tokens(text, EMAIL_KEY):
            for found in EMAIL.finditer(text[begin:end]):
                host = found.group("host")
                if registrable(host):
                    yield Match(found.group(0), host)

    def _tokens(self, text: str, key: str) -> list[tuple[int, int]]:
        """The tokens (between white space) that may hold what `key` finds. No match of
        the finders holds white space, and their edges read white space and a token's
        end alike, so a token searched alone finds what a search of the text finds in it."""
        starts = self._scan.found(text).at(key)
        if starts is None or any(s >= 0 and not text[s].isspace() for s in starts):
            return [(0, len(text))]
        tokens = []
        for start in starts:
            space = _SPACE.search(text, start + 1)
            tokens.append((start + 1, space.start() if space else len(text)))
        return tokens

    def _links(self, text: str) -> tuple[Match, ...]:
        """Links that are not part of an e-mail address, and their hosts."""
        return tuple(self._find_links(text))

    def _find_links(self, text: str) -> Iterator[Match]:
        urls: list[re.Match[str]] = []
        cjk: list[re.Match[str]] = []
        for begin, end in self._tokens(text, LINK_KEY):
            blanked = EMAIL.sub(lambda m: " " * len(m.group(0)), text[begin:end])
            urls.extend(URL.finditer(blanked))
            cjk.extend(CJK_DOMAIN.finditer(blanked))
        for found in (*urls, *cjk):
            written = found.group(0).rstrip(TRAILING)
            if found.group("bare"):
                host = found.group("bare")
                suffix = host.rpartition(".")[2]
                if suffix in self._link.bare_domain_ignore_suffixes:
                    continue
            else:
                host = host_of(written)
            if host and registrable(host):
                yield Match(written, host)

    def allowed(self, host: str) -> bool:
        return within(host, self._link.allow_domains)

    def phones(self, text: str) -> Iterator[Match]:
        # Tried only where the scan says a run may start: as a search of the whole text.
        for found in finditer(PHONE_CANDIDATE, text, self._scan.found(text).at(PHONE_KEY)):
            written = found.group(0).strip()
            digits = sum(map(str.isdigit, written))
            if not self._phone.min_digits <= digits <= 15 or _DATE.match(written):
                continue
            international = written.startswith(("+", "00"))
            if not international and not (
                written.lstrip("(").startswith("0") or digits in NATIONAL_DIGITS
            ):
                continue
            if _ZIP_PLUS_4.match(written):
                continue
            if _DECIMAL.match(written) or self._introduced_as_reference(text, found.start()):
                continue
            if self._is_phone(written):
                yield Match(written)

    def _introduced_as_reference(self, text: str, start: int) -> bool:
        """An order, tracking or invoice number: the words just before it say so."""
        if self._reference is None:
            return False
        return self._reference.search(text[max(0, start - 40) : start]) is not None

    def _is_phone(self, written: str) -> bool:
        regions = ("ZZ",) if written.startswith(("+", "00")) else self._phone.regions
        number = "+" + written[2:] if written.startswith("00") else written
        for region in regions:
            try:
                parsed = phonenumbers.parse(number, region)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(parsed):
                return True
        return False


def host_of(url: str) -> str:
    """The host of a URL as written, with or without its scheme."""
    target = url if "://" in url else "//" + url
    try:
        return (urlsplit(target).hostname or "").rstrip(".")
    except ValueError:
        return ""
