"""Trains the content policy's learned component (gateway/policy/learned.py) on the train
split of the labelled corpus, picks each category's threshold on the dev split, and writes
config/classifier/content.npz.

    make train-classifier        # or: python -m tools.train_classifier [--bits 17] [--c 256]

The test split is never read here. Each message is read by the gateway's own reader and cut
into sentences as the rules cut them: the seller's own words (subject and body, no quoted
lines, no attachments), all of them read as one text, as the rules read them. Only
seller-to-buyer messages teach: the rules it serves apply to sellers alone.

One logistic regression per category, on that category's rule's labels. A threshold is
chosen on dev for what the model adds to the lexicons: the lowest logit at which the
messages it finds that the lexicons do not are still PRECISION_AIM right.

The run is deterministic: the same corpus gives the same file.
"""

from __future__ import annotations

import argparse
import hashlib
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy import sparse
from sklearn.linear_model import LogisticRegression

from gateway.core.model import Direction
from gateway.intake.check import check_message
from gateway.intake.policy import Policy
from gateway.pipeline.content import read_content
from gateway.pipeline.parse import canonical_line_ends, parse_message
from gateway.policy.learned import CATEGORIES, FORMAT, ngram_hashes, sentence_bounds
from gateway.policy.rules.content.sentences import own_sentences
from gateway.policyfile import load_policy

REPO = Path(__file__).resolve().parents[1]
CORPORA = REPO / "tests" / "corpus"
TRAIN = (CORPORA / "blind" / "train", CORPORA / "policy")
DEV = (CORPORA / "blind" / "dev", CORPORA / "policy-holdout")
OUTPUT = REPO / "config" / "classifier" / "content.npz"

RULE_OF = {
    "marketing": "content.marketing",
    "feedback_request": "content.feedback_request",
    "cancel_reason": "content.cancel_reason",
    "thanks": "content.thanks_only",
    "confirmation": "content.confirmation_only",
}
PRECISION_AIM = 0.98  # of what the model finds on dev beyond the lexicons
ALIAS_DOMAIN = "relay.example.test"


@dataclass(frozen=True)
class Message:
    name: str
    rules: frozenset[str]  # what the labels say it breaks
    by_lexicons: frozenset[str]  # what the rules find in it without the model
    sentences: tuple[str, ...]


def read(folders: Iterable[Path], lexicons_only: Policy) -> list[Message]:
    messages = []
    for folder in folders:
        for path in sorted(folder.glob("*.eml")):
            raw = path.read_bytes()
            labels = BytesHeaderParser().parsebytes(raw)
            if str(labels["X-Policy-Direction"]).strip() != "seller-to-buyer":
                continue
            expect = str(labels["X-Policy-Expect"]).strip()
            rules = frozenset(() if expect == "none" else (r.strip() for r in expect.split(",")))
            content = read_content(parse_message(canonical_line_ends(raw)))
            own = own_sentences(b for b in content.blocks if not b.source.startswith("attachment"))
            verdict = check_message(raw, lexicons_only, Direction.SELLER_TO_BUYER, ALIAS_DOMAIN)
            found = frozenset(v.rule_id for v in (*verdict.refused, *verdict.shadowed))
            messages.append(Message(path.name, rules, found, own.sentences))
    return messages


def features(sentences: Sequence[str], bits: int) -> sparse.csr_matrix:
    """The sentences read as one text, as the model reads them at run time: each n-gram's
    bucket (given to the sentence it starts in), 1/sqrt(the text's n-gram count) each."""
    joined, _ = sentence_bounds(sentences)
    buckets = ngram_hashes(joined, bits)
    column = np.concatenate(buckets).astype(np.int64) if buckets else np.zeros(0, np.int64)
    values = np.full(len(column), 1.0 / np.sqrt(max(len(column), 1)))
    row = np.zeros(len(column), dtype=np.int64)
    matrix = sparse.csr_matrix((values, (row, column)), shape=(1, 1 << bits))
    matrix.sum_duplicates()
    return matrix


def matrix(messages: list[Message], bits: int) -> sparse.csr_matrix:
    return sparse.vstack([features(m.sentences, bits) for m in messages]).tocsr()


def fit(
    x: sparse.csr_matrix, y: npt.NDArray[np.int64], c: float
) -> tuple[npt.NDArray[np.float64], float]:
    model = LogisticRegression(C=c, class_weight="balanced", max_iter=5000, solver="liblinear")
    model.fit(x, y)
    return model.coef_[0], float(model.intercept_[0])


def threshold(
    scores: npt.NDArray[np.float64],
    labelled: npt.NDArray[np.bool_],
    lexicons: npt.NDArray[np.bool_],
) -> float:
    """The lowest logit (not below 0) at which what the model adds to the lexicons' hits
    on dev is still PRECISION_AIM right; above every score if nothing is."""
    best = float(np.max(scores, initial=0.0)) + 1.0
    for candidate in sorted({float(s) for s in scores if s >= 0}, reverse=True):
        added = ~lexicons & (scores >= candidate)
        right = int((added & labelled).sum())
        if right / max(int(added.sum()), 1) >= PRECISION_AIM:
            best = candidate
    return best


def quantised(
    weights: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float32]]:
    scale = np.maximum(np.abs(weights).max(axis=1), 1e-9) / 127.0
    return np.round(weights / scale[:, None]).astype(np.int8), scale.astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--bits", type=int, default=17, help="hash buckets: 2**bits")
    parser.add_argument("--c", type=float, default=256.0, help="inverse regularisation")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    lexicons_only = Policy.compile(load_policy(model=False))
    train, dev = read(TRAIN, lexicons_only), read(DEV, lexicons_only)
    x_train, x_dev = matrix(train, args.bits), matrix(dev, args.bits)
    print(f"train: {len(train)} seller messages, dev: {len(dev)}")
    weights = np.zeros((len(CATEGORIES), 1 << args.bits))
    bias = np.zeros(len(CATEGORIES))
    for row, category in enumerate(CATEGORIES):
        labels = np.array([RULE_OF[category] in m.rules for m in train], dtype=np.int64)
        weights[row], bias[row] = fit(x_train, labels, args.c)
    codes, scale = quantised(weights)
    limits = np.zeros(len(CATEGORIES))
    for row, category in enumerate(CATEGORIES):
        rule = RULE_OF[category]
        scores = x_dev @ (codes[row].astype(np.float64) * scale[row]) + bias[row]
        labelled = np.array([rule in m.rules for m in dev])
        lexicons = np.array([rule in m.by_lexicons for m in dev])
        limits[row] = threshold(scores, labelled, lexicons)
        found = lexicons | (scores >= limits[row])
        print(
            f"{rule}: dev positives {int(labelled.sum())}; lexicons find "
            f"{int((lexicons & labelled).sum())} of them and {int((lexicons & ~labelled).sum())} "
            f"wrongly; with the model (threshold {limits[row]:.2f}) "
            f"{int((found & labelled).sum())} and {int((found & ~labelled).sum())}"
        )
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        format=np.array(FORMAT),
        categories=np.array(CATEGORIES),
        bits=np.array(args.bits),
        weights=codes,
        scale=scale,
        bias=bias.astype(np.float32),
        threshold=limits.astype(np.float32),
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(buffer.getvalue())
    digest = hashlib.sha256(buffer.getvalue()).hexdigest()[:16]
    print(f"wrote {args.output} ({len(buffer.getvalue()) // 1024} KiB, {digest})")


if __name__ == "__main__":
    main()
