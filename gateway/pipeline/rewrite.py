"""Build the message the other party receives: new headers, the sender's body, no leaks."""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.errors import MissingHeaderBodySeparatorDefect
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Any

from gateway.core.message import ParsedMessage
from gateway.core.model import Conversation
from gateway.pipeline.leakguard import LeakFound, LeakGuard
from gateway.pipeline.mime import decoded_text, leaf_parts, part_label, write_text
from gateway.pipeline.parse import SMTP_POLICY, canonical_line_ends, parse_tree
from gateway.pipeline.sanitize import HtmlCleaning, sanitize_html, unwrap_plain
from gateway.pipeline.threading import map_references

# Headers that describe the body, and so travel with it.
_BODY_HEADERS = (
    "Content-Type",
    "Content-Transfer-Encoding",
    "Content-Disposition",
    "Content-Language",
)


_HEADER_END = re.compile(rb"\r?\n\r?\n")


def leak_guard(parsed: ParsedMessage, conversation: Conversation) -> LeakGuard:
    """Every real address the sender is known by, or revealed in the message's headers."""
    alias_domain = conversation.sender.alias.rpartition("@")[2]
    candidates = (
        *conversation.sender.registered,
        *parsed.from_addresses,
        *parsed.self_addresses,
    )
    addresses = [a for a in candidates if a.rpartition("@")[2].lower() != alias_domain]
    return LeakGuard(addresses, conversation.sender.alias)


def rewrite(
    parsed: ParsedMessage,
    conversation: Conversation,
    gateway_id: str,
    now: datetime,
    html: HtmlCleaning | None = None,
) -> bytes:
    """The delivered message, or LeakFound if a real address of the sender would remain.
    With `html`, HTML parts are sanitised and their plain-text alternatives kept in step."""
    guard = leak_guard(parsed, conversation)
    single = _single_part_scrubbed(parsed, guard, html)
    if single is not None:
        head = _header_block(parsed, conversation, gateway_id, now, guard, None)
        content = head.block + single.body
        label = part_label(parsed.message)
        markup = parsed.message.get_content_type() == "text/html"
        places = guard.find_single_part(
            head.fields, label, single.body, single.text, content, markup
        )
        if places:
            raise LeakFound(places)
        return content
    body, written = _body(parsed, guard, html)
    head = _header_block(parsed, conversation, gateway_id, now, guard, written)
    content = head.block + body
    if written is None or not written.is_multipart():
        # The body is the one received, byte for byte, or the one part written again: the
        # tree in hand is the one the recipient's client reads, under the new header
        # section (one part has no structure to lose).
        places = guard.find(written or parsed.message, content, head.fields)
    else:
        # Judge what the recipient's client will read: the final bytes, parsed again.
        final = parse_tree(content)
        places = guard.find(final, content)
        if not places and _shape(final) != _shape(parsed.message):
            raise MimeChanged("the MIME structure did not survive rewriting the message's text")
    if places:
        raise LeakFound(places)
    return content


class MimeChanged(Exception):
    """Writing a changed text part back regenerated the tree into another shape (the
    stdlib's generator and some damaged or unusual containers): nothing is sent rather
    than something other than what the sender wrote."""


def _shape(message: EmailMessage) -> list[str]:
    return [part.get_content_type() for part in message.walk()]


@dataclass(frozen=True, slots=True)
class HeaderBlock:
    block: bytes  # the header section, with the empty line that ends it
    fields: list[tuple[str, str]]  # (name, value as written) for the leak guard


