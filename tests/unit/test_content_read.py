"""Reading what a message says and carries (gateway.pipeline.content): text in any charset
and transfer encoding, encoded headers, HTML as text and links, attachments by their bytes."""

from __future__ import annotations

import base64

import pytest

from gateway.core.content import ContentFacts, Hyperlink, ImageInfo, TextBlock
from gateway.pipeline.content import (
    detect_kind,
    image_info,
    read_content,
    read_html,
    split_quoted,
)
from gateway.pipeline.parse import parse_message
from tests.support.media import (
    EXE,
    POLICY_CORPUS,
    as_bytes,
    attach,
    corpus_pdf,
    docx_file,
    gif,
    jpeg,
    message,
    pdf_with_link,
    png,
    with_screen_size,
    zip_file,
)

INVOICE_PDF = "007-en-clean-invoice-pdf.eml"
WARRANTY_PDF = "028-en-link-inside-pdf.eml"


def _read(raw: bytes) -> ContentFacts:
    return read_content(parse_message(raw))


def _block(facts: ContentFacts, source: str) -> TextBlock:
    (found,) = [block for block in facts.blocks if block.source == source]
    return found


def _with_file(data: bytes | str, filename: str, mime: str = "") -> ContentFacts:
    built = message("See the attached file.")
    attach(built, data, filename, mime)
    return _read(as_bytes(built))


# -- text parts ------------------------------------------------------------------------

TEXTS = {
    "gb2312": "请加我的微信 谢谢",
    "gbk": "請加微信 镕 谢谢",
    "big5": "請加我的微信 謝謝",
    "iso-2022-jp": "ご注文ありがとうございます",
    "shift_jis": "ご注文ありがとうございます。ｶﾀｶﾅ",
    "koi8-r": "Спасибо за заказ",
    "windows-1251": "Спасибо за заказ, ёлка",
    "utf-8": "Grüße aus Köln 😀",
}


@pytest.mark.parametrize("cte", ["quoted-printable", "base64", "8bit"])
@pytest.mark.parametrize("charset", sorted(TEXTS))
def test_text_part_is_read_in_its_charset(charset: str, cte: str) -> None:
    raw = as_bytes(message(TEXTS[charset], charset=charset, cte=cte))
    assert f'charset="{charset}"'.encode() in raw
    assert f"Content-Transfer-Encoding: {cte}".encode() in raw
    body = _block(_read(raw), "body")
    assert body.text == TEXTS[charset]
    assert body.quoted == ""


def test_iso_2022_jp_in_7bit_is_read() -> None:
    raw = as_bytes(message(TEXTS["iso-2022-jp"], charset="iso-2022-jp", cte="7bit"))
    assert _block(_read(raw), "body").text == TEXTS["iso-2022-jp"]


@pytest.mark.parametrize("charset", ["windows-1251", "shift_jis", "big5"])
@pytest.mark.parametrize("cte", ["quoted-printable", "base64"])
def test_html_part_is_read_in_its_charset(charset: str, cte: str) -> None:
    text = TEXTS[charset]
    raw = as_bytes(message("plain", html=f"<p>{text}</p>", charset=charset, cte=cte))
    facts = _read(raw)
    assert _block(facts, "body").text == "plain"
    assert _block(facts, "html").text.strip() == text


def test_raw_8bit_text_without_a_known_charset_does_not_fail() -> None:
    raw = (
        b"From: a@shop.example\r\nSubject: s\r\nContent-Type: text/plain; charset=x-unknown\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\ncaf\xe9 \xff\r\n"
    )
    assert _block(_read(raw), "body").text == "caf\xe9 \xff"  # read byte for byte


def _part(charset: str, body: bytes, cte: str = "8bit") -> bytes:
    return (
        b"From: a@shop.example\r\nSubject: s\r\n"
        + f"Content-Type: text/plain; charset={charset}\r\n".encode()
        + f"Content-Transfer-Encoding: {cte}\r\n\r\n".encode()
        + body
    )


def test_a_part_labelled_gb2312_holding_gbk_characters_is_read_as_gb18030() -> None:
    text = "加我微信 丂丄 谢谢"  # 丂丄: in GBK, not in GB2312
    raw = _part("gb2312", text.encode("gbk") + b"\r\n")
    assert _block(_read(raw), "body").text == text


