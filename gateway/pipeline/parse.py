"""The one parse entry point: bytes as received -> ParsedMessage."""

from __future__ import annotations

import re
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import EmailPolicy
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from gateway.core.message import ParsedMessage

if TYPE_CHECKING:
    _Policy = EmailPolicy[EmailMessage]
else:
    _Policy = EmailPolicy  # generic only to type checkers


class _ParsedHeaders(_Policy):
    """The stdlib's modern policy parses a header field anew each time it is read (a part's
    Content-Type is read by every step that walks the tree). A field's parsed form depends
    only on its name and text: each distinct one is parsed once while it is in use. The
    cache holds the fields of the messages being read now, not of every message: a parsed
    field, with the class the stdlib makes for it, takes about 8 KB."""

    def header_fetch_parse(self, name: str, value: str) -> Any:
        if hasattr(value, "name"):
            return value
        return _parsed_header(self, name.lower(), value)


@lru_cache(maxsize=512)
def _parsed_header(policy: EmailPolicy[EmailMessage], name: str, value: str) -> Any:
    return EmailPolicy.header_fetch_parse(policy, name, value)


# CRLF on output; headers taken from the source are written back exactly as they came.
SMTP_POLICY: EmailPolicy[EmailMessage] = _ParsedHeaders(linesep="\r\n", refold_source="none")

# At most 998 characters with its brackets (RFC 5322 2.1.1): a longer one is no id (and
# would not fit the archive's column).
_MSG_ID = re.compile(r"<[^<>\s]{1,996}>")


_STRAY_LINE_END = re.compile(rb"\r(?!\n)|(?<!\r)\n")


class MessageFormatError(ValueError):
    """Bytes that cannot be read as a message at all."""


class MimeTooDeep(MessageFormatError):
    """MIME parts nested deeper than the gateway reads."""


def canonical_line_ends(raw: bytes) -> bytes:
    """Every bare CR and bare LF as CRLF (RFC 5322 2.3). Done before anything is stored or
    sent: a bare line end is how a hidden second message is smuggled past one server and
    split off by the next ('\n.\n' read as the end of data)."""
    crlf = raw.count(b"\r\n")
    if raw.count(b"\n") == crlf and raw.count(b"\r") == crlf:  # counting is quicker than a search
        return raw
    return _STRAY_LINE_END.sub(b"\r\n", raw)


def mime_depth(message: EmailMessage) -> int:
    """How deeply parts are nested (a single-part message: 1)."""
    deepest, stack = 0, [(message, 1)]
    while stack:
        part, depth = stack.pop()
        deepest = max(deepest, depth)
        payload = part.get_payload()
        if isinstance(payload, list):
            stack.extend((sub, depth + 1) for sub in payload if isinstance(sub, EmailMessage))
    return deepest


def parse_tree(raw: bytes) -> EmailMessage:
    """The MIME tree of `raw`, and nothing else read from it."""
    try:
        return BytesParser(_class=EmailMessage, policy=SMTP_POLICY).parsebytes(raw)
    except Exception as error:  # the parser is lenient; anything raised here is unusable
        raise MessageFormatError(f"unparseable message: {type(error).__name__}") from None


def parse_message(raw: bytes, max_depth: int | None = None) -> ParsedMessage:
    message = parse_tree(raw)
    if max_depth is not None and mime_depth(message) > max_depth:
        raise MimeTooDeep(f"MIME parts nested deeper than {max_depth}")
    from_values = _raw_values(message, "From")
    from_fields = [_address_field(value) for value in from_values]
    return ParsedMessage(
        raw=raw,
        message=message,
        from_count=len(from_values),
        from_addresses=tuple(a for addresses, _ in from_fields for a in addresses),
        from_ambiguous=any(defective for _, defective in from_fields),
        message_id=_first_id(_raw_values(message, "Message-ID")),
        in_reply_to=_ids(_raw_values(message, "In-Reply-To")),
        references=_ids(_raw_values(message, "References")),
        self_addresses=tuple(
            a
            for name in ("Sender", "Reply-To", "Return-Path")
            for value in _raw_values(message, name)
            for a in _addr_specs(value)
        ),
    )


def _raw_values(message: EmailMessage, name: str) -> list[str]:
    """The values of a header field, as text (header_text)."""
    wanted = name.lower()
    return [header_text(str(value)) for key, value in message.raw_items() if key.lower() == wanted]


def header_text(value: str) -> str:
    """A header value as text: raw 8-bit bytes (UTF-8 in practice, RFC 6532) arrive from the
    parser as surrogate escapes, which no database, encoder or matcher accepts."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _address_field(raw_value: str) -> tuple[list[str], bool]:
    """The addr-specs of an address field, and whether the parser had to guess (defects:
    'alice@example.org)<bob@example.org>' is read as alice by some and bob by others)."""
    try:
        header = SMTP_POLICY.header_fetch_parse("From", raw_value)  # parsed once per value
        addresses = [a.addr_spec for a in header.addresses if a.addr_spec]
        return addresses, bool(header.defects)
    except Exception:  # a field so broken the parser gives up names no usable address
        return [], True


def _addr_specs(raw_value: str) -> list[str]:
    return _address_field(raw_value)[0]


def _ids(values: list[str]) -> tuple[str, ...]:
    found = [m for value in values for m in _MSG_ID.findall(value)]
    return tuple(dict.fromkeys(found))


def _first_id(values: list[str]) -> str | None:
    ids = _ids(values)
    return ids[0] if ids else None
