"""Delivered HTML sanitised against the policy's allow-list (gateway.pipeline.sanitize), and
the rewrite that writes it back into the message in the part's own charset and encoding."""

from __future__ import annotations

import email
from email.message import EmailMessage
from email.policy import default

import pytest

from gateway.core.model import Conversation
from gateway.pipeline.content import read_content
from gateway.pipeline.parse import parse_message
from gateway.pipeline.rewrite import rewrite
from gateway.pipeline.sanitize import LINK_REMOVED, HtmlCleaning, sanitize_html, unwrap_plain
from tests.support.media import as_bytes, message
from tests.support.parties import BUYER, NOW, SELLER

CLEANING = HtmlCleaning(
    tags=frozenset({"a", "b", "br", "div", "i", "img", "li", "p", "span", "table", "td", "tr"}),
    attributes={
        "*": frozenset({"title", "lang"}),
        "a": frozenset({"href"}),
        "img": frozenset({"src", "alt", "width"}),
    },
    remove_with_content=frozenset({"script", "style", "head", "title", "iframe", "noscript"}),
    url_schemes=frozenset({"http", "https", "mailto", "cid"}),
)
EVIL = "https://evil-example.net/shop"
UNWRAP = CLEANING.with_unwrapped(frozenset({EVIL}))


# -- sanitize_html -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("html", "clean"),
    [
        ("<center>kept <i>text</i></center>", "kept <i>text</i>"),
        ("<font color=red>red</font> <u>under</u>", "red under"),
        ("<section><h1>Title</h1><p>para</p></section>", "Title<p>para</p>"),
        ("<form><p>in a form</p></form>", "<p>in a form</p>"),  # not on remove_with_content
        ("<custom-tag>x</custom-tag>", "x"),
    ],
)
def test_tag_not_on_the_list_is_removed_and_its_text_kept(html: str, clean: str) -> None:
    assert sanitize_html(html, CLEANING) == clean


@pytest.mark.parametrize(
    "html",
    [
        "<p>a</p><script>alert('call 555')</script>",
        "<p>a</p><style>p { display: none }</style>",
        "<p>a</p><SCRIPT type='text/javascript'>x()</SCRIPT>",
        "<p>a</p><iframe src='https://evil-example.net'>fallback</iframe>",
        "<p>a</p><noscript>enable js</noscript>",
        "<p>a</p><title>hidden</title>",
        "<p>a</p><!-- a comment -->",
    ],
)
def test_script_style_and_the_like_are_removed_with_their_content(html: str) -> None:
    assert sanitize_html(html, CLEANING) == "<p>a</p>"


def test_whole_document_keeps_only_the_body() -> None:
    html = "<html><head><title>T</title><style>p{}</style></head><body><p>Hello</p></body></html>"
    assert sanitize_html(html, CLEANING) == "<p>Hello</p>"


def test_a_tag_both_allowed_and_removed_with_content_is_allowed() -> None:
    cleaning = HtmlCleaning(
        frozenset({"p", "title"}), {}, frozenset({"script", "title"}), frozenset({"https"})
    )
    assert sanitize_html("<title>T</title><p>x</p>", cleaning) == "<title>T</title><p>x</p>"


def test_only_listed_attributes_stay() -> None:
    html = (
        '<p title="t" lang="ja" style="color:red" onclick="steal()" class="c">x</p>'
        '<img src="cid:logo" alt="logo" width="10" height="20" onerror="x()">'
    )
    assert sanitize_html(html, CLEANING) == (
        '<p title="t" lang="ja">x</p><img src="cid:logo" alt="logo" width="10">'
    )


@pytest.mark.parametrize(
    ("html", "clean"),
    [
        ('<a href="javascript:alert(1)">js</a>', "<a>js</a>"),
        ('<a href="vbscript:x">vb</a>', "<a>vb</a>"),
        ('<img src="data:image/png;base64,AAAA">', "<img>"),
        ('<a href="tel:+14155552671">call</a>', "<a>call</a>"),
        ('<a href="mailto:a@shop.example">m</a>', '<a href="mailto:a@shop.example">m</a>'),
        ('<img src="cid:part1">', '<img src="cid:part1">'),
        ('<a href="https://www.ups.com/">ups</a>', '<a href="https://www.ups.com/">ups</a>'),
    ],
)
def test_url_schemes_not_listed_are_dropped(html: str, clean: str) -> None:
    assert sanitize_html(html, CLEANING) == clean


def test_unwrapped_href_is_removed_and_its_text_kept() -> None:
    html = (
        f'<p>See <a href="{EVIL}">our <b>shop</b></a> or '
        '<a href="https://www.ups.com/track">track it</a>.</p>'
    )
    assert sanitize_html(html, UNWRAP) == (
        '<p>See <a>our <b>shop</b></a> or <a href="https://www.ups.com/track">track it</a>.</p>'
    )
    assert sanitize_html(html, CLEANING) == html  # without unwrapping, the link stays