def test_latin1_labels_are_read_as_windows_1252_as_browsers_do() -> None:
    raw = _part("iso-8859-1", "\u201cCall me\u201d \u2013 caf\xe9".encode("cp1252") + b"\r\n")
    assert _block(_read(raw), "body").text == "\u201cCall me\u201d \u2013 caf\xe9"


def test_an_unknown_label_on_utf8_bytes_is_read_as_utf8() -> None:
    raw = _part("x-mac-unknown", "微信 café".encode() + b"\r\n")
    assert _block(_read(raw), "body").text == "微信 café"


def test_broken_base64_gives_the_rules_what_decodes_and_does_not_fail() -> None:
    good = base64.b64encode(b"add me on wechat").decode()
    raw = _part("utf-8", f"{good[:12]}!!not base64!!{good[12:]}=\r\n".encode(), "base64")
    facts = _read(raw)
    assert "add me" in _block(facts, "body").text


# -- headers -----------------------------------------------------------------------------

ENCODED_WORDS = [
    ("=?utf-8?b?5aW954mp5LyY6YCJ?=", "好物优选"),
    ("=?gb2312?b?usPO79PF0aE=?=", "好物优选"),
    ("=?big5?b?pm6qq8B1v+8=?=", "好物優選"),
    ("=?iso-2022-jp?b?GyRCOzNFRD4mRTkbKEI=?=", "山田商店"),
    ("=?shift_jis?b?g1aDh4Nig3Y=?=", "ショップ"),
    ("=?koi8-r?b?7cHHwdrJziDp18HOz9fB?=", "Магазин Иванова"),
    ("=?windows-1251?b?zODj4Ofo7Q==?=", "Магазин"),
    ("=?utf-8?q?Gr=C3=BC=C3=9Fe?= aus =?iso-8859-1?q?K=F6ln?=", "Grüße aus Köln"),
]


@pytest.mark.parametrize(("encoded", "decoded"), ENCODED_WORDS)
def test_encoded_subject_is_decoded(encoded: str, decoded: str) -> None:
    facts = _read(f"From: a@shop.example\r\nSubject: {encoded}\r\n\r\nbody\r\n".encode())
    assert facts.subject == decoded
    assert facts.blocks[0] == TextBlock("subject", decoded)


@pytest.mark.parametrize(("encoded", "decoded"), ENCODED_WORDS)
def test_encoded_from_display_name_is_decoded(encoded: str, decoded: str) -> None:
    facts = _read(f"From: {encoded} <a@shop.example>\r\nSubject: s\r\n\r\nbody\r\n".encode())
    assert facts.sender_name == decoded


def test_raw_utf8_subject_is_decoded() -> None:
    facts = _read("From: a@shop.example\r\nSubject: 好物 セール\r\n\r\nx\r\n".encode())
    assert facts.subject == "好物 セール"


def test_raw_utf8_display_name_is_decoded() -> None:
    facts = _read("From: 好物优选 <a@shop.example>\r\nSubject: s\r\n\r\nx\r\n".encode())
    assert facts.sender_name == "好物优选"


def test_display_name_as_written_and_none() -> None:
    named = _read(b'From: "BestDeals.com Store" <a@shop.example>\r\n\r\nx\r\n')
    assert named.sender_name == "BestDeals.com Store"
    assert _read(b"From: a@shop.example\r\n\r\nx\r\n").sender_name == ""


def test_no_subject_gives_no_subject_block() -> None:
    facts = _read(b"From: a@shop.example\r\n\r\nhello\r\n")
    assert facts.subject == ""
    assert [block.source for block in facts.blocks] == ["body"]


@pytest.mark.parametrize(
    "headers",
    [
        b"From: <<<broken\r\nSubject: =?x-unknown?q?=FF=FE?=\r\n",
        b"From: =?utf-8?b?!!!?= <a@shop.example>\r\nSubject: =?utf-8?b?###?=\r\n",
        b"From: \xff\xfe <a@shop.example>\r\nSubject: \xe4\xbd\xa0\xff\r\n",
    ],
)
def test_damaged_headers_do_not_fail(headers: bytes) -> None:
    facts = _read(headers + b"\r\nhello\r\n")
    assert isinstance(facts.subject, str)
    assert isinstance(facts.sender_name, str)
    assert facts.body_blocks == (TextBlock("body", "hello"),)


