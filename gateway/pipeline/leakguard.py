"""The leak guard: the sending party's real addresses never reach the other side.

First its addresses in inline text parts are replaced by its alias (signatures, quoted
"On ... wrote:" lines); then the final message is searched, decoded every way a client
would show it, and any address left (in a header, an attachment) refuses the message.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Iterator, Sequence
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from urllib.parse import unquote

from gateway.pipeline.mime import (
    content_charset,
    decoded_text,
    leaf_parts,
    part_label,
    text_codec,
)


class LeakFound(Exception):
    def __init__(self, places: list[str]) -> None:
        super().__init__(", ".join(places))
        self.places = places


# In ASCII text, what the pattern's boundaries refuse next to an address.
_WORD = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")
_BEFORE = _WORD | frozenset(".+-")
_AFTER = _WORD | frozenset("-")


class LeakGuard:
    def __init__(self, addresses: Iterable[str], alias: str) -> None:
        self.addresses = tuple(sorted({a.lower() for a in addresses if a}))
        self.alias = alias
        self._ascii = all(a.isascii() for a in self.addresses)
        self._pattern = (
            re.compile(
                "|".join(rf"(?<![\w.+-]){re.escape(a)}(?![\w-])" for a in self.addresses),
                re.IGNORECASE,
            )
            if self.addresses
            else None
        )

    def scrub_text(self, text: str) -> str:
        if self._pattern is None or "@" not in text:
            return text  # every address has its "@", which no case folding makes
        if self._ascii and text.isascii():
            return self._scrub_ascii(text)
        return self._pattern.sub(self.alias, text)

    def _scrub_ascii(self, text: str) -> str:
        """`scrub_text` for ASCII text, where IGNORECASE compares lower cases and a word
        character is [A-Za-z0-9_]: the addresses are found by str.find, not tried at every
        position by the pattern."""
        lowered = text.lower()
        spans = []
        for address in self.addresses:
            start = lowered.find(address)
            while start >= 0:
                end = start + len(address)
                before = lowered[start - 1] if start else " "
                after = lowered[end] if end < len(lowered) else " "
                if before not in _BEFORE and after not in _AFTER:
                    spans.append((start, end))
                start = lowered.find(address, start + 1)
        if not spans:
            return text
        pieces, last = [], 0
        for start, end in sorted(spans):
            if start >= last:  # overlapping finds: the pattern takes the leftmost
                pieces += [text[last:start], self.alias]
                last = end
        return "".join([*pieces, text[last:]])

    def find(
        self,
        message: EmailMessage,
        content: bytes,
        top: Sequence[tuple[str, str]] | None = None,
    ) -> list[str]:
        """Where an address is still visible in the final message (empty: nothing leaks).
        `top`: the message's own header fields, where `message` is the tree as received
        and `content` that body under a new header section."""
        if not self.addresses:
            return []
        headers = _headers(message, "") if top is None else _below_top(message, top)
        places = self._in_headers(headers)
        for part in leaf_parts(message):
            payload = part.get_payload(decode=True)
            if not isinstance(payload, bytes):
                continue
            text = _shown_text(part, payload) if part.get_content_maintype() == "text" else ""
            markup = part.get_content_type() == "text/html"
            if self._in_bytes(payload) or self._in_text(text, markup):
                places.append(part_label(part))
        if not places and self._in_bytes(content):
            places.append("message source")
        return list(dict.fromkeys(places))

    def find_single_part(
        self,
        top: Sequence[tuple[str, str]],
        label: str,
        payload: bytes,
        text: str,
        content: bytes,
        markup: bool = False,
    ) -> list[str]:
        """`find` for a message of one part, given its header fields and its body, as
        bytes and as text (HTML: `markup`)."""
        if not self.addresses:
            return []
        places = self._in_headers((f"header {name}", value) for name, value in top)
        if self._in_bytes(payload) or self._in_text(text, markup):
            places.append(label)
        if not places and self._in_bytes(content):
            places.append("message source")
        return places

    def _in_headers(self, headers: Iterable[tuple[str, str]]) -> list[str]:
        return [where for where, value in headers if self._in_text(_decoded_header(value))]

    def _in_text(self, text: str, markup: bool = False) -> bool:
        """In `text`; in HTML (`markup`) also as a browser shows it: character references
        read (&#64; and &#64 alike) and links' percent-escapes undone."""
        lowered = text.lower()
        if any(a in lowered for a in self.addresses):
            return True
        if markup and ("&" in text or "%" in text):
            shown = unquote(html.unescape(text)).lower()
            return any(a in shown for a in self.addresses)
        return False

    def _in_bytes(self, data: bytes) -> bool:
        lowered = data.lower()
        return any(
            encoded in lowered
            for a in self.addresses
            for encoded in (
                a.encode("utf-8", "replace"),
                a.encode("utf-16-le", "replace"),
                a.encode("utf-16-be", "replace"),
            )
        )


_ESCAPED = re.compile("[\udc80-\udcff]")  # bytes decoded_text kept, not read


def _shown_text(part: EmailMessage, payload: bytes) -> str:
    """A text part as a client shows it: in its charset, and where its bytes do not all
    read in it (an odd byte after UTF-16, say), what does read, as a client skips the rest."""
    text, used = decoded_text(part)
    codec = text_codec(content_charset(part))
    if codec is None or (used == codec and _ESCAPED.search(text) is None):
        return text
    try:
        return text + "\n" + payload.decode(codec, errors="replace")
    except LookupError:
        return text


def _below_top(message: Message, top: Sequence[tuple[str, str]]) -> Iterator[tuple[str, str]]:
    """`top`, then the headers of the parts below the message's own."""
    for name, value in top:
        yield f"header {name}", value
    if message.is_multipart():
        inside = " of an attached message" if message.get_content_type() == "message/rfc822" else ""
        for sub in message.get_payload():
            if isinstance(sub, Message):
                yield from _headers(sub, inside)


def _headers(part: Message, inside: str) -> Iterator[tuple[str, str]]:
    """Every header of the tree with where it stands, e.g. 'header To of an attached
    message', so that a refusal points at the place the sender can find."""
    for name, value in part.raw_items():
        yield f"header {name}{inside}", str(value)
    if part.is_multipart():
        if part.get_content_type() == "message/rfc822":
            inside = " of an attached message"
        for sub in part.get_payload():
            if isinstance(sub, Message):
                yield from _headers(sub, inside)


def _decoded_header(value: str) -> str:
    try:
        return str(make_header(decode_header(value)))
    except Exception:  # undecodable encoded words: the raw text is what a client shows
        return value
