"""The one parse entry point: bytes as received -> ParsedMessage."""

from __future__ import annotations

import re
from email import policy as email_policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import EmailPolicy

from gateway.core.message import ParsedMessage

# CRLF on output; headers taken from the source are written back exactly as they came.
SMTP_POLICY: EmailPolicy[EmailMessage] = email_policy.SMTP.clone(refold_source="none")

_MSG_ID = re.compile(r"<[^<>\s]+>")


class MessageFormatError(ValueError):
    """Bytes that cannot be read as a message at all."""


def parse_message(raw: bytes) -> ParsedMessage:
    try:
        message = BytesParser(_class=EmailMessage, policy=SMTP_POLICY).parsebytes(raw)
    except Exception as error:  # the parser is lenient; anything raised here is unusable
        raise MessageFormatError(f"unparseable message: {type(error).__name__}") from None
    from_values = _raw_values(message, "From")
    return ParsedMessage(
        raw=raw,
        message=message,
        from_count=len(from_values),
        from_addresses=tuple(a for value in from_values for a in _addr_specs(value)),
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
    """The values of a header field as text: raw 8-bit bytes (UTF-8 in practice, RFC 6532)
    arrive as surrogate escapes, which no database or encoder accepts."""
    wanted = name.lower()
    return [
        str(value).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        for key, value in message.raw_items()
        if key.lower() == wanted
    ]


def _addr_specs(raw_value: str) -> list[str]:
    """The addr-specs of an address header's raw value; [] where it cannot be read."""
    try:
        header = SMTP_POLICY.header_factory("from", raw_value)
        return [a.addr_spec for a in header.addresses if a.addr_spec]
    except Exception:  # a header so broken the parser gives up names no usable address
        return []


def _ids(values: list[str]) -> tuple[str, ...]:
    found = [m for value in values for m in _MSG_ID.findall(value)]
    return tuple(dict.fromkeys(found))


def _first_id(values: list[str]) -> str | None:
    ids = _ids(values)
    return ids[0] if ids else None
