"""The learned component (gateway.policy.learned): what the rules read at run time is what
training fitted (the same n-grams, given to the same sentences, normalised alike); its file
is checked when the policy loads; and the rules quote the sentence it found."""

from __future__ import annotations

import io
from email.message import EmailMessage
from pathlib import Path

import numpy as np
import pytest

from gateway.core.model import Direction
from gateway.intake.check import check_message
from gateway.intake.policy import Policy
from gateway.policy.config import ContentPolicy, PolicyFile
from gateway.policy.learned import (
    CATEGORIES,
    FORMAT,
    ModelError,
    SentenceModel,
    index,
    load_model,
)
from gateway.policyfile import PolicyError, load_policy
from tools.train_classifier import features

BITS = 12


def model(seed: int = 7, threshold: float = 0.0) -> SentenceModel:
    generator = np.random.default_rng(seed)
    weights = generator.integers(-127, 128, size=(len(CATEGORIES), 1 << BITS)).astype(np.int8)
    return SentenceModel(
        BITS,
        weights,
        np.full(len(CATEGORIES), 0.01, dtype=np.float32),
        np.linspace(-0.5, 0.5, len(CATEGORIES)).astype(np.float32),
        np.full(len(CATEGORIES), threshold, dtype=np.float32),
        "test",
    )


SENTENCES = [
    "thank you for your order!",
    "besuchen sie unseren shop",
    "为什么取消订单",
    "a",
    "",
    "order 113-1234567-1234567 shipped",
    "caf\udce9 undecodable",  # a byte no charset decoded, as surrogateescape keeps it
]


def dequantised(m: SentenceModel) -> np.ndarray:
    return m.weights.astype(np.float64) * m.scale[:, None].astype(np.float64)


LONG = "\n\n".join(SENTENCES)


def test_run_time_reads_a_text_as_training_fitted_it() -> None:
    m = model()
    weights = dequantised(m).T
    for text in (LONG, LONG * 40, "order 113-1234567 shipped today, thank you " * 3):
        fitted = features(text, BITS) @ weights + m.bias.astype(np.float64)
        logits = m.logits(text)
        assert logits is not None and np.allclose(logits, fitted[0], atol=1e-4)
    # Sentences read apart, to quote one.
    assert m.read(SENTENCES).logits().shape == (len(SENTENCES), len(CATEGORIES))


def test_a_long_text_scores_by_what_it_says_not_by_its_length() -> None:
    m = model()
    once, many = m.logits(LONG), m.logits(LONG * 200)
    assert once is not None and many is not None
    assert np.allclose(once, many, atol=0.15)  # the joins between copies add a few n-grams


def test_numbers_do_not_change_what_a_text_does() -> None:
    m = model()
    one = m.logits("order 1234 shipped to the warehouse in the north yesterday evening")
    other = m.logits("order 9876 shipped to the warehouse in the north yesterday evening")
    letters = m.logits("order abcd shipped to the warehouse in the north yesterday evening")
    assert one is not None and other is not None and letters is not None
    assert np.allclose(one, other) and not np.allclose(one, letters)


def test_too_short_a_text_gets_no_verdict() -> None:
    m = model()
    for short in ("", "hello", "hello world", "Your order", "caf\udce9"):
        assert m.logits(short) is None
    assert m.read([]).logits().shape == (0, len(CATEGORIES))
    assert m.read(["", ""]).logits().shape == (2, len(CATEGORIES))


def saved(**changes: object) -> bytes:
    m = model()
    fields: dict[str, object] = {
        "format": np.array(FORMAT),
        "categories": np.array(CATEGORIES),
        "bits": np.array(BITS),
        "weights": m.weights,
        "scale": m.scale,
        "bias": m.bias,
        "threshold": m.threshold,
    }
    fields.update(changes)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **fields)  # type: ignore[arg-type]
    return buffer.getvalue()


