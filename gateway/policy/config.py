"""The content policy as operators write it (config/policy.toml and config/lexicon/*.toml),
validated once; rules are built from it and never read files."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.core.model import Direction
from gateway.core.text import fold
from gateway.policy.learned import SentenceModel
from gateway.policy.phrases import patterns_pattern, phrases_pattern


class Mode(StrEnum):
    ENFORCE = "enforce"  # a hit refuses the message
    SHADOW = "shadow"  # a hit is archived and counted, the message goes on
    OFF = "off"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleSettings(_Strict):
    """A rule's mode, and optionally another one for one direction."""

    mode: Mode = Mode.ENFORCE
    seller_to_buyer: Mode | None = None
    buyer_to_seller: Mode | None = None

    def mode_for(self, direction: Direction) -> Mode:
        own = getattr(self, direction.value, None)
        return own if isinstance(own, Mode) else self.mode


class LinkSettings(RuleSettings):
    # Domains a buyer needs to complete an order (carriers, the marketplace); subdomains too.
    allow_domains: tuple[str, ...] = ()
    # Public suffixes that are far more often file names ("photo.zip") than web sites.
    bare_domain_ignore_suffixes: tuple[str, ...] = ()
    # Suffixes recognised when spelled out: "shop dot com", "yandex точка ru".
    spelled_out_suffixes: tuple[str, ...] = ("com", "net", "org")
    # Suffixes a host may end in beyond the Public Suffix List: the deployment's own, such
    # as the reserved "example" (RFC 2606) its marketplace and test mail are named under.
    extra_suffixes: tuple[str, ...] = ()

    @field_validator(
        "allow_domains", "bare_domain_ignore_suffixes", "spelled_out_suffixes", "extra_suffixes"
    )
    @classmethod
    def _lower(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(v.strip().lower().strip(".") for v in values)


class PhoneSettings(RuleSettings):
    regions: tuple[str, ...] = ("US",)  # read numbers written without "+" as these regions
    min_digits: Annotated[int, Field(ge=5, le=15)] = 7

    @field_validator("regions")
    @classmethod
    def _known(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [v for v in values if v.upper() not in phonenumbers.SUPPORTED_REGIONS]
        if unknown:
            raise ValueError(f"unknown region codes {unknown} (ISO 3166-1 alpha-2, e.g. 'DE')")
        return tuple(v.upper() for v in values)


class SocialSettings(RuleSettings):
    domains: tuple[str, ...] = ()  # the networks' own domains, e.g. "t.me", "line.me"
    # Words that, in the sentence around a messenger's name, turn it into a refusal ("we
    # can't use WhatsApp", "微信不用加"): regular expressions over folded text. A match
    # that names a handle ("@shop") counts all the same.
    negations: tuple[str, ...] = ()

    @field_validator("negations")
    @classmethod
    def _negations_compile(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in values:
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(f"negation {pattern!r}: {error}") from None
            if _UNANCHORED_START.match(pattern):
                raise ValueError(f"negation {pattern!r} starts with an open-ended repeat")
        return values


class BusinessNameSettings(RuleSettings):
    suffixes: tuple[str, ...] = ("com", "net", "biz")
    # The countries' two-letter codes too ("Technik-Welt.de", "Speakers.co.uk"), after a
    # name of three letters or more written against the dot.
    country_suffixes: bool = True
    # Words before a dot that abbreviate, never a domain's name: "Co. Shop", "Ltd.UK".
    abbreviations: tuple[str, ...] = ("co", "inc", "ltd", "corp", "bros", "dr", "st")

    @field_validator("suffixes", "abbreviations")
    @classmethod
    def _folded(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(fold(v).strip().strip(".") for v in values if v.strip().strip("."))


class StyledTextSettings(RuleSettings):
    min_letters: Annotated[int, Field(ge=1)] = 3


class LineBreakSettings(RuleSettings):
    max_empty_lines: Annotated[int, Field(ge=1)] = 10


class ImageSizeSettings(RuleSettings):
    max_width: Annotated[int, Field(ge=1)] = 8000
    max_height: Annotated[int, Field(ge=1)] = 8000


class AttachTypeSettings(RuleSettings):
    # Extensions a file may have, and so the kinds its bytes may be.
    allowed: tuple[str, ...] = ("txt", "pdf", "doc", "docx", "jpg", "gif", "png", "bmp", "tiff")


class AttachSizeSettings(RuleSettings):
    max_total_bytes: Annotated[int, Field(ge=1)] = 10 * 1024 * 1024


class ContentRules(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    link: LinkSettings = Field(LinkSettings(), alias="content.link")
    email: RuleSettings = Field(RuleSettings(), alias="content.email")
    phone: PhoneSettings = Field(PhoneSettings(), alias="content.phone")
    social: SocialSettings = Field(SocialSettings(), alias="content.social")
    marketing: RuleSettings = Field(RuleSettings(), alias="content.marketing")
    feedback_request: RuleSettings = Field(RuleSettings(), alias="content.feedback_request")
    confirmation_only: RuleSettings = Field(RuleSettings(), alias="content.confirmation_only")
    thanks_only: RuleSettings = Field(RuleSettings(), alias="content.thanks_only")
    cancel_reason: RuleSettings = Field(RuleSettings(), alias="content.cancel_reason")
    business_name: BusinessNameSettings = Field(
        BusinessNameSettings(), alias="content.business_name"
    )
    emoji: RuleSettings = Field(RuleSettings(), alias="form.emoji")
    styled_text: StyledTextSettings = Field(StyledTextSettings(), alias="form.styled_text")
    line_breaks: LineBreakSettings = Field(LineBreakSettings(), alias="form.line_breaks")
    animated_gif: RuleSettings = Field(RuleSettings(), alias="form.animated_gif")
    image_size: ImageSizeSettings = Field(ImageSizeSettings(), alias="form.image_size")
    attach_type: AttachTypeSettings = Field(AttachTypeSettings(), alias="attach.type")
    attach_size: AttachSizeSettings = Field(AttachSizeSettings(), alias="attach.size")


class HtmlSettings(_Strict):
    """What survives in delivered HTML: a tag not listed is removed and its content kept,
    except the `remove_with_content` ones."""

    sanitize: bool = True
    tags: tuple[str, ...] = ()
    attributes: dict[str, tuple[str, ...]] = {}
    remove_with_content: tuple[str, ...] = ("script", "style")
    url_schemes: tuple[str, ...] = ("http", "https", "mailto", "cid")


class ClassifierSettings(_Strict):
    """The learned component (gateway.policy.learned) beside the lexicons."""

    model: str = ""  # its .npz file, relative to policy.toml; "" for the lexicons alone


class PolicyFile(_Strict):
    """config/policy.toml."""

    help_url: str = ""
    languages: tuple[str, ...] = ()  # lexicon/<language>.toml files to load
    classifier: ClassifierSettings = ClassifierSettings()
    html: HtmlSettings = HtmlSettings()
    rules: ContentRules = Field(default_factory=lambda: ContentRules.model_validate({}))


# A pattern beginning \w* or .+ tries from every character of a long word: quadratic.
# (\d and \s may open one: folded text has no digit run over 40 and no run of spaces.)
_UNANCHORED_START = re.compile(r"(?:\\[wWDS]|\.|\[[^\]]*\])[*+]")


class PhraseList(_Strict):
    phrases: tuple[str, ...] = ()  # matched as words in folded text (NFKC, case-folded)
    patterns: tuple[str, ...] = ()  # regular expressions over the folded text

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in values:
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(f"pattern {pattern!r}: {error}") from None
            if _UNANCHORED_START.match(pattern):
                raise ValueError(
                    f"pattern {pattern!r} starts with an open-ended repeat: every position of "
                    "a long word would start a match; begin with a word or a lookbehind such "
                    "as (?<!\\w), and bound the repeat ({0,20})"
                )
        return values


class LexiconFile(_Strict):
    """config/lexicon/<language>.toml: the words of one language for the phrase rules."""

    marketing: PhraseList = PhraseList()
    feedback_request: PhraseList = PhraseList()
    thanks: PhraseList = PhraseList()
    confirmation: PhraseList = PhraseList()
    cancel_reason: PhraseList = PhraseList()
    social: PhraseList = PhraseList()
    courtesy: PhraseList = PhraseList()  # greetings and sign-offs, around thanks/confirmation
    reference: PhraseList = PhraseList()  # words before an order or tracking number
    at_words: tuple[str, ...] = ()  # "(at)", "собака": an obfuscated "@"
    dot_words: tuple[str, ...] = ()  # "dot", "точка": an obfuscated "."
    # Words of prose that spell "@" or "." only inside the shape of a whole address or host
    # ("at", "punto"): bare, they count where that shape says so; in brackets, always.
    address_at_words: tuple[str, ...] = ()
    address_dot_words: tuple[str, ...] = ()
    slash_words: tuple[str, ...] = ()  # "slash", "barra": an obfuscated "/" after a host
    # Suffixes that are words of this language ("es", "de", "io"): after one of its bare
    # address dot-words ("el punto es") they count only with www, a path or an at-word.
    suffix_words: tuple[str, ...] = ()


_CATEGORIES = (
    "marketing",
    "feedback_request",
    "thanks",
    "confirmation",
    "cancel_reason",
    "social",
    "courtesy",
    "reference",
)


_BRACKETS = "()[]{}<>【】 "


@dataclass(frozen=True, slots=True)
class SpelledWords:
    """Words that spell out "@" or ".": `bracketed` count in any brackets ("(at)",
    "【点】"); `bare` ones, listed without brackets, also standing alone ("dot", "собака")."""

    bare: tuple[str, ...]
    bracketed: tuple[str, ...]

    @classmethod
    def of(cls, written: Iterable[str]) -> SpelledWords:
        folded = [fold(word).strip() for word in written]
        bare = [w for w in folded if w and w[0] not in _BRACKETS]
        bracketed = [w.strip(_BRACKETS) for w in folded]
        return cls(tuple(dict.fromkeys(bare)), tuple(dict.fromkeys(w for w in bracketed if w)))


@dataclass(frozen=True, slots=True)
class CategoryWords:
    """What one category's pattern is made of: its phrases as folded words, and its
    regular expressions as written."""

    phrases: tuple[tuple[str, ...], ...]
    patterns: tuple[str, ...]


class Lexicon:
    """Every language's phrases merged: one compiled pattern per category."""

    def __init__(self, files: dict[str, LexiconFile]) -> None:
        self.languages = tuple(sorted(files))
        self._files = tuple((language, files[language]) for language in self.languages)
        self._patterns: dict[str, re.Pattern[str] | None] = {}
        self._words: dict[str, CategoryWords] = {}
        for category in _CATEGORIES:
            lists: list[PhraseList] = [getattr(files[lang], category) for lang in self.languages]
            patterns = tuple(p for phrases in lists for p in phrases.patterns)
            phrases = tuple(p for phrases in lists for p in phrases.phrases)
            parts = patterns_pattern(patterns)
            words = phrases_pattern(phrases)
            if words:
                parts.append(words)
            self._patterns[category] = re.compile("|".join(parts)) if parts else None
            folded = (tuple(fold(phrase).split()) for phrase in phrases)
            self._words[category] = CategoryWords(tuple(w for w in folded if w), patterns)
        self.at_words = SpelledWords.of(w for f in files.values() for w in f.at_words)
        self.dot_words = SpelledWords.of(w for f in files.values() for w in f.dot_words)
        self.address_at_words = SpelledWords.of(
            w for f in files.values() for w in f.address_at_words
        )
        self.address_dot_words = SpelledWords.of(
            w for f in files.values() for w in f.address_dot_words
        )
        self.slash_words = SpelledWords.of(w for f in files.values() for w in f.slash_words)
        # Each bare address dot-word, and the suffixes that are words in its languages.
        prose: dict[str, set[str]] = {}
        for file in files.values():
            for word in SpelledWords.of(file.address_dot_words).bare:
                prose.setdefault(word, set()).update(fold(w).strip() for w in file.suffix_words)
        self.prose_suffixes = tuple((w, tuple(sorted(s))) for w, s in sorted(prose.items()))

    def pattern(self, category: str) -> re.Pattern[str] | None:
        return self._patterns[category]

    def words(self, category: str) -> CategoryWords:
        return self._words[category]

    # Equal lexicons compile to the same scan: a reload or another gateway in the same
    # process with the same files reuses it.
    def __eq__(self, other: object) -> bool:
        return isinstance(other, Lexicon) and other._files == self._files

    def __hash__(self) -> int:
        return hash(self._files)


@dataclass(frozen=True, slots=True)
class ContentPolicy:
    """A loaded policy: its settings, its lexicons, and the hash that names this version."""

    settings: PolicyFile
    lexicon: Lexicon
    version: str
    model: SentenceModel | None = None  # the learned component, if the policy names one

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return _RULE_IDS

    def mode(self, rule_id: str, direction: Direction) -> Mode:
        for name, field in ContentRules.model_fields.items():
            if field.alias == rule_id:
                rule: RuleSettings = getattr(self.settings.rules, name)
                return rule.mode_for(direction)
        raise KeyError(rule_id)


_RULE_IDS = tuple(str(field.alias) for field in ContentRules.model_fields.values())

# Every rule off and HTML left as written: the gateway without a content policy.
OFF_POLICY = ContentPolicy(
    PolicyFile(
        rules=ContentRules.model_validate({rule_id: {"mode": "off"} for rule_id in _RULE_IDS}),
        html=HtmlSettings(sanitize=False),
    ),
    Lexicon({}),
    "off",
)
