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
# Kana, ideographs and Hangul: a label of an internationalised name ("かぐや家具.jp").
CJK_LETTER = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
# A name under a CJK suffix, or a CJK name under a Latin one, standing apart from the text
# around it (CJK text runs into a name without spaces: a name is read only where it starts
# after a space or a sign).
CJK_DOMAIN = re.compile(
    rf"(?<![\w.])(?P<bare>[\w-]{{1,30}}\.(?:{_CJK_SUFFIXES})"
    rf"|[\w-]{{0,29}}[{CJK_LETTER}][\w-]{{0,29}}\.[a-z]{{2,6}})(?![\w.])"
)

# A run of digits and the separators phone numbers are written with (a line's end too: a
# number split over lines), not inside a word or a code ("fa-2024/00318", "che-123.456.789"),
# a link's path or query, or a postcode ("〒150-0002"); CJK text may touch it. "wa.me/" and
# "phone=" (WhatsApp's links) open a number in international form without its "+". Middle
# dots ("654·321·098", "03・1234・5678") separate too.
_PHONE_SEPARATORS = r" \t\n().\-/\u00b7\u2010-\u2015\u2212\u30fb\u30fc"
_PHONE_RUN = rf"(?:\+|00|wa\.me/\+?|phone=\+?)?\(?\d[\d{_PHONE_SEPARATORS}]{{4,30}}\d"
_GLUED = r"[^\W\u2e80-\U0010ffff]"  # a word character of a script written with spaces
# Words that say a phone number follows, also run into it ("whatsapp07700 900461").
_PHONE_WORDS = (
    "whatsapp", "watsapp", "wasap", "wa", "tel", "tél", "telf", "tlf", "phone", "ph", "mob",
    "mobile", "cell", "cel", "handy", "fon", "telefon", "telefono", "teléfono", "téléphone",
    "тел", "телефон", "моб", "ватсап", "вотсап",
)  # fmt: skip
_AFTER_WORD = "|".join(
    f"(?<=(?<!{_GLUED}){re.escape(w)}{dot})" for w in _PHONE_WORDS for dot in ("", r"\.")
)
PHONE_CANDIDATE = re.compile(
    rf"(?:(?<!{_GLUED})(?<![+=\u3012])(?<!{_GLUED}[-/.])|(?<=[^\W\d_.]|\.)(?:{_AFTER_WORD}))"
    rf"{_PHONE_RUN}(?!{_GLUED})"
)

# For the scan. None of the matches above holds white space, so each lies in one token.
# What a token holding one contains, from the white space (or the text's start) before it:
# an address its "@"; a link "://", a host's dot between a label's last letter and a
# suffix's first, or a dot before a CJK suffix. A run of digits, from the character before
# it (one character before the run's start).
_TOKEN = rf"[\s{MARK}][^\s{MARK}]*"
EMAIL_TOKEN = rf"{_TOKEN}@"
LINK_TOKEN = rf"{_TOKEN}(?:://|[{LETTER}{CJK_LETTER}]\.[a-z\u0400-\u04ff]|\.(?:{_CJK_SUFFIXES}))"
PHONE_RUN = rf"[^0-9_+=]{_PHONE_RUN}"  # a letter before it too: a word run into it
