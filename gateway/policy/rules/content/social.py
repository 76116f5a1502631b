"""content.social: social networks and messengers as a way to talk outside the marketplace:
their links, and handles or invitations ("WeChat ID: ...", "LINE: ...", "加微信").

The lexicons' social phrases and patterns are constructions, not bare names: a network or
messenger next to a handle, an ID or a number, or an invitation to write, add or follow
there. A match without a handle does not count in a clause that refuses ("we can't use
WhatsApp", "微信不用加": the policy's `negations`), nor, unless it carries an ID, in the
subject of a reply or in quoted lines, which repeat the other party's words."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from gateway.core.model import Violation
from gateway.policy.config import SocialSettings
from gateway.policy.domains import within
from gateway.policy.rule import MessageContext
from gateway.policy.rules.content.base import EVERYTHING, blocks, hit
from gateway.policy.rules.content.contacts import ContactScanner, host_of
from gateway.policy.scan import TextScan

# "Re:", "AW:", "回复：" and the like opening a (folded) subject: a reply's subject.
_REPLY = re.compile(r"\s?(?:re|aw|sv|vs|antw|rif|r|fw|fwd|wg|tr|ответ|回复|回覆|答复|返信)\s?:")
_SENTENCE_END = re.compile(r"[.!?。！？\n]")
# Where a clause ends: a sentence's end, a comma or semicolon, a dash between spaces.
_CLAUSE_END = re.compile(r"[.!?。！？\n,;，；]| [-–—] ")
_REACH = 120  # characters read on each side of a match for its clauses, at most
# An ID: a handle opening with a letter, with a digit or "_" in it ("xiaoyu_0523"), or a
# number as long as a QQ or phone number, its digits grouped or not ("55 5123 0147");
# "24/7", "9.30am" and "2 days" are none. CJK text may touch it ("加微信xiaoyu_0523，").
_ID = re.compile(
    r"(?<![a-z0-9_.])(?:[a-z](?=[a-z0-9_.]*[\d_])[a-z0-9_.]{4,31}|\+?\d(?:[ -]?\d){6,14})"
    r"(?![a-z0-9_.])"
)


class SocialContact:
    id = "content.social"
    description = "no social media or messenger handles and links"

    def __init__(
        self,
        scanner: ContactScanner,
        settings: SocialSettings,
        phrases: re.Pattern[str] | None,
        scan: TextScan,
    ) -> None:
        self._scanner = scanner
        self._domains = settings.domains
        self._phrases = phrases
        self._scan = scan
        self._negation = re.compile("|".join(settings.negations)) if settings.negations else None

    def check(self, ctx: MessageContext) -> list[Violation]:
        for link in ctx.content.links:
            if within(host_of(link.target.strip()), self._domains):
                return [hit(self.id, link.target)]
        for block in blocks(ctx, EVERYTHING):
            # A reply's subject and the quoted lines repeat the other party's words.
            replied = block.source == "subject" and _REPLY.match(block.folded) is not None
            for text, repeated in ((block.folded, replied), (block.folded_quoted, True)):
                if text and (found := self._found(text, repeated)):
                    return [hit(self.id, found, block.source)]
        return []

    def _found(self, text: str, repeated: bool) -> str | None:
        if self._phrases is not None:
            starts = self._scan.found(text).at("social")
            for found in _matches(self._phrases, text, starts):
                if self._counts(text, found, repeated):
                    return _with_context(text, found)
        for match in self._scanner.links(self._scanner.unmask(text)):
            if within(match.host, self._domains):
                return match.text
        return None

    def _counts(self, text: str, found: re.Match[str], repeated: bool) -> bool:
        """A handle or an ID counts anywhere, whatever the sentence around it says; an
        invitation only in the sender's own words, and where the sentence does not refuse
        it."""
        said = found.group()
        if "@" in said or _holds_id(text, found):
            return True
        if repeated and not any(char.isdigit() for char in said):
            return False
        return not self._refused(text, found)

    def _refused(self, text: str, found: re.Match[str]) -> bool:
        """Whether the match's clause, or the clause after it in the same sentence, says
        no: "we can't help over WhatsApp", "WhatsApp or a call - we can't", "加微信…，请勿
        相信"; not a clause before it ("if it does not pair, write to us on WhatsApp")."""
        if self._negation is None:
            return False
        begin = max(0, found.start() - _REACH)
        ends = [m.end() for m in _CLAUSE_END.finditer(text, begin, found.start())]
        begin = ends[-1] if ends else begin
        limit = min(len(text), found.end() + _REACH)
        end = limit
        after = _CLAUSE_END.search(text, found.end(), limit)
        if after is not None:
            end = after.start()
            if not _SENTENCE_END.fullmatch(after.group()):
                following = _CLAUSE_END.search(text, after.end(), limit)
                end = following.start() if following else limit
        return self._negation.search(text, begin, end) is not None


def _holds_id(text: str, found: re.Match[str]) -> bool:
    """Whether an ID starts where the match ends ("微信是 xiaoyu_0523": the pattern ends at
    the ID's first letter; "on WhatsApp 415 555 2671"), not at a number the match reaches
    over ("we don't use WhatsApp for order 4471203")."""
    near = range(max(found.start(), found.end() - 2), min(len(text), found.end() + 3))
    return any(_ID.match(text, place) for place in near)


def _matches(
    pattern: re.Pattern[str], text: str, starts: Sequence[int] | None
) -> Iterator[re.Match[str]]:
    """The pattern's match at each place one starts (`starts`, or everywhere for None), in
    order: a match that does not count may hide one starting inside it ("write to us on
    WhatsApp at +33 …")."""
    if starts is None:
        found = pattern.search(text)
        while found is not None:
            yield found
            found = pattern.search(text, found.start() + 1)
        return
    for start in starts:
        found = pattern.match(text, max(start, 0))
        if found is not None:
            yield found


def _with_context(text: str, found: re.Match[str]) -> str:
    """The matched words and what follows on the line (the handle, usually)."""
    end = text.find("\n", found.end())
    return text[found.start() : end if 0 <= end - found.start() < 50 else found.end() + 30]
