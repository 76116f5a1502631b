"""One Hyperscan pass over a text tells the content rules where their patterns may match.

Every expression is a `prefilter` rewrite (or a phrase's opening words) written backwards,
and the text is scanned reversed: where an expression's match ends in the reversed text is
where a match of the original pattern may start. The rules then run their exact Python code
only there. A scan never misses a place the Python pattern matches; it may name more.

Scanned bytes are the text reversed between two marks (so that "the character before" and
"the character after" exist at its edges too), encoded as UTF-8 with every run of ASCII
white space as one space; a match that starts where a run was names each place in the run.
A text with other white space, or a run longer than MAX_SPACE_RUN, is not scanned:
everything may match anywhere in it (fold() leaves neither in a text)."""

from __future__ import annotations

import re
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import hyperscan

from gateway.policy import scancache
from gateway.policy.prefilter import python_class

MARK = "\U0010ffff"  # a noncharacter: stands at both edges of a text (not a word character)
GUARD = "guard"  # the key of the expressions that find text the scan cannot vouch for

_WHITE = bytes.maketrans(b"\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f", b" " * 9)
MAX_SPACE_RUN = 3  # white space in a row in a folded text, at most
SPACE = 0x20
_CONTINUATION = bytes(range(0x80, 0xC0))

# Expressions found only once per scan: whether they match, not where.
ONCE = hyperscan.HS_FLAG_SINGLEMATCH


@dataclass(frozen=True, slots=True)
class Expression:
    key: str  # what a match tells: a lexicon category, a contact finder, an unmask step
    pattern: str  # Hyperscan syntax over scanned bytes
    flags: int = 0
    shift: int = 0  # characters a match takes before the place it names (its start)


class Found:
    """What one scan found: for each key, where a match may start (ascending character
    offsets; -1 is the mark before the text), worked out for a key when first asked.
    Without hits (None): everything may match anywhere, as with no scan."""

    __slots__ = ("_data", "_hits", "_length", "_runs", "_starts", "anywhere")

    def __init__(
        self,
        hits: Mapping[str, list[tuple[int, int]]] | None,
        data: bytes = b"",
        length: int = 0,
        anywhere: frozenset[str] = frozenset(),
        runs: _Runs | None = None,
    ) -> None:
        self._hits = hits  # key -> (end in the scanned bytes, shift) of each match
        self._data = data  # the scanned bytes before their runs of spaces were made one
        self._length = length
        self._runs = runs
        self._starts: dict[str, list[int]] = {}
        self.anywhere = anywhere

    def may(self, key: str) -> bool:
        return self._hits is None or key in self.anywhere or key in self._hits

    def at(self, key: str) -> Sequence[int] | None:
        if self._hits is None or key in self.anywhere:
            return None
        starts = self._starts.get(key)
        if starts is None:
            runs = self._runs or _Runs(b"")
            hits = [(end, shift) for e, shift in self._hits.get(key, []) for end in runs.ends(e)]
            chars = _char_offsets(self._data, {end for end, _ in hits}, self._length)
            last = self._length + 1  # the characters of the text and the first mark
            starts = sorted({last - chars[end] + shift for end, shift in hits})
            self._starts[key] = starts
        return starts


EVERYWHERE = Found(None)


class Window:
    """What a scan found in one part [begin, end) of the text it read, counted from that
    part's start."""

    __slots__ = ("_begin", "_end", "_found")

    def __init__(self, found: Found, begin: int, end: int) -> None:
        self._found = found
        self._begin = begin
        self._end = end

    def may(self, key: str) -> bool:
        starts = self.at(key)
        return starts is None or bool(starts)

    def at(self, key: str) -> Sequence[int] | None:
        starts = self._found.at(key)
        if starts is None:
            return None
        low, high = bisect_left(starts, self._begin), bisect_left(starts, self._end)
        return [start - self._begin for start in starts[low:high]]


def guards() -> list[Expression]:
    """White space the scanned bytes do not show as spaces."""
    wide = [c for lo, hi in python_class(r"\s") for c in range(lo, hi + 1) if c > 0x7F]
    spelled = ["".join(f"\\x{b:02x}" for b in chr(c).encode()) for c in wide]
    return [Expression(GUARD, s, ONCE) for s in spelled]