# -- quoted lines --------------------------------------------------------------------------


def test_quoted_lines_are_split_out() -> None:
    body = "Yes, it ships today.\n\n> When will it ship?\n  > indented quote\n>no space\nSarah"
    block = _block(_read(as_bytes(message(body))), "body")
    assert block.text == "Yes, it ships today.\n\n[...]\nSarah"  # one mark per quoted run
    assert block.quoted == "> When will it ship?\n  > indented quote\n>no space"
    assert block.folded_quoted == "> when will it ship?\n > indented quote\n>no space"


@pytest.mark.parametrize(
    ("text", "own", "quoted"),
    [
        ("", "", ""),
        ("a\r\nb", "a\nb", ""),
        ("> only quoted", "[...]", "> only quoted"),
        ("x > y is not a quote", "x > y is not a quote", ""),
        ("\t> tab before", "[...]", "\t> tab before"),
    ],
)
def test_split_quoted(text: str, own: str, quoted: str) -> None:
    assert split_quoted(text) == (own, quoted)


# -- HTML ------------------------------------------------------------------------------------


def test_html_script_style_and_comments_are_dropped() -> None:
    html = read_html(
        "<html><head><style>p { color: red }</style>"
        "<script>var secret = 'call 555';</script></head>"
        "<body><!-- hidden comment --><p>Shown</p><noscript></noscript></body></html>"
    )
    assert "secret" not in html.text
    assert "color" not in html.text
    assert "hidden comment" not in html.text
    assert html.text.strip() == "Shown"


def test_html_block_tags_give_line_breaks() -> None:
    html = read_html(
        "<h1>Title</h1><p>First</p><div>Second<br>Third</div>"
        "<ul><li>one</li><li>two</li></ul><blockquote>quoted</blockquote>inline <b>bold</b>"
    )
    lines = [line for line in html.text.split("\n") if line]
    assert lines == ["Title", "First", "Second", "Third", "one", "two", "quoted", "inline bold"]


def test_html_entities_are_decoded() -> None:
    assert read_html("<p>caf&eacute; &amp; &lt;tag&gt; &#x1F600;</p>").text.strip() == (
        "café & <tag> 😀"
    )


def test_html_links_with_their_shown_text_and_images() -> None:
    html = read_html(
        '<p>See <a href="https://shop.example/item?a=1&amp;b=2">our <b>shop</b></a> '
        '<img src="https://img.example/logo.png" alt="logo"> <img src="cid:part1">'
        '<a href="mailto:sarah@shop.example">write</a> <a href="tel:+14155552671">call</a>'
        "<a>no target</a> <a href=\"javascript:alert('x')\">script</a></p>"
    )
    assert html.links == (
        Hyperlink("https://shop.example/item?a=1&b=2", "our shop"),
        Hyperlink("https://img.example/logo.png", "logo", "img"),
        Hyperlink("cid:part1", "", "img"),
        Hyperlink("mailto:sarah@shop.example", "write"),
        Hyperlink("tel:+14155552671", "call"),
    )
    assert "our shop" in html.text
    assert "script" in html.text  # a javascript: link loses its target, keeps its text


def test_html_part_gives_an_html_block_and_links() -> None:
    built = message(
        "Track it at https://www.ups.com/track",
        html='<p>Track it <a href="https://www.ups.com/track">here</a></p>',
    )
    facts = _read(as_bytes(built))
    assert [block.source for block in facts.blocks] == ["subject", "body", "html"]
    assert _block(facts, "html").text.strip() == "Track it here"
    assert facts.links == (Hyperlink("https://www.ups.com/track", "here"),)


def test_html_table_cells_are_kept_apart() -> None:
    text = read_html("<table><tr><td>Phone</td><td>4155552671</td></tr></table>").text
    assert "Phone4155552671" not in text
    assert text.split() == ["Phone", "4155552671"]


