"""One Hyperscan pass over a text tells the content rules where their patterns may match.

Every expression is a `prefilter` rewrite (or a phrase's opening words) written backwards,
and the text is scanned reversed: where an expression's match ends in the reversed text is
where a match of the original pattern may start. The rules then run their exact Python code
only there. A scan never misses a place the Python pattern matches; it may name more.

Scanned bytes are the text reversed between two marks (so that "the character before" and
"the character after" exist at its edges too), encoded as UTF-8 with every ASCII white
space byte as a space. A text with other white space, or a run of more than MAX_SPACE_RUN spaces,
is not scanned: everything may match anywhere in it (fold() leaves neither in a text)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import hyperscan

from gateway.policy.prefilter import MAX_SPACE_RUN, python_class

MARK = "\U0010ffff"  # a noncharacter: stands at both edges of a text (not a word character)
GUARD = "guard"  # the key of the expressions that find text the scan cannot vouch for

_WHITE = bytes.maketrans(b"\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f", b" " * 9)
_CONTINUATION = bytes(range(0x80, 0xC0))

# Expressions found only once per scan: whether they match, not where.
ONCE = hyperscan.HS_FLAG_SINGLEMATCH


@dataclass(frozen=True, slots=True)
class Expression:
    key: str  # what a match tells: a lexicon category, a contact finder, an unmask step
    pattern: str  # Hyperscan syntax over scanned bytes
    flags: int = 0
    shift: int = 0  # characters a match takes before the place it names (its start)


@dataclass(frozen=True, slots=True)
class Found:
    """What one scan found: for each key, where a match may start (ascending character
    offsets; -1 is the start mark before the text). None: anywhere, as with no scan."""

    starts: Mapping[str, Sequence[int]] | None
    anywhere: frozenset[str] = frozenset()

    def may(self, key: str) -> bool:
        return self.starts is None or key in self.anywhere or key in self.starts

    def at(self, key: str) -> Sequence[int] | None:
        if self.starts is None or key in self.anywhere:
            return None
        return self.starts.get(key, ())


EVERYWHERE = Found(None)


def guards() -> list[Expression]:
    """White space the scanned bytes do not show as spaces, and runs of spaces too long
    for the patterns' bounded white space."""
    wide = [c for lo, hi in python_class(r"\s") for c in range(lo, hi + 1) if c > 0x7F]
    spelled = ["".join(f"\\x{b:02x}" for b in chr(c).encode()) for c in wide]
    return [Expression(GUARD, f"\\ {{{MAX_SPACE_RUN + 1},}}", ONCE)] + [
        Expression(GUARD, s, ONCE) for s in spelled
    ]


class ScanDatabase:
    """The compiled expressions of one policy version. Usable from any thread (each has
    its own scratch space) and after fork()."""

    def __init__(self, expressions: Iterable[Expression], anywhere: Iterable[str] = ()) -> None:
        kept = list(dict.fromkeys(expressions))
        refused: set[Expression] = set()
        try:
            self._database = _compiled(kept) if kept else None
        except hyperscan.error:  # find those Hyperscan will not take: they match anywhere
            refused = {e for e in kept if not _compiles(e)}
            kept = [e for e in kept if e not in refused]
            self._database = _compiled(kept) if kept else None
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
            reversed_bytes = (MARK + text[::-1] + MARK).encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: not UTF-8, so not scanned
            return EVERYWHERE
        if database is None:
            return Found({}, self.anywhere)
        data = reversed_bytes.translate(_WHITE)
        hits: list[tuple[int, int]] = []
        database.scan(
            data,
            match_event_handler=lambda key, _start, end, _flags, _context: hits.append((key, end)),
            scratch=self._scratch(database),
        )
        chars = _char_offsets(data, {end for _, end in hits}, len(text))
        starts: dict[str, set[int]] = {}
        keys, shifts, last = self._keys, self._shifts, len(text) + 1  # + the first mark
        for index, end in hits:
            starts.setdefault(keys[index], set()).add(last - chars[end] + shifts[index])
        if GUARD in starts:
            return EVERYWHERE
        return Found({key: sorted(found) for key, found in starts.items()}, self.anywhere)


_MARK_BYTES = len(MARK.encode())


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


def substitute(
    pattern: re.Pattern[str], replacement: str, text: str, starts: Sequence[int] | None
) -> str:
    """`pattern.sub(replacement, text)` for a pattern that never matches the empty text (the
    scan names no starts for one that may), trying only `starts` (None: everywhere): each
    match is the first after the one before, as in search()."""
    if starts is None:
        return pattern.sub(replacement, text)
    parts: list[str] = []
    position = 0
    for start in starts:
        found = pattern.match(text, start) if start >= position else None
        if found:
            parts += (text[position : found.start()], replacement)
            position = found.end()
    return "".join((*parts, text[position:]))


class TextScan:
    """The scans of the texts one rule set reads, each made once. Without a database,
    every scan finds that everything may match anywhere: the plain Python path."""

    def __init__(self, database: ScanDatabase | None) -> None:
        self._database = database
        # Bounded: a few messages' texts, never a growing store.
        self.found = lru_cache(maxsize=16)(self._found)

    def scan(self, text: str) -> Found:
        """A scan not kept: for short texts read once."""
        return EVERYWHERE if self._database is None else self._database.scan(text)

    def _found(self, text: str) -> Found:
        return self.scan(text)
