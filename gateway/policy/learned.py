"""The content policy's learned component: a linear model over hashed character n-grams that
says how likely a seller's own words are to promote, to ask for a review, to ask why an
order was cancelled, to only thank, or to only confirm; and, since a linear model's score is
a sum, which sentence weighs most towards it (what the refusal quotes).

It stands next to the lexicons: a phrase list recognises wordings someone wrote down, this
recognises what a sentence does from the pieces of words it is made of, in every language
at once. It is trained on the labelled corpus (`tools/train_classifier.py`) and shipped as
one file of weights with the policy; nothing is downloaded or learned at run time.

Featurising is numpy over the text's code points, with no Python loop per character or per
word: the n-grams' weights are read with one `take` and summed, and their counts give the
text's length, so a 5 KB message costs about a tenth of a millisecond. Sentences are read
apart only to quote one.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

# The categories a sentence is scored for, in the model file's row order.
CATEGORIES = ("marketing", "feedback_request", "cancel_reason", "thanks", "confirmation")
ORDERS = (2, 3, 4)  # n-gram lengths, in code points
_PRIME = np.uint32(1_000_003)
_SPREAD = np.uint32(0x9E3779B1)  # Fibonacci hashing: the top bits of the product
_SEPARATOR = "\x1f"  # between sentences; never in folded text
_ZERO = ord("0")
FORMAT = 1  # the file's layout; a model of another format is refused
# Code points read: what a message does shows in its first pages, and memory stays bounded
# (numpy holds a few dozen bytes per code point) however large the body.
MAX_TEXT = 20_000
MIN_NGRAMS = 60  # fewer (a subject alone, "hello world"): too little to say what a text does


class ModelError(ValueError):
    """A model file that cannot be used."""


Hashes = npt.NDArray[np.uint32]


def ngram_hashes(text: str, bits: int) -> list[Hashes]:
    """For each n-gram length in ORDERS, the bucket of the n-gram starting at each position
    of `text`. Digits are one digit: what a sentence does does not depend on its numbers."""
    # Undecodable bytes stand in text as lone surrogates (surrogateescape): kept as codes.
    data = text[:MAX_TEXT].encode("utf-32-le", "surrogatepass")
    codes = np.frombuffer(data, dtype="<u4").astype(np.uint32)
    codes[(codes >= _ZERO) & (codes <= _ZERO + 9)] = _ZERO
    count = len(codes)
    shift = np.uint32(32 - bits)
    rolling = codes
    buckets: list[Hashes] = []
    for length in range(2, max(ORDERS) + 1):
        kept = count - length + 1
        if kept <= 0:
            break
        rolling = rolling[:kept] * _PRIME + codes[length - 1 : length - 1 + kept]
        if length in ORDERS:
            buckets.append((rolling * _SPREAD) >> shift)
    return buckets


def sentence_bounds(sentences: Sequence[str]) -> tuple[str, npt.NDArray[np.int64]]:
    """The sentences joined, and where each begins in the joined text (and where the
    last ends). An n-gram belongs to the sentence it starts in (for the quote only)."""
    lengths = np.fromiter((len(s) + 1 for s in sentences), dtype=np.int64, count=len(sentences))
    bounds = np.zeros(len(sentences) + 1, dtype=np.int64)
    np.cumsum(lengths, out=bounds[1:])
    return _SEPARATOR.join(sentences), bounds


@dataclass(frozen=True, eq=False)
class SentenceModel:
    """Weights as int8 with one scale per category (rows: CATEGORIES), a bias and the
    decision threshold of each (on the logit), chosen by cross-validation for precision."""

    bits: int
    weights: npt.NDArray[np.int8]  # (categories, 2**bits)
    scale: npt.NDArray[np.float32]  # (categories,)
    bias: npt.NDArray[np.float32]
    threshold: npt.NDArray[np.float32]  # on the logit
    digest: str  # of the file, for the policy's version

    def logits(self, text: str) -> npt.NDArray[np.float64] | None:
        """(categories,): the logit of one text for each category; None for a text too
        short to judge. Features are n-gram counts scaled to unit length (L2), so a long
        text scores by what it says, not by how long it is."""
        buckets = ngram_hashes(text, self.bits)
        every = np.concatenate(buckets).astype(np.intp) if buckets else None
        if every is None or len(every) < MIN_NGRAMS:
            return None
        counts = np.bincount(every)
        norm = float(np.sqrt(np.dot(counts, counts)))
        total = self.weights.take(every, axis=1).sum(axis=1, dtype=np.int64)
        return np.asarray(total * self.scale.astype(np.float64) / norm + self.bias)

    def takes(self, logits: npt.NDArray[np.float64], category: int) -> bool:
        return bool(logits[category] >= self.threshold[category])

    def read(self, sentences: Sequence[str]) -> SentenceScores:
        """Each sentence's summed n-gram weights and its n-gram count."""
        sums = np.zeros((len(CATEGORIES), len(sentences)), dtype=np.int64)
        counts = np.zeros(len(sentences), dtype=np.int64)
        if sentences:
            joined, bounds = sentence_bounds(sentences)
            for buckets in ngram_hashes(joined, self.bits):
                # Prefix sums over positions: a sentence's sum is two reads, however long.
                prefix = np.zeros((len(CATEGORIES), len(buckets) + 1), dtype=np.int64)
                np.cumsum(
                    self.weights.take(buckets, axis=1), axis=1, dtype=np.int64, out=prefix[:, 1:]
                )
                clipped = np.minimum(bounds, len(buckets))
                sums += prefix[:, clipped[1:]] - prefix[:, clipped[:-1]]
                counts += clipped[1:] - clipped[:-1]
        return SentenceScores(self, (sums.T * self.scale).astype(np.float64), counts)


