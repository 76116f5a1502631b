"""Loading the content policy: config/policy.toml and the lexicons it names, validated,
hashed (the version archived with every decision) and compiled. Reading files is here;
gateway.policy never does I/O."""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError

from gateway.policy.config import ContentPolicy, Lexicon, LexiconFile, PolicyFile
from gateway.policy.learned import ModelError, SentenceModel, load_model
from gateway.settings import describe_validation_error

LEXICON_DIR = "lexicon"

_File = TypeVar("_File", PolicyFile, LexiconFile)


class PolicyError(Exception):
    """A policy that cannot be used; str() is one line naming the file and the key."""


def embedded_policy_path() -> Path:
    """config/policy.toml: shipped inside the wheel, or read from the source tree."""
    packaged = Path(__file__).with_name("embedded") / "policy.toml"
    if packaged.is_file():
        return packaged
    return Path(__file__).resolve().parent.parent / "config" / "policy.toml"


def load_policy(path: Path | str | None = None, model: bool = True) -> ContentPolicy:
    """The policy at `path` (a policy.toml; its lexicons in lexicon/ beside it), or the
    embedded one. Raises PolicyError, leaving whatever policy is in force untouched.
    `model=False`: without the learned component it names (what training compares with)."""
    policy_path = Path(path) if path else embedded_policy_path()
    digest = hashlib.sha256()
    settings = _validated(PolicyFile, policy_path, digest)
    lexicons = {
        language: _validated(
            LexiconFile, policy_path.parent / LEXICON_DIR / f"{language}.toml", digest
        )
        for language in settings.languages
    }
    try:
        lexicon = Lexicon(lexicons)
    except Exception as error:  # a pattern valid alone but not in the merged expression
        raise PolicyError(f"policy error: lexicons: {error}") from None
    name = settings.classifier.model if model else ""
    learned = _model(policy_path.parent, name, digest)
    return ContentPolicy(settings, lexicon, digest.hexdigest()[:16], learned)


def _model(folder: Path, name: str, digest: hashlib._Hash) -> SentenceModel | None:
    if not name:
        return None
    path = folder / name
    try:
        data = path.read_bytes()
    except OSError as error:
        raise PolicyError(f"policy error: {path}: {error.strerror or error}") from None
    digest.update(path.name.encode() + b"\0" + data + b"\0")
    try:
        return load_model(data, hashlib.sha256(data).hexdigest()[:16])
    except ModelError as error:
        raise PolicyError(f"policy error: {path}: {error}") from None


def _validated(model: type[_File], path: Path, digest: hashlib._Hash) -> _File:
    try:
        data = path.read_bytes()
        parsed = tomllib.loads(data.decode("utf-8"))
    except FileNotFoundError:
        raise PolicyError(f"policy error: {path}: not found") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise PolicyError(f"policy error: {path}: {error}") from None
    try:
        validated = model.model_validate(parsed)
    except ValidationError as error:
        problems = describe_validation_error(error).removeprefix("config error: ")
        raise PolicyError(f"policy error: {path}: {problems}") from None
    digest.update(path.name.encode() + b"\0" + data + b"\0")
    return validated
