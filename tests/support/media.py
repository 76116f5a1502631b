"""Small files for the content tests, made in memory: images, documents, messages."""

from __future__ import annotations

import io
import zipfile
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import docx
from PIL import Image
from pypdf import PdfReader, PdfWriter
from pypdf.annotations import Link

from gateway.pipeline.parse import parse_message

POLICY_CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "policy"

# The start of a Windows executable: "MZ", a DOS header, and where the PE header is.
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(44) + b"PE\x00\x00"


def png(width: int = 4, height: int = 3, frames: int = 1) -> bytes:
    """A PNG; with `frames`, an animated one (APNG)."""
    images = [Image.new("RGB", (width, height), (200, i * 60 % 256, 0)) for i in range(frames)]
    out = io.BytesIO()
    images[0].save(out, "PNG", save_all=frames > 1, append_images=images[1:])
    return out.getvalue()


def jpeg(width: int = 4, height: int = 3) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), "blue").save(out, "JPEG")
    return out.getvalue()


def gif(frames: int = 1, width: int = 5, height: int = 4) -> bytes:
    """A GIF of `frames` frames, each another colour (Pillow drops repeated frames)."""
    images = [Image.new("RGB", (width, height), (i * 60 % 256, 0, 200)) for i in range(frames)]
    out = io.BytesIO()
    images[0].save(out, "GIF", save_all=True, append_images=images[1:], duration=100, loop=0)
    return out.getvalue()


def with_screen_size(gif_bytes: bytes, width: int, height: int) -> bytes:
    """The GIF with another logical screen size: a huge image without huge pixel data."""
    size = width.to_bytes(2, "little") + height.to_bytes(2, "little")
    return gif_bytes[:6] + size + gif_bytes[10:]


def docx_file(*paragraphs: str, cells: tuple[str, ...] = ()) -> bytes:
    document = docx.Document()
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    if cells:
        table = document.add_table(rows=1, cols=len(cells))
        for cell, text in zip(table.rows[0].cells, cells, strict=True):
            cell.text = text
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def zip_file() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("readme.txt", "hello")
    return out.getvalue()


def corpus_pdf(name: str) -> bytes:
    """The PDF attached to tests/corpus/policy/<name>."""
    parsed = parse_message((POLICY_CORPUS / name).read_bytes())
    for part in parsed.message.walk():
        if part.get_content_type() == "application/pdf":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload
    raise LookupError(f"no PDF in {name}")


def pdf_with_link(pdf: bytes, url: str) -> bytes:
    """The PDF with a clickable link (a /URI annotation) on its first page."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    writer.add_annotation(0, Link(rect=(50, 50, 200, 70), url=url))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def message(
    body: str = "",
    *,
    subject: str = "About your order",
    sender: str = "Sarah <sarah@shop.example>",
    html: str | None = None,
    charset: str = "utf-8",
    cte: str | None = None,
) -> EmailMessage:
    """A message with a plain-text body and, with `html`, an HTML alternative."""
    built = EmailMessage()
    built["From"] = sender
    built["To"] = "buyer@alias.invalid"
    built["Subject"] = subject
    built.set_content(body, charset=charset, cte=cte)
    if html is not None:
        built.add_alternative(html, subtype="html", charset=charset, cte=cte)
    return built


def attach(built: EmailMessage, data: bytes | str, filename: str, mime: str = "") -> None:
    """Add a file; `mime` ("image/png") is what the sender's client declares."""
    if isinstance(data, str):
        built.add_attachment(data, filename=filename)
        return
    maintype, _, subtype = (mime or "application/octet-stream").partition("/")
    built.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)


def as_bytes(built: EmailMessage) -> bytes:
    return built.as_bytes(policy=SMTP)