@dataclass(frozen=True, eq=False)
class SentenceScores:
    """What a model read in some sentences, each apart: the sum of each one's n-gram weights
    (which sentence weighs most towards a category) and its logit."""

    model: SentenceModel
    sums: npt.NDArray[np.float64]  # (sentences, categories)
    counts: npt.NDArray[np.int64]

    def logits(self) -> npt.NDArray[np.float64]:
        """(sentences, categories)."""
        norm = np.sqrt(np.maximum(self.counts, 1))[:, None]
        return self.sums / norm + self.model.bias


def index(category: str) -> int:
    return CATEGORIES.index(category)


def load_model(data: bytes, digest: str) -> SentenceModel:
    """A model from the bytes of its .npz file (read by the caller: this module does no
    I/O). Raises ModelError."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            fields = {name: archive[name] for name in archive.files}
    except (OSError, ValueError) as error:
        raise ModelError(f"not a model file: {error}") from None
    try:
        if int(fields["format"]) != FORMAT:
            raise ModelError(f"model format {int(fields['format'])}, expected {FORMAT}")
        categories = tuple(str(c) for c in fields["categories"])
        if categories != CATEGORIES:
            raise ModelError(f"categories {categories}, expected {CATEGORIES}")
        bits = int(fields["bits"])
        weights = fields["weights"].astype(np.int8, copy=False)
        shapes = {name: fields[name].shape for name in ("scale", "bias", "threshold")}
    except KeyError as error:
        raise ModelError(f"model file without {error}") from None
    if weights.shape != (len(CATEGORIES), 1 << bits) or any(
        shape != (len(CATEGORIES),) for shape in shapes.values()
    ):
        raise ModelError(f"model arrays of the wrong shape: {weights.shape}, {shapes}")
    return SentenceModel(
        bits,
        np.ascontiguousarray(weights),
        fields["scale"].astype(np.float32),
        fields["bias"].astype(np.float32),
        fields["threshold"].astype(np.float32),
        digest,
    )
