"""Read what a message says and carries, once, for the content rules: every text part in
its charset, HTML reduced to its text and links, and attachments judged by their bytes."""

from __future__ import annotations

import io
import re
import zipfile
from email.message import EmailMessage
from html.parser import HTMLParser
from typing import Any

import filetype
import nh3
from PIL import Image, UnidentifiedImageError

from gateway.core.content import (
    QUOTE_MARK,
    Attachment,
    ContentFacts,
    Hyperlink,
    ImageInfo,
    TextBlock,
)
from gateway.core.message import ParsedMessage
from gateway.obs.log import silenced
from gateway.pipeline.mime import content_charset, leaf_parts, read_text
from gateway.pipeline.parse import header_text

# Only image headers are read, never their pixels (counting a GIF's or APNG's frames reads
# their block headers only), so Pillow's guard against decompressing huge images is not
# needed; form.image_size judges their size instead.
Image.MAX_IMAGE_PIXELS = None
DOCUMENT_TEXT_MAX = 1_000_000  # characters read from one attachment: the rest is not judged
PDF_MAX_PAGES = 300
# Decompression bombs: no PDF stream is inflated past this (pypdf's own limits are 75 MB),
# and a .docx whose parts would unpack to more is not opened (the sizes its zip directory
# declares bound what zipfile inflates). Such an attachment is judged unreadable.
UNPACKED_MAX = 16_000_000
# pypdf's limits that bound what one stream may inflate to (pypdf.Configuration).
_PDF_LIMITS = (
    "maximum_declared_stream_length",
    "array_based_stream_maximum_output_length",
    "jbig2_maximum_output_length",
    "lzw_maximum_output_length",
    "run_length_maximum_output_length",
    "zlib_maximum_output_length",
    "brotli_maximum_output_length",
    "image_maximum_buffer_size",
)
_IMAGES = {"gif", "png", "jpg", "bmp", "tif"}


def read_content(parsed: ParsedMessage) -> ContentFacts:
    message = parsed.message
    subject = _header_text(message, "Subject")
    blocks: list[TextBlock] = [TextBlock("subject", subject)] if subject else []
    links: list[Hyperlink] = []
    attachments: list[Attachment] = []
    for part in leaf_parts(message):
        kind = part.get_content_type()
        if kind in ("text/plain", "text/html") and not _is_file(part):
            text = read_text(part)
            if kind == "text/html":
                html = read_html(text)
                blocks.append(TextBlock("html", html.text))
                links.extend(html.links)
            else:
                own, quoted = split_quoted(text)
                blocks.append(TextBlock("body", own, quoted))
            continue
        attachment, text, found = _attachment(part)
        attachments.append(attachment)
        links.extend(found)
        if text:
            blocks.append(TextBlock(f"attachment {attachment.filename!r}", text))
    return ContentFacts(
        subject=subject,
        sender_name=_display_name(message),
        blocks=tuple(blocks),
        links=tuple(links),
        attachments=tuple(attachments),
    )


def _is_file(part: EmailMessage) -> bool:
    return part.is_attachment() or part.get_filename() is not None


def _header_text(message: EmailMessage, name: str) -> str:
    try:
        value = message.get(name)
        return "" if value is None else header_text(str(value))
    except Exception:  # an undecodable header: the rules see nothing rather than fail
        return ""


def _display_name(message: EmailMessage) -> str:
    try:
        field = message.get("From")
        addresses = getattr(field, "addresses", ())
        return header_text(str(addresses[0].display_name)) if addresses else ""
    except Exception:
        return ""


_QUOTED_LINE = re.compile(r"^[ \t]*>")


def split_quoted(text: str) -> tuple[str, str]:
    """The sender's own lines, and the lines quoting an earlier message ("> ..."). Each run
    of quoted lines leaves one mark behind, so that the empty lines around it stay apart."""
    own: list[str] = []
    quoted: list[str] = []
    in_quote = False
    for line in text.splitlines():
        if _QUOTED_LINE.match(line):
            if not in_quote:
                own.append(QUOTE_MARK)
            quoted.append(line)
            in_quote = True
        else:
            own.append(line)
            in_quote = False
    return "\n".join(own), "\n".join(quoted)


# -- HTML -----------------------------------------------------------------------------

_BLOCK_TAGS = frozenset(
    [
        "p",
        "div",
        "br",
        "li",
        "tr",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "blockquote",
        "table",
        "ul",
        "ol",
        "hr",
        "pre",
        "dt",
        "dd",
        "section",
        "article",
        "header",
        "footer",
    ]
)


class HtmlText:
    def __init__(self, text: str, links: tuple[Hyperlink, ...]) -> None:
        self.text = text
        self.links = links


