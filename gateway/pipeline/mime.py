"""Reading and writing the text of MIME parts without losing a byte of the rest."""

from __future__ import annotations

import base64
import codecs
import quopri
from collections.abc import Iterator
from email.message import EmailMessage


def leaf_parts(message: EmailMessage) -> Iterator[EmailMessage]:
    for part in message.walk():
        if not part.is_multipart():
            yield part


def part_label(part: EmailMessage) -> str:
    filename = part.get_filename()
    kind = "attachment" if part.is_attachment() or filename else "part"
    return f"{kind} {filename!r}" if filename else f"{kind} {part.get_content_type()}"


def _payload(part: EmailMessage) -> bytes:
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def content_charset(part: EmailMessage) -> str | None:
    """The charset parameter of the part's Content-Type, lower case; None if it has none.
    Read from the parsed field (parsed once per distinct field), where Message's own
    get_content_charset parses the parameters again on every call."""
    field = part.get("Content-Type")
    params = getattr(field, "params", None)
    if params is None:
        return part.get_content_charset()
    charset = params.get("charset")
    return str(charset).lower() if charset else None


def decoded_text(part: EmailMessage) -> tuple[str, str]:
    """The part's text and the codec that reads it losslessly: its declared charset (stray
    bytes kept as surrogates), or latin-1 (one byte, one character) where the label is
    unknown or the bytes cannot be read in it at all."""
    payload = _payload(part)
    try:
        codec = codecs.lookup(content_charset(part) or "us-ascii").name
        return payload.decode(codec, errors="surrogateescape"), codec
    except (LookupError, UnicodeDecodeError):
        return payload.decode("latin-1"), "latin-1"


def read_text(part: EmailMessage) -> str:
    return decoded_text(part)[0]


def write_text(part: EmailMessage, text: str, codec: str | None = None) -> None:
    """Replace a part's text, keeping its headers, charset and transfer encoding. `codec`:
    the one decoded_text read it with (found again if not given)."""
    charset = codec or decoded_text(part)[1]
    try:
        data = text.encode(charset, errors="surrogateescape")
    except UnicodeEncodeError:
        data = text.encode("utf-8", errors="surrogateescape")
        part.set_param("charset", "utf-8")
    encoding = str(part.get("Content-Transfer-Encoding", "7bit")).strip().lower()
    if encoding == "base64":
        part.set_payload(base64.encodebytes(data).decode("ascii"))
    elif encoding == "quoted-printable":
        part.set_payload(quopri.encodestring(data).decode("ascii"))
    elif data.isascii() or encoding in {"8bit", "binary"}:
        part.set_payload(data.decode("ascii", errors="surrogateescape"))
    else:
        del part["Content-Transfer-Encoding"]
        part["Content-Transfer-Encoding"] = "quoted-printable"
        part.set_payload(quopri.encodestring(data).decode("ascii"))
