"""The scan (gateway.policy.scan) only says where the content rules' Python patterns need not
run: with it every rule must judge exactly as without it, when everything may match
anywhere. Held to that on every message of both policy corpora and of the real-world
corpus, whole and block by block, in both directions, and on random texts."""

from __future__ import annotations

import os
import re
from pathlib import Path
from threading import Thread

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.core.content import ContentFacts, TextBlock
from gateway.core.model import Conversation, Direction
from gateway.intake.check import check_content
from gateway.intake.policy import Policy
from gateway.pipeline.content import read_content
from gateway.pipeline.parse import canonical_line_ends, parse_message
from gateway.policy.prefilter import CLASSES_END, python_class, rewrite
from gateway.policy.rule import MessageContext
from gateway.policy.rules.content.spelled import unmask_steps
from gateway.policy.scan import EVERYWHERE, ScanDatabase, TextScan
from gateway.policy.triggers import SCANNED, database
from tests.support.corpus import MISSING, corpus_dir, corpus_files, require_corpus
from tests.support.databases import IN_CI
from tests.support.parties import BUYER, DOMAIN, NOW, SELLER

CORPORA = Path(__file__).resolve().parent.parent / "corpus"


def _policy_rules() -> tuple[Policy, Policy]:
    from gateway.policyfile import load_policy

    policy = load_policy()
    return Policy.compile(policy), Policy.compile(policy, scanned=False)


SCANNED_RULES, PLAIN_RULES = _policy_rules()
DIRECTIONS = (Direction.SELLER_TO_BUYER, Direction.BUYER_TO_SELLER)


def _judged_alike(facts: ContentFacts) -> None:
    """The whole message, then each of its text blocks alone, both ways: the same refusals
    and shadow hits, rule ids and what matched."""
    variants = [facts] + [
        ContentFacts(facts.subject, facts.sender_name, (block,), (), ()) for block in facts.blocks
    ]
    for variant in variants:
        for direction in DIRECTIONS:
            scanned = check_content(variant, SCANNED_RULES, direction, DOMAIN)
            plain = check_content(variant, PLAIN_RULES, direction, DOMAIN)
            assert (scanned.refused, scanned.shadowed) == (plain.refused, plain.shadowed), (
                direction,
                [b.source for b in variant.blocks],
            )


def _facts(path: Path) -> ContentFacts:
    return read_content(parse_message(canonical_line_ends(path.read_bytes())))


# The labels play no part here: the blind corpus's test split is read like the rest.
POLICY_CORPUS = [
    *sorted((CORPORA / "policy").glob("*.eml")),
    *sorted((CORPORA / "policy-holdout").glob("*.eml")),
    *sorted((CORPORA / "blind").glob("*/*.eml")),
]


@pytest.mark.parametrize("path", POLICY_CORPUS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_policy_corpus_judged_as_without_scan(path: Path) -> None:
    _judged_alike(_facts(path))


REAL = corpus_files()


@pytest.mark.corpus
@pytest.mark.parametrize("name", REAL or MISSING)
def test_real_message_judged_as_without_scan(name: str | None) -> None:
    if name is None:
        require_corpus()
        return
    _judged_alike(_facts(corpus_dir() / name))


def test_the_differential_reads_the_whole_corpora() -> None:
    assert len(POLICY_CORPUS) >= 375
    if IN_CI or REAL:
        assert len(REAL) == 141


# -- random texts --------------------------------------------------------------------------


def _phrases() -> list[str]:
    lexicon = SCANNED_RULES.content.lexicon
    found = [" ".join(words) for c in SCANNED for words in lexicon.words(c).phrases]
    return sorted(set(found))


PHRASES = _phrases()
CONTACTS = [
    "name@shop.com",
    "ｎａｍｅ＠ｓｈｏｐ．ｊｐ",
    "name (at) shop dot com",
    "name arroba tienda punto es",
    "shop。com",
    "淘宝点com",
    "yandex точка ru",
    "www.sakura-outlet.example.com/x?y=1",
    "https://t.me/shop",
    "line.me/ti/p/x",
    "ups.com",
    "photo.zip",
    "+1 415 555 2671",
    "0049 30 12345678",
    "(030) 1234567",
    "order 12345678",
    "2026-11-22",
    "$34.99",
    "@handle_1",
    "微信: abc123",
    "加我vx",
    "e.g.",
    "1Z999AA10123456784",
]
SPACES = [" ", "  ", "\n", "\n\n", " \n ", "\t", "\r\n", "\u3000", "\xa0", "\u2028", "   \n\n\n  "]
PIECES = st.one_of(
    st.sampled_from(PHRASES),
    st.sampled_from(CONTACTS),
    st.sampled_from(SPACES),
    st.text(alphabet="0123456789 -.()+/", max_size=14),
    st.text(alphabet="abcxyzäöüßéñçабвг中文日本語。、！？!?.,;:()[]【】@#*-_", max_size=8),
    st.text(max_size=4),
)
TEXTS = st.lists(PIECES, max_size=24).map("".join)


def _context(facts: ContentFacts) -> MessageContext:
    conversation = Conversation(0, 0, SELLER, BUYER)
    return MessageContext("", None, conversation, NOW, None, facts)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subject=TEXTS, body=TEXTS, quoted=TEXTS, attached=TEXTS)