class _TextCollector(HTMLParser):
    """The text a reader sees, one line per block, and each link with its shown text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.links: list[Hyperlink] = []
        self._anchor: tuple[str, list[str]] | None = None

    def _line_end(self, always: bool) -> None:
        if always or (self.chunks and not self.chunks[-1].endswith("\n")):
            self.chunks.append("\n")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "br":
            self._line_end(always=True)
        elif tag in _BLOCK_TAGS:
            self._line_end(always=False)
        elif tag in ("td", "th"):
            self.chunks.append("\t")  # cells side by side, never run together
        if tag == "a" and values.get("href"):
            self._anchor = (values["href"], [])
        elif tag == "img" and values.get("src"):
            self.links.append(Hyperlink(values["src"], values.get("alt", ""), "img"))

    def handle_endtag(self, tag: str) -> None:
        if tag in _BLOCK_TAGS and tag != "br":
            # A block ends its line; one that held only a <br> (Gmail's empty line) is
            # one empty line, not two.
            self._line_end(always=False)
        if tag == "a" and self._anchor is not None:
            target, shown = self._anchor
            self.links.append(Hyperlink(target, "".join(shown).strip()))
            self._anchor = None

    def handle_data(self, data: str) -> None:
        self.chunks.append(data)
        if self._anchor is not None:
            self._anchor[1].append(data)


def read_html(html: str) -> HtmlText:
    """HTML reduced to its text: nh3 first drops what is never shown (script, style,
    comments), then the remaining markup is read for its lines and links."""
    cleaned = nh3.clean(
        html.encode("utf-8", "replace").decode("utf-8"),  # undecodable bytes: "?"
        tags=set(nh3.ALLOWED_TAGS),
        clean_content_tags={"script", "style", "title", "template", "noscript"},
        attributes={"a": {"href"}, "img": {"src", "alt"}},
        link_rel=None,
        url_schemes={"http", "https", "mailto", "tel", "cid", "ftp", "sms", "data"},
    )
    collector = _TextCollector()
    collector.feed(cleaned)
    collector.close()
    return HtmlText("".join(collector.chunks), tuple(collector.links))


# -- attachments ----------------------------------------------------------------------


def _payload(part: EmailMessage) -> bytes:
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def detect_kind(data: bytes) -> str:
    """What the bytes are, whatever the file is called: filetype's magic numbers, else
    "txt" for bytes that read as text, else "unknown"."""
    if data.startswith(_UTF16_BOMS):
        return "txt"  # "Unicode text" from Notepad or Excel: NUL bytes, but text
    guessed = str(filetype.guess_extension(data[:8192]) or "") if data else ""
    if guessed:
        return _SAME_KIND.get(guessed, guessed)
    return "txt" if looks_like_text(data) else "unknown"


_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
# filetype's names for kinds the policy names otherwise: an animated PNG is a PNG file.
_SAME_KIND = {"jpeg": "jpg", "tiff": "tif", "apng": "png"}


def looks_like_text(data: bytes) -> bool:
    sample = data[:8192]
    if b"\x00" in sample:
        return False
    try:
        sample.decode("utf-8")
        return True
    except UnicodeDecodeError as error:
        if error.start >= len(sample) - 3:  # a character cut by the sample's end
            return True
    # A legacy 8-bit or CJK charset: control characters other than layout mean binary.
    controls = sum(1 for byte in sample if byte < 32 and byte not in (9, 10, 12, 13, 27))
    return controls <= len(sample) // 100


def _attachment(part: EmailMessage) -> tuple[Attachment, str, tuple[Hyperlink, ...]]:
    """The attachment, the text it holds (for the content rules) and the links in it."""
    data = _payload(part)
    kind = detect_kind(data)
    filename = part.get_filename() or ""
    image: ImageInfo | None = None
    text = ""
    links: tuple[Hyperlink, ...] = ()
    unreadable = False
    try:
        if kind == "txt":
            text = _attached_text(part, data)
        elif kind == "pdf":
            text, links = _pdf_text(data)
        elif kind == "docx":
            text = _docx_text(data)
        elif part.get_content_maintype() == "image" or kind in _IMAGES:
            image = image_info(data)
            unreadable = image is None
    except Exception:  # a damaged document: judged by its type and size alone
        unreadable = True
    attachment = Attachment(
        filename=filename,
        declared_type=part.get_content_type(),
        detected=kind,
        size=len(data),
        image=image,
        unreadable=unreadable,
    )
    return attachment, text[:DOCUMENT_TEXT_MAX], links


def _attached_text(part: EmailMessage, data: bytes) -> str:
    if data.startswith(_UTF16_BOMS):
        return data.decode("utf-16", "replace")
    if content_charset(part):
        return read_text(part)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _pdf_text(data: bytes) -> tuple[str, tuple[Hyperlink, ...]]:
    # Imported on first use: a second of start-up otherwise.
    from pypdf import PdfReader, apply_configuration

    silenced("pypdf")  # it logs every oddity of a file; a damaged PDF is judged all the same
    limits: dict[str, Any] = dict.fromkeys(_PDF_LIMITS, UNPACKED_MAX)
    with apply_configuration(None, **limits):
        return _pdf_read(PdfReader(io.BytesIO(data)))


def _pdf_read(reader: Any) -> tuple[str, tuple[Hyperlink, ...]]:
    """The text of the first pages and the links of their annotations."""
    texts: list[str] = []
    links: list[Hyperlink] = []
    for page in reader.pages[:PDF_MAX_PAGES]:
        texts.append(page.extract_text() or "")
        for annotation in page.get("/Annots") or ():
            action = annotation.get_object().get("/A")
            uri = action.get_object().get("/URI") if action is not None else None
            if uri:
                links.append(Hyperlink(str(uri), "", "pdf"))
        if sum(map(len, texts)) > DOCUMENT_TEXT_MAX:
            break
    return "\n".join(texts), tuple(links)


def _docx_text(data: bytes) -> str:
    import docx  # python-docx, imported on first use like pypdf

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        unpacked = sum(member.file_size for member in archive.infolist())
    if unpacked > UNPACKED_MAX:
        raise ValueError(f"a .docx that unpacks to {unpacked} bytes")
    document = docx.Document(io.BytesIO(data))
    lines = [paragraph.text for paragraph in document.paragraphs]
    for table in document.tables:
        lines.extend(cell.text for row in table.rows for cell in row.cells)
    return "\n".join(lines)


def image_info(data: bytes) -> ImageInfo | None:
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            frames = int(getattr(image, "n_frames", 1))
            return ImageInfo(str(image.format), width, height, frames)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None
