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


# Labels that mail clients write for what is in fact their superset, read as the WHATWG
# Encoding Standard (and so every browser) reads them: a part labelled gb2312 often holds
# GBK's characters, one labelled iso-8859-1 Windows' quotes and dashes. A superset decodes
# the labelled charset's own bytes to the same characters, and encodes them back the same.
SUPERSETS = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "euc_kr": "cp949",
    "shift_jis": "cp932",
    "big5": "big5hkscs",
    "iso8859-1": "cp1252",
    "iso8859-9": "cp1254",
    "tis-620": "cp874",
}


def text_codec(label: str | None) -> str | None:
    """The codec that reads a charset label: its superset where mail uses one; None for a
    label Python does not know."""
    try:
        codec = codecs.lookup(label or "us-ascii").name
    except LookupError:
        return None
    return SUPERSETS.get(codec, codec)


def decoded_text(part: EmailMessage) -> tuple[str, str]:
    """The part's text and the codec that reads it losslessly: its declared charset (or the
    superset mail means by it; stray bytes kept as surrogates); UTF-8 where the label is
    unknown and the bytes are UTF-8; else latin-1 (one byte, one character)."""
    payload = _payload(part)
    codec = text_codec(content_charset(part))
    candidates = (codec,) if codec is not None else ("utf-8",)
    for candidate in candidates:
        try:
            errors = "surrogateescape" if codec is not None else "strict"
            return payload.decode(candidate, errors=errors), candidate
        except (LookupError, UnicodeDecodeError):
            pass
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