@pytest.mark.parametrize(
    "href",
    [
        f" {EVIL} ",  # spaces around the target
        EVIL.replace("/shop", "&#47;shop"),  # an entity: the same target once read
    ],
)
def test_unwrap_matches_the_target_as_read(href: str) -> None:
    assert sanitize_html(f'<a href="{href}">x</a>', UNWRAP) == "<a>x</a>"


def test_unwrap_matches_a_query_with_an_escaped_ampersand() -> None:
    target = "https://evil-example.net/?a=1&b=2"
    html = '<a href="https://evil-example.net/?a=1&amp;b=2">x</a>'
    assert sanitize_html(html, CLEANING.with_unwrapped(frozenset({target}))) == "<a>x</a>"


def test_with_unwrapped_leaves_the_original_alone() -> None:
    assert CLEANING.unwrap == frozenset()
    assert UNWRAP.unwrap == frozenset({EVIL})
    assert (UNWRAP.tags, UNWRAP.attributes, UNWRAP.url_schemes) == (
        CLEANING.tags,
        CLEANING.attributes,
        CLEANING.url_schemes,
    )


def test_undecodable_bytes_cross_the_sanitiser_unchanged() -> None:
    # pipeline.mime keeps bytes a charset cannot read as surrogate escapes
    assert sanitize_html("<p>caf\udce9 \udcff</p><script>x</script>", CLEANING) == (
        "<p>caf\udce9 \udcff</p>"
    )


def test_text_is_escaped_not_interpreted() -> None:
    assert sanitize_html("<p>1 &lt; 2 &amp; 日本 &nbsp;</p>", CLEANING) == (
        "<p>1 &lt; 2 &amp; 日本 &nbsp;</p>"
    )


# -- unwrap_plain ------------------------------------------------------------------------


def test_plain_text_loses_the_same_links() -> None:
    text = f"See our shop: {EVIL}\nTrack it: https://www.ups.com/track\n{EVIL}"
    assert unwrap_plain(text, UNWRAP) == (
        f"See our shop: {LINK_REMOVED}\nTrack it: https://www.ups.com/track\n{LINK_REMOVED}"
    )


def test_longer_targets_are_replaced_first() -> None:
    cleaning = CLEANING.with_unwrapped(
        frozenset({"https://evil-example.net", "https://evil-example.net/shop/item"})
    )
    text = "a https://evil-example.net/shop/item b https://evil-example.net c"
    assert unwrap_plain(text, cleaning) == f"a {LINK_REMOVED} b {LINK_REMOVED} c"


def test_nothing_to_unwrap_leaves_plain_text_alone() -> None:
    assert unwrap_plain(f"See {EVIL}", CLEANING) == f"See {EVIL}"


# -- the rewrite -------------------------------------------------------------------------


def _deliver(built: EmailMessage | bytes, cleaning: HtmlCleaning | None = UNWRAP) -> bytes:
    raw = built if isinstance(built, bytes) else as_bytes(built)
    return rewrite(parse_message(raw), Conversation(1, 1, SELLER, BUYER), "<g@x>", NOW, cleaning)


def _parts(delivered: bytes) -> dict[str, EmailMessage]:
    parsed = email.message_from_bytes(delivered, policy=default)
    assert isinstance(parsed, EmailMessage)
    leaves = [p for p in parsed.walk() if not p.is_multipart()]
    assert all(isinstance(p, EmailMessage) for p in leaves)
    return {p.get_content_type(): p for p in leaves}  # type: ignore[misc]


def _body(raw: bytes) -> bytes:
    return raw[raw.index(b"\r\n\r\n") + 4 :]


JA_HTML = (
    '<p>ご注文ありがとうございます。<font color="red">赤</font>の商品は'
    f'<a href="{EVIL}">こちら</a>、配送は<a href="https://www.ups.com/track">追跡</a>。</p>'
    "<script>alert('秘密')</script><style>p {{}}</style>"
)
JA_PLAIN = (
    f"ご注文ありがとうございます。赤の商品はこちら {EVIL} 、配送は https://www.ups.com/track 。"
)


def test_shift_jis_quoted_printable_html_keeps_its_charset_and_encoding() -> None:
    built = message(JA_PLAIN, html=JA_HTML, charset="shift_jis", cte="quoted-printable")
    delivered = _deliver(built)
    assert delivered.isascii()
    parts = _parts(delivered)
    html, plain = parts["text/html"], parts["text/plain"]
    for part in (html, plain):
        assert part.get_content_charset() == "shift_jis"
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
    assert html.get_content().rstrip() == (
        "<p>ご注文ありがとうございます。赤の商品は<a>こちら</a>、配送は"
        '<a href="https://www.ups.com/track">追跡</a>。</p>'
    )
    assert plain.get_content().rstrip() == (
        f"ご注文ありがとうございます。赤の商品はこちら {LINK_REMOVED} 、配送は "
        "https://www.ups.com/track 。"
    )


