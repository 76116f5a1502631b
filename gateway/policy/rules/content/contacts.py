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
from gateway.policy.domains import within
from gateway.policy.rules.content.numerals import KEY as NUMERALS_KEY
from gateway.policy.rules.content.numerals import digits_written
from gateway.policy.rules.content.references import is_iban, is_reference_shape
from gateway.policy.rules.content.shapes import CJK_DOMAIN, EMAIL, PHONE_CANDIDATE, TRAILING, URL
from gateway.policy.rules.content.spelled import Step, known_host
from gateway.policy.scan import TextScan, finditer, substitute

_DATE = re.compile(r"^\d{4}[-./]\d{1,2}[-./]\d{1,2}$|^\d{1,2}[-./]\d{1,2}[-./]\d{2,4}$")
_DECIMAL = re.compile(r"^\d{1,3}(?:[ .]\d{3})*[.,]\d{1,2}$")
_ZIP_PLUS_4 = re.compile(r"^\d{5}-\d{4}$")
# Numbers of one or two digits between middle dots: a list ("36 · 38 · 40 · 42"), not a
# phone number ("654·321·098", "03・1234・5678").
_DOTTED_LIST = re.compile(r"\d{1,2}(?:\s?[\u00b7\u30fb]\s?\d{1,2})+$")
_INTERNATIONAL = ("+", "00", "wa.me/", "phone=")  # WhatsApp's links: the number without "+"
# A national number written without "+" either starts with its trunk prefix "0" or has
# 9 to 11 digits (US, CN and IT mobiles, ES); other runs are references, serials, codes.
NATIONAL_DIGITS = range(9, 12)

# Keys of the scan (gateway.policy.scan) the finders read.
EMAIL_KEY = "contact.email"  # the white space before a token that may hold an address
LINK_KEY = "contact.link"  # the same for a link
PHONE_KEY = "contact.phone"  # where a phone-like run of digits may start
# NUMERALS_KEY: whether a text may hold a number written in words, CJK digits or letters
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
        """The text with spelled-out "@", "." and "/" written as characters again: each
        step tried only where the scan says it may match."""
        text = folded
        for step in self._steps:
            starts = step.starts(text, self._scan.found(text).at(step.key))
            if starts is None or starts:
                text = substitute(step.pattern, step.replacement, text, starts)
        return text

    def emails(self, text: str) -> Iterator[Match]:
        for begin, end in self._tokens(text, EMAIL_KEY):
            for found in EMAIL.finditer(text[begin:end]):
                host = found.group("host")
                if known_host(host, self._link.extra_suffixes):
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
            if host and known_host(host, self._link.extra_suffixes):
                yield Match(written, host)

    def allowed(self, host: str) -> bool:
        return within(host, self._link.allow_domains)

    def phones(self, text: str) -> Iterator[Match]:
        """Runs of digits that are phone numbers, once numbers written in words, CJK
        digits or letters are written as digits (where the scan says a text may hold one)."""
        numbers = digits_written(text, self._scan.found(text).at(NUMERALS_KEY))
        text = numbers.text
        # Tried only where the scan says a run may start: as a search of the whole text.
        for found in finditer(PHONE_CANDIDATE, text, self._scan.found(text).at(PHONE_KEY)):
            spelled = numbers.spelled(found.start(), found.end())
            for start, written in _pieces(found):
                if self._is_phone_at(text, start, written, spelled):
                    yield Match(written)
                    break

    def _is_phone_at(self, text: str, start: int, written: str, spelled: bool) -> bool:
        """`spelled`: written in words, CJK digits or letters, as no reference number is;
        so a national number of 8 digits without its trunk prefix counts too (HK, SG)."""
        international = written.startswith(_INTERNATIONAL)
        digits = "".join(filter(str.isdigit, written))
        if not self._phone.min_digits <= len(digits) <= 15 or _DATE.match(written):
            return False
        national = range(8, 12) if spelled else NATIONAL_DIGITS
        if not international and not (
            written.lstrip("(").startswith("0") or len(digits) in national
        ):
            return False
        if _ZIP_PLUS_4.match(written) or _DECIMAL.match(written) or _DOTTED_LIST.match(written):
            return False
        if self._introduced_as_reference(text, start) or is_iban(text, start):
            return False
        if not international and is_reference_shape(written, digits):
            return False
        return self._is_phone(written, spelled)

    def _introduced_as_reference(self, text: str, start: int) -> bool:
        """An order, tracking or invoice number, a tax or bank account number: the words
        just before it say so."""
        if self._reference is None:
            return False
        return self._reference.search(text[max(0, start - 40) : start]) is not None

    def _is_phone(self, written: str, spelled: bool = False) -> bool:
        """Valid for a configured region as written (`spelled`: with or without its trunk
        prefix), or with "+" or "00" for its country."""
        regions = ("ZZ",) if written.startswith(_INTERNATIONAL) else self._phone.regions
        # A number over lines: its parts on one; middle dots, which the parser does not
        # know, as spaces.
        number = " ".join(written.translate(_MIDDLE_DOTS).split())
        if written.startswith("00"):
            number = "+" + number[2:]
        elif written.startswith(_INTERNATIONAL[2:]):  # "wa.me/", "phone=": six characters
            number = "+" + number[6:].lstrip("+")
        for region in regions:
            try:
                parsed = phonenumbers.parse(number, region)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(parsed) and (spelled or _as_written(parsed, number)):
                return True
            # Written with "+" and a country's code: a number of a length that country's
            # numbers have is one, even in a range not given out yet (or kept for films:
            # "+44 7700 900461"). Not after "00", which opens many reference numbers.
            if number.startswith("+") and not written.startswith("00"):
                country = phonenumbers.region_code_for_country_code(parsed.country_code or 0)
                return country != "ZZ" and phonenumbers.is_possible_number(parsed)
        return False


def _as_written(parsed: phonenumbers.PhoneNumber, written: str) -> bool:
    """Whether the number is written as its country writes it at home: with the trunk
    prefix where it has one ("01 23 45 67 89" in France, never "123456789"; a reference
    number that is a valid number once a "0" is put before it is no phone number)."""
    if written.startswith("+"):
        return True
    national = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
    return sum(map(str.isdigit, written)) >= sum(map(str.isdigit, national))


_MIDDLE_DOTS = str.maketrans("\u00b7\u30fb", "  ")


def _pieces(found: re.Match[str]) -> Iterator[tuple[int, str]]:
    """A run as found, and (a number on one line of a run over several) each line of it."""
    written = found.group(0)
    yield found.start() + len(written) - len(written.lstrip()), written.strip()
    if "\n" in written.strip():
        offset = found.start()
        for line in written.split("\n"):
            if line.strip():
                yield offset + len(line) - len(line.lstrip()), line.strip()
            offset += len(line) + 1


def host_of(url: str) -> str:
    """The host of a URL as written, with or without its scheme."""
    target = url if "://" in url else "//" + url
    try:
        return (urlsplit(target).hostname or "").rstrip(".")
    except ValueError:
        return ""