class ScanDatabase:
    """The compiled expressions of one policy version. Usable from any thread (each has
    its own scratch space) and after fork()."""

    def __init__(self, expressions: Iterable[Expression], anywhere: Iterable[str] = ()) -> None:
        kept = list(dict.fromkeys(expressions))
        refused: set[Expression] = set()
        self._database: hyperscan.Database | None
        key = scancache.key_of([(e.key, e.pattern, e.flags, e.shift) for e in kept])
        cached = scancache.load(key) if kept else None
        if cached is not None:
            self._database, left_out = cached
            refused = {kept[i] for i in left_out if 0 <= i < len(kept)}
            kept = [e for e in kept if e not in refused]
        else:
            try:
                self._database = _compiled(kept) if kept else None
            except hyperscan.error:  # find those Hyperscan will not take: they match anywhere
                refused = {e for e in kept if not _compiles(e)}
                left = [i for i, e in enumerate(kept) if e in refused]
                kept = [e for e in kept if e not in refused]
                self._database = _compiled(kept) if kept else None
            else:
                left = []
            if self._database is not None:
                scancache.store(key, self._database, left)
        self.anywhere = frozenset(anywhere) | {e.key for e in refused}
        self._keys = [e.key for e in kept]
        self._shifts = [e.shift for e in kept]
        self._local = threading.local()

    @property
    def size(self) -> int:
        return self._database.size() if self._database is not None else 0

    def _scratch(self, database: hyperscan.Database) -> hyperscan.Scratch:
        scratch: hyperscan.Scratch | None = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = hyperscan.Scratch(database)
            self._local.scratch = scratch
        return scratch

    def scan(self, text: str) -> Found:
        database = self._database
        try:
            reversed_bytes = b"".join((_MARK_UTF8, text[::-1].encode("utf-8"), _MARK_UTF8))
        except UnicodeEncodeError:  # a lone surrogate: not UTF-8, so not scanned
            return EVERYWHERE
        if database is None:
            return Found({}, anywhere=self.anywhere)
        data = reversed_bytes.translate(_WHITE)
        runs = _Runs(data)
        if runs.longest > MAX_SPACE_RUN:
            return EVERYWHERE
        found: dict[str, list[tuple[int, int]]] = {}
        keys, shifts = self._keys, self._shifts

        def on_match(index: int, _start: int, end: int, _flags: int, _context: object) -> None:
            found.setdefault(keys[index], []).append((end, shifts[index]))

        scanned = runs.collapsed(data)
        database.scan(scanned, match_event_handler=on_match, scratch=self._scratch(database))
        if GUARD in found:
            return EVERYWHERE
        return Found(found, data, len(text), self.anywhere, runs)


class _Runs:
    """The runs of spaces of scanned bytes, each made one space: where they were."""

    __slots__ = ("_at", "_kept", "_lengths", "_removed", "longest")

    def __init__(self, data: bytes) -> None:
        self._at: list[int] = []  # each run's start, in the bytes as they were
        self._lengths: list[int] = []
        self._kept: list[int] = []  # its one space, in the bytes made shorter
        self._removed: list[int] = [0]  # bytes removed before the run, and after it
        at = data.find(b"  ")  # a byte search: far quicker than a pattern's over the text
        while at >= 0:
            end = at + 2
            while end < len(data) and data[end] == SPACE and end - at <= MAX_SPACE_RUN:
                end += 1
            self._at.append(at)
            self._lengths.append(end - at)
            self._kept.append(at - self._removed[-1])
            self._removed.append(self._removed[-1] + end - at - 1)
            if end - at > MAX_SPACE_RUN:
                break  # the text is not scanned
            at = data.find(b"  ", end)
        self.longest = max(self._lengths, default=1)

    def collapsed(self, data: bytes) -> bytes:
        if not self._at:
            return data
        pieces, previous = [], 0
        for at, length in zip(self._at, self._lengths, strict=True):
            pieces.append(data[previous : at + 1])
            previous = at + length
        pieces.append(data[previous:])
        return b"".join(pieces)

    def ends(self, end: int) -> range:
        """Where an end in the shorter bytes may be in the bytes as they were: right after
        a run's one space, anywhere in the run."""
        index = bisect_left(self._kept, end)  # runs whose space lies before `end`
        if index and end == self._kept[index - 1] + 1:
            at = self._at[index - 1]
            return range(at + 1, at + self._lengths[index - 1] + 1)
        moved = end + self._removed[index]
        return range(moved, moved + 1)


_MARK_UTF8 = MARK.encode()
_MARK_BYTES = len(_MARK_UTF8)