@pytest.mark.parametrize(
    ("charset", "cte"), [("shift_jis", "quoted-printable"), ("utf-8", "base64")]
)
def test_single_part_html_keeps_its_charset_and_encoding(charset: str, cte: str) -> None:
    built = EmailMessage()
    built["From"] = "owner@shop.example"
    built["Subject"] = "s"
    built.set_content(JA_HTML, subtype="html", charset=charset, cte=cte)
    delivered = _deliver(built)
    html = _parts(delivered)["text/html"]
    assert html.get_content_charset() == charset
    assert html["Content-Transfer-Encoding"] == cte
    assert "<a>こちら</a>" in html.get_content()
    assert "script" not in html.get_content()


def test_delivered_message_reads_without_the_unwrapped_link() -> None:
    built = message(JA_PLAIN, html=JA_HTML, charset="shift_jis", cte="quoted-printable")
    facts = read_content(parse_message(_deliver(built)))
    assert [link.target for link in facts.links] == ["https://www.ups.com/track"]
    assert all(EVIL not in block.text for block in facts.blocks)
    assert all("秘密" not in block.text for block in facts.blocks)


@pytest.mark.parametrize(
    ("charset", "cte", "text"),
    [
        ("utf-8", "base64", "Lieferung ✓"),
        ("utf-8", "quoted-printable", "Lieferung ✓"),
        ("utf-8", "8bit", "Lieferung ✓"),
        ("iso-2022-jp", "7bit", "配送"),
        ("gb2312", "base64", "配送"),
        ("big5", "quoted-printable", "配送"),
        ("windows-1251", "quoted-printable", "Доставка"),
        ("koi8-r", "8bit", "Доставка"),
    ],
)
def test_sanitised_html_keeps_charset_and_encoding(charset: str, cte: str, text: str) -> None:
    html = f"<p>{text}</p><script>x()</script>"
    delivered = _deliver(message(text, html=html, charset=charset, cte=cte))
    html_part = _parts(delivered)["text/html"]
    assert html_part.get_content_charset() == charset
    assert html_part["Content-Transfer-Encoding"] == cte
    assert html_part.get_content().rstrip() == f"<p>{text}</p>"


ASCII_HTML = (
    b"Content-Type: text/html; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
    b"<p>caf&eacute;, it&rsquo;s</p><script>x()</script>\r\n"
)
HEAD = b"From: owner@shop.example\r\nSubject: s\r\nMIME-Version: 1.0\r\n"


def test_ascii_html_part_that_gains_non_ascii_text_becomes_utf8() -> None:
    raw = (
        HEAD + b"Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n"
        b"Content-Type: text/plain; charset=us-ascii\r\n\r\ncafe\r\n--b\r\n"
        + ASCII_HTML
        + b"--b--\r\n"
    )
    html_part = _parts(_deliver(raw))["text/html"]
    assert html_part.get_content_charset() == "utf-8"
    assert html_part["Content-Transfer-Encoding"] == "quoted-printable"
    assert html_part.get_content().rstrip() == "<p>café, it\u2019s</p>"


def test_single_part_ascii_html_that_gains_non_ascii_text_becomes_utf8() -> None:
    html_part = _parts(_deliver(HEAD + ASCII_HTML))["text/html"]
    assert html_part.get_content().rstrip() == "<p>café, it\u2019s</p>"
    assert html_part.get_content_charset() == "utf-8"
    assert html_part["Content-Transfer-Encoding"] == "quoted-printable"


def test_without_cleaning_the_body_is_delivered_byte_for_byte() -> None:
    raw = as_bytes(message(JA_PLAIN, html=JA_HTML, charset="shift_jis", cte="quoted-printable"))
    assert _body(_deliver(raw, None)) == _body(raw)


def test_html_already_clean_is_delivered_byte_for_byte() -> None:
    raw = as_bytes(
        message(
            "Track it: https://www.ups.com/track",
            html='<p>Track it <a href="https://www.ups.com/track">here</a>.</p>\n',
            cte="quoted-printable",
        )
    )
    assert _body(_deliver(raw)) == _body(raw)


def test_plain_only_message_without_unwrapped_links_is_untouched() -> None:
    raw = as_bytes(message(f"See {EVIL}"))
    assert _body(_deliver(raw, CLEANING)) == _body(raw)


def test_html_attachment_is_not_sanitised() -> None:
    built = message("See the attached page.")
    built.add_attachment("<p>page</p><script>x()</script>", subtype="html", filename="page.html")
    raw = as_bytes(built)
    attached = [p for p in _parts(_deliver(raw)).values() if p.get_filename() == "page.html"]
    assert attached[0].get_content().rstrip() == "<p>page</p><script>x()</script>"