def test_a_model_file_is_checked_when_it_loads() -> None:
    loaded = load_model(saved(), "d")
    assert np.allclose(loaded.read(["zqx"]).logits(), model().read(["zqx"]).logits())
    for bad, says in (
        (b"not a zip", "not a model file"),
        (saved(format=np.array(FORMAT + 1)), "format"),
        (saved(categories=np.array(CATEGORIES[:-1])), "categories"),
        (saved(bits=np.array(BITS + 1)), "wrong shape"),
        (saved(threshold=np.zeros(2, dtype=np.float32)), "wrong shape"),
    ):
        with pytest.raises(ModelError, match=says):
            load_model(bad, "d")


def policy_folder(tmp_path: Path, model_line: str) -> Path:
    (tmp_path / "policy.toml").write_text(f"[classifier]\n{model_line}\n", encoding="utf-8")
    return tmp_path / "policy.toml"


def test_a_policy_names_its_model_and_its_version_covers_it(tmp_path: Path) -> None:
    path = policy_folder(tmp_path, 'model = "content.npz"')
    with pytest.raises(PolicyError, match=r"content\.npz"):
        load_policy(path)
    (tmp_path / "content.npz").write_bytes(b"garbage")
    with pytest.raises(PolicyError, match="not a model file"):
        load_policy(path)
    (tmp_path / "content.npz").write_bytes(saved())
    first = load_policy(path)
    assert first.model is not None
    (tmp_path / "content.npz").write_bytes(saved(bias=np.zeros(len(CATEGORIES), np.float32)))
    assert load_policy(path).version != first.version


def test_the_shipped_model_loads(tmp_path: Path) -> None:
    """config/classifier/content.npz, as `[classifier] model` names it when turned on."""
    shipped = Path(__file__).resolve().parents[2] / "config" / "classifier" / "content.npz"
    model = load_model(shipped.read_bytes(), "shipped")
    assert model.bits >= 16
    assert model.logits("thank you so much for your order, we hope you enjoy it! " * 3) is not None


def message(body: str, subject: str = "Your order") -> bytes:
    mail = EmailMessage()
    mail["From"] = "Shop <seller@shop.example>"
    mail["To"] = "b@relay.example.test"
    mail["Subject"] = subject
    mail.set_content(body)
    return bytes(mail)


def steering(category: str, sentence: str, threshold: float = 1.0) -> SentenceModel:
    """A model that takes exactly the n-grams of `sentence` to do `category`."""
    weights = np.zeros((len(CATEGORIES), 1 << BITS), dtype=np.int8)
    weights[index(category), features(sentence, BITS).indices] = 127
    return SentenceModel(
        BITS,
        weights,
        np.full(len(CATEGORIES), 1.0, dtype=np.float32),
        np.full(len(CATEGORIES), -5.0, dtype=np.float32),
        np.full(len(CATEGORIES), threshold, dtype=np.float32),
        "steer",
    )


def judged(m: SentenceModel, raw: bytes) -> dict[str, str]:
    content = ContentPolicy(PolicyFile(), load_policy().lexicon, "t", m)
    verdict = check_message(raw, Policy.compile(content), Direction.SELLER_TO_BUYER, "x")
    return {v.rule_id: v.detail for v in verdict.refused}


def test_a_phrase_rule_quotes_the_sentence_the_model_found() -> None:
    found = judged(
        steering("feedback_request", "zqx wvk"),
        message("Hello Anna.\n\nThe blue lamp is brighter than the red one. Zqx wvk please.\n\nBo"),
    )
    assert found == {"content.feedback_request": '"zqx wvk please."'}


def test_only_rules_read_the_words_as_a_whole_but_never_a_question() -> None:
    m = steering("thanks", "zqx wvk zqx")
    said = "Zqx wvk zqx zqx wvk zqx."
    assert judged(m, message(f"{said}\n\nBo")) == {"content.thanks_only": f'"{said.lower()}"'}
    assert judged(m, message(f"{said} Which colour?\n\nBo")) == {}
    # Nothing but a line as short as a greeting or a name: the model is not asked.
    assert judged(m, message("Zqx wvk zqx.\n\nBo")) == {}