def _char_offsets(data: bytes, ends: Iterable[int], length: int) -> dict[int, int]:
    """Characters before each byte offset of `data` (the reversed text of `length`
    characters between the marks, UTF-8); one more for an offset inside a character, where
    no match of an original pattern ends."""
    if len(data) == length + 2 * _MARK_BYTES:  # ASCII text
        return {end: _ascii_offset(end, length) for end in ends}
    offsets: dict[int, int] = {}
    count = previous = 0
    for end in sorted(ends):
        count += len(data[previous:end].translate(None, _CONTINUATION))
        previous = end
        offsets[end] = count
    return offsets


def _ascii_offset(end: int, length: int) -> int:
    if end <= _MARK_BYTES:
        return 0 if end == 0 else 1
    if end <= _MARK_BYTES + length:
        return end - _MARK_BYTES + 1
    return length + 2


def _compiled(expressions: Sequence[Expression]) -> hyperscan.Database:
    database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    database.compile(
        expressions=[e.pattern.encode() for e in expressions],
        ids=list(range(len(expressions))),
        elements=len(expressions),
        flags=[e.flags for e in expressions],
    )
    return database


def _compiles(expression: Expression) -> bool:
    try:
        _compiled([expression])
    except hyperscan.error:
        return False
    return True


def search(
    pattern: re.Pattern[str], text: str, starts: Sequence[int] | None
) -> re.Match[str] | None:
    """`pattern.search(text)`, trying only `starts` (None: everywhere). A search is a
    match tried at each position in turn, and no match starts anywhere else."""
    if starts is None:
        return pattern.search(text)
    for start in starts:
        found = pattern.match(text, max(start, 0))
        if found:
            return found
    return None


def finditer(
    pattern: re.Pattern[str], text: str, starts: Sequence[int] | None
) -> Iterator[re.Match[str]]:
    """`pattern.finditer(text)` for a pattern that never matches the empty text (the scan
    names no starts for one that may), trying only `starts` (None: everywhere): each match
    is the first after the one before, as in search()."""
    if starts is None:
        yield from pattern.finditer(text)
        return
    position = 0
    for start in starts:
        found = pattern.match(text, start) if start >= position else None
        if found:
            position = found.end()
            yield found


def substitute(
    pattern: re.Pattern[str],
    replacement: str | Callable[[re.Match[str]], str | None],
    text: str,
    starts: Sequence[int] | None,
) -> str:
    """`pattern.sub(replacement, text)`, trying only `starts` as finditer() does. A callable
    that returns None rejects a match: with `starts`, the next start (inside it, too) is
    tried; without, the match stays as written."""
    if starts is None:
        return pattern.sub(partial(_expanded, replacement), text)
    parts: list[str] = []
    position = 0
    for start in starts:
        found = pattern.match(text, start) if start >= position else None
        written = _replaced(replacement, found) if found else None
        if found and written is not None:
            parts += (text[position : found.start()], written)
            position = found.end()
    return "".join((*parts, text[position:]))


def _replaced(
    replacement: str | Callable[[re.Match[str]], str | None], found: re.Match[str]
) -> str | None:
    return replacement(found) if callable(replacement) else found.expand(replacement)


def _expanded(
    replacement: str | Callable[[re.Match[str]], str | None], found: re.Match[str]
) -> str:
    written = _replaced(replacement, found)
    return found.group(0) if written is None else written


class TextScan:
    """The scans of the texts one rule set reads, each made once. Without a database,
    every scan finds that everything may match anywhere: the plain Python path."""

    def __init__(self, database: ScanDatabase | None) -> None:
        self._database = database
        self._kept: dict[str, Found] = {}

    def scan(self, text: str) -> Found:
        """A scan not kept: for short texts read once."""
        return EVERYWHERE if self._database is None else self._database.scan(text)

    def scan_each(self, texts: Sequence[str]) -> list[Window]:
        """Texts scanned in one pass: apart by the mark that stands at the edges of every
        scanned text, so that each is read as if alone."""
        found = self.scan(MARK.join(texts))
        windows, begin = [], 0
        for text in texts:
            windows.append(Window(found, begin, begin + len(text)))
            begin += len(text) + len(MARK)
        return windows

    def found(self, text: str) -> Found:
        kept = self._kept.get(text)
        if kept is None:
            if len(self._kept) > _KEPT:  # a few messages' texts, never a growing store
                self._kept.clear()
            kept = self._kept[text] = self.scan(text)
        return kept


_KEPT = 32
