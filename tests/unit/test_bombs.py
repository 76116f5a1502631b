"""Decompression bombs in attachments are bounded: a PDF whose content stream inflates to
200 MB, a .docx whose document unpacks to 200 MB, a zip of the same, an image that declares
40,000 x 40,000 pixels: each is judged (unreadable, or by its header) within a few tens of
megabytes, nothing inflated past the cap."""

from __future__ import annotations

import io
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable

import pytest

from gateway.core.content import ContentFacts
from gateway.pipeline.content import UNPACKED_MAX, image_info, read_content
from gateway.pipeline.parse import parse_message
from tests.support.media import as_bytes, attach, docx_file, message

BOMB = 200_000_000
PEAK_BUDGET = 64_000_000  # bytes the reading may allocate at its peak (Python's allocations)


def _inflating(size: int) -> bytes:
    """zlib data that inflates to `size` zero bytes, made a megabyte at a time."""
    compressor = zlib.compressobj(9)
    chunk = b"\0" * 1_000_000
    out = [compressor.compress(chunk) for _ in range(size // len(chunk))]
    return b"".join([*out, compressor.flush()])


def _pdf_bomb() -> bytes:
    stream = _inflating(BOMB)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
        b"<< /Length "
        + str(len(stream)).encode()
        + b" /Filter /FlateDecode >>\nstream\n"
        + stream
        + b"\nendstream",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return out.getvalue()


def _zip_bomb(name: str, base: bytes | None = None) -> bytes:
    """A zip (a real .docx if `base` is one) with `name` unpacking to BOMB zero bytes."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        if base is not None:
            with zipfile.ZipFile(io.BytesIO(base)) as original:
                for member in original.infolist():
                    if member.filename != name:
                        archive.writestr(member, original.read(member))
        with archive.open(name, "w", force_zip64=True) as inside:
            chunk = b"\0" * 1_000_000
            for _ in range(BOMB // len(chunk)):
                inside.write(chunk)
    return out.getvalue()


def _png_declaring(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def _read_attached(data: bytes, filename: str, mime: str) -> ContentFacts:
    built = message("See the attached file.")
    attach(built, data, filename, mime)
    return read_content(parse_message(as_bytes(built)))


def _peak(work: Callable[[], object]) -> tuple[object, int]:
    tracemalloc.start()
    try:
        result = work()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


@pytest.fixture(scope="module")
def bombs() -> dict[str, tuple[bytes, str, str]]:
    return {
        "pdf": (_pdf_bomb(), "invoice.pdf", "application/pdf"),
        "docx": (
            _zip_bomb("word/document.xml", docx_file("hello")),
            "letter.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
        "zip": (_zip_bomb("zeros.txt"), "zeros.zip", "application/zip"),
    }


@pytest.mark.parametrize("kind", ["pdf", "docx", "zip"])
def test_an_attached_bomb_is_judged_without_inflating_it(
    bombs: dict[str, tuple[bytes, str, str]], kind: str
) -> None:
    data, filename, mime = bombs[kind]
    assert len(data) < 2_000_000  # a small attachment...
    facts, peak = _peak(lambda: _read_attached(data, filename, mime))
    assert isinstance(facts, ContentFacts)
    [attachment] = facts.attachments
    assert peak < PEAK_BUDGET, f"{peak / 1e6:.0f} MB allocated reading a {kind} bomb"
    if kind == "docx":  # not opened; a PDF is read up to the cap; a zip is never unpacked
        assert attachment.unreadable
    assert UNPACKED_MAX < BOMB


def test_an_image_declaring_huge_dimensions_is_measured_by_its_header() -> None:
    info, peak = _peak(lambda: image_info(_png_declaring(40_000, 40_000)))
    assert info is not None and (info.width, info.height) == (40_000, 40_000)
    assert peak < PEAK_BUDGET
