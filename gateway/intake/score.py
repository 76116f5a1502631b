"""How well the content policy judges a labelled corpus: precision and recall per rule, per
language and per rule and language, and the clean messages it passes. What `bsm-gateway
policy score` prints and the corpus tests hold the policy to.

A labelled message carries its labels in its header (tests/corpus/policy/README.md):
`X-Policy-Expect` (rule ids, or `none`), `X-Policy-Direction`, and its language in
`X-Policy-Language` or its file name (`NNN-lang-…` or `lang-NNN-…`)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from email.parser import BytesHeaderParser
from functools import partial
from pathlib import Path
from typing import Any

from gateway.core.model import Direction
from gateway.intake.check import check_message
from gateway.intake.policy import Policy

_LANGUAGE_IN_NAME = re.compile(r"^(?:\d+-([a-z]{2})-|([a-z]{2})-\d+-)")


class LabelError(ValueError):
    """A file without the labels scoring needs."""


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    language: str
    direction: Direction
    expected: frozenset[str]
    found: frozenset[str]
    matched: tuple[tuple[str, str], ...]  # (rule id, what matched), as the reply quotes it

    @property
    def clean(self) -> bool:
        return not self.expected


@dataclass(frozen=True, slots=True)
class Score:
    rule_id: str
    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def positives(self) -> int:
        return self.true_positives + self.false_negatives

    @property
    def found(self) -> int:
        return self.true_positives + self.false_positives

    @property
    def precision(self) -> float:
        return self.true_positives / self.found if self.found else 1.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.positives if self.positives else 1.0

    def as_dict(self) -> dict[str, object]:
        return {
            "rule": self.rule_id,
            "positives": self.positives,
            "found": self.found,
            "true_positives": self.true_positives,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
        }


def labelled_files(paths: Iterable[Path]) -> list[Path]:
    """The .eml files of these files and folders, sorted by name within each folder."""
    files: list[Path] = []
    for path in paths:
        files.extend(sorted(path.glob("*.eml")) if path.is_dir() else [path])
    return files


def judge(path: Path, raw: bytes, policy: Policy, alias_domain: str) -> Case:
    """Raises LabelError, or pipeline.parse.MessageFormatError for bytes that are not a
    message."""
    labels = BytesHeaderParser().parsebytes(raw)
    expect = labels.get("X-Policy-Expect")
    direction = labels.get("X-Policy-Direction")
    if expect is None or direction is None:
        raise LabelError(f"{path}: no X-Policy-Expect or X-Policy-Direction field")
    try:
        way = Direction(str(direction).strip().replace("-", "_"))
    except ValueError:
        raise LabelError(f"{path}: unknown direction {str(direction).strip()!r}") from None
    verdict = check_message(raw, policy, way, alias_domain)
    violations = (*verdict.refused, *verdict.shadowed)
    expected = str(expect).strip()
    return Case(
        path.name,
        _language(path, labels.get("X-Policy-Language")),
        way,
        frozenset() if expected == "none" else frozenset(map(str.strip, expected.split(","))),
        frozenset(v.rule_id for v in violations),
        tuple((v.rule_id, v.detail) for v in violations),
    )


def _language(path: Path, field: object) -> str:
    if field is not None:
        return str(field).strip()
    named = _LANGUAGE_IN_NAME.match(path.name)
    return (named.group(1) or named.group(2)) if named else "?"


def judge_all(
    files: Iterable[Path],
    policy: Policy,
    alias_domain: str,
    progress: Callable[[], None] = lambda: None,
) -> list[Case]:
    cases = []
    for path in files:
        cases.append(judge(path, path.read_bytes(), policy, alias_domain))
        progress()
    return cases


def within(cases: Iterable[Case], prefixes: Iterable[str]) -> list[Case]:
    """The cases as judged by the rules whose ids start with one of `prefixes` only: the
    families a corpus labels (its writers were told of no other rule)."""
    kept = tuple(prefixes)

    def scored(rule_id: str) -> bool:
        return rule_id.startswith(kept)

    return [
        replace(
            case,
            expected=frozenset(filter(scored, case.expected)),
            found=frozenset(filter(scored, case.found)),
            matched=tuple(m for m in case.matched if scored(m[0])),
        )
        for case in cases
    ]


def _in_language(case: Case, language: str) -> bool:
    return case.language == language


def _every(_: Case) -> bool:
    return True


def scores(
    cases: Iterable[Case], rule_ids: Iterable[str], where: Callable[[Case], bool] = _every
) -> list[Score]:
    """Per rule, over the cases `where` holds for (all by default)."""
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for case in cases:
        if not where(case):
            continue
        tp.update(case.found & case.expected)
        fp.update(case.found - case.expected)
        fn.update(case.expected - case.found)
    return [Score(r, tp[r], fp[r], fn[r]) for r in rule_ids]


def overall(rule_scores: Iterable[Score], rule_id: str = "all") -> Score:
    """Every rule's decisions counted together (micro-averaged)."""
    listed = list(rule_scores)
    return Score(
        rule_id,
        sum(s.true_positives for s in listed),
        sum(s.false_positives for s in listed),
        sum(s.false_negatives for s in listed),
    )


def languages(cases: Iterable[Case]) -> list[str]:
    return sorted({case.language for case in cases})


def misjudged(cases: Iterable[Case]) -> list[Case]:
    return [case for case in cases if case.found != case.expected]


def score_report(cases: list[Case], rule_ids: Iterable[str], version: str) -> dict[str, object]:
    """What `policy score --json` prints: per rule, per language, and per language and rule
    (rules with no positive and no hit left out)."""
    ids = list(rule_ids)

    def block(where: Callable[[Case], bool]) -> dict[str, object]:
        chosen = [case for case in cases if where(case)]
        rule_scores = [s for s in scores(chosen, ids) if s.positives or s.found]
        clean = [case for case in chosen if case.clean]
        return {
            "messages": len(chosen),
            "clean": len(clean),
            "clean_passed": sum(1 for case in clean if not case.found),
            "exact": sum(1 for case in chosen if case.found == case.expected),
            "overall": overall(rule_scores).as_dict(),
            "rules": [s.as_dict() for s in rule_scores],
        }

    return {
        "policy_version": version,
        **block(_every),
        "languages": {
            language: block(partial(_in_language, language=language))
            for language in languages(cases)
        },
    }


def markdown_tables(report: dict[str, Any]) -> list[str]:
    """The report as two Markdown tables: per rule, and per language and rule."""
    rules = [*report["rules"], report["overall"]]
    lines = [
        "| rule | positives | found | precision | recall |",
        "| --- | ---: | ---: | ---: | ---: |",
        *(
            f"| `{r['rule']}` | {r['positives']} | {r['found']} "
            f"| {r['precision']:.2f} | {r['recall']:.2f} |"
            for r in rules
        ),
        "",
    ]
    blocks = report["languages"]
    lines.append("| rule (precision / recall) | " + " | ".join(blocks) + " |")
    lines.append("| --- |" + " ---: |" * len(blocks))
    for rule in [r["rule"] for r in rules]:
        cells = []
        for block in blocks.values():
            found = [r for r in [*block["rules"], block["overall"]] if r["rule"] == rule]
            cells.append(
                f"{found[0]['precision']:.2f} / {found[0]['recall']:.2f}" if found else "-"
            )
        lines.append(f"| `{rule}` | " + " | ".join(cells) + " |")
    lines.append(
        "| clean passed | "
        + " | ".join(f"{b['clean_passed']} of {b['clean']}" for b in blocks.values())
        + " |"
    )
    return lines
