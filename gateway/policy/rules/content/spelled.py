"""Contact details spelled out ("name (at) shop dot com", "yandex точка ru", "店名。com")
written as characters again, so that the finders of addresses and links see them."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from gateway.core.text import is_cjk
from gateway.policy.config import Lexicon, LinkSettings, SpelledWords
from gateway.policy.rules.content.shapes import AFTER, HOST, LABEL, LETTER

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

Replacement = str | Callable[[re.Match[str]], str]


@dataclass(frozen=True, slots=True)
class Step:
    """One rewrite of unmasking; `key` names it in the scan, which tells whether its
    pattern may match a text at all."""

    key: str
    pattern: re.Pattern[str]
    replacement: Replacement


def unmask_steps(lexicon: Lexicon, link: LinkSettings) -> tuple[Step, ...]:
    """The rewrites, in order: ideographic full stops between letters, whole addresses
    spelled out, spelled-out dots, spelled-out "@"."""
    bracketed_ats = _alternatives(lexicon.at_words.bracketed)
    bare_ats = _alternatives(lexicon.at_words.bare)
    # "name (at) shop.com", "name собака yandex.ru": bracketed always, bare before a host
    # (not a web address: "the steps are at www.shop.com" is a link).
    spelled_at = re.compile(
        rf"(?<!\s)\s*{_OPEN}\s*(?:{bracketed_ats}|@)\s*{_CLOSE}\s*"
        rf"|(?<=[0-9a-z._-])\s+(?:{bare_ats})\s+(?!www\d*\.)(?={HOST}{AFTER})"
    )
    return (
        Step("unmask.ideographic_dot", _IDEOGRAPHIC_DOT, "."),
        Step("unmask.spelled_email", _spelled_email_pattern(lexicon), _as_address),
        Step(
            "unmask.spelled_dot",
            _spelled_dot_pattern(lexicon.dot_words, link.spelled_out_suffixes),
            ".",
        ),
        Step("unmask.spelled_at", spelled_at, "@"),
    )


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
        rf"(?<=[{LETTER}])(?:{loose}(?=(?:{LABEL}{loose}){{0,{_MAX_LABELS}}}(?:{plain}){end})"
        rf"|{bracketed}(?=(?:{LABEL}{bracketed}){{0,{_MAX_LABELS}}}(?:{any_suffix}){end}))"
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
        rf"(?<![{LETTER}.@_+-])(?P<local>[{LETTER}._%+-]{{1,64}}){at}(?!www\d*\b)"
        rf"(?P<host>{LABEL}(?:{dot}{LABEL}){{0,{_MAX_LABELS}}}){dot}(?P<suffix>[a-z]{{2,63}}|[\u0400-\u04ff]{{2,20}})"
        rf"(?![{LETTER}])"
    )


def _as_address(found: re.Match[str]) -> str:
    labels = [*re.findall(LABEL, found.group("host")), found.group("suffix")]
    return f"{found.group('local')}@{'.'.join(labels)}"