# -- attachments: kinds ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (png(), "png"),
        (gif(), "gif"),
        (jpeg(), "jpg"),
        (corpus_pdf(INVOICE_PDF), "pdf"),
        (docx_file("Hello"), "docx"),
        (zip_file(), "zip"),
        (EXE, "exe"),
        (b"plain words\nand lines\n", "txt"),
        ("Привет, ёлка".encode("windows-1251"), "txt"),
        ("ご注文ありがとうございます".encode("shift_jis"), "txt"),
        ("好物优选".encode("gb2312"), "txt"),
        (bytes(range(256)) * 4, "unknown"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_detect_kind_by_bytes(data: bytes, kind: str) -> None:
    assert detect_kind(data) == kind


def test_utf8_text_cut_inside_a_character_is_still_text() -> None:
    data = ("é" * 5000).encode()[:8191]  # the sample ends in the middle of "é"
    assert detect_kind(data) == "txt"


# -- attachments: what is read ----------------------------------------------------------------


def test_text_attachment_is_read_as_text() -> None:
    facts = _with_file("Packing list\n2 x mug\n", "packing-list.txt")
    (attachment,) = facts.attachments
    assert (attachment.filename, attachment.declared_type) == ("packing-list.txt", "text/plain")
    assert (attachment.detected, attachment.unreadable, attachment.image) == ("txt", False, None)
    assert attachment.size == len(b"Packing list\r\n2 x mug\r\n")  # sent with CRLF
    text = _block(facts, "attachment 'packing-list.txt'").text
    assert text.splitlines() == ["Packing list", "2 x mug"]
    assert _block(facts, "body").text == "See the attached file."


def test_text_attachment_in_its_own_charset() -> None:
    built = message("See the list.")
    built.add_attachment("ご注文の明細", filename="list.txt", charset="shift_jis", cte="base64")
    facts = _read(as_bytes(built))
    assert _block(facts, "attachment 'list.txt'").text.strip() == "ご注文の明細"


def test_text_attachment_without_charset_falls_back_to_latin1() -> None:
    facts = _with_file(b"caf\xe9 menu\n", "menu.txt", "application/octet-stream")
    assert _block(facts, "attachment 'menu.txt'").text == "café menu\n"


def test_png_attachment_is_measured() -> None:
    (attachment,) = _with_file(png(40, 30), "shot.png", "image/png").attachments
    assert attachment.detected == "png"
    assert attachment.image == ImageInfo("PNG", 40, 30, 1)
    assert attachment.unreadable is False


@pytest.mark.parametrize("frames", [1, 2, 5])
def test_gif_frames_are_counted(frames: int) -> None:
    (attachment,) = _with_file(gif(frames, 12, 7), "anim.gif", "image/gif").attachments
    assert attachment.image == ImageInfo("GIF", 12, 7, frames)


def test_image_declared_as_octet_stream_is_still_measured() -> None:
    (attachment,) = _with_file(jpeg(9, 8), "scan", "application/octet-stream").attachments
    assert (attachment.detected, attachment.image) == ("jpg", ImageInfo("JPEG", 9, 8, 1))


def test_docx_text_is_extracted() -> None:
    data = docx_file("Dear buyer,", "Your mug ships Monday.", cells=("Item", "Mug"))
    facts = _with_file(data, "letter.docx", "application/octet-stream")
    (attachment,) = facts.attachments
    assert (attachment.detected, attachment.unreadable) == ("docx", False)
    text = _block(facts, "attachment 'letter.docx'").text
    assert text.splitlines() == ["Dear buyer,", "Your mug ships Monday.", "Item", "Mug"]


def test_pdf_text_is_extracted() -> None:
    facts = _with_file(corpus_pdf(INVOICE_PDF), "invoice.pdf", "application/pdf")
    (attachment,) = facts.attachments
    assert (attachment.detected, attachment.unreadable) == ("pdf", False)
    text = _block(facts, "attachment 'invoice.pdf'").text
    assert "Invoice INV-2024-0315" in text
    assert facts.links == ()


def test_url_written_in_a_pdf_is_in_its_text() -> None:
    """The corpus PDF writes its URL as text (it has no link annotation): the rules find it
    in the attachment's text block, not in `links`."""
    facts = _read((POLICY_CORPUS / WARRANTY_PDF).read_bytes())
    text = _block(facts, "attachment 'warranty-card.pdf'").text
    assert "www.northwind-outdoor-store.com/warranty" in text


def test_link_annotation_in_a_pdf_is_a_link() -> None:
    data = pdf_with_link(corpus_pdf(WARRANTY_PDF), "https://register.evil-example.net/w")
    facts = _with_file(data, "warranty.pdf", "application/pdf")
    assert facts.links == (Hyperlink("https://register.evil-example.net/w", "", "pdf"),)
    assert "Warranty card" in _block(facts, "attachment 'warranty.pdf'").text


@pytest.mark.parametrize("cut", [10, 300, 600, 900])
def test_truncated_pdf_does_not_fail(cut: int) -> None:
    data = corpus_pdf(INVOICE_PDF)[:cut]
    facts = _with_file(data, "broken.pdf", "application/pdf")
    (attachment,) = facts.attachments
    assert (attachment.detected, attachment.size, attachment.unreadable) == ("pdf", cut, True)
    assert [block.source for block in facts.blocks] == ["subject", "body"]


def test_pdf_of_garbage_does_not_fail() -> None:
    facts = _with_file(b"%PDF-1.7\n" + bytes(range(256)) * 8, "junk.pdf", "application/pdf")
    assert [(a.detected, a.unreadable) for a in facts.attachments] == [("pdf", True)]


def test_damaged_docx_and_image_are_unreadable() -> None:
    built = message("Files")
    document = docx_file("x")
    attach(built, document[: len(document) // 2], "letter.docx", "application/octet-stream")
    attach(built, png()[:20], "shot.png", "image/png")
    facts = _read(as_bytes(built))
    assert [(a.detected, a.unreadable, a.image) for a in facts.attachments] == [
        ("docx", True, None),
        ("png", True, None),
    ]
    assert [block.source for block in facts.blocks] == ["subject", "body"]


def test_html_with_undecodable_bytes_does_not_fail() -> None:
    raw = (
        b"From: a@shop.example\r\nSubject: s\r\nContent-Type: text/html; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n<p>caf\xe9 <a href='https://x.example/'>go</a></p>\r\n"
    )
    facts = _read(raw)
    assert _block(facts, "html").text.startswith("caf")
    assert facts.links == (Hyperlink("https://x.example/", "go"),)


@pytest.mark.parametrize("name", ["setup.exe", "photo.jpg", "notes.txt", ""])
def test_executable_is_exe_whatever_its_name(name: str) -> None:
    built = message("File")
    attach(built, EXE, name, "image/jpeg")
    (attachment,) = _read(as_bytes(built)).attachments
    assert attachment.detected == "exe"
    assert attachment.filename == name
    assert attachment.declared_type == "image/jpeg"


def test_zip_named_jpg_is_zip() -> None:
    (attachment,) = _with_file(zip_file(), "photo.jpg", "image/jpeg").attachments
    assert attachment.detected == "zip"
    assert attachment.image is None
    assert attachment.unreadable is True  # declared an image, not one


def test_every_attachment_is_listed_in_order() -> None:
    built = message("Everything")
    attach(built, "list\n", "list.txt")
    attach(built, png(), "a.png", "image/png")
    attach(built, gif(3), "b.gif", "image/gif")
    attach(built, corpus_pdf(INVOICE_PDF), "c.pdf", "application/pdf")
    attach(built, EXE, "d.jpg", "image/jpeg")
    facts = _read(as_bytes(built))
    assert [(a.filename, a.detected) for a in facts.attachments] == [
        ("list.txt", "txt"),
        ("a.png", "png"),
        ("b.gif", "gif"),
        ("c.pdf", "pdf"),
        ("d.jpg", "exe"),
    ]
    assert [b.source for b in facts.blocks] == [
        "subject",
        "body",
        "attachment 'list.txt'",
        "attachment 'c.pdf'",
    ]


# -- image_info ------------------------------------------------------------------------------


def test_image_info() -> None:
    assert image_info(png(3, 2)) == ImageInfo("PNG", 3, 2, 1)
    assert image_info(jpeg(5, 6)) == ImageInfo("JPEG", 5, 6, 1)
    assert image_info(gif(4, 2, 2)) == ImageInfo("GIF", 2, 2, 4)
    assert image_info(b"not an image") is None
    assert image_info(png()[:30]) is None
    assert image_info(b"") is None


def test_image_info_reads_the_size_of_a_huge_image_from_its_header() -> None:
    huge = with_screen_size(gif(2, 1, 1), 20000, 30000)
    info = image_info(huge)
    assert info is not None
    assert (info.format, info.width, info.height) == ("GIF", 20000, 30000)
