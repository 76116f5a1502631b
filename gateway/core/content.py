"""What a message says and carries, read once from its MIME tree for the content rules."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.core.text import fold

QUOTE_MARK = "[...]"  # stands in a block's own text for each run of quoted lines


@dataclass(frozen=True, slots=True)
class TextBlock:
    """One piece of text a reader sees, and where it stands (for the refusal to point at)."""

    source: str  # "subject", "body", "html", "attachment 'price.pdf'"
    text: str  # decoded, as written
    quoted: str = ""  # the lines of it that quote an earlier message ("> ...")
    # The same, folded for matching (core.text.fold), computed once for every rule.
    folded: str = field(init=False, repr=False, compare=False)
    folded_quoted: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "folded", fold(self.text))
        object.__setattr__(self, "folded_quoted", fold(self.quoted))


@dataclass(frozen=True, slots=True)
class Hyperlink:
    """A link of an HTML part: its target and the text shown for it."""

    target: str
    shown: str
    kind: str = "a"  # "a" (href) or "img" (src)


@dataclass(frozen=True, slots=True)
class ImageInfo:
    format: str  # "GIF", "PNG", ...
    width: int
    height: int
    frames: int


@dataclass(frozen=True, slots=True)
class Attachment:
    """A part that is not the message's own text: a file, or an inline image."""

    filename: str
    declared_type: str  # the Content-Type the sender's client wrote
    detected: str  # what its bytes are: "pdf", "png", "exe", "txt", ... or "unknown"
    size: int  # decoded bytes
    image: ImageInfo | None = None
    unreadable: bool = False  # an image or document whose bytes could not be read


@dataclass(frozen=True, slots=True)
class ContentFacts:
    subject: str
    sender_name: str  # the From display name, decoded
    blocks: tuple[TextBlock, ...]  # the subject, text parts, HTML as text, attachments' text
    links: tuple[Hyperlink, ...]
    attachments: tuple[Attachment, ...]

    @property
    def body_blocks(self) -> tuple[TextBlock, ...]:
        """The text the sender wrote in the message itself (no subject, no attachments)."""
        return tuple(b for b in self.blocks if b.source in ("body", "html"))


EMPTY_CONTENT = ContentFacts("", "", (), (), ())
