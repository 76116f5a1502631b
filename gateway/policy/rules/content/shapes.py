"""What contact details look like in folded text, as regular expressions: hosts, e-mail
addresses, links, runs of digits that may be phone numbers; and, for the scan
(gateway.policy.scan), what every token or run holding one of them contains."""

from __future__ import annotations

import re

from gateway.policy.scan import MARK

# Letters a domain label is written in (Latin with accents, Greek, Cyrillic); CJK text runs
# into a domain without spaces, so it cannot be part of one here.
LETTER = r"0-9a-z\u00c0-\u024f\u0370-\u03ff\u0400-\u052f"
LABEL = rf"[{LETTER}](?:[{LETTER}-]{{0,61}}[{LETTER}])?"
_SUFFIX = r"(?:[a-z]{2,63}|xn--[0-9a-z-]{1,59}|[\u0400-\u04ff]{2,20})"
HOST = rf"(?:{LABEL}\.)+{_SUFFIX}"
_BEFORE = rf"(?<![{LETTER}.@_+-])"
AFTER = rf"(?![{LETTER}@_-])"

EMAIL = re.compile(rf"{_BEFORE}[{LETTER}._%+-]{{1,64}}@(?P<host>{HOST}){AFTER}")
URL = re.compile(
    r"(?P<url>(?:https?|ftp)://[^\s<>\"'`{}|\\^\[\]]+"
    rf"|{_BEFORE}www\d{{0,3}}\.{HOST}(?:[/?#][^\s<>\"'`{{}}|\\^\[\]]*)?)"
    rf"|{_BEFORE}(?P<bare>{HOST}){AFTER}(?:/[^\s<>\"'`{{}}|\\^\[\]]*)?"
)
TRAILING = ".,;:!?)]}'\"»。、，"
_CJK_SUFFIXES = "中国|中國|公司|网络|網絡|在线|商城|香港|台湾|台灣|日本|コム|한국|닷컴"
CJK_DOMAIN = re.compile(rf"(?<![\w.])(?P<bare>[\w-]{{1,30}}\.(?:{_CJK_SUFFIXES}))(?![\w.])")

# A run of digits and the separators phone numbers are written with, not inside a word.
_PHONE_RUN = r"(?:\+|00)?\(?\d[\d \t().\-/\u2010-\u2015\u2212\u30fc]{4,24}\d"
PHONE_CANDIDATE = re.compile(rf"(?<![\w+]){_PHONE_RUN}(?!\w)")

# For the scan. None of the matches above holds white space, so each lies in one token.
# What a token holding one contains, from the white space (or the text's start) before it:
# an address its "@"; a link "://", a host's dot between a label's last letter and a
# suffix's first, or a dot before a CJK suffix. A run of digits, from the character before
# it (one character before the run's start).
_TOKEN = rf"[\s{MARK}][^\s{MARK}]*"
EMAIL_TOKEN = rf"{_TOKEN}@"
LINK_TOKEN = rf"{_TOKEN}(?:://|[{LETTER}]\.[a-z\u0400-\u04ff]|\.(?:{_CJK_SUFFIXES}))"
PHONE_RUN = rf"[^\w+]{_PHONE_RUN}"
