"""The shared real-world corpus, and what the corpus tests need to read and compare it.

The files live outside the project (../shared/corpus/real, or $BSM_CORPUS) and are read in
place, byte for byte; nothing here writes them anywhere.
"""

from __future__ import annotations

import codecs
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import Message
from email.policy import compat32
from email.utils import getaddresses
from pathlib import Path

import pytest

from tests.support.databases import IN_CI

REPO_ROOT = Path(__file__).resolve().parents[2]

# The header-line test of the stdlib parser (email.feedparser.headerRE): the header block
# ends at the first line that is neither a field, a continuation, nor an mbox "From " line.
_HEADER_LINE = re.compile(rb"^(From |[\041-\071\073-\176]*:|[\t ])")
_FROM_FIELD = re.compile(rb"^from:", re.IGNORECASE)
_LINE = re.compile(rb"[^\n]*\n|[^\n]+$")
_BARE_LF = re.compile(rb"(?<!\r)\n")
# An addr-spec as it shows in header text (Received lines name addresses in free text).
ADDRESS = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")


def corpus_dir() -> Path:
    """$BSM_CORPUS, or ../shared/corpus/real next to the repository (may not exist)."""
    override = os.environ.get("BSM_CORPUS")
    if override:
        return Path(override)
    return REPO_ROOT.parent / "shared" / "corpus" / "real"


def corpus_files() -> list[str]:
    """The names of the corpus messages, sorted; [] when the folder is missing."""
    folder = corpus_dir()
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix == ".eml")


def require_corpus() -> None:
    """A test that needs the corpus and finds it missing: skipped, or failed in CI."""
    message = f"the real-world corpus is missing: no .eml files in {corpus_dir()}"
    if IN_CI:
        pytest.fail(message + " (it is required in CI; set BSM_CORPUS to its folder)")
    pytest.skip(message)


# Parameters of a test run once per corpus message: one that fails or skips without it.
MISSING = [pytest.param(None, id="corpus-missing")]


def _lines(raw: bytes) -> list[bytes]:
    return _LINE.findall(raw)


def header_block_length(raw: bytes) -> tuple[int, int]:
    """(number of lines, number of bytes) of the header block as the stdlib parser sees it;
    a leading mbox "From " line counts as part of it."""
    count = size = 0
    for line in _lines(raw):
        if not _HEADER_LINE.match(line):
            break
        count += 1
        size += len(line)
    return count, size


def replace_from(raw: bytes, address: str) -> bytes:
    """`raw` with every From field of its header block replaced by one `From: address`.

    The new field takes the place of the first From field (or, without one, goes first,
    after an mbox "From " line); every other byte is kept, line endings included.
    """
    lines = _lines(raw)
    count, _ = header_block_length(raw)
    eol = b"\r\n" if lines and lines[0].endswith(b"\r\n") else b"\n"
    new_field = b"From: " + address.encode("ascii") + eol
    out: list[bytes] = []
    inserted = False
    in_from = False
    for index, line in enumerate(lines):
        if index < count:
            if _FROM_FIELD.match(line):
                in_from = True
                if not inserted:
                    out.append(new_field)
                    inserted = True
                continue
            if in_from and line[:1] in (b" ", b"\t"):
                continue  # a continuation line of a removed From field
            in_from = False
        out.append(line)
    if not inserted:
        position = 1 if lines and lines[0].startswith(b"From ") and count else 0
        out.insert(position, new_field)
    return b"".join(out)


def to_wire(raw: bytes) -> bytes:
    """The message as an SMTP client puts it on the wire: lines end in CRLF (RFC 5321
    2.3.8). smtplib sends bytes unchanged, so a file stored with LF endings is converted
    here, as every MTA and submission client does; nothing else changes."""
    return _BARE_LF.sub(b"\r\n", raw)


def parse(raw: bytes) -> Message:
    """compat32: the most lenient reading, it never raises on malformed headers."""
    return message_from_bytes(raw, policy=compat32)


def header_text(value: object) -> str:
    """A header value as a client shows it: RFC 2047 words decoded where they can be."""
    text = str(value)
    try:
        return str(make_header(decode_header(text)))
    except Exception:  # undecodable encoded words, unknown charsets: the raw text it is
        return text


def addresses_in(values: Iterable[object]) -> set[str]:
    """Every addr-spec in these header values, lowercased (parsed and found in free text)."""
    found: set[str] = set()
    texts = [header_text(v) for v in values]
    for text in texts:
        found.update(m.group(0).lower().strip(".") for m in ADDRESS.finditer(text))
    try:
        parsed = getaddresses(texts)
    except Exception:
        parsed = []
    for _name, spec in parsed:
        spec = spec.strip().lower()
        local, at, domain = spec.rpartition("@")
        if at and local and "." in domain and not re.search(r"\s", spec):
            found.add(spec)
    return found


def header_addresses(message: Message, names: Iterable[str]) -> set[str]:
    values: list[object] = []
    for name in names:
        values.extend(message.get_all(name, []))
    return addresses_in(values)


@dataclass(frozen=True)
class Leaf:
    """One node of a MIME tree, in walk() order."""

    content_type: str
    is_multipart: bool
    payload: bytes | None  # decoded body of a leaf; None for containers
    charset: str | None
    is_attachment: bool

    def text(self) -> str:
        """The decoded text of a text leaf, read the way the gateway reads it."""
        data = self.payload or b""
        return data.decode(_codec(self.charset), errors="surrogateescape")


def _codec(charset: str | None) -> str:
    try:
        return codecs.lookup(charset or "us-ascii").name
    except LookupError:
        return "latin-1"


def mime_tree(message: Message) -> list[Leaf]:
    """The message's MIME tree, flattened in walk() order.

    Parse both sides in wire form (see to_wire) so that line breaks compare equal. When a
    leaf cannot be decoded (get_payload(decode=True) raising or giving no bytes, which
    compat32 rarely does) its undecoded text stands in for it, so it is still compared
    byte for byte; a container the parser could not split has its raw text as payload."""
    leaves = []
    for part in message.walk():
        multipart = part.is_multipart()
        payload: bytes | None = None
        if not multipart:
            try:
                decoded = part.get_payload(decode=True)
            except Exception:
                decoded = None
            if isinstance(decoded, bytes):
                payload = decoded
            else:
                undecoded = part.get_payload()
                if isinstance(undecoded, str):
                    payload = undecoded.encode("utf-8", "surrogateescape")
        disposition = str(part.get("Content-Disposition", "")).split(";")[0].strip().lower()
        leaves.append(
            Leaf(
                # A malformed Content-Type comes back raw, folding included.
                content_type=" ".join(part.get_content_type().split()),
                is_multipart=multipart,
                payload=payload,
                charset=part.get_content_charset(),
                is_attachment=disposition == "attachment",
            )
        )
    return leaves


def iter_headers(message: Message) -> Iterator[tuple[str, str]]:
    """The top-level header fields, decoded."""
    for name, value in message.items():
        yield name, header_text(value)