def test_every_rule_judges_random_text_as_without_scan(
    subject: str, body: str, quoted: str, attached: str
) -> None:
    blocks = (
        TextBlock("subject", subject),
        TextBlock("body", body, quoted),
        TextBlock("attachment 'notes.txt'", attached),
    )
    facts = ContentFacts(subject, "", blocks, (), ())
    for scanned, plain in zip(SCANNED_RULES.rules.rules, PLAIN_RULES.rules.rules, strict=True):
        assert scanned.check(_context(facts)) == plain.check(_context(facts)), scanned.id


# -- the pieces ----------------------------------------------------------------------------


def test_python_classes_end_where_the_scan_stops_asking() -> None:
    assert all(high < CLASSES_END for _, high in python_class(r"\s") + python_class(r"\d"))
    beyond = "".join(map(chr, range(CLASSES_END, 0x110000)))
    assert not re.search(r"[\s\d]", beyond)


@pytest.mark.parametrize(
    ("pattern", "text"),
    [
        (r"(?<!\w)sale\b", "big sale today"),
        (r"\bthe [\w-]+ team\b", "dear the sakura team"),
        (r"(?:a|b)\s+(?=c)", "x b  c"),
        (r"[买買]\s*\d+\s*[送赠贈]", "买 2 送"),
        (r"[^.!?\n]{0,40}rabatt", "10 % rabatt"),
        (r"(\w)\1", "zz"),
    ],
)
def test_a_rewrite_finds_where_its_pattern_starts(pattern: str, text: str) -> None:
    """Scanned backwards, the rewrite of a pattern reports each start of a match."""
    written = rewrite(pattern, backwards=True, ahead=True, cut=True)
    assert written
    scan = ScanDatabase([_expression("k", w) for w in written])
    found = scan.scan(text).at("k")
    assert found is not None
    starts = {m.start() for m in re.finditer(pattern, text)}
    assert starts and starts <= set(found)


def _expression(key: str, pattern: str) -> object:
    from gateway.policy.scan import Expression

    return Expression(key, pattern)


def test_text_the_scan_cannot_vouch_for_may_match_anywhere() -> None:
    scan = database(SCANNED_RULES.content.lexicon, _steps())
    assert scan.scan("lone \ud800 surrogate") is EVERYWHERE
    assert scan.scan("a\u2028b") is EVERYWHERE  # white space the scanned bytes do not show
    assert scan.scan("a" + " " * 8 + "b") is EVERYWHERE  # a run fold() never leaves
    assert scan.scan("nothing to see").at("marketing") == []


def test_each_place_of_a_run_is_named() -> None:
    scan = ScanDatabase([_expression("k", w) for w in rewrite(r"\s+x", backwards=True) or []])
    found = scan.scan("a \n x").at("k")
    assert found is not None and {1, 2, 3} <= set(found)


def _steps() -> tuple[object, ...]:
    policy = SCANNED_RULES.content
    return unmask_steps(policy.lexicon, policy.settings.rules.link)


def test_threads_scan_with_scratch_of_their_own() -> None:
    text = "Please leave us five stars at www.shop-outlet.example.com or call +1 415 555 2671"
    expected = TextScan(database(SCANNED_RULES.content.lexicon, _steps())).scan(text)
    results: list[bool] = []

    def scan_many() -> None:
        scan = TextScan(database(SCANNED_RULES.content.lexicon, _steps()))
        results.extend(scan.scan(text).at(k) == expected.at(k) for _ in range(200) for k in SCANNED)

    threads = [Thread(target=scan_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results and all(results)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() only")
def test_the_database_scans_after_fork() -> None:
    scan = database(SCANNED_RULES.content.lexicon, _steps())
    assert scan.scan("check out our new collection").may("marketing")
    pid = os.fork()
    if pid == 0:  # the child: scan, and say by the exit status whether it worked
        os._exit(0 if scan.scan("check out our new collection").may("marketing") else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
