"""The form rules: no emoji, no styled Unicode letters, no walls of empty lines. They read
the text as written (folding would turn styled letters into plain ones)."""

from __future__ import annotations

import re
from collections import Counter

import emoji

from gateway.core.model import Violation
from gateway.policy.config import LineBreakSettings, StyledTextSettings
from gateway.policy.rule import MessageContext
from gateway.policy.rules.content.base import OWN_WORDS, blocks, hit

# Symbols Unicode shows as emoji by default (Emoji_Presentation=Yes) in the BMP; the rest
# of the BMP's emoji-capable symbols (™ © ® ↔ ☺) are text unless followed by U+FE0F.
_BMP_EMOJI_PRESENTATION = frozenset(
    "⌚⌛⏩⏪⏫⏬⏰⏳◽◾☔☕♈♉♊♋♌♍♎♏♐♑♒♓♿⚓⚡⚪⚫⚽⚾⛄⛅⛎⛔⛪⛲⛳⛵⛺⛽✅✊✋✨❌❎❓❔❕❗➕➖➗➰➿⬛⬜⭐⭕"
)


def is_pictographic(found: str) -> bool:
    """An emoji as a reader sees one: a sequence (VS16, ZWJ, skin tone, keycap), a symbol
    outside the BMP, or one of the BMP symbols drawn as emoji by default."""
    return len(found) > 1 or ord(found) > 0xFFFF or found in _BMP_EMOJI_PRESENTATION


# Every code point an emoji can start with (keycaps start with a digit, # or *): text
# without one needs no closer look.
_EMOJI_STARTS = (
    "\u00a9\u00ae\u203c\u2049\u2122\u2139\u2194-\u2199\u21a9\u21aa\u231a-\u23ff"
    "\u24c2\u25aa-\u27bf\u2934\u2935\u2b05-\u2b55\u3030\u303d\u3297\u3299"
    "\U0001f000-\U0001faff"
)
_KEYCAP_END = "\u20e3"
_MAYBE_EMOJI = re.compile(f"[{_EMOJI_STARTS}]|[#*0-9]\ufe0f?{_KEYCAP_END}")


Plan = tuple[tuple[bytes, tuple[str, ...], tuple[bytes, ...]], ...]


def _plan(members: str) -> Plan:
    """How to tell quickly that a text holds none of the characters of a class body ("a-z"
    ranges, no escapes, nothing ASCII): for each first byte of their UTF-8 (a one-byte
    search), the few characters that begin with it, or the first bytes it shares with many
    more."""
    encodings = set()
    index = 0
    while index < len(members):
        last = members[index + 2] if members[index + 1 : index + 2] == "-" else members[index]
        for code in range(ord(members[index]), ord(last) + 1):
            encodings.add(chr(code).encode("utf-8", "surrogatepass"))
        index += 1 if last == members[index] else 3
    for length in (2, 1):  # share a prefix where it opens more than a few
        crowded = Counter(e[:length] for e in encodings if len(e) > length)
        encodings = {
            e[:length] if len(e) > length and crowded[e[:length]] > _FEW else e for e in encodings
        }
    plan = []
    for lead in sorted({e[:1] for e in encodings}):
        group = sorted(e for e in encodings if e[:1] == lead)
        chars = tuple(e.decode("utf-8", "surrogatepass") for e in group if _whole(e))
        plan.append((lead, chars, tuple(e for e in group if not _whole(e))))
    return tuple(plan)


def _whole(encoded: bytes) -> bool:
    """One character's whole UTF-8."""
    try:
        return len(encoded.decode("utf-8", "surrogatepass")) == 1
    except UnicodeDecodeError:
        return False


_FEW = 4


def may_hold(text: str, plan: Plan) -> bool:
    if text.isascii():
        return False
    encoded = text.encode("utf-8", "surrogatepass")
    return any(
        lead in encoded and (any(c in text for c in chars) or any(p in encoded for p in prefixes))
        for lead, chars, prefixes in plan
    )


class Emoji:
    id = "form.emoji"
    description = "no emoji"

    def check(self, ctx: MessageContext) -> list[Violation]:
        for block in blocks(ctx, OWN_WORDS):
            if not may_hold(block.text, _EMOJI_BYTES) or not _MAYBE_EMOJI.search(block.text):
                continue
            for found in emoji.emoji_list(block.text):
                if is_pictographic(found["emoji"]):
                    return [hit(self.id, found["emoji"], block.source)]
        return []


# Mathematical Alphanumeric Symbols, the letterlike symbols that fill their gaps, and
# enclosed (circled, squared) Latin letters.
_STYLED_LETTERS = (
    "\U0001d400-\U0001d7ff\u2102\u210a-\u2113\u2115\u2119-\u211d\u2124\u2128\u212c\u212d"
    "\u212f-\u2131\u2133\u2134\u2139\u24b6-\u24e9\U0001f130-\U0001f189"
)
_STYLED = re.compile(f"[{_STYLED_LETTERS}]")


class StyledText:
    id = "form.styled_text"
    description = "no special fonts (Unicode styled letters such as mathematical bold)"

    def __init__(self, settings: StyledTextSettings) -> None:
        self._min = settings.min_letters

    def check(self, ctx: MessageContext) -> list[Violation]:
        for block in blocks(ctx, OWN_WORDS):
            if not may_hold(block.text, _STYLED_BYTES):
                continue
            letters = _STYLED.findall(block.text)
            if len(letters) >= self._min:
                return [hit(self.id, _styled_run(block.text), block.source)]
        return []


_EMOJI_BYTES = _plan(_EMOJI_STARTS + _KEYCAP_END)
_STYLED_BYTES = _plan(_STYLED_LETTERS)


def _styled_run(text: str) -> str:
    found = re.search(f"{_STYLED.pattern}(?:[{_STYLED.pattern[1:-1]}\\s]*)", text)
    return found.group(0).strip() if found else ""


# A line that shows nothing: spaces of any width, and the invisible characters (zero-width,
# byte order mark, braille blank, Hangul fillers) that fill a line without showing.
_INVISIBLE = (
    "\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064"
    "\ufeff\u2800\u3164\u115f\u1160\uffa0"
)
_BLANK = "".join(c for c in map(chr, range(0x3001)) if c.isspace() and c != "\n") + _INVISIBLE


class LineBreaks:
    id = "form.line_breaks"
    description = "no excessive line breaks"

    def __init__(self, settings: LineBreakSettings) -> None:
        self._max = settings.max_empty_lines

    def check(self, ctx: MessageContext) -> list[Violation]:
        for block in blocks(ctx, OWN_WORDS):
            if block.source not in ("body", "html"):
                continue
            text = block.text.replace("\r\n", "\n").rstrip()
            if text.count("\n") <= self._max:
                continue  # not enough lines for the run
            longest = _longest_empty_run(text)
            if longest > self._max:
                return [hit(self.id, f"{longest} empty lines in a row", block.source)]
        return []


# Empty lines after a line break (a text's first line is given one to stand after).
_EMPTY_LINES = re.compile("\n(?:[" + "".join(map(re.escape, _BLANK)) + "]*\n)+")


def _longest_empty_run(text: str) -> int:
    """The most lines in a row that show nothing and end with a line break."""
    return max((m.group().count("\n") - 1 for m in _EMPTY_LINES.finditer("\n" + text)), default=0)
