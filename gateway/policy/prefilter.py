"""A Python regular expression rewritten for Hyperscan so that it matches at least wherever
the original does: lookarounds, word boundaries and anchors are dropped (or, at the edge of
the match, read as text the match must have around it), character classes become the exact
code points Python's classes hold (or more), back-references any text. What is dropped only
widens the match, so a text the rewrite finds nothing in is one the original finds nothing
in either. Written backwards, the expression scans the reversed text and reports where the
original's matches may start."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sre_constants as sre
    import sre_parse as parser
else:
    from re import _constants as sre
    from re import _parser as parser

Ranges = tuple[tuple[int, int], ...]  # sorted, disjoint, inclusive code point ranges

_LAST = 0x10FFFF
_SURROGATES = (0xD800, 0xDFFF)  # never in a text that encodes as UTF-8
_UNSUPPORTED_FLAGS = re.IGNORECASE | re.ASCII | re.LOCALE


class Unsupported(Exception):
    """A construct with no rewrite here: the pattern may match anywhere."""


def _normal(ranges: Iterable[tuple[int, int]]) -> Ranges:
    merged: list[tuple[int, int]] = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(high, merged[-1][1]))
        else:
            merged.append((low, high))
    return _without_surrogates(merged)


def _without_surrogates(ranges: Sequence[tuple[int, int]]) -> Ranges:
    kept: list[tuple[int, int]] = []
    for low, high in ranges:
        if high < _SURROGATES[0] or low > _SURROGATES[1]:
            kept.append((low, high))
            continue
        if low < _SURROGATES[0]:
            kept.append((low, _SURROGATES[0] - 1))
        if high > _SURROGATES[1]:
            kept.append((_SURROGATES[1] + 1, high))
    return tuple(kept)


def _complement(ranges: Ranges) -> Ranges:
    gaps: list[tuple[int, int]] = []
    start = 0
    for low, high in ranges:
        if low > start:
            gaps.append((start, low - 1))
        start = high + 1
    if start <= _LAST:
        gaps.append((start, _LAST))
    return _without_surrogates(gaps)


EVERY = _complement(())
_NEWLINE = ((0x0A, 0x0A),)


# Python's \s and \d hold no character above this (tests check it): the classes are asked
# of Python below it only.
CLASSES_END = 0x20000


@cache
def python_class(escape: str) -> Ranges:
    """The code points Python's `escape` (\\s, \\d) matches in str patterns, asked of
    Python itself so that the two engines agree on every character."""
    every = "".join(map(chr, range(CLASSES_END)))
    found = re.finditer(escape + "+", every)
    return _normal((ord(m.group()[0]), ord(m.group()[-1])) for m in found)


def _ascii_word() -> Ranges:
    return ((0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A))


@cache
def _category(category: object) -> tuple[Ranges, Ranges]:
    """(at least, at most) what a class escape matches: \\w is taken as every character
    that is not white space, and, inside a negated class, as ASCII letters and digits."""
    space = python_class(r"\s")
    digit = python_class(r"\d")
    word_inner = _normal((*_ascii_word(), *digit))
    table: dict[object, tuple[Ranges, Ranges]] = {
        sre.CATEGORY_DIGIT: (digit, digit),
        sre.CATEGORY_NOT_DIGIT: (_complement(digit), _complement(digit)),
        sre.CATEGORY_SPACE: (space, space),
        sre.CATEGORY_NOT_SPACE: (_complement(space), _complement(space)),
        sre.CATEGORY_WORD: (_complement(space), word_inner),
        sre.CATEGORY_NOT_WORD: (_complement(word_inner), space),
    }
    if category not in table:
        raise Unsupported(f"class {category}")
    return table[category]


def _class_items(items: Sequence[tuple[Any, Any]]) -> tuple[Ranges, Ranges]:
    """(outer, inner): a superset and a subset of what a bracket class matches."""
    outer: list[tuple[int, int]] = []
    inner: list[tuple[int, int]] = []
    negate = False
    for op, value in items:
        if op is sre.NEGATE:
            negate = True
        elif op is sre.LITERAL:
            outer.append((value, value))
            inner.append((value, value))
        elif op is sre.RANGE:
            outer.append(value)
            inner.append(value)
        elif op is sre.CATEGORY:
            more, less = _category(value)
            outer.extend(more)
            inner.extend(less)
        else:
            raise Unsupported(f"class item {op}")
    if negate:
        return _complement(_normal(inner)), _complement(_normal(outer))
    return _normal(outer), _normal(inner)


# Scanned text (gateway.policy.scan) shows every run of ASCII white space as one space;
# other white space is not scanned at all (the scan gives up on a text that has some).
# Where an item of a pattern takes white space between two items that take none, the
# rewrite takes the one space; elsewhere that space or none, so that a run made by several
# items matches it too. The prose of a sentence has the runs of the folded text it comes
# from, shorter: the same spaces.
SPACE = 0x20
_SPACE = "\\ "
_MAYBE_SPACE = "\\ ?"


def _seen(ranges: Ranges) -> Ranges:
    """What a set can match in scanned text: its white space as the one space."""
    space = python_class(r"\s")
    if not _intersects(ranges, space):
        return ranges
    return _normal((*_subtract(ranges, space), (SPACE, SPACE)))


def _intersects(left: Ranges, right: Ranges) -> bool:
    return any(lo <= r_hi and r_lo <= hi for lo, hi in left for r_lo, r_hi in right)


def _subtract(ranges: Ranges, removed: Ranges) -> Ranges:
    return _complement(_normal((*_complement(ranges), *removed)))


_FEW = 16  # characters above ASCII a set spells out; with more, it takes any such character


def _set(ranges: Ranges, space: str = _MAYBE_SPACE) -> str | None:
    """One character of `ranges` as UTF-8 bytes: ASCII members exactly, others spelled out
    when they are few, else as a byte that may lead their encoding and its continuation."""
    ranges = _seen(ranges)
    if not ranges:
        return None
    members = [(lo, min(hi, 0x7F)) for lo, hi in ranges if lo <= 0x7F]
    wide = [(max(lo, 0x80), hi) for lo, hi in ranges if hi > 0x7F]
    spaces = [space] if (SPACE, SPACE) in members else []
    members = [r for r in members if r != (SPACE, SPACE)]
    if len(members) == 1 and members[0][0] == members[0][1]:
        ascii_part = [_byte(members[0][0])]
    else:
        ascii_part = [f"[{_spelled(members)}]"] if members else []
    if not wide:
        alternatives = [*ascii_part, *spaces]
        return alternatives[0] if len(alternatives) == 1 else f"(?:{'|'.join(alternatives)})"
    if sum(hi - lo + 1 for lo, hi in wide) <= _FEW:
        spelled = [_char(c) for lo, hi in wide for c in range(lo, hi + 1)]
        return "(?:" + "|".join([*ascii_part, *spaces, *spelled]) + ")"
    leads = _normal(_lead_bytes(lo, hi) for lo, hi in wide)
    one = f"[{_spelled((*members, *leads))}][\\x80-\\xbf]{{0,3}}"
    return f"(?:{one}|{space})" if spaces else one


def _spelled(ranges: Iterable[tuple[int, int]]) -> str:
    return "".join(_byte(lo) if lo == hi else f"{_byte(lo)}-{_byte(hi)}" for lo, hi in ranges)


_SET_OPERATORS = (sre.LITERAL, sre.NOT_LITERAL, sre.ANY, sre.IN)
_SHORT_REPEAT = 4  # longer bounded repeats of one character are read as unbounded


def _repeated(ranges: Ranges, low: int, high: int, space: str = _MAYBE_SPACE) -> str | None:
    """`low` to `high` characters of `ranges`, as any run of the bytes their encodings use
    (at least one byte a character, at most four); white space as one space or none."""
    ranges = _seen(ranges)
    if not ranges:
        return "" if low == 0 else None
    if ranges == ((SPACE, SPACE),):
        return space if low else _MAYBE_SPACE
    if _intersects(ranges, ((SPACE, SPACE),)):
        low, high = 0, sre.MAXREPEAT  # white space among them is one space, or none
    wide = [(max(lo, 0x80), hi) for lo, hi in ranges if hi > 0x7F]
    if wide and sum(hi - lo + 1 for lo, hi in wide) <= _FEW:
        one = _set(ranges)
        upper = "" if high == sre.MAXREPEAT or high > _SHORT_REPEAT else str(high)
        return f"(?:{one}){{{low},{upper}}}"
    members = [(lo, min(hi, 0x7F)) for lo, hi in ranges if lo <= 0x7F]
    leads = [_lead_bytes(lo, hi) for lo, hi in ranges if hi > 0x7F]
    if leads:
        members = [*members, *leads, (0x80, 0xBF)]
    one = f"[{_spelled(_normal(members))}]"
    if high == sre.MAXREPEAT or high > _SHORT_REPEAT:
        return f"{one}{{{low},}}"
    return f"{one}{{{low},{high * 4 if leads else high}}}"


def _lead_bytes(low: int, high: int) -> tuple[int, int]:
    """The first bytes of the UTF-8 encodings of low..high (all code points above 0x7F)."""
    return (_first_byte(max(low, 0x80)), _first_byte(high))


def _first_byte(code: int) -> int:
    return chr(code).encode("utf-8", "surrogatepass")[0]


def _byte(code: int) -> str:
    char = chr(code)
    if char.isascii() and char.isalnum():
        return char
    if char.isascii() and char.isprintable():
        return "\\" + char
    return f"\\x{code:02x}"


def _char(code: int, space: str = _MAYBE_SPACE) -> str:
    if chr(code).isspace():
        return space
    if code <= 0x7F:
        return _byte(code)
    return "".join(f"\\x{b:02x}" for b in chr(code).encode())


class _Writer:
    def __init__(self, state: Any, backwards: bool, behind: bool, ahead: bool, cut: bool) -> None:
        self._state = state
        self._backwards = backwards
        self._behind = behind  # a lookbehind opening the match may be read as text
        self._ahead = ahead  # a lookahead closing the match may be read as text
        self._cut = cut  # keep only the opening of the pattern, up to an open-ended repeat

    def expressions(self, items: list[tuple[Any, Any]], dotall: bool) -> list[str]:
        written = self.sequence(items, lead=True, trail=True, dotall=dotall, cut=self._cut)
        if written is None:
            return []
        if len(written) <= MAX_EXPRESSION:
            return [written]
        alternatives = _spread(items)
        if alternatives is None:
            raise Unsupported("too long, and no alternatives to cut it at")
        return [e for items in alternatives for e in self.expressions(items, dotall)]

    def _consumes(self, item: tuple[Any, Any]) -> bool:
        return bool(parser.SubPattern(self._state, [item]).getwidth()[1] > 0)

    def sequence(
        self,
        items: Sequence[tuple[Any, Any]],
        lead: bool,
        trail: bool,
        dotall: bool,
        cut: bool = False,
    ) -> str | None:
        """`lead`: nothing of the match comes before these items; `trail`: nothing after.
        `cut`: stop before the first open-ended repeat that follows some text (every match
        still starts with a match of what is kept)."""
        consumes = [self._consumes(item) for item in items]
        # The one lookahead that may be read as text: the last of those that close.
        closing = -1
        if trail and self._ahead:
            for index in range(len(items) - 1, -1, -1):
                if consumes[index]:
                    break
                op, value = items[index]
                if op is sre.ASSERT and value[0] == 1:
                    closing = index
                    break
        parts: list[str] = []
        leading = lead
        spacing = self._spacing(items, consumes, outer=cut or (lead and trail))
        for index, (op, value) in enumerate(items):
            at_end = trail and not any(consumes[index + 1 :])
            if op is sre.ASSERT:
                if value[0] == -1 and leading and self._behind:
                    text = self.sequence(value[1], lead=True, trail=False, dotall=dotall)
                    leading = False
                elif index == closing:
                    text = self.sequence(value[1], lead=False, trail=True, dotall=dotall)
                else:
                    text = ""
            else:
                text = self.item(op, value, leading, at_end, dotall, spacing[index])
                if cut and text and _OPEN_ENDED.search(text) and _solid(items[:index]) >= _FIRM:
                    break
                leading = leading and not consumes[index]
            if text is None:
                return None
            parts.append(text)
            if cut and _solid(items[: index + 1]) >= _ENOUGH:
                break
        if self._backwards:
            parts.reverse()
        return "".join(parts)

    def ranges(self, op: Any, value: Any, dotall: bool) -> Ranges:
        """What one character of a set operator may be."""
        if op is sre.LITERAL:
            return ((value, value),)
        if op is sre.NOT_LITERAL:
            return _complement(((value, value),))
        if op is sre.ANY:
            return EVERY if dotall else _complement(_NEWLINE)
        return _class_items(value)[0]

    def _spacing(
        self, items: Sequence[tuple[Any, Any]], consumes: Sequence[bool], outer: bool
    ) -> list[str]:
        """For each item, what its white space is in scanned text: the one space where no
        item next to it takes white space too (at the edge of the whole pattern, nothing
        does); that space or none elsewhere."""
        spacey = [self._spacey(item, dotall=True) for item in items]
        spacing = []
        for index in range(len(items)):
            before = [i for i in range(index) if consumes[i]]
            after = [i for i in range(index + 1, len(items)) if consumes[i]]
            alone = (before or outer) and (after or outer)
            alone = alone and not (before and spacey[before[-1]])
            alone = alone and not (after and spacey[after[0]])
            spacing.append(_SPACE if alone else _MAYBE_SPACE)
        return spacing

    def _spacey(self, item: tuple[Any, Any], dotall: bool) -> bool:
        """Whether an item may take white space (groups and repeats: whether any part may)."""
        op, value = item
        if op in _SET_OPERATORS:
            return _intersects(self.ranges(op, value, dotall), python_class(r"\s"))
        if op in (sre.AT, sre.ASSERT, sre.ASSERT_NOT):
            return False
        if op in (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT):
            return any(self._spacey(i, dotall) for i in value[2].data)
        if op is sre.SUBPATTERN:
            return any(self._spacey(i, dotall) for i in value[3].data)
        if op is sre.ATOMIC_GROUP:
            return any(self._spacey(i, dotall) for i in value.data)
        if op is sre.BRANCH:
            return any(self._spacey(i, dotall) for b in value[1] for i in b.data)
        return True

    def item(
        self, op: Any, value: Any, lead: bool, trail: bool, dotall: bool, space: str = _MAYBE_SPACE
    ) -> str | None:
        if op is sre.LITERAL:
            return _char(value, space)
        if op in _SET_OPERATORS:
            return _set(self.ranges(op, value, dotall), space)
        if op in (sre.AT, sre.ASSERT_NOT):
            return ""
        if op is sre.BRANCH:
            branches = [self.sequence(b, lead, trail, dotall) for b in value[1]]
            kept = [b for b in branches if b is not None]
            return f"(?:{'|'.join(kept)})" if kept else None
        if op is sre.SUBPATTERN:
            _, added, _, body = value
            if added & _UNSUPPORTED_FLAGS:
                raise Unsupported("inline flags")
            inner = self.sequence(body, lead, trail, dotall or bool(added & re.DOTALL))
            return None if inner is None else f"(?:{inner})"
        if op is sre.ATOMIC_GROUP:
            inner = self.sequence(value, lead, trail, dotall)
            return None if inner is None else f"(?:{inner})"
        if op in (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT):
            low, high, body = value
            if len(body.data) == 1 and body.data[0][0] in _SET_OPERATORS:
                set_op, set_value = body.data[0]
                return _repeated(self.ranges(set_op, set_value, dotall), low, high, space)
            inner = self.sequence(body, lead=False, trail=False, dotall=dotall)
            if inner is None:
                return "" if low == 0 else None
            upper = "" if high == sre.MAXREPEAT or high > _SHORT_REPEAT else str(high)
            return f"(?:{inner}){{{low},{upper}}}"
        if op is sre.GROUPREF:
            return _repeated(EVERY, 0, sre.MAXREPEAT)
        if op is sre.GROUPREF_EXISTS:
            _, yes, no = value
            branches = [self.sequence(b, lead, trail, dotall) for b in (yes, no) if b is not None]
            kept = [b for b in branches if b is not None] + ([""] if no is None else [])
            return f"(?:{'|'.join(kept)})" if kept else None
        raise Unsupported(f"operator {op}")


MAX_EXPRESSION = 16_000  # characters: Hyperscan refuses a longer expression
# Characters every match of a pattern's opening must have (white space aside) before the
# opening may end at an open-ended repeat: fewer would find a start at nearly every word.
_FIRM = 4
# Characters of an opening that tell enough: the rest of the pattern would only make the
# database larger (and so the scan slower) for few fewer candidates.
_ENOUGH = 8


def _solid(items: Sequence[tuple[Any, Any]]) -> int:
    """Characters every match of `items` has from a few known ones (not white space)."""
    count = 0
    for op, value in items:
        if op is sre.LITERAL:
            count += 0 if chr(value).isspace() else 1
        elif op is sre.IN and all(o in (sre.LITERAL, sre.RANGE) for o, _ in value):
            wide = sum(1 if o is sre.LITERAL else v[1] - v[0] + 1 for o, v in value)
            count += 1 if wide <= _FEW else 0
        elif op is sre.SUBPATTERN:
            count += _solid(value[3].data)
        elif op is sre.BRANCH:
            count += min(_solid(branch.data) for branch in value[1])
        elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT):
            count += value[0] * _solid(value[2].data)
    return count


_OPEN_ENDED = re.compile(r"\{\d+,\}")


def rewrite(
    pattern: str,
    *,
    backwards: bool = False,
    behind: bool = False,
    ahead: bool = False,
    cut: bool = False,
) -> list[str] | None:
    """`pattern` for Hyperscan (UTF-8, UCP): expressions that together match wherever it
    matches and maybe more, written backwards to scan reversed text. A long pattern is cut
    at its alternatives. `behind`/`ahead`: a lookbehind opening the pattern or a lookahead
    closing it is matched as text, which moves where the match starts or ends (so take
    `behind` only where ends are read, `ahead` only where starts are). None: no rewrite (a
    construct not handled, or a pattern that matches the empty text): it may match
    anywhere. []: it never matches."""
    try:
        parsed = parser.parse(pattern)
        if parsed.state.flags & _UNSUPPORTED_FLAGS or parsed.getwidth()[0] == 0:
            return None
        writer = _Writer(parsed.state, backwards, behind, ahead, cut)
        return writer.expressions(list(parsed.data), bool(parsed.state.flags & re.DOTALL))
    except (Unsupported, re.error, RecursionError):
        return None


def _spread(items: list[tuple[Any, Any]]) -> list[list[tuple[Any, Any]]] | None:
    """The sequence as alternatives, at its first choice: `p(a|b)s` is `pas` or `pbs`."""
    for index, (op, value) in enumerate(items):
        before, after = items[:index], items[index + 1 :]
        if op is sre.BRANCH:
            return [[*before, *branch.data, *after] for branch in value[1]]
        if op is sre.SUBPATTERN and not value[1] and not value[2]:
            return _spread([*before, *value[3].data, *after])
        if op in (sre.MAX_REPEAT, sre.MIN_REPEAT) and value[:2] == (0, 1):
            return [[*before, *value[2].data, *after], [*before, *after]]
    return None


def literal(text: str, *, backwards: bool = False) -> str:
    """`text` exactly, as scanned bytes show it."""
    return "".join(_char(ord(c)) for c in (text[::-1] if backwards else text))


def _not_word_byte(others: tuple[int, int]) -> str:
    ascii_part = [(lo, min(hi, 0x7F)) for lo, hi in _seen(_category(sre.CATEGORY_NOT_WORD)[0])]
    return f"[{_spelled(_normal((*(r for r in ascii_part if r[0] <= 0x7F), others)))}]"


# The byte of a character that is no word character next to a match, in scanned bytes:
# its first byte where it stands after the match there (before it in the text), its last
# where it stands before; any byte of a longer encoding may be one.
NOT_WORD_FIRST = _not_word_byte((0xC2, 0xF4))
NOT_WORD_LAST = _not_word_byte((0x80, 0xBF))


def spaced(words: Sequence[str], *, backwards: bool = False) -> str:
    """`words` exactly, white space apart, as scanned bytes show them."""
    gap = _byte(SPACE)
    return gap.join(
        literal(word, backwards=backwards) for word in (reversed(words) if backwards else words)
    )