class _Writer:
    """Writes header fields as bytes. What the sender wrote is copied as it came; what the
    gateway writes is plain ASCII in nearly every message and is written as it is, and goes
    through the stdlib's folding only when it is not."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.fields: list[tuple[str, str]] = []

    def put(self, name: str, value: str) -> None:
        if value.isascii() and value.isprintable() and len(name) + len(value) < _LINE:
            self.lines.append(f"{name}: {value}\r\n".encode("ascii"))
        else:
            _, stored = SMTP_POLICY.header_store_parse(name, value)
            self.lines.append(SMTP_POLICY.fold_binary(name, stored))
        self.fields.append((name, value))

    def copy(self, name: str, value: Any) -> None:
        self.lines.append(SMTP_POLICY.fold_binary(name, value))
        self.fields.append((name, str(value)))

    def folded(self, name: str, words: Sequence[str]) -> None:
        """Words (Message-IDs) on lines of at most 78 characters where they fit."""
        lines, line = [], f"{name}:"
        for word in words:
            if len(line) + 1 + len(word) > _LINE and line != f"{name}:":
                lines.append(line)
                line = ""
            line += " " + word
        lines.append(line)
        self.lines.append(("\r\n".join(lines) + "\r\n").encode("ascii", "replace"))
        self.fields.append((name, " ".join(words)))


_LINE = 78  # RFC 5322 2.1.1: lines SHOULD be no longer


def _header_block(
    parsed: ParsedMessage,
    conversation: Conversation,
    gateway_id: str,
    now: datetime,
    guard: LeakGuard,
    written: EmailMessage | None,
) -> HeaderBlock:
    """New headers: the sender's alias, the recipient, ids in the recipient's view, and the
    few headers the sender wrote that describe its message (Subject, Date, Content-*; those
    of the body as written again when a single-part body changed its charset or encoding)."""
    source = _fields(parsed.message)
    body_source = _fields(written) if written is not None else source
    head = _Writer()
    sender = conversation.sender
    if sender.display_name.isascii():
        head.put("From", formataddr((sender.display_name, sender.alias)))
    else:
        head.put("From", str(Address(display_name=sender.display_name, addr_spec=sender.alias)))
    head.put("To", conversation.recipient.delivery_address)
    if "subject" in source:
        subject = str(SMTP_POLICY.header_fetch_parse("Subject", source["subject"]))
        scrubbed = guard.scrub_text(subject)
        if scrubbed == subject:
            head.copy("Subject", source["subject"])
        else:
            head.put("Subject", scrubbed)
    if "date" in source:
        head.copy("Date", source["date"])
    else:
        head.put("Date", format_datetime(now))
    head.put("Message-ID", gateway_id)
    in_reply_to = map_references(parsed.in_reply_to, conversation.thread, sender.side)
    references = map_references(parsed.references, conversation.thread, sender.side)
    if in_reply_to:
        head.put("In-Reply-To", in_reply_to[0])
    if references or in_reply_to:
        head.folded("References", list(dict.fromkeys((*references, *in_reply_to[:1]))))
    head.put("MIME-Version", "1.0")
    for name in _BODY_HEADERS:
        if name.lower() in body_source:
            head.copy(name, body_source[name.lower()])
    return HeaderBlock(b"".join(head.lines) + b"\r\n", head.fields)


def _fields(message: EmailMessage) -> dict[str, Any]:
    """Header values by lower-case name; the first of repeated fields."""
    return {name.lower(): value for name, value in reversed(list(message.raw_items()))}


@dataclass(frozen=True, slots=True)
class _ScrubbedBody:
    body: bytes  # as it goes out
    text: str  # as the recipient reads it


_UNENCODED = ("7bit", "8bit", "binary")


def _single_part_scrubbed(
    parsed: ParsedMessage, guard: LeakGuard, html: HtmlCleaning | None
) -> _ScrubbedBody | None:
    """The commonest change, a sender's address in a plain-text message of one part (its
    signature), made on the text and written back as bytes: the same bytes the stdlib
    would write, without copying and regenerating the message. None: not that case."""
    message = parsed.message
    if message.is_multipart() or message.get_content_type() != "text/plain":
        return None
    if message.is_attachment() or (html is not None and html.unwrap):
        return None
    encoding = str(message.get("Content-Transfer-Encoding", "7bit")).strip().lower()
    received = _received_body(parsed)
    if encoding not in _UNENCODED or received is None:
        return None
    text, codec = decoded_text(message)
    new = guard.scrub_text(text)
    if new == text:
        return None  # nothing to change: the body goes as received
    try:
        data = new.encode(codec, errors="surrogateescape")
    except UnicodeEncodeError:
        return None  # the stdlib would change the charset
    if not data.isascii() and encoding == "7bit":
        return None  # the stdlib would change the transfer encoding
    return _ScrubbedBody(canonical_line_ends(data), new)


def _body(
    parsed: ParsedMessage, guard: LeakGuard, html: HtmlCleaning | None
) -> tuple[bytes, EmailMessage | None]:
    """The body as received, byte for byte, unless a text part must change: HTML to
    sanitise, or an address for the leak guard to replace. Then also the message written
    again, whose body headers describe the new bytes."""
    changes = _text_changes(parsed.message, guard, html)
    if not changes:
        received = _received_body(parsed)
        if received is not None:
            return received, None
    message = copy.deepcopy(parsed.message)
    for position, part in enumerate(leaf_parts(message)):
        if position in changes:
            write_text(part, *changes[position])
    generated = message.as_bytes(policy=SMTP_POLICY)
    return generated[generated.index(b"\r\n\r\n") + 4 :], message


def _text_changes(
    message: EmailMessage, guard: LeakGuard, html: HtmlCleaning | None
) -> dict[int, tuple[str, str]]:
    """The new text (and the codec it was read with) of each inline text part that
    changes, by position in leaf_parts."""
    changes = {}
    for position, part in enumerate(leaf_parts(message)):
        if part.get_content_maintype() != "text" or part.is_attachment():
            continue
        text, codec = decoded_text(part)
        new = text
        if html is not None and part.get_content_subtype() == "html":
            new = sanitize_html(new, html)
        elif html is not None and html.unwrap and part.get_content_subtype() == "plain":
            new = unwrap_plain(new, html)
        new = guard.scrub_text(new)
        if new != text:
            changes[position] = (new, codec)
    return changes


def _received_body(parsed: ParsedMessage) -> bytes | None:
    """The received bytes after the empty line that ends the header section, with CRLF
    line ends; None where the parser found no such line (it then guessed the boundary)."""
    if any(isinstance(d, MissingHeaderBodySeparatorDefect) for d in parsed.message.defects):
        return None
    raw = parsed.raw
    end = raw.find(b"\r\n\r\n")  # the received bytes have CRLF line ends already
    if end >= 0:
        return canonical_line_ends(raw[end + 4 :])
    match = _HEADER_END.search(raw)
    if match is None:
        return b""
    return canonical_line_ends(raw[match.end() :])
