"""Contact details spelled out ("name (at) shop dot com", "yandex точка ru", "店名。com",
"s h o p @ m a i l . c o m", "shop punkt de slash hilfe") written as characters again, so
that the finders of addresses and links see them.

What makes a spelled-out address or host one is its whole shape: a name, an at-word, labels
joined by dot-words, a suffix people spell out, and around it a "www", a path, a scheme or
an at-word. A dot-word or at-word that is a word of prose too ("punto", "point", "at")
counts only where that shape says so: "el punto es que", "the point is" and "at the shop"
stay prose."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import astuple, dataclass, field

from gateway.core.text import is_cjk
from gateway.policy.config import Lexicon, LinkSettings, SpelledWords
from gateway.policy.domains import registrable
from gateway.policy.rules.content.shapes import LABEL, LETTER

# Suffixes that are also short words in the lexicons' languages ("fare il punto su",
# "a quel punto io"): after a dot-word they count only in brackets or in an address's shape.
_WORDLIKE_SUFFIXES = frozenset(
    "de es it me us co in at be by ca do go no so to on su io se".split()  # noqa: SIM905
)
# And those that also follow a full stop typed apart as a word ("... . Net weight"), with
# every language's own (its lexicon's suffix_words).
_PROSE_SUFFIXES = _WORDLIKE_SUFFIXES | {"info", "shop", "store", "online", "site", "net"}
# Suffixes written as they are said, in another script: "shop точка ру".
_SPOKEN_SUFFIXES = {"ру": "ru", "ком": "com", "орг": "org"}  # not "нет": "no"
# Link shorteners: a host whatever the dots between their labels, with a path after them
# ("bit . ly / 3xk"; "u . to be honest" is prose).
_SHORTENERS = frozenset(
    "bit.ly t.co goo.gl tinyurl.com ow.ly is.gd cutt.ly rb.gy t.ly shorturl.at "  # noqa: SIM905
    "tiny.cc bitly.com s.id v.gd clck.ru u.to vk.cc dwz.cn t.cn url.cn".split()
)
# Labels a spelled-out host may have before its suffix, parts of a spelled name: bounds, so
# that a long chain of "v dot v dot ..." costs each position a few steps.
_MAX_LABELS = 6
_MAX_NAME_PARTS = 4
_OPEN = r"[(\[{<【「〔]"
_CLOSE = r"[)\]}>】」〕]"
_BRACKETS = "()[]{}<>【】「」〔〕"
_IDEOGRAPHIC_DOT = re.compile(r"(?<=[0-9a-z])\s?[\u3002\uff61]\s?(?=[0-9a-z])")
_IDEOGRAPHIC_OPENING = r"[0-9a-z]\s?[\u3002\uff61]\s?[0-9a-z]"  # the letters around it too
_NAME = rf"[{LETTER}_%+-]"  # a character of an address's name, dots apart
_SEGMENT = rf"[{LETTER}_~%-]{{1,64}}"  # one segment of a path after a host
_GAP = r"\s{0,2}"
# What a spelled-out address or host is made of between its spelled "@" and ".": letters,
# digits, "." and "@" as typed. A run of them before a spelled one is at most _REACH long
# (a mailbox name is at most 64 characters, a host 253).
_RUN_CHAR = re.compile(rf"[{LETTER}_%+~.@-]")
_LABEL = re.compile(LABEL)
_REACH = 320

# None from a callable: not a match here after all; the pattern is tried at the next start.
Replacement = str | Callable[[re.Match[str]], str | None]


@dataclass(frozen=True, slots=True)
class Step:
    """One rewrite of unmasking; `key` names it in the scan, which tells where its pattern
    may match. A step with an `anchor` is scanned for that instead: every match of its
    pattern holds what the anchor matches (a spelled-out "@" or "."), right after the run
    of name and host characters it starts at, so the pattern is tried only at such runs."""

    key: str
    pattern: re.Pattern[str]
    replacement: Replacement
    anchor: re.Pattern[str] | None = None
    # What the scan looks for instead of the pattern, where its matches start: one the scan
    # reads more closely (the scan takes a space inside a repeat as "a space or none", and
    # drops lookarounds), and the characters it reads before that start.
    opening: str = ""
    shift: int = 0

    @property
    def scanned(self) -> str:
        """What the scan looks for under `key`."""
        return self.anchor.pattern if self.anchor else self.opening or self.pattern.pattern

    def starts(self, text: str, scanned: Sequence[int] | None) -> Sequence[int] | None:
        """Where the pattern may match in `text`, from where the scan says `scanned` may
        (None: anywhere, without a scan)."""
        if self.anchor is None:
            return scanned
        return _anchored(text, self.anchor, scanned)


def _anchored(text: str, anchor: re.Pattern[str], scanned: Sequence[int] | None) -> list[int]:
    """The starts of the runs of name and host characters just before each place `anchor`
    matches at (a scan's place where it does not is passed over), at most _REACH back."""
    starts: set[int] = set()
    for place in _anchor_places(text, anchor, scanned):
        end = place + 1 if _RUN_CHAR.match(text, place) else place  # a CJK word's letter
        gap = 0
        while gap < 2 and end > 0 and text[end - 1].isspace():  # "name (at) ...": a gap
            end, gap = end - 1, gap + 1
        begin = end
        while begin > max(0, end - _REACH) and _RUN_CHAR.match(text, begin - 1):
            begin -= 1
        # A match starts after no name character but "%" and "~" (its lookbehind).
        starts.update(i for i in range(begin, end) if i == begin or text[i - 1] in "%~")
    return sorted(starts)


def _anchor_places(
    text: str, anchor: re.Pattern[str], scanned: Sequence[int] | None
) -> Iterator[int]:
    if scanned is not None:
        yield from (p for p in scanned if p >= 0 and anchor.match(text, p))
        return
    found = anchor.search(text)
    while found is not None:
        yield found.start()
        found = anchor.search(text, found.start() + 1)


def known_host(host: str, extra_suffixes: Iterable[str] = ()) -> bool:
    """A host under a public suffix, or under one of the deployment's own (the reserved
    names its marketplace and test mail use)."""
    name = host.lower().rstrip(".")
    if registrable(name):
        return True
    labels = name.split(".")
    return len(labels) >= 2 and all(labels) and labels[-1] in extra_suffixes


def unmask_steps(lexicon: Lexicon, link: LinkSettings) -> tuple[Step, ...]:
    """The rewrites, in order: ideographic full stops between letters, addresses and links
    typed with a space between every character, addresses written backwards, and addresses
    and hosts spelled out."""
    words = _Words.of(lexicon)
    suffixes = frozenset(link.spelled_out_suffixes)
    shape = _Shape(words, suffixes, link.extra_suffixes, _piece_pattern(words), _word_kinds(words))
    return (
        Step(
            "unmask.ideographic_dot", _IDEOGRAPHIC_DOT, ".", opening=_IDEOGRAPHIC_OPENING, shift=1
        ),
        Step(
            "unmask.spaced_letters",
            _SPACED_LETTERS,
            _Collapse(link.extra_suffixes),
            opening=_SPACED_OPENING,
        ),
        Step("unmask.reversed", _REVERSED, _Reverse(link.extra_suffixes)),
        Step(
            "unmask.bracketed",
            _BRACKETED_RUN,
            _Unbracket(
                frozenset((*words.at_bracketed, *words.dot_bracketed, *words.slash_bracketed))
            ),
            opening=_BRACKETED_OPENING,
        ),
        Step(
            "unmask.spelled",
            _shape_pattern(words, suffixes),
            shape,
            _spelled_anchor(words, suffixes),
        ),
        Step("unmask.described", _described_pattern(words), _Described(link.extra_suffixes)),
    )


# -- the words -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Words:
    """The words that spell "@", "." and "/", by how they may stand: `*_strong` bare
    anywhere in a shape, `*_weak` bare only where the shape vouches for them (prose words
    too), `*_bracketed` in brackets."""

    at_strong: tuple[str, ...]
    at_weak: tuple[str, ...]
    at_bracketed: tuple[str, ...]
    dot_strong: tuple[str, ...]
    dot_weak: tuple[str, ...]
    dot_bracketed: tuple[str, ...]
    slash: tuple[str, ...]
    slash_bracketed: tuple[str, ...]
    # Each bare prose dot-word, and the suffixes that are words where it is one.
    prose_suffixes: tuple[tuple[str, tuple[str, ...]], ...]

    @classmethod
    def of(cls, lexicon: Lexicon) -> _Words:
        def merged(*lists: SpelledWords) -> tuple[str, ...]:
            return tuple(dict.fromkeys(w for words in lists for w in words.bracketed))

        at, weak_at = lexicon.at_words, lexicon.address_at_words
        dot, weak_dot = lexicon.dot_words, lexicon.address_dot_words
        return cls(
            at.bare,
            weak_at.bare,
            (*merged(at, weak_at), "@"),
            dot.bare,
            weak_dot.bare,
            (*merged(dot, weak_dot), "."),
            lexicon.slash_words.bare,
            (*lexicon.slash_words.bracketed, "/"),
            lexicon.prose_suffixes,
        )


def _alternatives(words: Iterable[str]) -> str:
    """Longest first, so that a word is never cut short by another it starts with."""
    ordered = sorted(set(words), key=lambda w: (-len(w), w))
    return "|".join(re.escape(w) for w in ordered) or "(?!)"


def _unspaced(word: str) -> bool:
    """A word that needs no spaces around it: CJK ("点", "アット"), or a sign ("★")."""
    return is_cjk(word[0]) or not word[0].isalnum()


def _spaced(words: Iterable[str]) -> list[str]:
    return [w for w in words if not _unspaced(w)]


def _cjk(words: Iterable[str]) -> list[str]:
    return [w for w in words if _unspaced(w)]


def _separator(bare: Iterable[str], bracketed: Iterable[str], symbol: str) -> str:
    """A spelled "@", "." or "/": in brackets, a word standing apart (CJK words need no
    spaces), or the character itself with a space or none around it."""
    bare = tuple(bare)
    return (
        rf"(?:{_GAP}{_OPEN}{_GAP}(?:{_alternatives(bracketed)}){_GAP}{_CLOSE}{_GAP}"
        rf"|\s(?:{_alternatives(_spaced(bare))})\s"
        rf"|{_GAP}(?:{_alternatives(_cjk(bare))}){_GAP}"
        rf"|{symbol})"
    )


def _shape_pattern(words: _Words, suffixes: Iterable[str]) -> re.Pattern[str]:
    """Where a spelled-out address or host may be: [name at-word] label (dot label)+
    [slash segment], each dot, at and slash as a word, in brackets or the character (the
    last dot-word may be run together with its suffix: "shop puntocom"), and something in
    it spelled out: an at-word, or a dot-word in the host. So the scan passes over text
    with nothing spelled out, which the finders read as it is."""
    at_words, dot_words = (*words.at_strong, *words.at_weak), (*words.dot_strong, *words.dot_weak)
    # "@" typed apart has spaces on both sides: "Instagram @shop.fr" is a handle.
    spelled_at = _separator(at_words, words.at_bracketed, r"\s@\s")
    # A dot typed apart has a space before it: "shop . com", "shop .com", never "fine. by".
    dot = _separator(dot_words, words.dot_bracketed, r"\s\.\s?|\.")
    spelled_dot = _separator(dot_words, words.dot_bracketed, r"\s\.\s?")
    glued = rf"\s(?:{_alternatives(_spaced(dot_words))})(?:{_alternatives(suffixes)})"
    slash = _separator(words.slash, words.slash_bracketed, r"\s?/\s?")
    name = rf"{_NAME}{{1,64}}(?:{dot}{_NAME}{{1,64}}){{0,{_MAX_NAME_PARTS}}}"
    host = rf"{LABEL}(?:{dot}{LABEL}){{0,{_MAX_LABELS}}}(?:{dot}{LABEL}|{glued})"
    spelled_host = (
        rf"{LABEL}(?:\.{LABEL}){{0,{_MAX_LABELS}}}"
        rf"(?:{spelled_dot}{LABEL}(?:{dot}{LABEL}){{0,{_MAX_LABELS}}}(?:{glued})?|{glued})"
    )
    return re.compile(
        rf"(?<![{LETTER}.@_+-])(?:{name}{spelled_at}{host}|(?:{name}@)?{spelled_host})"
        rf"(?![{LETTER}@_-])(?:{slash}{_SEGMENT})?"
    )


def _spelled_anchor(words: _Words, suffixes: Iterable[str]) -> re.Pattern[str]:
    """What every shape the pattern above finds holds right after its first run of name or
    host characters: a spelled-out "@" or "." (a word standing apart or run into its
    suffix, a CJK word or a sign, brackets, the character typed apart)."""
    spaced = _spaced((*words.at_strong, *words.at_weak, *words.dot_strong, *words.dot_weak))
    cjk = _cjk((*words.at_strong, *words.at_weak, *words.dot_strong, *words.dot_weak))
    bracketed = (*words.at_bracketed, *words.dot_bracketed)
    return re.compile(
        rf"\s(?:{_alternatives(spaced)})(?:\s|{_alternatives(suffixes)})"
        rf"|{_OPEN}{_GAP}(?:{_alternatives(bracketed)}){_GAP}{_CLOSE}"
        rf"|\s@\s|\s\.|[{LETTER}_%+~.-]{_GAP}(?:{_alternatives(cjk)}){_GAP}[{LETTER}]"
    )


# -- reading a shape -------------------------------------------------------------------

_AT, _DOT, _SLASH, _WORD = "at", "dot", "slash", "word"
# How a separator is written: the character alone, in brackets, a word that means only
# this, a word of prose too, the character between spaces, a dot-word run together with
# the suffix after it ("puntocom").
_PLAIN, _BRACKETED, _STRONG, _WEAK = "plain", "bracketed", "strong", "weak"
_SPACED, _GLUED = "spaced", "glued"


@dataclass(frozen=True, slots=True)
class _Piece:
    kind: str  # _AT, _DOT, _SLASH or _WORD
    how: str  # for a separator: _PLAIN, _BRACKETED, _STRONG, _WEAK, _SPACED or _GLUED
    text: str  # a word as written
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class _Shape:
    """The replacement of a spelled-out address or host: written as characters when its
    shape makes it one, else left as it is."""

    words: _Words
    suffixes: frozenset[str]  # suffixes people spell out
    extra_suffixes: tuple[str, ...]
    piece: re.Pattern[str]  # the parts of a shape (_piece_pattern)
    # A spelled word: what it stands for, and how (_word_kinds; made of `words`).
    kinds: dict[str, tuple[str, str]] = field(hash=False, compare=False)

    @property
    def _prose(self) -> frozenset[str]:
        """Suffixes that are a word in some language."""
        every = (s for _, words in self.words.prose_suffixes for s in words)
        return _PROSE_SUFFIXES.union(every)

    def __call__(self, found: re.Match[str]) -> str | None:
        """None: no address or host is spelled out from here, but one may be from a start
        after an at-word inside this match ("write to me at jo.hart at shop dot com"); the
        match as written, when none can (so that a long chain of "v dot v dot ..." is read
        once, not once from each of its words)."""
        written = found.group(0)
        if _ALL_PLAIN.fullmatch(written):
            return written  # nothing spelled out: the finders read it as it is
        pieces = self._pieces(written)
        if pieces is None:
            return written
        at = next((i for i, p in enumerate(pieces) if p.kind == _AT), None)
        rejected = None if at is not None else written
        name = pieces[:at] if at is not None else []
        rest = pieces[at + 1 :] if at is not None else pieces
        slash = next((i for i, p in enumerate(rest) if p.kind == _SLASH), len(rest))
        host, path = rest[:slash], rest[slash + 1 :]
        if not _alternate(host) or len(host) < 3 or (name and not _alternate(name)):
            return rejected
        if len(path) > 1 or (path and path[0].kind != _WORD):
            return rejected
        # The longest run of labels that is a host ("example.net . please" is one, ended by
        # a full stop typed apart); a path only after all of them.
        known = self._known(host)
        if known is None:
            return rejected
        if len(known) < len(host):
            path = []
        host = known
        labels = [p.text for p in host[::2]]
        dots = [p.how for p in host[1::2]]
        weak = {p.text for p in host[1::2] if p.how == _WEAK}
        joined = ".".join(labels)
        before = found.string[max(0, found.start() - 8) : found.start()]
        after = "/" + path[0].text if path else ""
        if at is not None and name and self._address(name, pieces[at], dots, labels[-1], path):
            local = "".join("." if p.kind == _DOT else p.text for p in name)
            return local + "@" + joined + written[host[-1].end :]
        if set(dots) == {_PLAIN}:
            return rejected
        evidence = (
            labels[0].startswith("www")
            or bool(path)
            or (at is not None and pieces[at].how != _WEAK)  # "at the point it ..." is prose
            or before.endswith(("://", "www."))
        )
        if not self._host(labels, dots, weak, evidence):
            return rejected
        kept = written[: host[0].start] if at is not None else ""
        end = path[0].end if path else host[-1].end
        return kept + joined + after + written[end:]

    def _known(self, host: list[_Piece]) -> list[_Piece] | None:
        for end in range(len(host), 2, -2):
            labels = [p.text for p in host[:end:2]]
            if not all(_LABEL.fullmatch(label) for label in labels):
                continue
            if known_host(".".join(labels), self.extra_suffixes):
                return host[:end]
        return None

    def _address(
        self, name: list[_Piece], at: _Piece, dots: list[str], suffix: str, path: list[_Piece]
    ) -> bool:
        """An address spelled out: its name, its at-word, its host. A prose at-word ("at")
        counts only after a name that looks like one, and never before a host with a path
        ("register the number at shop dot com slash warranty")."""
        if at.how == _WEAK:
            if path:
                return False
            local = "".join("." if p.kind == _DOT else p.text for p in name)
            if not _ADDRESS_NAME.search(local) or sum(map(str.isalpha, local)) < 4:
                return False
        return set(dots) == {_PLAIN} or suffix in self.suffixes

    def _host(self, labels: list[str], dots: list[str], weak: set[str], evidence: bool) -> bool:
        """A host spelled out, in an address or alone: a suffix people spell out; after a
        prose dot-word (`weak`) one that is no word in that word's languages ("punkt de",
        not "punto de"), after a dot between spaces none of prose at all; or the shape
        around it (www, a path, a scheme, an at-word) says it is a host."""
        suffix = labels[-1]
        if ".".join(labels) in _SHORTENERS and evidence:
            return True
        if suffix not in self.suffixes:
            return False
        if evidence:
            return True
        if _GLUED in dots:
            return False  # "las empresas puntocom": only in an address, or with www, a path
        if _BRACKETED in dots:
            return True
        if not all(any(c.isalpha() for c in label) for label in labels):
            return False  # "taille 38 . fr 38"
        if _SPACED in dots:
            # "Model X200 . De luxe . Net weight": typed apart, only a name that no prose
            # word is ("shop-outlet . com").
            shaped = any(_SHAPED_LABEL.search(label) for label in labels[:-1])
            return shaped and suffix not in self._prose
        if weak:
            # "el punto es", "le point de": the suffix a word of the dot-word's languages;
            # "au point net": after a short word, prose.
            prose = {s for word, words in self.words.prose_suffixes if word in weak for s in words}
            return suffix not in prose and len(labels[0]) > 3
        return suffix not in _WORDLIKE_SUFFIXES

    def _pieces(self, written: str) -> list[_Piece] | None:
        pieces: list[_Piece] = []
        for piece in self.piece.finditer(written):
            if piece.group("space"):
                continue
            if piece.group("other"):
                return None
            start, end = piece.span()
            text = piece.group(0)
            if piece.group("inner") is not None:
                kind = self._bracketed(piece.group("inner"))
                if kind is None:
                    return None
                pieces.append(_Piece(kind, _BRACKETED, text, start, end))
            elif piece.group("symbol"):
                spaced = written[start - 1 : start].isspace() or written[end : end + 1].isspace()
                kind = {"@": _AT, ".": _DOT, "/": _SLASH}[text]
                how = _SPACED if spaced and kind == _DOT else _PLAIN
                pieces.append(_Piece(kind, how, text, start, end))
            else:
                pieces.extend(self._word(text.strip(), start, end))
            if pieces[-1].kind == _AT and len(pieces) > 1 and pieces[-2].kind == _DOT:
                # after a dot an at-word is a suffix: "tirol punkt at"
                pieces[-1] = _Piece(_WORD, "", *astuple(pieces[-1])[2:])
        return pieces

    def _bracketed(self, inner: str) -> str | None:
        inner = inner.strip()
        for kind, words in (
            (_AT, self.words.at_bracketed),
            (_DOT, self.words.dot_bracketed),
            (_SLASH, self.words.slash_bracketed),
        ):
            if inner in words:
                return kind
        return None

    def _word(self, text: str, start: int, end: int) -> list[_Piece]:
        text = _SPOKEN_SUFFIXES.get(text, text)
        kind = self.kinds.get(text)
        if kind is not None:
            return [_Piece(*kind, text, start, end)]
        for word in (*self.words.dot_strong, *self.words.dot_weak):
            suffix = text[len(word) :]
            if text.startswith(word) and suffix in self.suffixes:
                cut = end - len(suffix)
                return [_Piece(_DOT, _GLUED, word, start, cut), _Piece(_WORD, "", suffix, cut, end)]
        return [_Piece(_WORD, "", text, start, end)]


def _word_kinds(words: _Words) -> dict[str, tuple[str, str]]:
    """Each spelled word: the separator it stands for and how, the first list naming it."""
    kinds: dict[str, tuple[str, str]] = {}
    for kind, how, listed in (
        (_AT, _STRONG, words.at_strong),
        (_AT, _WEAK, words.at_weak),
        (_DOT, _STRONG, words.dot_strong),
        (_DOT, _WEAK, words.dot_weak),
        (_SLASH, _STRONG, words.slash),
    ):
        for word in listed:
            kinds.setdefault(word, (kind, how))
    return kinds


def _alternate(pieces: list[_Piece]) -> bool:
    """Words with one dot between each two."""
    return len(pieces) % 2 == 1 and all(
        (p.kind == _WORD) == (i % 2 == 0) and (i % 2 == 0 or p.kind == _DOT)
        for i, p in enumerate(pieces)
    )


_ALL_PLAIN = re.compile(rf"[{LETTER}_%+~.@/-]+")
# A name that looks like an address's: a dot or "_" between letters ("tom.k", "jo_hart"),
# or a word with a number after it ("kayden2007"); not a model ("xr-200", "nr.4711").
_ADDRESS_NAME = re.compile(r"[^\W\d_][._][^\W\d_]|[^\W\d_]{4}\d{2}")
# A label no word of prose is: a hyphen or a digit inside it, among letters.
_SHAPED_LABEL = re.compile(r"[^\W\d_][-\d]|[-\d][^\W\d_]")


def _piece_pattern(words: _Words) -> re.Pattern[str]:
    """The parts of a shape the pattern above found: brackets and what they hold, "@", ".",
    "/", CJK words and signs (which need no spaces), and words."""
    cjk = _cjk((*words.at_strong, *words.at_weak, *words.dot_strong, *words.dot_weak))
    brackets = re.escape(_BRACKETS)
    return re.compile(
        rf"(?P<space>\s+)"
        rf"|{_OPEN}\s{{0,2}}(?P<inner>[^\s{brackets}]{{1,20}})\s{{0,2}}{_CLOSE}"
        rf"|(?P<symbol>[@./])"
        rf"|{_alternatives([*cjk, *_cjk(words.slash)])}"
        rf"|[{LETTER}_%+~-]+"
        rf"|(?P<other>.)"
    )


# -- described ------------------------------------------------------------------------

# A host after an at-word ("the name, then the arroba and shop.com"), as _Described reads it.
_HOST_AHEAD = re.compile(rf"(?:{LABEL}\.){{1,{_MAX_LABELS}}}[{LETTER}]{{2,63}}(?![{LETTER}@_-])")


def _described_pattern(words: _Words) -> re.Pattern[str]:
    """An at-word that means nothing but "@", a short word ("and", "y", "и") or none, and a
    host: an address told in words ("sklad, then the dog and shop.ru"). The at-word,
    standing apart, and what comes between it and the host."""
    return re.compile(
        rf"(?<![{LETTER}])(?:{_alternatives(_spaced(words.at_strong))})"
        rf"(?:[\s,;:]{{1,3}}[^\s@./,;:]{{1,4}})?[\s,;:]{{1,3}}(?=[{LETTER}])"
    )


@dataclass(frozen=True, slots=True)
class _Described:
    """The at-word joined to the host a word or two after it, so that the finder of
    addresses reads an address at that host (and the finder of links no link)."""

    extra_suffixes: tuple[str, ...]

    def __call__(self, found: re.Match[str]) -> str:
        host = _HOST_AHEAD.match(found.string, found.end())
        if host is None or not known_host(host.group(0), self.extra_suffixes):
            return found.group(0)
        return found.group(0).rstrip(" ,;:").split()[0].rstrip(",;:") + "@"


# -- letters typed apart ---------------------------------------------------------------

# "s u p p o r t @ s h o p . c o m", "h t t p s : / / ...": single characters between
# single spaces, a run of at least five, and the space after it before a word.
_SPACED_LETTERS = re.compile(
    r"(?<![^\s(\[{<«:])(?:[0-9a-z@.:/_-] ){4,}[0-9a-z@.:/_-](?![^\s,;!?)\]}>»\u3001\u3002\uff0c])"
    rf"(?P<then> (?=[{LETTER}]))?"
)
_SPACED_OPENING = " ".join(["[0-9a-z@.:/_-]"] * 5)  # its first five, spelled out


@dataclass(frozen=True, slots=True)
class _Collapse:
    """A run of letters typed apart, written together when it holds an address, a host or a
    scheme (which runs on into the host after it); a short word or two after an address
    ("... . c o m y te la mando") stays apart."""

    extra_suffixes: tuple[str, ...]

    def __call__(self, found: re.Match[str]) -> str:
        run = found.group(0)[: len(found.group(0)) - len(found.group("then") or "")]
        chars = run.split(" ")
        joined = "".join(chars)
        if "://" in joined and joined.endswith("/"):
            return joined
        for cut in range(min(3, len(chars) - 3) + 1):
            kept = "".join(chars[: len(chars) - cut])
            host = kept.partition("://")[2] or kept.rpartition("@")[2]
            host = host.partition("/")[0].strip(".")
            if "." in host and known_host(host, self.extra_suffixes):
                return " ".join([kept, *chars[len(chars) - cut :]]) + (found.group("then") or "")
        return found.group(0)


# -- every piece in brackets --------------------------------------------------------------

_ITEM = rf"{_OPEN}\s{{0,2}}[^\s{re.escape(_BRACKETS)}]{{1,64}}\s{{0,2}}{_CLOSE}"
# "[pagos] [at] [shop] [dot] [com]": three bracketed pieces or more, a space or none apart.
_BRACKETED_RUN = re.compile(rf"{_ITEM}(?:\s{{0,2}}{_ITEM}){{2,12}}")
_BRACKETED_OPENING = rf"{_ITEM}\s{{0,2}}{_OPEN}"
_BRACKETED_ITEM = re.compile(_ITEM)


@dataclass(frozen=True, slots=True)
class _Unbracket:
    """A run of bracketed pieces that holds a bracketed "@", "." or "/" word: the other
    pieces out of their brackets, for the spelled-out step to read the shape."""

    separators: frozenset[str]  # the words that spell "@", "." and "/" in brackets

    def __call__(self, found: re.Match[str]) -> str:
        run = found.group(0)
        if not any(_inner(item) in self.separators for item in _BRACKETED_ITEM.finditer(run)):
            return run

        def freed(item: re.Match[str]) -> str:
            return item.group(0) if _inner(item) in self.separators else _inner(item)

        return _BRACKETED_ITEM.sub(freed, run)


def _inner(item: re.Match[str]) -> str:
    return item.group(0)[1:-1].strip()


# -- written backwards ---------------------------------------------------------------------

# An address or a link written backwards: "moc.pohs@eman", "fdp.ofni/ed.pohs//:sptth",
# "ed.pohs.www" (a link ends in its scheme or "www." turned round).
_REVERSED = re.compile(
    rf"(?<![^\s(<\[:])(?:[{LETTER}-]{{2,63}}(?:\.[{LETTER}-]{{1,63}}){{1,4}}@[{LETTER}_+-]{{1,64}}"
    rf"|[{LETTER}_~%=&?#+/.-]{{4,300}}(?://:s?ptth|\.www))"
    r"(?![^\s)>\],;:])"
)


@dataclass(frozen=True, slots=True)
class _Reverse:
    """An address or link written backwards, written forwards when read so it is one (as
    it stands, an address's host has no dot and a link no scheme)."""

    extra_suffixes: tuple[str, ...]

    def __call__(self, found: re.Match[str]) -> str:
        turned = found.group(0)[::-1]
        if turned.startswith(("http://", "https://", "www.")):
            host = turned.partition("//")[2] if "//" in turned else turned
            host = host.split("/", 1)[0]
        else:
            local, _, host = turned.partition("@")
            if not local:
                return found.group(0)
        if known_host(host, self.extra_suffixes):
            return turned
        return found.group(0)
