"""content.thanks_only and content.confirmation_only: a message that says nothing but
"thank you for your order", or only that the order shipped, arrived or was refunded.
Each sentence is sorted as thanks, confirmation, courtesy (greeting, sign-off, signature)
or anything else; one sentence of anything else, or a question, makes the message useful."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from itertools import groupby, islice
from operator import itemgetter

from gateway.core.content import QUOTE_MARK, ContentFacts
from gateway.core.model import Violation
from gateway.policy.rule import MessageContext
from gateway.policy.rules.content.base import OWN_WORDS, blocks, hit
from gateway.policy.rules.content.sentences import LearnedSentences
from gateway.policy.rules.content.split import sentences_of
from gateway.policy.scan import TextScan, Window, search, substitute

_KINDS = ("thanks", "confirmation", "courtesy")  # their lexicon categories too
_SAYS_ONLY = ("thanks", "confirmation")  # the kinds either rule refuses a message for
_SCANNED_TOGETHER = 4  # sentences in one scan: most messages say something by then
_QUESTION = re.compile(r"[?？]")
_SHORT = "short"  # a few words matching no list: a greeting, a name, a shop, or a remark
SIGNATURE_WORDS = 4  # a line this short, with no number in it: a name, a shop
FILLER_WORDS = 8  # words besides the phrase that still leave a sentence only thanks
# Words besides greetings and sign-offs that leave a sentence courtesy anywhere: a name or
# two ("Gentile Irene, il rimborso è stato effettuato" says something). Up to FILLER_WORDS,
# only in the run that ends a text: a sign-off and the signature under it.
COURTESY_FILLER_WORDS = 3
_SIGN_OFF = "sign-off"


class Sentences:
    """Sorts the sentences of a seller's own text. A text whose scan finds no thanks and
    no confirmation has no sentence of either (gateway.policy.prefilter: a sentence's runs
    of white space are never longer than its text's), so there is nothing to sort; a
    sentence's own scan says which kinds' patterns to try on it."""

    def __init__(
        self,
        thanks: re.Pattern[str] | None,
        confirmation: re.Pattern[str] | None,
        courtesy: re.Pattern[str] | None,
        scan: TextScan,
    ) -> None:
        self._kinds = {"thanks": thanks, "confirmation": confirmation, "courtesy": courtesy}
        self._scan = scan
        # Both rules sort the same message in turn: the last result is kept for the second.
        self._last: tuple[ContentFacts, tuple[Counter[str], str]] | None = None

    def sort(self, ctx: MessageContext) -> tuple[Counter[str], str]:
        """How many sentences of each kind, and the first thanks or confirmation found."""
        last = self._last
        if last is not None and last[0] is ctx.content:
            return last[1]
        result = self._sort(ctx)
        self._last = (ctx.content, result)
        return result

    def _sort(self, ctx: MessageContext) -> tuple[Counter[str], str]:
        texts = [b.folded for b in blocks(ctx, OWN_WORDS) if b.source != "subject"]
        scans = [self._scan.found(text) for text in texts]
        if not any(found.may(kind) for found in scans for kind in _SAYS_ONLY):
            return Counter(), ""  # no sentence can be thanks or a confirmation
        sorted_sentences: list[tuple[int, str, str]] = []  # (text, kind, sentence)
        pending = _sentences(self._signed_off(text) for text in texts)
        while batch := list(islice(pending, _SCANNED_TOGETHER)):
            found_in = self._scan.scan_each([sentence for _, sentence in batch])
            for (text, sentence), found in zip(batch, found_in, strict=True):
                kind = self._kind(sentence, found)
                if kind == "other":  # the message says something: neither rule can hold
                    return Counter(other=1), ""
                sorted_sentences.append((text, kind, sentence))
        kinds = [
            kind
            for _, group in groupby(sorted_sentences, key=itemgetter(0))
            for kind in _signature_and_greeting([kind for _, kind, _ in group])
        ]
        first = next(
            (
                text
                for kind, (_, _, text) in zip(kinds, sorted_sentences, strict=True)
                if kind in ("thanks", "confirmation")
            ),
            "",
        )
        return Counter(kinds), first

    def says_something(self, ctx: MessageContext) -> bool:
        """Whether a sentence of the seller's own text is longer than a short line."""
        texts = [b.folded for b in blocks(ctx, OWN_WORDS) if b.source != "subject"]
        return any(word_count(sentence) > SIGNATURE_WORDS for _, sentence in _sentences(texts))

    def _signed_off(self, folded: str) -> str:
        """The text without the lines under its sign-off ("Un cordial saludo," then a name,
        a shop, a tagline "desde 1952"): a line of courtesy and at most a word, not the
        text's first, not a sentence; under it at most SIGNATURE_LINES short lines, none a
        sentence, a P.S. or asking anything."""
        courtesy = self._kinds["courtesy"]
        start = _last_lines(folded, SIGNATURE_LINES + 1)
        lines = [m for m in _LINE.finditer(folded, start)]
        if courtesy is None or len(lines) < 2:
            return folded
        candidates: list[int] = []  # lines with only signature lines under them, lowest first
        for index in range(len(lines) - 2, -1, -1):
            if not _signature_line(lines[index + 1].group(0).strip()):
                break
            line = lines[index].group(0).strip()
            if not (start == 0 and index == 0) and not _SENTENCE_END.search(line):
                candidates.append(index)
        if not candidates:
            return folded
        texts = [lines[index].group(0).strip() for index in candidates]
        for index, line, found in zip(candidates, texts, self._scan.scan_each(texts), strict=True):
            starts = found.at("courtesy")
            if (
                search(courtesy, line, starts)
                and word_count(substitute(courtesy, " ", line, starts)) <= 1
            ):
                return folded[: lines[index].end()]
        return folded

    def _kind(self, sentence: str, found: Window) -> str:
        """`found`: the sentence's scan, which says whose patterns may match it."""
        if _QUESTION.search(sentence):
            return "other"
        courtesy = self._kinds["courtesy"]
        for kind in _KINDS:
            pattern = self._kinds[kind]
            starts = found.at(kind)
            if pattern is None or not search(pattern, sentence, starts):
                continue
            rest = substitute(pattern, " ", sentence, starts)
            if courtesy is not None:
                rest = substitute(courtesy, " ", rest, self._scan.scan(rest).at("courtesy"))
            words = word_count(rest)
            if kind == "courtesy" and words > COURTESY_FILLER_WORDS:
                return _SIGN_OFF if words <= FILLER_WORDS else "other"
            if words <= FILLER_WORDS:
                return kind
        if len(sentence.split()) <= SIGNATURE_WORDS and word_count(sentence) <= SIGNATURE_WORDS:
            return _SHORT if not re.search(r"\d{3}", sentence) else "other"
        return "other"


def _sentences(texts: Iterable[str]) -> Iterator[tuple[int, str]]:
    """The sentences of the seller's own texts (not the subject, not quoted lines, not the
    signature), one at a time with the number of the text they stand in: the sort stops at
    the first that says something. A sentence cut after an abbreviation ("Sig.", "n.",
    "vom 12.03.") goes on in the next."""
    for number, folded in enumerate(texts):
        pending = ""
        for sentence in sentences_of(_without_signature(folded)):
            if sentence == QUOTE_MARK:
                continue
            sentence = f"{pending} {sentence}" if pending else sentence
            if _ABBREVIATION_END.search(sentence) and len(pending) < _JOINED_AT_MOST:
                pending = sentence
                continue
            pending = ""
            yield number, sentence
        if pending:
            yield number, pending


# The end of a sentence that is an abbreviation, not the end: a title or "n." before a name
# or a number, one letter ("M. Côté"), a day and month ("vom 12.03.").
_ABBREVIATION_END = re.compile(
    r"(?:^|[\s(])(?:[^\W\d_]|sig|sigg|sr|sra|srta|dr|dra|mr|mrs|ms|mme|mlle|prof|dott|ing|avv"
    r"|hr|fr|nr|no|num|núm|art|tel|ref|ca|bzw|inkl|ggf|evtl|\d{1,2}\.\d{1,2})\.$"
)
_JOINED_AT_MOST = 200  # characters of pending sentence: a run of abbreviations ends somewhere
# The signature delimiter "-- " (RFC 3676), or a rule of dashes, bars or underscores.
_SIGNATURE_RULE = re.compile(r"^[ \t]*(?:--|[-_=~*―─━—–]{3,})[ \t]*$", re.MULTILINE)
SIGNATURE_LINES = 6  # below a rule, a signature: a name, a shop, an address, opening hours
SIGNATURE_LINE_WORDS = 6  # a name, a shop, an address line; a sentence is longer
# Below a rule, what a signature never says: a question, or a request.
_ASKS = re.compile(
    r"[?？]|\b(?:please|pls|bitte|merci\s+de|veuillez|por\s+favor|per\s+favore|пожалуйста)\b"
    r"|请|請|ください|下さい"
)


def _without_signature(folded: str) -> str:
    """The text without its signature: from the first rule below which stand only short
    lines, at most SIGNATURE_LINES (a closing rule among them), none asking anything. Only
    the text's last lines are looked at, so a text of many rules costs no more than one."""
    for rule in _SIGNATURE_RULE.finditer(folded, _last_lines(folded, SIGNATURE_LINES + 1)):
        below = folded[rule.end() :]
        lines = [line for line in below.splitlines() if line.strip()]
        if (
            len(lines) <= SIGNATURE_LINES
            and all(word_count(line) <= SIGNATURE_LINE_WORDS for line in lines)
            and not _ASKS.search(below)
        ):
            return folded[: rule.start()]
    return folded


_LINE = re.compile(r"[^\n]*\S[^\n]*")
_SENTENCE_END = re.compile(r"[.!?。！？]$")
_POSTSCRIPT = re.compile(r"^(?:p\.?\s?p?\.?\s?s\b|ps\b|追伸|附言)")


def _signature_line(line: str) -> bool:
    """A line a signature may hold: a name, a shop, an address, a tagline."""
    return (
        word_count(line) <= SIGNATURE_LINE_WORDS
        and not _SENTENCE_END.search(line)
        and not _POSTSCRIPT.search(line)
        and not _ASKS.search(line)
    )


def _last_lines(text: str, count: int) -> int:
    """Where the last `count` lines that are not empty begin (0 for a shorter text)."""
    end = len(text)
    while count > 0:
        newline = text.rfind("\n", 0, end)
        if newline < 0:
            return 0
        if text[newline + 1 : end].strip():
            count -= 1
        end = newline
    return end


def _signature_and_greeting(kinds: list[str]) -> list[str]:
    """Short sentences are courtesy where a greeting or a signature stands: first, or in
    the run of short and courtesy lines that ends the text (each text of a message, the
    plain and the HTML one, has its own); a sign-off with more words after it, in that run
    only. Elsewhere they say something ("It ships Monday.")."""
    ending = len(kinds)
    while ending > 0 and kinds[ending - 1] in (_SHORT, _SIGN_OFF, "courtesy"):
        ending -= 1
    return [_placed(kind, index == 0, index >= ending) for index, kind in enumerate(kinds)]


def _placed(kind: str, first: bool, ending: bool) -> str:
    if kind == _SHORT:
        return "courtesy" if first or ending else "other"
    if kind == _SIGN_OFF:
        return "courtesy" if ending else "other"
    return kind


_LATIN_WORD = re.compile(r"[^\W\d_\u2e80-\U0002ffff]+")
# CJK letters, without the CJK punctuation block (U+3000-U+303F: 。、「」).
_CJK = re.compile(r"[\u2e80-\u2fff\u3040-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0002ffff]")


def word_count(text: str) -> int:
    """Words in spaced scripts, and about one per two characters in CJK text."""
    return len(_LATIN_WORD.findall(text)) + (len(_CJK.findall(text)) + 1) // 2


def _asks(ctx: MessageContext) -> bool:
    """A question anywhere in the seller's own body: the message is more than thanks."""
    return any(_QUESTION.search(b.folded) for b in blocks(ctx, OWN_WORDS) if b.source != "subject")


class _OnlyRule:
    """A message that only does one thing: by the lexicons' sort of its sentences, or, when
    the sort does not hold, by the learned model (if the policy names one) reading the
    seller's words as one text; never a body that asks a question."""

    id = ""
    description = ""
    kind = ""  # "thanks" or "confirmation": the sort's kind and the model's category

    def __init__(self, sentences: Sentences, learned: LearnedSentences) -> None:
        self._sentences = sentences
        self._learned = learned

    def holds(self, counts: Counter[str]) -> bool:
        raise NotImplementedError

    def check(self, ctx: MessageContext) -> list[Violation]:
        counts, first = self._sentences.sort(ctx)
        if self.holds(counts):
            return [hit(self.id, first)]
        if self.kind == "thanks" and counts["confirmation"]:
            return []  # thanks beside a confirmation: the confirmation is what it says
        # The model is asked only where a sentence says more than a greeting or a name
        # would: a message of those alone neither thanks nor confirms.
        says = counts["other"] or (not counts and self._sentences.says_something(ctx))
        if self._learned.enabled and says and not _asks(ctx):
            strongest = self._learned.strongest(ctx, self.kind)
            if strongest is not None:
                return [hit(self.id, strongest[1], strongest[0])]
        return []


class ThanksOnly(_OnlyRule):
    id = "content.thanks_only"
    description = "no messages that only thank the buyer for the order"
    kind = "thanks"

    def holds(self, counts: Counter[str]) -> bool:
        return bool(counts["thanks"] and not counts["other"] and not counts["confirmation"])


class ConfirmationOnly(_OnlyRule):
    id = "content.confirmation_only"
    description = "no messages that only confirm an order, shipment, delivery or refund"
    kind = "confirmation"

    def holds(self, counts: Counter[str]) -> bool:
        return bool(counts["confirmation"] and not counts["other"])
