"""Numbers written to get past a filter, written as digits again: number words of the eight
languages ("tre tre otto", "null-acht-neun", "quarante-sept", "плюс семь"), Chinese and
Japanese numerals ("一三八", "幺", "捌", "ぜろきゅうぜろ"), "o", "l" and "i" for 0 and 1 among
digits ("6oo 1l", "o9o-l2o4"), digits split by letters ("135a2207b6618"), by "の" or by the
words that tell a number in turn ("090, then 6618, then 2045").

A sequence of such tokens, apart by spaces, commas, dashes, dots, slashes or brackets, is
written again as its digits apart by single spaces (number words that make one number as
that number: "cincuenta y cuatro" 54); the phone finder reads the result. Only a sequence
that holds something other than plain digits changes, and every one that does holds what
TRIGGER matches: the scan (gateway.policy.triggers) says whether a text may hold one."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.core.text import fold, is_cjk

KEY = "contact.numerals"  # the scan's key: a text may hold a number written otherwise

_UNITS = {  # 0 to 9, and the words that stand for them
    0: "zero oh nought null zéro cero ноль нуль",
    1: "one eins ein uno una un une один одна одно",
    2: "two zwei zwo deux dos due два две",
    3: "three drei trois tres tre три",
    4: "four vier quatre cuatro quattro четыре",
    5: "five fünf cinq cinco cinque пять",
    6: "six sechs seis sei шесть",
    7: "seven sieben sept siete sette семь",
    8: "eight acht huit ocho otto восемь",
    9: "nine neun neuf nueve nove девять",
}
_TEENS = {
    10: "ten zehn dix diez dieci десять",
    11: "eleven elf onze once undici одиннадцать",
    12: "twelve zwölf douze doce dodici двенадцать",
    13: "thirteen dreizehn treize trece tredici тринадцать",
    14: "fourteen vierzehn quatorze catorce quattordici четырнадцать",
    15: "fifteen fünfzehn quinze quince quindici пятнадцать",
    16: "sixteen sechzehn seize dieciséis dieciseis sedici шестнадцать",
    17: "seventeen siebzehn diecisiete diciassette семнадцать",
    18: "eighteen achtzehn dieciocho diciotto восемнадцать",
    19: "nineteen neunzehn diecinueve diciannove девятнадцать",
}
_TENS = {  # French 70, 80 and 90 are 60 + 10, 80 and 80 + 10: "soixante-dix"
    20: "twenty zwanzig vingt veinte venti двадцать",
    30: "thirty dreißig trente treinta trenta тридцать",
    40: "forty fourty vierzig quarante cuarenta quaranta сорок",
    50: "fifty fünfzig cinquante cincuenta cinquanta пятьдесят",
    60: "sixty sechzig soixante sesenta sessanta шестьдесят",
    70: "seventy siebzig setenta settanta семьдесят",
    80: "eighty achtzig quatre-vingt quatre-vingts ochenta ottanta восемьдесят",
    90: "ninety neunzig noventa novanta девяносто",
}
_HUNDREDS = {
    100: "hundred hundert cent cents cien ciento cento сто",
    200: "zweihundert doscientos doscientas duecento двести",
    300: "dreihundert trescientos trescientas trecento триста",
    400: "vierhundert cuatrocientos cuatrocientas quattrocento четыреста",
    500: "fünfhundert quinientos quinientas cinquecento пятьсот",
    600: "sechshundert seiscientos seiscientas seicento шестьсот",
    700: "siebenhundert setecientos setecientas settecento семьсот",
    800: "achthundert ochocientos ochocientas ottocento восемьсот",
    900: "neunhundert novecientos novecientas novecento девятьсот",
}
_MULTIPLIERS = frozenset(("hundred", "hundert", "cent", "cents", "cento", "ciento"))
# Articles that also mean "one": a number is never read from one that opens a sequence or
# follows digits ("il 02.03.2024 una pentola"), only after another number word.
_ARTICLES = frozenset(("un", "une", "una", "ein"))
_REPEATS = {"double": 2, "triple": 3}  # "double four": 44
_JOINERS = ("and", "und", "y", "et", "e", "и")  # between the parts of one number
# Between the parts of a number told in turn: "090, then 6618", "96, sigue con 3 45".
_CONNECTORS = (
    "then", "and then", "followed by", "and finally", "finally", "ending in", "ending with",
    "dann", "danach", "und dann", "gefolgt von", "und zum schluss", "und am ende",
    "puis", "ensuite", "et puis", "suivi de", "suivi par", "et enfin", "et pour finir",
    "luego", "y luego", "después", "sigue con", "seguido de", "y termina en", "termina en",
    "y al final", "poi", "e poi", "segue", "seguito da", "e infine", "e finisce con",
    "потом", "затем", "дальше", "далее", "и в конце", "в конце",
    "然后", "然後", "接着", "接著", "后面是", "後面是", "最后", "最後", "最后是", "最後是",
    "次が", "次は", "続いて", "続けて", "その後", "最後が", "最後は",
)  # fmt: skip
_PLUS = ("plus", "плюс", "más", "mas", "più")  # "+" written as a word
# Chinese and Japanese: each character one digit ("〇" and "○" also stand for zero).
_CJK_DIGITS = {
    0: "零〇○",
    1: "一壹幺",
    2: "二贰貳",
    3: "三叁參",
    4: "四肆",
    5: "五伍",
    6: "六陆陸",
    7: "七柒",
    8: "八捌",
    9: "九玖",
}
# Japanese readings of the digits, in hiragana and katakana.
_KANA = {
    0: "ぜろ れい まる ゼロ レイ マル",
    1: "いち イチ",
    2: "に にー ニ ニー",
    3: "さん サン",
    4: "よん し ヨン シ",
    5: "ご ごー ゴ ゴー",
    6: "ろく ロク",
    7: "なな しち ナナ シチ",
    8: "はち ハチ",
    9: "きゅう きゅー く キュウ キュー ク",
}


def _italian_compounds() -> dict[str, int]:
    """ "ventitré", "trentotto": a ten and a unit in one word, the ten's vowel dropped
    before "uno" and "otto"."""
    tens = "venti trenta quaranta cinquanta sessanta settanta ottanta novanta".split()  # noqa: SIM905 (a word list)
    units = "uno due tre tré quattro cinque sei sette otto nove".split()  # noqa: SIM905 (a word list)
    values = (1, 2, 3, 3, 4, 5, 6, 7, 8, 9)
    words = {}
    for ten_value, ten in enumerate(tens, start=2):
        for unit, value in zip(units, values, strict=True):
            stem = ten[:-1] if unit[0] in "uo" else ten
            words[stem + unit] = ten_value * 10 + value
    return words


def _german_compounds() -> dict[str, int]:
    """ "dreiundzwanzig": a unit, "und", a ten, in one word."""
    units = "ein zwei drei vier fünf sechs sieben acht neun".split()  # noqa: SIM905 (a word list)
    tens = "zwanzig dreißig vierzig fünfzig sechzig siebzig achtzig neunzig".split()  # noqa: SIM905 (a word list)
    return {
        f"{unit}und{ten}": ten_value * 10 + value
        for value, unit in enumerate(units, start=1)
        for ten_value, ten in enumerate(tens, start=2)
    }


def _spanish_compounds() -> dict[str, int]:
    """ "veintidós": twenty and a unit in one word."""
    units = {
        "uno": 1, "ún": 1, "un": 1, "dós": 2, "dos": 2, "trés": 3, "tres": 3, "cuatro": 4,
        "cinco": 5, "séis": 6, "seis": 6, "siete": 7, "ocho": 8, "nueve": 9,
    }  # fmt: skip
    return {f"veinti{unit}": 20 + value for unit, value in units.items()}


def _words() -> dict[str, int]:
    words: dict[str, int] = {}
    for table in (_UNITS, _TEENS, _TENS, _HUNDREDS):
        for value, written in table.items():
            words.update((fold(word), value) for word in written.split())
    for compounds in (_italian_compounds(), _german_compounds(), _spanish_compounds()):
        words.update((fold(word), value) for word, value in compounds.items())
    return words


WORDS = _words()
_KANA_WORDS = {word: value for value, written in _KANA.items() for word in written.split()}
_CJK_VALUES = {char: value for value, chars in _CJK_DIGITS.items() for char in chars}


def _alternatives(words: Iterable[str]) -> str:
    """The words as one pattern shaped as a trie: at each position only the words that
    share what was read so far are tried (a longer word before its prefix)."""
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}
    return _trie(trie)


def _trie(node: dict[str, Any]) -> str:
    branches = [re.escape(char) + _trie(node[char]) for char in sorted(node) if char]
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else f"(?:{'|'.join(branches)})"
    return f"(?:{body})?" if "" in node else body


# Letters, digits and the like that a token may not be glued to (CJK text may touch one).
_GLUED = r"[^\W\u2e80-\U0010ffff]"
_KANA_CHARS = "\u3041-\u306d\u306f-\u3096\u309d\u309e\u30a1-\u30fa\u30fc-\u30fe"  # not "の"
_CJK_CLASS = "".join(_CJK_VALUES)
_SUBSTITUTES = "oliо"  # Latin o, l, i and Cyrillic о among digits: 0, 1, 1, 0
_SUBSTITUTE_VALUES = str.maketrans("oliо", "0110")

_WORD = rf"(?<!{_GLUED})(?:{_alternatives(WORDS)})(?!{_GLUED})"
_OPENING_WORD = rf"(?<!{_GLUED})(?:{_alternatives(set(WORDS) - _ARTICLES)})(?!{_GLUED})"
_REPEAT = rf"(?<!{_GLUED})(?:{_alternatives(_REPEATS)})(?!{_GLUED})"
# Digits with o, l or i among them: "6oo", "9i2", "o9o-l2o4". An "l" or "i" only between
# digits ("5l" is five litres), an "o" also at either end.
_LETTERED = (
    rf"(?<!{_GLUED})[0-9{_SUBSTITUTES}]{{0,15}}"
    rf"(?:\d[{_SUBSTITUTES}]{{1,4}}\d|\d[oо]|[oо]\d)"
    rf"[0-9{_SUBSTITUTES}]{{0,15}}(?<![0-9][li])(?!{_GLUED})"
)
_SPLIT = rf"(?<!{_GLUED})\d{{3,6}}(?:[a-hj-kmnp-z]\d{{3,6}}){{1,3}}(?!{_GLUED})"  # "135a2207b6618"
# One alone is never a digit: "38, 40, 42 o 44" is a list of sizes ("o": "or").
_LETTER = r"(?!)"
_CJK = rf"(?<![{_CJK_CLASS}])[{_CJK_CLASS}]{{1,20}}"
_KANA_RUN = rf"(?<![{_KANA_CHARS}])(?:{_alternatives(_KANA_WORDS)}){{1,12}}(?![{_KANA_CHARS}])"
_DIGITS = rf"(?<!{_GLUED})\d{{1,15}}(?!{_GLUED})"

# What a sequence is made of. The first group that matches names the kind.
TOKEN = re.compile(
    rf"(?P<split>{_SPLIT})|(?P<lettered>{_LETTERED})|(?P<digits>{_DIGITS})"
    rf"|(?P<word>{_WORD})|(?P<repeat>{_REPEAT})|(?P<cjk>{_CJK})|(?P<kana>{_KANA_RUN})"
    rf"|(?P<letter>{_LETTER})"
)
_JOINER = rf"[ \t](?:{_alternatives(_JOINERS)})[ \t]"
_NO = r"[ \t]?の[ \t]?"
_MARKS = r"[ \t,./()\-\u2010-\u2015\u2212\u30fc、，・]{1,4}"  # not a line's end
_SPACED = _alternatives(fold(w) for w in _CONNECTORS if not is_cjk(w[0]))
_CONNECTOR = (
    rf"[ \t,]{{1,3}}(?:{_SPACED})[ \t:]{{1,2}}"
    rf"|[、，,]?(?:{_alternatives(w for w in _CONNECTORS if is_cjk(w[0]))})[:：]?"
)
# Between two tokens: the words that tell a number's next part, a joiner ("y", "und"), "の",
# or one to four spaces and marks.
SEPARATOR = re.compile(rf"(?P<connector>{_CONNECTOR})|(?P<joiner>{_JOINER})|(?P<no>{_NO})|{_MARKS}")
_PLUS_WORD = rf"(?<!{_GLUED})(?:{_alternatives(_PLUS)})[ \t]{{1,2}}(?=\d|{_WORD})"
# A sequence's start; the characters one may open with, first, so that the search passes
# over the others without trying each alternative.
_OPENERS = "".join(
    sorted(
        {*"0123456789", *_SUBSTITUTES, *_CJK_CLASS}
        | {word[0] for word in (*WORDS, *_REPEATS, *_PLUS, *_KANA_WORDS)}
    )
)
_START = re.compile(rf"(?=[{re.escape(_OPENERS)}])(?:(?P<plus>{_PLUS_WORD})?(?:{TOKEN.pattern}))")

# What every sequence that changes holds, for the scan (gateway.policy.triggers) to say
# whether a text may: two tokens apart by a separator, one of them no plain digits (an "o",
# "l" or "i" alone counts only between digits; a sequence starts with no article, and holds
# no words beside CJK digits); two Chinese or kana digits together; "+" as a word before a
# token; digits split by letters; digits apart by "の" or told in turn. Written so that the
# scan reads it closely and compiles it quickly: the characters around a word as characters
# that are not part of one (the scan reads a text between marks, so there is one at its
# edges too), a word after a separator by its first letter, the CJK digits in sets small
# enough to be spelled out; after a CJK digit or kana, any CJK character.
_SEP = rf"(?:{_JOINER}|{_NO}|{_MARKS})"  # a connector only ever between digits
_NOT_GLUED = r"[^0-9a-z_]"  # one set, not a group, so that the scan reads white space in it
_COMMON = "〇一二三四五六七八九零"  # each set at most 16 characters
_OTHERS = "".join(c for c in _CJK_CLASS if c not in _COMMON)
_KANA_WORD = f"(?:{_alternatives(_KANA_WORDS)})"
_WORDS = rf"(?:{_WORD}|{_REPEAT}|{_LETTERED})"
_NOT_DIGITS = rf"(?:{_WORDS}|[{_COMMON}]|[{_OTHERS}]|{_KANA_WORD})"
_LONE = rf"[{_SUBSTITUTES}]{_SEP}[0-9{_SUBSTITUTES}]"  # an "o", "l" or "i" alone: digits after
_INITIALS = "".join(sorted({w[0] for w in (*WORDS, *_REPEATS)} | set("0123456789")))
TRIGGER = re.compile(
    rf"{_NOT_GLUED}(?:{_OPENING_WORD}|{_REPEAT}|{_LETTERED}){_SEP}(?:[{_INITIALS}]|{_LONE})"
    rf"|(?:[{_COMMON}]|[{_OTHERS}]|{_KANA_WORD}){_SEP}[0-9\u25cb\u3000-\u9fff]"
    rf"|\d{_SEP}(?:{_NOT_DIGITS}{_NOT_GLUED}|{_LONE})"
    rf"|[{_COMMON}][{_COMMON}]|[{_COMMON}][{_OTHERS}]|[{_OTHERS}][{_COMMON}]|[{_OTHERS}][{_OTHERS}]"
    rf"|{_KANA_WORD}{_KANA_WORD}|{_NOT_GLUED}(?:{_alternatives(_PLUS)})[ \t]{{1,2}}(?:\d|{_WORD})"
    rf"|{_SPLIT}|\d{_NO}\d|\d(?:{_CONNECTOR})\d"
)

_MAX_TOKENS = 40


@dataclass(slots=True)
class _Token:
    kind: str
    text: str
    link: str = ""  # to the one before: "joiner" ("y"), "space" (or "-"), "connector", "no",
    # "break" (a comma, a dash: the end of a number in words)


@dataclass(frozen=True, slots=True)
class Written:
    """A text with its numbers written as digits, and where they are in it."""

    text: str
    spans: tuple[tuple[int, int], ...] = ()  # [start, end) of each number written again

    def spelled(self, start: int, end: int) -> bool:
        """Whether [start, end) overlaps a number that was not written in digits."""
        return any(s < end and start < e for s, e in self.spans)


def digits_written(text: str, triggers: Sequence[int] | None = None) -> Written:
    """The text with every sequence of number words, CJK digits and lettered digits written
    as digits apart by single spaces ("tre tre otto, 12" -> "3 3 8 12"); the rest as it is.
    `triggers`: where a match of TRIGGER may start (None: anywhere). A sequence never runs
    over a line's end and every one that changes holds a match of TRIGGER, so only the
    lines those start on are read (a match may start at the line end before its line)."""
    parts: list[str] = []
    spans: list[tuple[int, int]] = []
    position = length = 0
    for begin, end in _lines(text, triggers):
        for start in _START.finditer(text, begin, end):
            if start.start() < position:
                continue
            stop, written = _sequence(text, start)
            if written is not None:
                before = text[position : start.start()]
                parts += (before, written)
                length += len(before)
                spans.append((length, length + len(written)))
                length += len(written)
                position = stop
    if not parts:
        return Written(text)
    return Written("".join((*parts, text[position:])), tuple(spans))


def _lines(text: str, triggers: Sequence[int] | None) -> list[tuple[int, int]]:
    """[begin, end) of each line a trigger starts on, in order (the whole text: None)."""
    if triggers is None:
        return [(0, len(text))]
    lines: list[tuple[int, int]] = []
    for place in triggers:
        begin = text.rfind("\n", 0, max(place, -1) + 1) + 1  # at a line's end: the next
        if lines and begin < lines[-1][1]:
            continue  # the line before's
        end = text.find("\n", begin)
        lines.append((begin, len(text) if end < 0 else end))
    return lines


def _sequence(text: str, start: re.Match[str]) -> tuple[int, str | None]:
    """Where the sequence from `start` ends, and how it is written as digits (None: as it is,
    for a sequence of plain digits, or one token alone)."""
    plus = start.group("plus") is not None
    first = TOKEN.match(text, start.end("plus") if plus else start.start())
    assert first is not None  # _START matched a token there
    tokens = [_Token(first.lastgroup or "", first.group(0))]
    separators: list[str] = []
    ends = [first.end()]
    while len(tokens) < _MAX_TOKENS:
        separator = SEPARATOR.match(text, ends[-1])
        token = TOKEN.match(text, separator.end()) if separator else None
        if separator is None or token is None:
            break
        link = _link(tokens[-1], separator, token)
        if link is None:
            break
        tokens.append(_Token(token.lastgroup or "", token.group(0), link))
        separators.append(separator.group(0))
        ends.append(token.end())
    # An "o", "l" or "i" alone is a digit only between two tokens of digits: the sequence
    # ends before one that is not.
    for index, read in enumerate(tokens):
        if read.kind == "letter" and not _between_digits(tokens, index):
            if index == 0:
                return first.end(), None
            del tokens[index:], separators[index - 1 :], ends[index:]
            break
    if not _changes(tokens, plus):
        return ends[-1], None
    return ends[-1], ("+" if plus else "") + _as_digits(tokens, separators)


def _link(before: _Token, separator: re.Match[str], token: re.Match[str]) -> str | None:
    """How a token is tied to the one before it (None: it is not part of the sequence)."""
    kind = token.lastgroup or ""
    if token.group(0) in _ARTICLES and before.kind != "word":
        return None  # "il 02.03.2024 una pentola": an article after digits
    if _script(before.kind) | _script(kind) == {"cjk", "word"}:
        return None  # words and CJK digits are never one number
    if separator.group("connector") is not None:
        # Told in turn, in digits: "090, then 6618".
        return "connector" if before.kind == kind == "digits" else None
    if separator.group("joiner") is not None:
        return "joiner"
    if separator.group("no") is not None:
        return "no"
    return "space" if separator.group(0) in (" ", "-") else "break"


def _script(kind: str) -> set[str]:
    if kind in ("cjk", "kana"):
        return {"cjk"}
    return set() if kind in ("digits", "split") else {"word"}


def _between_digits(tokens: list[_Token], index: int) -> bool:
    numeric = ("digits", "lettered")
    return (
        0 < index < len(tokens) - 1
        and tokens[index - 1].kind in numeric
        and tokens[index + 1].kind in numeric
    )


def _changes(tokens: list[_Token], plus: bool) -> bool:
    """Whether the sequence is a number written otherwise than in digits."""
    if plus:
        return True
    if any(t.kind == "split" for t in tokens):
        return True
    if tokens[0].kind == "word" and tokens[0].text in _ARTICLES:
        return False
    if len(tokens) == 1:
        token = tokens[0]
        return token.kind in ("cjk", "kana") and len(_cjk_digits(token)) >= 2
    if any(t.kind != "digits" for t in tokens):
        return True
    return any(t.link in ("connector", "no") for t in tokens)


def _cjk_digits(token: _Token) -> str:
    if token.kind == "cjk":
        return "".join(str(_CJK_VALUES[c]) for c in token.text)
    digits, rest = [], token.text
    words = sorted(_KANA_WORDS, key=len, reverse=True)
    while rest:
        word = next(w for w in words if rest.startswith(w))
        digits.append(str(_KANA_WORDS[word]))
        rest = rest[len(word) :]
    return "".join(digits)


def _as_digits(tokens: list[_Token], separators: list[str]) -> str:
    """Each token's digits apart by a space; number words that make one number together
    ("cincuenta y cuatro", "quatre-vingt-trois", "two hundred") as that number; a dot, a
    slash or a dash between two runs of digits as written ("02.03.2024": still a date)."""
    written: list[str] = []
    number: list[int] = []  # the parts of the number being read
    repeat = 1

    def add(digits: str, index: int) -> None:
        if written:
            between = separators[index - 1]
            kept = between in (".", "/", "-") and tokens[index - 1].kind == "digits"
            written.append(between if kept and tokens[index].kind == "digits" else " ")
        written.append(digits)

    def close() -> None:
        if number:
            written.append(str(sum(number)))
            number.clear()

    for index, token in enumerate(tokens):
        if token.kind != "word":
            close()
        if token.kind == "repeat":
            repeat = _REPEATS[token.text]
            continue
        if token.kind == "word":
            value = WORDS[token.text]
            if repeat > 1:
                close()
                add(str(value) * repeat, index)
                repeat = 1
                continue
            if token.link == "break" or not _combines(number, value, token.text, token.link):
                close()
                add("", index)  # the space before the number this word begins
            if token.text in _MULTIPLIERS and len(number) == 1 and 1 <= number[0] <= 9:
                number[0] *= 100
            else:
                number.append(value)
            continue
        repeat = 1
        if token.kind in ("digits", "split"):
            add(re.sub(r"[a-z]", "", token.text), index)
        elif token.kind in ("lettered", "letter"):
            add(token.text.translate(_SUBSTITUTE_VALUES), index)
        else:
            add(_cjk_digits(token), index)
    close()
    return "".join(written)


def _combines(number: list[int], value: int, word: str, link: str) -> bool:
    """Whether a number word adds to the number read so far: a ten after hundreds, a unit
    after a ten ("treinta y dos"), 10 to 19 after French 60 and 80, a unit after French
    "dix", a ten after a unit and "und", hundred after a unit."""
    if not number or value == 0 or 0 in number:
        return False
    last, total = number[-1], sum(number)
    if word in _MULTIPLIERS:
        return len(number) == 1 and 1 <= last <= 9
    if last >= 100:
        return value < 100
    if last in (60, 80) and 10 <= value <= 19:
        return True
    if (20 <= last <= 90 and last % 10 == 0) or (last == 10 and total % 100 in (10, 70, 90)):
        return 1 <= value <= 9
    joined_ten = 20 <= value <= 90 and value % 10 == 0 and link == "joiner"
    return 1 <= last <= 9 and len(number) == 1 and joined_ten
