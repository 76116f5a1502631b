"""Finding contact details in folded text: e-mail addresses (also spelled out), links
(with or without scheme, bare domains under any public suffix), phone numbers."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

import phonenumbers

from gateway.core.text import is_cjk
from gateway.policy.config import Lexicon, LinkSettings, PhoneSettings, SpelledWords
from gateway.policy.domains import registrable, within

# Letters a domain label is written in (Latin with accents, Greek, Cyrillic); CJK text runs
# into a domain without spaces, so it cannot be part of one here.
_LETTER = r"0-9a-z\u00c0-\u024f\u0370-\u03ff\u0400-\u052f"
_LABEL = rf"[{_LETTER}](?:[{_LETTER}-]{{0,61}}[{_LETTER}])?"
_SUFFIX = r"(?:[a-z]{2,63}|xn--[0-9a-z-]{1,59}|[\u0400-\u04ff]{2,20})"
_HOST = rf"(?:{_LABEL}\.)+{_SUFFIX}"
_BEFORE = rf"(?<![{_LETTER}.@_+-])"
_AFTER = rf"(?![{_LETTER}@_-])"

EMAIL = re.compile(rf"{_BEFORE}[{_LETTER}._%+-]{{1,64}}@(?P<host>{_HOST}){_AFTER}")
URL = re.compile(
    r"(?P<url>(?:https?|ftp)://[^\s<>\"'`{}|\\^\[\]]+"
    rf"|{_BEFORE}www\d{{0,3}}\.{_HOST}(?:[/?#][^\s<>\"'`{{}}|\\^\[\]]*)?)"
    rf"|{_BEFORE}(?P<bare>{_HOST}){_AFTER}(?:/[^\s<>\"'`{{}}|\\^\[\]]*)?"
)
_TRAILING = ".,;:!?)]}'\"»。、，"

# A run of digits and the separators phone numbers are written with.
_PHONE_CANDIDATE = re.compile(
    r"(?<![\w+])(?:\+|00)?\(?\d[\d \t().\-/\u2010-\u2015\u2212\u30fc]{4,24}\d(?!\w)"
)
_DATE = re.compile(r"^\d{4}[-./]\d{1,2}[-./]\d{1,2}$|^\d{1,2}[-./]\d{1,2}[-./]\d{2,4}$")
_DECIMAL = re.compile(r"^\d{1,3}(?:[ .]\d{3})*[.,]\d{1,2}$")
_ZIP_PLUS_4 = re.compile(r"^\d{5}-\d{4}$")
# A national number written without "+" either starts with its trunk prefix "0" or has
# 9 to 11 digits (US, CN and IT mobiles, ES); other runs are references, serials, codes.
NATIONAL_DIGITS = range(9, 12)
_CJK_DOMAIN = re.compile(
    r"(?<![\w.])(?P<bare>[\w-]{1,30}\.(?:中国|中國|公司|网络|網絡|在线|商城|香港|台湾|台灣|日本|コム|한국|닷컴))"
    r"(?![\w.])"
)
# Suffixes that are also short words in the lexicons' languages.
_WORDLIKE_SUFFIXES = frozenset(
    "de es it me us co in at be do go no so to on".split()  # noqa: SIM905 (a word list)
)
# Labels a spelled-out host may have before its suffix: a bound, so that a long chain of
# "v dot v dot ..." costs each position a few steps, not the rest of the chain.
_MAX_LABELS = 6
_OPEN = r"[(\[{<【]"
_CLOSE = r"[)\]}>】]"
_IDEOGRAPHIC_DOT = re.compile(r"(?<=[0-9a-z])\s?[\u3002\uff61]\s?(?=[0-9a-z])")


@dataclass(frozen=True, slots=True)
class Match:
    text: str  # as found, in folded text
    host: str = ""


class ContactScanner:
    def __init__(self, lexicon: Lexicon, link: LinkSettings, phone: PhoneSettings) -> None:
        self._link = link
        self._phone = phone
        self._reference = lexicon.pattern("reference")
        self._spelled_dot = _spelled_dot_pattern(lexicon.dot_words, link.spelled_out_suffixes)
        self._spelled_email = _spelled_email_pattern(lexicon)
        bracketed_ats = _alternatives(lexicon.at_words.bracketed)
        bare_ats = _alternatives(lexicon.at_words.bare)
        # "name (at) shop.com", "name собака yandex.ru": bracketed always, bare before a host
        # (not a web address: "the steps are at www.shop.com" is a link).
        self._spelled_at = re.compile(
            rf"(?<!\s)\s*{_OPEN}\s*(?:{bracketed_ats}|@)\s*{_CLOSE}\s*"
            rf"|(?<=[0-9a-z._-])\s+(?:{bare_ats})\s+(?!www\d*\.)(?={_HOST}{_AFTER})"
        )

        # Several rules read the same text's addresses and links: each is worked out once.
        # Bounded: a few messages' texts, never a growing store (attachment text is capped).
        self.unmask = lru_cache(maxsize=8)(self._unmask)
        self.links = lru_cache(maxsize=8)(self._links)

    def _unmask(self, folded: str) -> str:
        """The text with spelled-out "@" and "." written as characters again."""
        text = _IDEOGRAPHIC_DOT.sub(".", folded)
        text = self._spelled_email.sub(_as_address, text)
        text = self._spelled_dot.sub(".", text)
        return self._spelled_at.sub("@", text)

    def emails(self, text: str) -> Iterator[Match]:
        for found in EMAIL.finditer(text):
            host = found.group("host")
            if registrable(host):
                yield Match(found.group(0), host)

    def _links(self, text: str) -> tuple[Match, ...]:
        """Links that are not part of an e-mail address, and their hosts."""
        return tuple(self._find_links(text))

    def _find_links(self, text: str) -> Iterator[Match]:
        blanked = EMAIL.sub(lambda m: " " * len(m.group(0)), text)
        for found in (*URL.finditer(blanked), *_CJK_DOMAIN.finditer(blanked)):
            written = found.group(0).rstrip(_TRAILING)
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
        for found in _PHONE_CANDIDATE.finditer(text):
            written = found.group(0).strip()
            digits = sum(c.isdigit() for c in written)
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


def _alternatives(words: Iterable[str]) -> str:
    return "|".join(re.escape(w) for w in words) or "(?!)"


def _spelled_dot_pattern(words: SpelledWords, suffixes: tuple[str, ...]) -> re.Pattern[str]:
    """ "shop dot com", "shop (punto) es", "yandex точка ru", "淘宝点com": a dot word in
    brackets, or standing apart by spaces (CJK words need none), and only before a suffix
    people spell out, so that "the point is" and "Treffpunkt de" stay prose. Suffixes that
    are words too ("de", "es", "it") are taken only after a bracketed dot word."""
    spaced = _alternatives(w for w in words.bare if not is_cjk(w[0]))
    cjk = _alternatives(w for w in words.bare if is_cjk(w[0]))
    bracketed = rf"\s*{_OPEN}\s*(?:{_alternatives(words.bracketed)})\s*{_CLOSE}\s*"
    loose = rf"(?:{bracketed}|\s+(?:{spaced})\s+|\s*(?:{cjk})\s*)"
    any_suffix = _alternatives(suffixes)
    plain = _alternatives(s for s in suffixes if s not in _WORDLIKE_SUFFIXES)
    end = r"(?![0-9a-z])"
    return re.compile(
        rf"(?<=[{_LETTER}])(?:{loose}(?=(?:{_LABEL}{loose}){{0,{_MAX_LABELS}}}(?:{plain}){end})"
        rf"|{bracketed}(?=(?:{_LABEL}{bracketed}){{0,{_MAX_LABELS}}}(?:{any_suffix}){end}))"
    )


def _spelled_email_pattern(lexicon: Lexicon) -> re.Pattern[str]:
    """ "name arroba shop punto es", "name (at) web punkt de": an address spelled out whole.
    Its shape (a word, an at-word, a name, a dot-word, a suffix) says it is one, so here a
    dot-word counts bracketed or standing apart, before any suffix; an at-word as the
    lexicons list it (bare, or in brackets only)."""
    at = (
        rf"(?:\s*{_OPEN}\s*(?:{_alternatives(lexicon.at_words.bracketed)})\s*{_CLOSE}\s*"
        rf"|\s+(?:{_alternatives(lexicon.at_words.bare)})\s+)"
    )
    words = lexicon.dot_words.bracketed
    dot = (
        rf"(?:\s*{_OPEN}\s*(?:{_alternatives(words)})\s*{_CLOSE}\s*"
        rf"|\s+(?:{_alternatives(w for w in words if not is_cjk(w[0]))})\s+"
        rf"|\s*(?:{_alternatives(w for w in words if is_cjk(w[0]))})\s*)"
    )
    return re.compile(
        rf"(?<![{_LETTER}.@_+-])(?P<local>[{_LETTER}._%+-]{{1,64}}){at}(?!www\d*\b)"
        rf"(?P<host>{_LABEL}(?:{dot}{_LABEL}){{0,{_MAX_LABELS}}}){dot}(?P<suffix>[a-z]{{2,63}}|[\u0400-\u04ff]{{2,20}})"
        rf"(?![{_LETTER}])"
    )


def _as_address(found: re.Match[str]) -> str:
    labels = [*re.findall(_LABEL, found.group("host")), found.group("suffix")]
    return f"{found.group('local')}@{'.'.join(labels)}"
