"""The content rules (gateway.policy.rules.content) on messages read as the gateway reads
them, under a small policy and lexicon built here (never config/): each rule's hits and
the near-misses that must pass, modes, and the one refusal the sender reads."""

# Full-width, look-alike and styled characters are what these rules are about.

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from functools import cache
from typing import Any

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from gateway.core import status
from gateway.core.content import ContentFacts, ImageInfo
from gateway.core.model import Conversation, Direction, Party, Side, Violation
from gateway.intake.check import check_content, check_message
from gateway.intake.decide import ContentVerdict
from gateway.intake.policy import Policy
from gateway.pipeline.content import read_content
from gateway.pipeline.parse import parse_message
from gateway.policy.chains import refusal
from gateway.policy.config import (
    OFF_POLICY,
    ContentPolicy,
    Lexicon,
    LexiconFile,
    Mode,
    PolicyFile,
)
from gateway.policy.rule import MessageContext
from gateway.policy.rules.content import numerals
from gateway.policy.rules.content.only import _last_lines, _without_signature
from gateway.policy.rules.content.spelled import unmask_steps
from gateway.policy.rules.content.split import sentences_of
from gateway.policy.triggers import database
from gateway.policyfile import load_policy
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

TO_BUYER = Direction.SELLER_TO_BUYER
TO_SELLER = Direction.BUYER_TO_SELLER
HELP = "https://marketplace.example/help/messaging"
ALIAS_DOMAIN = "alias.invalid"  # the parties' aliases in these messages

RULES_SETTINGS: dict[str, dict[str, Any]] = {
    "content.link": {
        "allow_domains": ["marketplace.example", "ups.com", "usps.com", "japanpost.jp"],
        "bare_domain_ignore_suffixes": ["zip", "mov"],
        "spelled_out_suffixes": ["com", "net", "рф"],
    },
    "content.phone": {"regions": ["US", "JP", "DE"]},
    "content.social": {"domains": ["t.me", "line.me", "wa.me"]},
    "content.business_name": {"suffixes": ["com", "net", "biz"]},
    "form.image_size": {"max_width": 100, "max_height": 50},
    "attach.size": {"max_total_bytes": 200_000},
}
LEXICON: dict[str, Any] = {
    "marketing": {"phrases": ["new collection", "discount code"]},
    "feedback_request": {"phrases": ["five stars", "leave a review"]},
    "cancel_reason": {"phrases": ["why did you cancel"]},
    "thanks": {"phrases": ["thank you for your order"]},
    "confirmation": {"phrases": ["your order has shipped", "refund has been issued"]},
    "courtesy": {"phrases": ["hi", "hello", "best regards"]},
    "social": {"phrases": ["wechat id", "加微信"], "patterns": [r"\bline\s*id\s*:"]},
    "reference": {"phrases": ["order", "tracking"]},
    "at_words": ["(at)", "[at]", "собака"],
    "dot_words": ["dot", "точка"],
}


def _policy(rules: dict[str, dict[str, Any]] | None = None) -> ContentPolicy:
    """The test policy, with some rules' settings replaced."""
    settings = {**RULES_SETTINGS}
    for rule_id, changes in (rules or {}).items():
        settings[rule_id] = {**settings.get(rule_id, {}), **changes}
    policy = PolicyFile.model_validate({"help_url": HELP, "rules": settings})
    return ContentPolicy(policy, Lexicon({"en": LexiconFile.model_validate(LEXICON)}), "test")


RULES = Policy.compile(_policy())


def _facts(built: EmailMessage | bytes) -> ContentFacts:
    raw = built if isinstance(built, bytes) else as_bytes(built)
    return read_content(parse_message(raw))


def _verdict(
    built: EmailMessage | bytes, rules: Policy = RULES, direction: Direction = TO_BUYER
) -> ContentVerdict:
    return check_content(_facts(built), rules, direction, ALIAS_DOMAIN)


def _ids(built: EmailMessage | bytes, rules: Policy = RULES) -> list[str]:
    return [v.rule_id for v in _verdict(built, rules).refused]


def _refused(body: str, **kwargs: Any) -> list[str]:
    """The rules a message with this plain-text body breaks."""
    return _ids(message(body, **kwargs))


def _details(built: EmailMessage | bytes, rules: Policy = RULES) -> list[str]:
    return [f"{v.rule_id}: {v.detail}" for v in _verdict(built, rules).refused]


def _with_files(*files: tuple[bytes | str, str, str]) -> EmailMessage:
    built = message("The files you asked for are attached.")
    for data, name, mime in files:
        attach(built, data, name, mime)
    return built


def test_every_rule_of_the_policy_is_built() -> None:
    policy = _policy()
    assert len(policy.rule_ids) == 17
    assert sorted(rule.id for rule in RULES.rules.rules) == sorted(policy.rule_ids)
    assert len({rule.description for rule in RULES.rules.rules}) == 17


def test_a_clean_message_passes() -> None:
    verdict = _verdict(message("The mug ships Monday, well packed. Is the blue one right?"))
    assert verdict.passed
    assert verdict.refused == verdict.shadowed == ()
    assert verdict.reply is None
    assert (verdict.direction, verdict.policy_version) == (TO_BUYER, "test")


# -- content.link ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "See https://evil-example.net/page for the manual",
        "See HTTP://EVIL-EXAMPLE.NET now",
        "Files at ftp://files.evil-example.net/manual",
        "Go to www.evil-example.net today",
        "Go to www2.evil-example.net today",
        "Order from evil-example.net/shop instead",
        "myshop.com",
        "myshop.net",
        "shop.co.uk",
        "shop.com.br",
        "shop.com.au",
        "shop.co.jp",
        "shop.de",
        "shop.io",
        "shop.xyz",
        "shop.online",
        "shop.store",
        "shop.shop",
        "магазин.рф",
        "shop.магазин.рф/catalog",
        "xn--80aswg.xn--p1ai",
        "https://xn--80aswg.xn--p1ai/",
        "https://clip.mov/watch",  # an ignored suffix still counts with a scheme
        "www.clip.mov",
        "The shop is (evil-example.net).",
    ],
)
def test_link_hits(body: str) -> None:
    assert _refused(body) == ["content.link"]


@pytest.mark.parametrize(
    ("body", "found"),
    [
        ("visit shop dot com", "shop.com"),
        ("visit shop (dot) com", "shop.com"),
        ("visit shop [dot] net", "shop.net"),
        ("visit SHOP DOT COM", "shop.com"),
        ("visit my dot shop dot com", "my.shop.com"),
        ("магазин точка рф", "магазин.рф"),
        ("visit ex\u200bample.com", "example.com"),  # zero-width space
        ("visit exam\u00adple.com", "example.com"),  # soft hyphen
        ("visit ex\u2060ample\ufeff.com", "example.com"),  # word joiner, BOM
        ("visit ｅｘａｍｐｌｅ．ｃｏｍ", "example.com"),  # full-width
        ("visit example。com", "example.com"),  # ideographic full stop
        ("visit example ｡ com", "example.com"),  # half-width ideographic full stop
    ],
)
def test_disguised_links_are_read_as_links(body: str, found: str) -> None:
    assert _details(message(body)) == [f'content.link: "{found}"']


@pytest.mark.parametrize(
    "body",
    [
        "Track it on https://www.ups.com/track?tracknum=1Z999AA10123456784",
        "Track it on www.ups.com or UPS.COM",
        "Track it on wwwapps.ups.com/WebTracking/track",
        "Track it on https://tools.usps.com/go/TrackConfirmAction",
        "Your order page: https://marketplace.example/orders/113-1234567-1234567",
        "See https://sub.marketplace.example/help.",
        "Track it on https://trackings.post.japanpost.jp/services/",
        "Photos: photo.jpg, report.pdf, scan.png and letter.docx",
        "The video clip.mov and archive.zip are attached",
        "Version 2.5 weighs 3.5kg, e.g. the large one",
        "The dot is red, see section 4.2.",
        "visit shop dot xyz",  # not a suffix people spell out, per the policy
        "Mr.Smith and Dr. Green",
        "Price: US$12.99 incl. VAT",
    ],
)
def test_link_near_misses_pass(body: str) -> None:
    assert _refused(body) == []


@pytest.mark.parametrize(
    "body",
    [
        "Track it here: www.ups.com.evil-example.net/track",
        "Track it here: https://ups.com.evil-example.net/",
        "Track it here: https://evilups.com/track",
        "Track it here: https://ups-com.evil-example.net/",
        "Track it here: ups.com.evil-example.net",
        "Track it here: https://uрs.com/track",  # a Cyrillic "er", U+0440
    ],
)
def test_carrier_look_alikes_are_refused(body: str) -> None:
    assert _refused(body) == ["content.link"]


@pytest.mark.parametrize(
    ("html", "target"),
    [
        (
            '<a href="https://evil-example.net/t">https://www.ups.com/track</a>',
            "evil-example.net/t",
        ),
        ('<a href="https://www.ups.com@evil-example.net/t">UPS</a>', "ups.com@evil-example.net/t"),
        ('<a href="//evil-example.net/x">our shop</a>', "//evil-example.net/x"),
        ('<a href="HTTPS://EVIL-EXAMPLE.NET/">shop</a>', "HTTPS://EVIL-EXAMPLE.NET/"),
        ('<img src="https://pixel.evil-example.net/p.gif" alt="">', "evil-example.net/p.gif"),
        ('<a href="https://магазин.рф/">магазин</a>', "https://магазин.рф/"),
    ],
)
def test_html_link_to_another_host_is_refused_whatever_its_text(html: str, target: str) -> None:
    (detail,) = _details(message("See the HTML part.", html=html))
    assert detail.startswith('content.link: "')
    assert detail.endswith(f'{target}"')


@pytest.mark.parametrize(
    "html",
    [
        '<a href="https://www.ups.com/track?n=1">track your parcel</a>',
        '<a href="https://marketplace.example/orders/1">your order</a>',
        '<img src="cid:logo@shop">',
        '<a href="javascript:alert(1)">click</a>',
        '<a href="#top">top</a>',
    ],
)
def test_html_links_allowed_or_not_web_pass(html: str) -> None:
    assert _ids(message("See the HTML part.", html=html)) == []


def test_url_shown_as_link_text_is_judged_as_text() -> None:
    html = '<a href="https://www.ups.com/track">https://evil-example.net/</a>'
    assert _details(message("See the HTML part.", html=html)) == [
        'content.link: "https://evil-example.net/"'
    ]


def test_link_in_a_pdf_attachment_is_refused() -> None:
    details = _details((POLICY_CORPUS / "028-en-link-inside-pdf.eml").read_bytes())
    where = "in attachment 'warranty-card.pdf'"
    assert details == [f'content.link: "www.northwind-outdoor-store.com/warranty" {where}']


def test_link_annotation_of_a_pdf_is_refused_unless_allowed() -> None:
    pdf = corpus_pdf("007-en-clean-invoice-pdf.eml")
    bad = pdf_with_link(pdf, "https://pay.evil-example.net/invoice")
    good = pdf_with_link(pdf, "https://www.ups.com/track")
    assert _details(_with_files((bad, "invoice.pdf", "application/pdf"))) == [
        'content.link: "https://pay.evil-example.net/invoice"'
    ]
    assert _ids(_with_files((good, "invoice.pdf", "application/pdf"))) == []


def test_unwraps_only_web_links_off_the_allow_list() -> None:
    facts = _facts(
        message(
            "x",
            html='<a href="https://evil-example.net/">a</a><a href="https://www.ups.com/">b</a>'
            '<a href="mailto:x@evil-example.net">c</a><a href="cid:y">d</a>',
        )
    )
    assert [RULES.rules.unwraps(link) for link in facts.links] == [True, False, False, False]


# -- content.email -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "found"),
    [
        ("Write to name@shop.example.com", "name@shop.example.com"),
        ("Write to First.Last+tag@Mail.Example.COM", "first.last+tag@mail.example.com"),
        ("Write to ｎａｍｅ＠ｓｈｏｐ．ｊｐ", "name@shop.jp"),
        ("Write to name (at) shop dot com", "name@shop.com"),
        ("Write to name [at] shop [dot] com", "name@shop.com"),
        ("Write to name (at) shop.com", "name@shop.com"),
        ("Write to name собака yandex.ru", "name@yandex.ru"),
        ("Write to name@sh\u200bop.com", "name@shop.com"),
        ("Write to иван@почта.рф", "иван@почта.рф"),
    ],
)
def test_email_hits(body: str, found: str) -> None:
    assert _details(message(body)) == [f'content.email: "{found}"']


@pytest.mark.parametrize(
    "body",
    [
        "Reply to seller@alias.invalid or buyer@alias.invalid",
        "> buyer@alias.invalid wrote: is it blue?\nYes it is blue.",
        "Write to us at support@ups.com about the parcel",  # an allowed domain
        "I am at home, look at photo.jpg",
        "Follow @shopname, price @ 12.99",
        "name (at) home",
    ],
)
def test_email_near_misses_pass(body: str) -> None:
    assert _refused(body) == []


def test_mailto_link_is_an_email() -> None:
    html = '<a href="mailto:Name@Shop.Example?subject=hi">write</a>'
    assert _details(message("x", html=html)) == ['content.email: "name@shop.example"']


def test_the_senders_own_mailbox_is_left_to_the_leak_guard() -> None:
    """An Outlook signature names the sender's registered mailbox: the leak guard puts the
    alias in its place, so it is no contact detail. Another address still is."""

    def hits(body: str) -> list[str]:
        built = message(body, sender="Sarah <sarah@sakura-shop.com>")
        verdict = check_message(as_bytes(built), RULES, TO_BUYER, ALIAS_DOMAIN)
        return [v.rule_id for v in verdict.refused]

    assert "content.email" not in hits("Your parcel is packed.\n-- \nSarah\nsarah@sakura-shop.com")
    assert "content.email" in hits("Write to sales@sakura-shop.com instead.\n")


def test_mailto_link_to_the_alias_domain_passes() -> None:
    html = '<a href="mailto:buyer@alias.invalid">reply</a> <a href="MAILTO:x@ups.com">ups</a>'
    assert _ids(message("x", html=html)) == []


def _context(facts: ContentFacts, alias: str, display_name: str = "") -> MessageContext:
    seller = Party(Side.SELLER, alias, display_name, (), "")
    buyer = Party(Side.BUYER, "b" * 16 + "@" + alias.rpartition("@")[2], "", (), "")
    raw = parse_message(b"From: s@shop.example\r\n\r\nx\r\n")
    now = datetime(2026, 11, 22, tzinfo=UTC)
    return MessageContext("", raw, Conversation(1, 1, seller, buyer), now, None, facts)


def _rule(rule_id: str) -> Any:
    (rule,) = [rule for rule in RULES.rules.rules if rule.id == rule_id]
    return rule


def test_address_on_the_senders_alias_domain_is_not_counted() -> None:
    """On a registrable alias domain, where the own-domain check is what lets it pass."""
    quoted = "> On Monday bbbbbbbbbbbbbbbb@relay.example.com wrote:\n> is it blue?\nYes."
    ctx = _context(_facts(message(quoted)), "s" * 16 + "@relay.example.com")
    assert _rule("content.email").check(ctx) == []
    other = _context(_facts(message(quoted)), "s" * 16 + "@other-relay.example.com")
    assert [v.detail for v in _rule("content.email").check(other)] == [
        '"bbbbbbbbbbbbbbbb@relay.example.com"'
    ]


# -- addresses and hosts spelled out, in every language ------------------------------------

SPELLED_LEXICONS: dict[str, dict[str, Any]] = {
    "en": {
        "at_words": ["(at)", "[at]", "(a)"],
        "dot_words": ["dot", "(dot)", "[.]"],
        "address_at_words": ["at"],
        "address_dot_words": ["point"],
        "slash_words": ["slash"],
        "suffix_words": ["it", "me", "us", "at", "be", "by", "in", "so", "to", "on", "net"],
    },
    "de": {
        "at_words": ["ät", "(at)"],
        "dot_words": ["(punkt)"],
        "address_at_words": ["at", "bei"],
        "address_dot_words": ["punkt"],
        "slash_words": ["schrägstrich"],
        "suffix_words": ["es", "so", "in"],
    },
    "es": {
        "at_words": ["arroba"],
        "dot_words": ["(punto)"],
        "address_dot_words": ["punto"],
        "slash_words": ["barra"],
        "suffix_words": ["de", "es", "me", "su"],
    },
    "fr": {
        "at_words": ["arobase"],
        "dot_words": ["(point)"],
        "address_at_words": ["chez"],
        "address_dot_words": ["point"],
        "suffix_words": ["de", "es", "me", "net"],
    },
    "it": {
        "at_words": ["chiocciola"],
        "address_dot_words": ["punto"],
        "suffix_words": ["io", "su", "me"],
    },
    "ru": {"at_words": ["собака"], "dot_words": ["точка"], "slash_words": ["слэш"]},
    "zh": {
        "at_words": ["艾特", "圈a"],
        "dot_words": ["点", "點"],
        "address_at_words": ["#"],
        "slash_words": ["斜杠"],
    },
    "ja": {"at_words": ["アット", "★"], "dot_words": ["ドット"], "slash_words": ["スラッシュ"]},
}


def _spelled_policy(scanned: bool = True) -> Policy:
    link = {
        **RULES_SETTINGS["content.link"],
        "spelled_out_suffixes": [
            *("com", "net", "de", "at", "es", "fr", "it", "ru", "cn", "jp", "shop"),
        ],
        "extra_suffixes": ["example"],
    }
    settings = {**RULES_SETTINGS, "content.link": link}
    policy = PolicyFile.model_validate({"help_url": HELP, "rules": settings})
    lexicon = Lexicon(
        {lang: LexiconFile.model_validate(words) for lang, words in SPELLED_LEXICONS.items()}
    )
    return Policy.compile(ContentPolicy(policy, lexicon, "test"), scanned=scanned)


SPELLED, SPELLED_UNSCANNED = _spelled_policy(), _spelled_policy(scanned=False)


def _spelled(body: str) -> list[str]:
    """The link and e-mail findings of a body, the same with the scan and without."""
    found = _details(message(body), SPELLED)
    assert found == _details(message(body), SPELLED_UNSCANNED)
    return [d for d in found if d.startswith(("content.link", "content.email"))]


@pytest.mark.parametrize(
    ("body", "found"),
    [
        ("mail me: jo.hart77 at mailbox dot com", "jo.hart77@mailbox.com"),
        ("mail me: jo_hart at mailbox.net", "jo_hart@mailbox.net"),
        ("Write to sales (at) lamp-shop . com today", "sales@lamp-shop.com"),
        ("Write to sales [at] lamp-shop [.] com", "sales@lamp-shop.com"),
        ("Write to sales @ lamp-shop . com", "sales@lamp-shop.com"),
        ("schreib an lena punkt berg at postfach punkt de", "lena.berg@postfach.de"),
        ("schreib an tom.k bei postfach punkt de bitte", "tom.k@postfach.de"),
        ("Dateien an service(ät)fotoladen.de senden", "service@fotoladen.de"),
        ("escribe a ventas arroba tienda punto es", "ventas@tienda.es"),
        ("escribe a ventas arroba tienda puntocom", "ventas@tienda.com"),
        ("écrivez à marc.roy92 chez boite point fr", "marc.roy92@boite.fr"),
        ("écrivez à marc (chez) boite.fr", "marc@boite.fr"),
        ("scrivi a info chiocciola negozio punto it", "info@negozio.it"),
        ("пишите: zakaz собака pochta точка ru", "zakaz@pochta.ru"),
        ("邮箱 xiaomei88 艾特 qq 点 com 谢谢", "xiaomei88@qq.com"),
        ("邮箱：kefu圈amall點cn", "kefu@mall.cn"),
        ("メールは info アット kobo ドット jp まで", "info@kobo.jp"),
        ("ｓａｋｕｒａ＠ｍａｉｌ．ｊｐ まで", "sakura@mail.jp"),
        ("お問い合わせは info★kobo.jp まで（★を@に）", "info@kobo.jp"),
        ("邮箱 wangxm88#mail.cn 谢谢", "wangxm88@mail.cn"),
        ("write to s a l e s @ l a m p s . c o m and ask", "sales@lamps.com"),
        ("escríbeme: v e n t a s @ t i e n d a . c o m y te respondo", "ventas@tienda.com"),
        ("reversed: moc.liamkoob@anna", "anna@bookmail.com"),
        ("plans par mail : devis(a)meubles-lefort.fr", "devis@meubles-lefort.fr"),
        ("send it to [pagos] [at] [tienda-sur] [dot] [com] please", "pagos@tienda-sur.com"),
        ("mail an anna punkt berg at shop punkt de", "anna.berg@shop.de"),
        ("пишите: zakaz собака sumki точка ру", "zakaz@sumki.ru"),
        ("the name is our shop, then an arroba and lamps.com", "arroba@lamps.com"),
        ("write to orders@lamp-shop.example", "orders@lamp-shop.example"),
    ],
)
def test_spelled_addresses_are_addresses(body: str, found: str) -> None:
    assert _spelled(body) == [f'content.email: "{found}"']


@pytest.mark.parametrize(
    ("body", "found"),
    [
        ("the guide is on lamp-shop dot com slash guide", "lamp-shop.com/guide"),
        ("the guide is on lamp-shop . com / guide", "lamp-shop.com/guide"),
        ("see h t t p s : / / lamp-shop [.] com / guide", "https://lamp-shop.com/guide"),
        ("see w w w . l a m p s . c o m", "www.lamps.com"),
        ("Anleitung unter www punkt gartenhaus punkt de", "www.gartenhaus.de"),
        ("Anleitung unter gartenhaus punkt de schrägstrich rosen", "gartenhaus.de/rosen"),
        ("la guía en modaninos [punto] es [barra] tallas", "modaninos.es/tallas"),
        ("la guía en modaninos punto com", "modaninos.com"),
        ("Anleitung auf gartenhaus punkt de, danke", "gartenhaus.de"),
        ("visita negozio punto it per le offerte", "negozio.it"),
        ("le guide sur velo-notices point fr", "velo-notices.fr"),
        ("il video su videomontaggi punto com", "videomontaggi.com"),
        ("каталог: podarki точка ru слэш katalog", "podarki.ru/katalog"),
        ("网址 www点haowu点cn 看看", "www.haowu.cn"),
        ("サイトは kagu ドット jp スラッシュ sofa です", "kagu.jp/sofa"),
        ("サイトは\nかぐや家具.jp\nです", "かぐや家具.jp"),
        ("album: photos-share.example/a/8kx2", "photos-share.example/a/8kx2"),
        ("наша собака любит сайт zoo-shop.ru", "zoo-shop.ru"),  # a dog, not an "@"
        ("our catalogue is at lamp-shop.com today", "lamp-shop.com"),
        # an at-word before a host with a path is prose: "the number at ..."
        ("register the number at lamp-shop dot com slash warranty", "lamp-shop.com/warranty"),
        ("please visit our website at lamp-shop dot com", "lamp-shop.com"),  # prose "at"
        ("as a PDF, backwards: fdp.ediug/moc.pohs-pmal//:sptth", "https://lamp-shop.com/guide.pdf"),
        ("or just ed.nehcsiw.www", "www.wischen.de"),
        ("the link: bit . ly / 3xKp9Qz", "bit.ly/3xkp9qz"),
        ("[lamp-shop] [.] [jp] / print", "lamp-shop.jp/print"),
        ("the size chart: strick-tirol punkt at schrägstrich groessen", "strick-tirol.at/groessen"),
        ("сайт: avtodetal-shop точка ру / podbor", "avtodetal-shop.ru/podbor"),
    ],
)
def test_spelled_hosts_are_links(body: str, found: str) -> None:
    assert _spelled(body) == [f'content.link: "{found}"']


@pytest.mark.parametrize(
    "body",
    [
        "The point is, we are at booth 12 at the fair; meet at 5 pm at the store.",
        "I bought it at 3.50 at the shop, the 2nd at the latest. Flashed fine. By the way, no.",
        "at the point it breaks, the dot is red; please point it out",
        "este punto es: importante; el último punto de venta",
        "el punto es que el punto de recogida abre a las 10, p.ej. mañana. La burbuja puntocom.",
        "Treffpunkt ist um 10, Punkt 3 der Anleitung, z.B. bei uns oder bei DHL.",
        "au point relais, au point de retrait, chez nous; le point net est clair.",
        "facciamo il punto su tutto, a quel punto io ho detto: punto vendita.",
        "точка выдачи, точка зрения, наша собака гуляет.",
        "一点点,点击这里,晚上8点。ドット柄のシャツ、アットホームな雰囲気。",
        "taille 38 . fr 38 . Model X200 . De luxe . Net weight 3 kg . Com",
        "S O S, A B C D E, P . S . thanks; item # 5 . 5; price @ 12.99; 10 ml @ €11.50",
        "follow us: Instagram @lamp.shop.fr",
        "On Monday, Anna <anna.berg-x9@relay.example.test> wrote:",
        "Photos: IMG_1234.JPG, manual.zip, foto.jpeg, 3.5 kg, v2.0, 12.03.2024 at 10.30",
        "see [1] [2] [3] and [a] [b] [c]",
        "на сайте точка нет и всё",  # "нет" is "no", not "net"
        "The parcel was stuck in customs at which point it was returned",
        "Everything worked at this point no problem.",
        "Venez essayer chez nous point de retrait ouvert.",
        "I will send it to u . to be honest",  # a shortener's name, but no path
    ],
)
def test_prose_around_spelling_words_passes(body: str) -> None:
    assert _spelled(body) == []


def test_an_address_at_a_reserved_suffix_counts_only_where_configured() -> None:
    """The reserved "example" is no public suffix: a host under it counts only as the
    policy's extra suffix (the marketplace and the corpora are named under it)."""
    assert _refused("write to orders@lamp-shop.example") == []
    assert _spelled("write to orders@lamp-shop.example") == [
        'content.email: "orders@lamp-shop.example"'
    ]


# -- content.phone -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "found"),
    [
        ("Call me: +1 415 555 2671", "+1 415 555 2671"),
        ("Call me: +1 (415) 555-2671", "+1 (415) 555-2671"),
        ("Call me: +7 495 123-45-67", "+7 495 123-45-67"),
        ("Call me: +44 20 7946 0958", "+44 20 7946 0958"),
        ("Call me: 0044 20 7946 0958", "0044 20 7946 0958"),
        ("Call me: (415) 555-2671", "(415) 555-2671"),
        ("Call me: 415.555.2671", "415.555.2671"),
        ("Call me: 4155552671", "4155552671"),
        ("Call me: 090-1234-5678", "090-1234-5678"),  # JP mobile
        ("Call me: 03-1234-5678", "03-1234-5678"),  # JP Tokyo
        ("Call me: 0151 23456789", "0151 23456789"),  # DE mobile
        ("Call me: 030 1234567", "030 1234567"),  # DE Berlin
        ("Call me: ０９０－１２３４－５６７８", "090-1234-5678"),  # full-width
        ("Call me: 415·555·2671", "415·555·2671"),  # middle dots (a list of sizes is none)
        ("電話 03・1234・5678 まで", "03・1234・5678"),  # katakana middle dots
    ],
)
def test_phone_hits(body: str, found: str) -> None:
    assert _details(message(body)) == [f'content.phone: "{found}"']


@pytest.mark.parametrize(
    "body",
    [
        "Amazon order 113-1234567-1234567 shipped",
        "113-1234567-1234567",
        "UPS 1Z999AA10123456784",
        "Shipped on 2026-11-22, arrives 22.11.2026 or 11/24/2026",
        "Total 1,299.00 or 1.299,00 EUR or 1 299.00",
        "ASIN B08N5WRWNW",
        "Portland, OR 97477-1234",
        "Order 4155552671 is on its way",  # introduced as an order number
        "Tracking: 9400 1000 0000 0000 0000 00",
        "Item 12345, size 40 x 60 cm, 2 pcs",
        "Serial 123456789012",
        "Card ending 4242, PIN 1234",
        "Sizes 36 · 38 · 40 · 42 · 44",  # a list between middle dots
        "サイズ 36・38・40・42・44 あります",
    ],
)
def test_phone_near_misses_pass(body: str) -> None:
    assert _refused(body) == []


def test_national_numbers_are_read_only_in_the_configured_regions() -> None:
    us_only = Policy.compile(_policy({"content.phone": {"regions": ["US"]}}))
    assert _ids(message("Call me: 090-1234-5678"), us_only) == []
    assert _ids(message("Call me: +81 90-1234-5678"), us_only) == ["content.phone"]


def test_phone_min_digits() -> None:
    strict = Policy.compile(_policy({"content.phone": {"min_digits": 11}}))
    assert _ids(message("Call me: 030 1234567"), strict) == []
    assert _ids(message("Call me: +1 415 555 2671"), strict) == ["content.phone"]


def test_tel_and_sms_links_are_phones() -> None:
    html = '<a href="tel:+14155552671">call us</a>'
    assert _details(message("x", html=html)) == ['content.phone: "tel:+14155552671"']
    assert _ids(message("x", html='<a href="sms:+14155552671">text us</a>')) == ["content.phone"]


def test_phone_in_subject_and_attachment_say_where() -> None:
    assert _details(message("Hello", subject="Call +1 415 555 2671")) == [
        'content.phone: "+1 415 555 2671" in subject'
    ]
    built = _with_files(("Questions? Call 415-555-2671\n", "notes.txt", ""))
    assert _details(built) == ["content.phone: \"415-555-2671\" in attachment 'notes.txt'"]
    document = docx_file("Questions?", "Call 0151 23456789")
    built = _with_files((document, "letter.docx", "application/octet-stream"))
    assert _details(built) == ["content.phone: \"0151 23456789\" in attachment 'letter.docx'"]


def test_phone_in_a_table_cell_next_to_a_label() -> None:
    html = "<table><tr><td>Phone</td><td>4155552671</td></tr></table>"
    assert _refused("See the table.", html=html) == ["content.phone"]


def test_contact_details_in_quoted_lines_still_count() -> None:
    assert _refused("Yes.\n> call +1 415 555 2671\n> or shop.com") == [
        "content.link",
        "content.phone",
    ]


# Numbers written to get past a filter are read as digits: words of the eight languages,
# CJK digits, letters for digits, digits split by letters, told in turn, over lines.
@pytest.mark.parametrize(
    ("body", "found"),
    [
        ("Call me: four one five, five five five, two six seven one", "4 1 5 5 5 5 2 6 7 1"),
        ("Ruf an: null eins fünf eins, zwei drei vier fünf sechs sieben acht neun", None),
        ("Meine Nummer: 0151 dreiundzwanzig fünfundvierzig siebenundsechzig neunundachtzig", None),
        ("Llámame: cuatro uno cinco - cinco cinco cinco - dos seis siete uno", None),
        ("Chiamami: quattro uno cinque, cinque cinque cinque, due sei sette uno", None),
        ("Appelle: plus trente-trois six douze trente-quatre cinquante-six soixante-dix", None),
        ("Звоните: плюс один четыре один пять 555 два шесть семь один", None),
        ("電話:〇九〇 一二三四 五六七八", "090 1234 5678"),
        ("お電話は ぜろきゅうぜろ の いちにさんよん の ごろくななはち まで", "090 1234 5678"),
        ("Call 4l5 555 26l1", "415 555 2611"),
        ("Call o9o-12l4-5678", "090 1214 5678"),
        ("Text 415a555b2671, drop the letters", "4155552671"),
        ("The number starts 0151, then 2345, then 6789", "0151 2345 6789"),
        ("番号は090、次が1234、最後が5678です", "090 1234 5678"),
        ("有事打090-1234-5678找我", "090-1234-5678"),
        ("My number:\n+1 415\n555\n2671\nThanks", "+1 415 555 2671"),
        ("Chat on wa.me/4915123456789", "wa.me/4915123456789"),
        ("WhatsApp +44 7700 900461", "+44 7700 900461"),  # a range kept for films
    ],
)
def test_phone_written_otherwise_hits(body: str, found: str | None) -> None:
    details = _details(message(body))
    assert [d.partition(":")[0] for d in details if "phone" in d] == ["content.phone"], details
    if found is not None:
        assert f'content.phone: "{found}"' in details


@pytest.mark.parametrize(
    "body",
    [
        # IBAN, EAN-13, UPC-A, ISBN-10: by their check digits, with no word before them
        "Please pay to BE71 0961 2345 6769, thanks",
        "Pay to GB82 WEST 1234 5698 7654 32",
        "The black one is 4006381333931, the white one 036000291452",
        "Barcode on the box: 0 36000 29145 2",
        "The book is 0-306-40615-2 (first edition)",
        # dates and times, also in a quote's header
        "On 12/05/2024 16:40, Shop <x@alias.invalid> wrote:",
        "Delivery between 09.–11.04.2024, please be home",
        "Sent 2024-05-09 21:14 from my phone",
        # numbers in links and in codes
        "Refund: https://shop.example/orders/4155552671/refund",
        "See https://shop.example/track?parcel=4155552671",
        "Invoice inv-2024-00318 and part v12-2309-004418",
        "UID che-415.555.267 and certificate ab12.c.04567/23",
        "Postcode 〒150-0002 Tokyo",
        "RUT 17.654.321-5 and CUIT 30-71234567-9",
        # valid only with a trunk prefix the writer did not write (JP 0123-45-6789)
        "The code is 123456789",
        # number words in prose
        "Two or three days; one box of 12 and two of 6, twenty three in all",
        "In zwei bis drei Tagen, vier Pakete zu je 12 Stück",
        "Tra tre o quattro giorni, sei articoli: due da 12 e uno da 6",
        "Il 02.03.2024 una pentola, il 06.03 due coperchi",
        "Son dos o tres días, cuatro cajas de 12 unidades y una de 6",
        "Посылка придёт через два-три дня, четыре коробки по 12 штук",
        "我们一共发了三四个包裹,每个12件,预计5月3日到",
        "いちごを二つ、さんこで500円です",
        "Sizes 36, 37, 38, 39, 40 then 41 next week",
        "Item 6oo series, 1l bottle, 2 o 3 piezas, 10 o 12 giorni",
    ],
)
def test_reference_numbers_and_prose_are_no_phones(body: str) -> None:
    assert "content.phone" not in _refused(body)


def test_a_phone_beside_a_reference_still_counts() -> None:
    assert _refused("IBAN BE71 0961 2345 6769, or call +1 415 555 2671") == ["content.phone"]
    assert _refused("On 12/05/2024 call 415-555-2671") == ["content.phone"]


_NUMBER_PIECES = [
    *sorted(numerals.WORDS)[::5],
    *"un una double plus più o l i then 次が の 0 12 345 3o o6 9i2 135a2207b6618 +7".split(),  # noqa: SIM905
    *"〇 一 幺 捌 ○ いち ななな し を 我 sigue".split(),  # noqa: SIM905
    *(" ", ", ", "-", " - ", ".", "/", "、", "(", "\n", " y ", "  ", " con "),
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_NUMBER_PIECES), max_size=16).map("".join))
def test_the_scan_says_where_numbers_may_be_written_otherwise(text: str) -> None:
    """Writing numbers as digits runs only on a text the scan says may hold one: it must
    change no other text."""
    if numerals.digits_written(text).text != text:
        assert _NUMERALS_SCAN.scan(text).may(numerals.KEY)


_NUMERALS_SCAN = database(
    _policy().lexicon, unmask_steps(_policy().lexicon, _policy().settings.rules.link)
)


# -- content.social ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "ids"),
    [
        ("WeChat ID: abc123", ["content.social"]),
        ("wechat  id abc123", ["content.social"]),
        ("请加微信 abc123", ["content.social"]),
        ("LINE ID: shop_abc", ["content.social"]),
        ("Chat on https://t.me/shop_abc", ["content.link", "content.social"]),
        ("Chat on t.me/shop_abc", ["content.link", "content.social"]),
        ("Add us: line.me/ti/p/~shop", ["content.link", "content.social"]),
        ("Add us: https://line.me/R/ti/p/@shop", ["content.link", "content.social"]),
        ("Message wa.me/shopabc", ["content.link", "content.social"]),
        ("Message wa.me/14155552671", ["content.link", "content.phone", "content.social"]),
    ],
)
def test_social_hits(body: str, ids: list[str]) -> None:
    assert _refused(body) == ids


def test_social_detail_shows_the_handle() -> None:
    assert _details(message("Hi!\nWeChat ID: abc123\nThanks")) == [
        'content.social: "wechat id: abc123"'
    ]


@pytest.mark.parametrize(
    "body",
    [
        "My WeChat is broken, sorry for the delay",
        "See line 2 of the invoice",
        "The line is busy; we will write here",
        "Telegram and WhatsApp are not used here",
    ],
)
def test_social_near_misses_pass(body: str) -> None:
    assert _refused(body) == []


def test_social_html_link() -> None:
    html = '<a href="https://t.me/shop_abc">our channel</a>'
    assert _ids(message("x", html=html)) == ["content.link", "content.social"]


def test_social_link_on_an_allowed_domain_is_still_social() -> None:
    rules = Policy.compile(_policy({"content.link": {"allow_domains": ["t.me"]}}))
    assert _ids(message("Chat on https://t.me/shop_abc"), rules) == ["content.social"]


# A test lexicon of constructions: a messenger's name after "on"/"加", or before a number.
SOCIAL_CONSTRUCTIONS = {
    **LEXICON,
    "social": {
        "phrases": ["加微信"],
        "patterns": [r"\bon\swhatsapp\b", r"\bwhatsapp\s\+?\d{6,}", r"@[a-z_]{3,}"],
    },
}
SOCIAL_NEGATIONS = [r"\b(?:not|cannot|no)\b", r"n't\b", "不|勿"]


def _social_rules() -> Policy:
    settings = {**RULES_SETTINGS, "content.social": {"negations": SOCIAL_NEGATIONS}}
    policy = PolicyFile.model_validate({"help_url": HELP, "rules": settings})
    lexicon = Lexicon({"en": LexiconFile.model_validate(SOCIAL_CONSTRUCTIONS)})
    return Policy.compile(ContentPolicy(policy, lexicon, "test"))


@pytest.mark.parametrize(
    ("body", "found"),
    [
        ("Write to us on WhatsApp, it is quicker.", True),
        ("Sorry, we can't help on WhatsApp.", False),  # the clause refuses
        ("No stock here but on WhatsApp 415 555 2671 I have photos", True),  # an ID too
        ("People ask to talk on WhatsApp - we cannot, sorry.", False),  # the clause after
        ("If the lid does not fit, write to us on WhatsApp.", True),  # a clause before
        ("We do not answer here. Write on WhatsApp.", True),  # another sentence
        ("We don't use WhatsApp, only @shop_help.", True),  # a handle counts anyway
        ("客服不在线 加微信 xiaoyu_0523", True),  # so does an ID after the match
        ("We can't help on WhatsApp 24/7.", False),  # "24/7" is no ID
        ("Sorry, no chat on WhatsApp 9.30am to 5pm.", False),  # nor is "9.30am"
        ("Please do not ask about order 20231145 on WhatsApp.", False),  # a number before
        ("请勿加微信。", False),
        ("客服不在线。加微信吧。", True),
    ],
)
def test_social_negation_in_the_clause_or_the_next(body: str, found: bool) -> None:
    assert ("content.social" in _ids(message(body), _social_rules())) is found


def test_social_a_refused_match_does_not_hide_the_next_one() -> None:
    # "on whatsapp" (refused in a reply's subject) overlaps "whatsapp 491…", which counts
    rules = _social_rules()
    built = message("See below.", subject="Re: on whatsapp 4915123456789")
    assert "content.social" in _ids(built, rules)
    assert "content.social" not in _ids(message("x", subject="Re: on whatsapp"), rules)


def test_social_in_a_reply_subject_or_quoted_lines_needs_a_handle() -> None:
    rules = _social_rules()
    quoted = "Sure, here is the size chart.\n\n> can we talk on whatsapp?\n"
    assert _ids(message("See below.", subject="Re: on WhatsApp?"), rules) == []
    assert _ids(message(quoted), rules) == []
    handle = message("See below.", subject="Re: whatsapp 4915123456789")
    assert "content.social" in _ids(handle, rules)
    assert _ids(message("Ok.\n\n> add @shop_help\n"), rules) == ["content.social"]
    assert _ids(message("x", subject="On WhatsApp?"), rules) == ["content.social"]


@cache
def _shipped() -> Policy:
    return Policy.compile(load_policy())


@pytest.mark.parametrize(
    "body",
    [
        "Add me on WhatsApp, it is quicker.",
        "We are also on Viber if that helps.",
        "Do you have Telegram?",
        "My discord is tina_b#2231 if that is easier.",
        "Signal: +44 7700 900123",
        "W h a t s A p p me please",
        "Schreib mir einfach über Signal, dort heißt der Laden Eulenhof.",
        "Folgt uns auf Insta, da gibt es mehr Bilder.",
        "¿Tienes Telegram? Te paso el vídeo por ahí.",
        "Agrégame en face, salgo como Lola Ruiz.",
        "Vous êtes sur Messenger ? Cherchez Atelier Lune.",
        "Rejoignez notre groupe Facebook des jardiniers.",
        "Ci trovi su Facebook come Cartoleria Viola.",
        "Hai WhatsApp? Ti mando le foto.",
        "Скиньте фото в вайбер, пожалуйста.",
        "Мы есть в одноклассниках, заходите в группу.",
        "有问题直接上微信找我，回复快。",
        "你有QQ吗？我QQ是 40028922。",
        "抖音搜我们店名，私信我们就行。",
        "詳しくはインスタをご覧ください。",
        "LINEで友だち追加してください。",
        "僕も微信（WeChat）を使っています。",
    ],
)
def test_social_constructions_of_the_shipped_lexicons(body: str) -> None:
    verdict = check_content(_facts(message(body)), _shipped(), TO_SELLER, ALIAS_DOMAIN)
    assert "content.social" in [v.rule_id for v in verdict.refused]


@pytest.mark.parametrize(
    "body",
    [
        "I saw this lamp on Instagram. Is it still available?",
        "Sorry, we don't do WhatsApp; please keep writing here.",
        "The watch shows WhatsApp and Telegram notifications.",
        "The Wi-Fi signal is weak, and the product line ends in May.",
        "2 x heatsink @ $12.99, please use the message center.",
        "Leider können wir nicht per WhatsApp schreiben, bitte hier.",
        "Ich habe das Kleid auf Instagram gesehen.",
        "No atendemos por WhatsApp ni por teléfono, escríbanos aquí.",
        "Je l'ai vu sur Instagram, existe-t-il en bleu ?",
        "Purtroppo non usiamo WhatsApp né Telegram: scriva qui.",
        "Posso usare WhatsApp con due sim?",
        "К сожалению, мы не переписываемся в WhatsApp.",
        "Часы показывают уведомления из Telegram.",
        "我用微信支付的，发票怎么开？",
        "近期有人冒充客服要求加微信，请勿相信。",
        "加微信、加QQ、打电话都不可以。",  # "、" lists, the refusal covers all
        "LINEやWhatsAppでのやり取りはお受けできません。",
        "DM便で発送しました。",
    ],
)
def test_social_mentions_that_invite_nothing_pass_the_shipped_lexicons(body: str) -> None:
    verdict = check_content(_facts(message(body)), _shipped(), TO_SELLER, ALIAS_DOMAIN)
    assert "content.social" not in [v.rule_id for v in verdict.refused]


# -- the phrase rules --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "rule_id"),
    [
        ("Our NEW collection is out", "content.marketing"),
        ("Use discount   code SAVE10 next time", "content.marketing"),
        ("Please give us five stars", "content.feedback_request"),
        ("Could you leave a review?", "content.feedback_request"),
        ("Why did you cancel the order?", "content.cancel_reason"),
    ],
)
def test_phrase_hits(body: str, rule_id: str) -> None:
    assert _refused(body) == [rule_id]


def test_phrase_in_subject_and_html() -> None:
    assert _details(message("The mug ships Monday.", subject="Our new collection")) == [
        'content.marketing: "new collection" in subject'
    ]
    html = "<p>Please <b>leave a review</b>.</p>"
    assert _refused("Please see below.", html=html) == ["content.feedback_request"]


@pytest.mark.parametrize(
    "built",
    [
        message("Yes, it is blue.\n> Is the new collection out?\n> Why did you cancel?"),
        message("Reviews are welcome, the five-star rating too."),
        message("Reviews: leave a reviewer note"),  # a whole-word phrase only
        message("Our renew collection"),
        _with_files(("Our new collection: mugs\n", "catalogue.txt", "")),
    ],
    ids=["quoted", "five-star", "reviewer", "renew", "attachment"],
)
def test_phrase_near_misses_pass(built: EmailMessage) -> None:
    assert _ids(built) == []


# -- content.thanks_only and content.confirmation_only -----------------------------------


@pytest.mark.parametrize(
    ("body", "ids"),
    [
        ("Thank you for your order!", ["content.thanks_only"]),
        (
            "Hi Anna,\n\nThank you for your order!\n\nBest regards,\nSarah\nHarbor Home Goods",
            ["content.thanks_only"],
        ),
        ("Hello!\nYour order has shipped.\nSarah", ["content.confirmation_only"]),
        ("Your refund has been issued today.", ["content.confirmation_only"]),
        (
            "Your order has shipped. Thank you for your order!",
            ["content.confirmation_only"],
        ),
    ],
)
def test_only_thanks_or_confirmation_hits(body: str, ids: list[str]) -> None:
    assert _refused(body) == ids


@pytest.mark.parametrize(
    "body",
    [
        "Thank you for your order! Which colour would you like?",
        "Thank you for your order! The engraving takes two more days, then it ships.",
        "Your order has shipped. It comes in two boxes, the lid in the second one.",
        "Your order has shipped?",
        "Sarah",
        # a greeting with more than a name after it says something
        "Hi Tom, the blue one is sold out, sorry about that.\n\nThank you for your order!",
        # under a sign-off, a P.S. or a sentence is more text, not a signature
        "Thank you for your order!\n\nBest regards,\nSarah\nP.S. The lid comes in a second box",
    ],
)
def test_only_thanks_or_confirmation_near_misses_pass(body: str) -> None:
    assert _refused(body) == []


def test_thanks_in_the_subject_alone_is_not_the_whole_message() -> None:
    built = message(
        "The mug ships Monday from our Portland store.", subject="Thank you for your order"
    )
    assert _ids(built) == []


@pytest.mark.parametrize(
    ("body", "ids"),
    [
        (  # below "-- ": the signature, whatever it says
            "Hi Anna,\n\nThank you for your order!\n\nBest regards,\nSarah\n-- \n"
            "Harbor Home Goods\nOpen Monday to Friday, 9 to 5\nPortland, Oregon",
            ["content.thanks_only"],
        ),
        (  # a few short lines between rules: a signature block
            "Thank you for your order!\n\n――――――――――\nHarbor Home Goods\n"
            "Opening hours: Monday to Friday, 9 to 5\n――――――――――",
            ["content.thanks_only"],
        ),
        ("Hello Mr. K. Tanaka,\nYour order has shipped.", ["content.confirmation_only"]),
        (  # under a sign-off: the signature, a tagline with a year in it too
            "Hi Anna,\n\nThank you for your order!\n\nBest regards,\n\nSarah Miller\n"
            "Harbor Home Goods\nFamily workshop since 1952",
            ["content.thanks_only"],
        ),
    ],
    ids=["signature-delimiter", "rule", "abbreviations", "sign-off"],
)
def test_signature_and_abbreviations_are_courtesy(body: str, ids: list[str]) -> None:
    assert _refused(body) == ids


@pytest.mark.parametrize(
    "body",
    [
        # below a rule, a request or a question is more text, not a signature
        "Thank you for your order!\n\n--------\nEngraving: please send us the name you want",
        "Thank you for your order!\n--\nWhich colour would you like? Blue or green",
        # and so is a long block
        "Thank you for your order!\n\n--------\n"
        + "\n".join(f"Part {n} ships on day {n}" for n in "ABCDEFGH"),
        "Thank you for your order!\n\n--------\nThe engraving takes two more days and then it "
        "ships from Portland",
        # an abbreviation in the middle of a sentence that says something
        "Your order has shipped. Dr. Smith signs for it at the front desk.",
    ],
)
def test_what_follows_a_rule_may_say_something(body: str) -> None:
    assert _refused(body) == []


def test_plain_and_html_texts_each_have_their_greeting_and_signature() -> None:
    body = "Hi Anna,\n\nThank you for your order!\n\nSarah"
    html = "<p>Hi Anna,</p><p>Thank you for your order!</p><p>Sarah</p>"
    assert _ids(message(body, html=html)) == ["content.thanks_only"]


# -- the shipped lexicons: what a seller writes in plain words, in each language ---------
# (these read config/lexicon through the shipped policy, without its learned model)


@cache
def _shipped_lexicons() -> Policy:
    return Policy.compile(load_policy(model=False))


def _shipped_ids(body: str) -> set[str]:
    return {v.rule_id for v in _verdict(message(body), _shipped_lexicons()).refused}


MARKETING = "content.marketing"
FEEDBACK = "content.feedback_request"
CANCEL_REASON = "content.cancel_reason"
THANKS_ONLY = "content.thanks_only"
CONFIRMATION_ONLY = "content.confirmation_only"
PHRASE_RULES = {MARKETING, FEEDBACK, CANCEL_REASON, THANKS_ONLY, CONFIRMATION_ONLY}


@pytest.mark.parametrize(
    ("rule_id", "body"),
    [
        # why an order was cancelled, asked once the cancellation is named
        (
            CANCEL_REASON,
            "Hi Tom,\nWe noticed your order for the lamp was cancelled. Just out of interest, "
            "what was the reason?",
        ),
        (CANCEL_REASON, "Hey Sam, saw you cancelled the headphones. Did something go wrong?"),
        (CANCEL_REASON, "Hallo Jan, schade, dass du die Jacke abbestellt hast. Was war los?"),
        (
            CANCEL_REASON,
            "Guten Tag Frau Klein, Sie haben die Bestellung storniert. Dürfen wir fragen, warum?",
        ),
        (CANCEL_REASON, "Hola Marta, vimos que anuló su pedido. ¿Nos podría decir el motivo?"),
        (
            CANCEL_REASON,
            "Salut Léa, tu as annulé ta commande. C'était une question de prix, de délai, "
            "autre chose ?",
        ),
        (CANCEL_REASON, "Ciao Luca, hai annullato l'ordine delle cuffie: come mai?"),
        (CANCEL_REASON, "Игорь, вы отменили заказ на куртку. Что-то не устроило?"),
        (CANCEL_REASON, "你好，看到你取消了耳机的订单，是不是觉得太贵了？"),
        (
            CANCEL_REASON,
            "鈴木様\nご注文のキャンセルを承りました。差し支えなければ、キャンセルの理由をお聞かせください。",
        ),
        # feedback asked for in other words: sharing the experience, telling other buyers
        (
            FEEDBACK,
            "Hi Ann, if the kettle works well, we'd love it if you could share your honest "
            "experience with other buyers.",
        ),
        (FEEDBACK, "A couple of lines on the product page would help other cooks a lot."),
        (FEEDBACK, "We'll send you a free sample pack in exchange for an honest review."),
        (
            FEEDBACK,
            "Liebe Frau Berg, wir freuen uns, wenn Sie Ihre Erfahrung mit der Pfanne auf der "
            "Produktseite teilen.",
        ),
        (
            FEEDBACK,
            "Hola Luis, si le gustó la mochila, cuénteles a otros compradores qué le pareció.",
        ),
        (FEEDBACK, "Bonjour, un petit commentaire sur la fiche produit nous aiderait beaucoup."),
        (FEEDBACK, "Ciao Marco, se ti va racconta la tua esperienza agli altri acquirenti."),
        (FEEDBACK, "Здравствуйте! Поделитесь, пожалуйста, впечатлениями о покупке."),
        (FEEDBACK, "亲，收到后如果满意，麻烦在商品页面分享一下您的使用感受哦"),
        (FEEDBACK, "佐藤様\nよろしければ、使い心地を商品ページにお寄せいただけますと幸いです。"),
        # promotion in plain words: the store's other goods, a new line, an offer that ends
        (
            MARKETING,
            "Your mug ships today. Our new range of teapots is in our store at trade prices.",
        ),
        (
            MARKETING,
            "Your scarf is on its way. This week only, our winter hats are $15 instead of $25.",
        ),
        (
            MARKETING,
            "Ihre Tasse ist unterwegs. Passend dazu gibt es bei uns im Shop die Untersetzer.",
        ),
        (MARKETING, "Votre bougie est partie. Parrainez une amie et recevez 5 € chacune."),
        (MARKETING, "Su pedido salió hoy. Le dejamos un cupón del 10 % para su próxima compra."),
        (MARKETING, "Il suo ordine è partito. Abbiamo appena lanciato una nuova linea di tazze."),
        (MARKETING, "Заказ отправлен. Кстати, у нас на сайте цены ниже, чем на площадке."),
        (MARKETING, "您的订单已发货。我们下周推出新款限量系列，老客户可以提前购买哦。"),
        (MARKETING, "ご注文の品は本日発送しました。なお、姉妹店でもお茶菓子を販売しております。"),
        # only thanks, or only a confirmation, in plain words around a greeting and a signature
        (THANKS_ONLY, "Hi Kim,\n\nThanks a bunch for buying from us!\n\nCheers,\nRoss"),
        (
            THANKS_ONLY,
            "Hallo Eva,\nwir freuen uns sehr, dass du dich für unseren Tee entschieden "
            "hast!\nLiebe Grüße",
        ),
        (
            THANKS_ONLY,
            "Estimada Sra. Ruiz:\n\nLe agradecemos la confianza depositada en nosotros.\n\nUn "
            "cordial saludo",
        ),
        (
            THANKS_ONLY,
            "Gentile Sig. Neri,\n\ndesideriamo ringraziarla per aver scelto i nostri "
            "prodotti.\n\nCordiali saluti",
        ),
        (THANKS_ONLY, "王先生您好：\n\n感谢您在小店购买茶具！\n\n祝您生活愉快"),
        (
            CONFIRMATION_ONLY,
            "Hi Lee,\n\nYour new garden chairs have been delivered.\n\nBest,\nPine & Co",
        ),
        (
            CONFIRMATION_ONLY,
            "Guten Tag Herr Roth,\n\nIhre Bestellung vom 04.05. wurde heute versandt.\n\nMit "
            "freundlichen Grüßen",
        ),
        (
            CONFIRMATION_ONLY,
            "Bonjour M. Petit,\n\nvotre remboursement de 19,90 € a été effectué.\n\nCordialement",
        ),
        (CONFIRMATION_ONLY, "Pedido enviado.\nSaludos"),
        (CONFIRMATION_ONLY, "Здравствуйте!\nЗаказ № 4411 доставлен в пункт выдачи.\nС уважением"),
        (CONFIRMATION_ONLY, "田中様\n\nご注文の商品が配達完了となりました。\n\nみどり商店"),
    ],
)
def test_shipped_lexicons_catch_plain_wordings(rule_id: str, body: str) -> None:
    assert rule_id in _shipped_ids(body)


@pytest.mark.parametrize(
    "body",
    [
        # the seller cancels, confirms a cancellation the buyer asked for, or offers one
        "Hi Tom,\nWe've cancelled your order as you asked. The refund of $24.90 reaches your "
        "card within 5 days.",
        "We had to cancel your order: the last lamp was damaged. Would you like us to tell you "
        "when it is back?",
        "You asked why your order was cancelled: the bank declined the card payment.",
        "If you'd rather not wait, please cancel and we'll refund you in full. Would you "
        "prefer that?",
        "Leider mussten wir Ihre Bestellung stornieren, der Artikel war beschädigt. Möchten "
        "Sie das Modell in Blau?",
        "Nous avons dû annuler la commande, le produit était en rupture. Souhaitez-vous un "
        "autre coloris ?",
        "Вы спрашивали, почему мы отменили заказ: товара не оказалось на складе. Хотите другой "
        "цвет?",
        "很抱歉，商品缺货，我们取消了订单。请问您需要换成其他颜色吗？",
        "キャンセルの理由は在庫切れでございます。ご期待に沿えず申し訳ございません。",
        # a review received, thanked for, or cited
        "Thank you for sharing your experience with the kettle - we've passed it on to our "
        "workshop. Is the new lid all right?",
        "Several reviews mention that the boots run small, so I'd go one size up. Shall I swap "
        "them?",
        "Laut einer Bewertung auf der Produktseite fällt der Schuh klein aus. Sollen wir Größe "
        "42 schicken?",
        "Merci pour votre avis. Voulez-vous que nous échangions la taille ?",
        "Le opinioni nella pagina del prodotto dicono che veste piccolo: vuole la taglia 29?",
        "先日はレビューを書いていただきありがとうございました。サイズの交換はご希望ですか？",
        # the store named in plain service, and compensation
        "The other half of your order ships from our store in Leeds on Monday, is that all right?",
        "Sie können die Ware auch in unserem Laden in Köln abholen. Passt Ihnen Samstag?",
        "También puede recoger su pedido en nuestra tienda de Sevilla. ¿Le va bien el jueves?",
        "Рекомендуем отслеживать посылку на сайте нашего партнёра СДЭК. Адрес верный?",
        "We offer 10% off as an apology for the late delivery; would you like it on your card?",
        # thanks or a confirmation with something useful
        "Thanks a bunch for buying from us! The engraving takes two more days, then it ships.",
        "Guten Tag,\n\nIhre Bestellung wurde heute versandt. Leider fehlt der Deckel, den "
        "schicken wir nächste Woche separat.",
        "您的包裹已寄出。因为海关检查，可能会晚两三天到，请谅解。",
    ],
)
def test_shipped_lexicons_leave_hard_negatives_clean(body: str) -> None:
    assert _shipped_ids(body) & PHRASE_RULES == set()


# -- content.business_name ---------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "BestDeals.com Store",
        "Deals.Net",
        "Super.biz Outlet",
        "ＢｅｓｔＤｅａｌｓ．ｃｏｍ",
        "好物优选.com旗舰店",
    ],
)
def test_business_name_hits(name: str) -> None:
    built = message("The mug ships Monday.", sender=f'"{name}" <s@shop.example>')
    assert b"=?utf-8?" in as_bytes(built) or name.isascii()  # RFC 2047 encoded
    assert _details(built) == [f'content.business_name: "{name}" in sender name']


@pytest.mark.parametrize(
    "signature", ["TechTrendz.net", "Team techtrendz.net", "Tokyo, TechTrendz.net"]
)
def test_the_sellers_name_written_in_the_body_is_the_business_name_not_a_link(
    signature: str,
) -> None:
    built = message(
        f"Your order ships today.\n\n{signature}", sender='"TechTrendz.net" <s@x.example>'
    )
    assert _ids(built) == ["content.business_name"]


@pytest.mark.parametrize(
    "body", ["See www.techtrendz.net", "See techtrendz.net/sale", "See https://techtrendz.net"]
)
def test_the_sellers_name_as_a_link_is_a_link(body: str) -> None:
    built = message(body, sender='"TechTrendz.net" <s@x.example>')
    assert _ids(built) == ["content.link", "content.business_name"]


def test_only_the_name_the_business_name_rule_refuses_is_left_to_it() -> None:
    # "Co. UK" is no suffixed name: a link under co.uk stays a link
    built = message("Cheaper at evil-outlet.co.uk", sender='"Smith & Co. UK" <s@x.example>')
    assert _ids(built) == ["content.link"]
    # where names are not refused (a buyer's, as shipped), the name's host is a link
    names_off = {"suffixes": ["com"], "buyer_to_seller": "off"}
    rules = Policy.compile(_policy({"content.business_name": names_off}))
    buyer = message("Better price at cheap-deals.com", sender='"cheap-deals.com" <b@x.example>')
    refused = _verdict(buyer, rules, direction=TO_SELLER).refused
    assert [v.rule_id for v in refused] == ["content.link"]


def test_business_name_in_a_raw_utf8_from_header() -> None:
    raw = 'From: "ＢｅｓｔＤｅａｌｓ．ｃｏｍ" <s@shop.example>\r\nSubject: s\r\n\r\nHello\r\n'
    assert _ids(raw.encode()) == ["content.business_name"]


@pytest.mark.parametrize(
    "sender",
    [
        "Dr. Green Garden <s@shop.example>",
        "Shopping.Company <s@shop.example>",
        "Dot Com Toys <s@shop.example>",
        "Sarah <s@shop.example>",
        "s@shop.example",
        "Net & Co. Bizarre <s@shop.example>",
        "Sakura Co. Net Supplies <s@shop.example>",
    ],
)
def test_business_name_near_misses_pass(sender: str) -> None:
    assert _ids(message("The mug ships Monday.", sender=sender)) == []


def test_business_name_of_the_registered_party() -> None:
    facts = _facts(message("The mug ships Monday.", sender="s@shop.example"))
    ctx = _context(facts, "s" * 16 + "@relay.example.com", "BestDeals.com Store")
    assert [v.detail for v in _rule("content.business_name").check(ctx)] == [
        '"BestDeals.com Store" in sender name'
    ]


@pytest.mark.parametrize(
    "name",
    [
        "Spielwaren-Welt.de",
        "Sound Speakers.co.uk",
        "Casa-Bimbi.it Outlet",
        "Libros.es",
        "Dom-Uyut.ru",
        "家居馆.cn 官方店",
        "雑貨ショップ。com",
        "Ｚａｋｋａ．ｊｐ",
        "BestDeals .com",
        "Trendy Tech. net",
    ],
)
def test_business_name_country_and_spaced_suffixes(name: str) -> None:
    built = message("The mug ships Monday.", sender=f'"{name}" <s@shop.example>')
    assert _ids(built) == ["content.business_name"]


@pytest.mark.parametrize(
    "name",
    [
        "Harbour Candle Co.",
        "Müller GmbH & Co.KG",
        "Schreibwaren Lindner e.K.",
        "Suministros Prado S.L.",
        "Informatica Rossi S.r.l.",
        "ИП Соколова А.В.",
        "Acme Inc. Shop",
        "Anna K. Net Designs",
        "Foto .de Luca",
        "St.Petersburg Gifts",
    ],
)
def test_business_name_abbreviations_and_initials_pass(name: str) -> None:
    assert _ids(message("The mug ships Monday.", sender=f'"{name}" <s@shop.example>')) == []


def test_business_name_country_suffixes_can_be_off() -> None:
    rules = Policy.compile(_policy({"content.business_name": {"country_suffixes": False}}))
    built = message("The mug ships Monday.", sender='"Spielwaren-Welt.de" <s@shop.example>')
    assert _ids(built, rules) == []


# -- form.emoji and form.styled_text -----------------------------------------------------


@pytest.mark.parametrize("emoji", ["😀", "❤️", "👍🏽", "🇯🇵", "1️⃣", "⭐", "✅", "👨‍👩‍👧", "☺️"])
def test_emoji_hits(emoji: str) -> None:
    assert _details(message(f"See you soon {emoji}")) == [f'form.emoji: "{emoji}"']


@pytest.mark.parametrize("text", ["Brand™ and © 2026 ®", "I ❤ it", "☺ ok", ":) <3", "№ 5, ‼"])
def test_emoji_near_misses_pass(text: str) -> None:
    assert _refused(text) == []


def test_emoji_where() -> None:
    assert _details(message("ok", subject="Sale 😀")) == ['form.emoji: "😀" in subject']
    assert _refused("Sure.\n> thanks 😀") == []  # quoted, not the sender's own words
    assert _ids(_with_files(("party 😀\n", "notes.txt", ""))) == []


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("𝐁𝐨𝐥𝐝 offer", "𝐁𝐨𝐥𝐝"),
        ("𝓢𝓬𝓻𝓲𝓹𝓽 text", "𝓢𝓬𝓻𝓲𝓹𝓽"),
        ("ⒷⓄⓁⒹ text", "ⒷⓄⓁⒹ"),
        ("ℍ𝕖𝕝𝕝𝕠 there", "ℍ𝕖𝕝𝕝𝕠"),
        ("𝗦𝗔𝗟𝗘 𝗡𝗢𝗪 today", "𝗦𝗔𝗟𝗘 𝗡𝗢𝗪"),
    ],
)
def test_styled_text_hits(text: str, found: str) -> None:
    assert _details(message(text)) == [f'form.styled_text: "{found}"']


@pytest.mark.parametrize(
    "text", ["ｆｕｌｌ ｗｉｄｔｈ letters", "𝐁𝐨 only two", "ℹ info", "Ｈｅｌｌｏ"]
)
def test_styled_text_near_misses_pass(text: str) -> None:
    assert _refused(text) == []


def test_styled_text_min_letters() -> None:
    rules = Policy.compile(_policy({"form.styled_text": {"min_letters": 1}}))
    assert _ids(message("𝐁 one"), rules) == ["form.styled_text"]


# -- form.line_breaks --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("empty", "ids"), [(10, []), (11, ["form.line_breaks"]), (30, ["form.line_breaks"])]
)
def test_empty_lines_in_the_body(empty: int, ids: list[str]) -> None:
    assert _refused("Top\n" + "\n" * empty + "Bottom") == ids


@pytest.mark.parametrize("blank", [" ", "\t", "\u00a0", "\u3000", " \u00a0 "])
def test_lines_of_blanks_are_empty(blank: str) -> None:
    assert _details(message("Top\n" + f"{blank}\n" * 11 + "Bottom")) == [
        'form.line_breaks: "11 empty lines in a row"'
    ]


def test_empty_lines_at_the_start_count_and_at_the_end_do_not() -> None:
    assert _refused("\n" * 12 + "Bottom") == ["form.line_breaks"]
    assert _refused("Top" + "\n" * 30) == []


@pytest.mark.parametrize(("breaks", "ids"), [(10, []), (11, ["form.line_breaks"])])
def test_empty_lines_in_html(breaks: int, ids: list[str]) -> None:
    # <p>Top</p> ends its line; each <br> after it is one empty line
    html = "<p>Top</p>" + "<br>" * breaks + "<p>Bottom</p>"
    assert _refused("Top\nBottom", html=html) == ids


def test_max_empty_lines_setting() -> None:
    rules = Policy.compile(_policy({"form.line_breaks": {"max_empty_lines": 2}}))
    assert _ids(message("a\n\n\n\nb"), rules) == ["form.line_breaks"]
    assert _ids(message("a\n\n\nb"), rules) == []


def test_gmail_blank_lines_count_once() -> None:
    html = "<div>Top</div>" + "<div><br></div>" * 6 + "<div>Bottom</div>"  # 6 blank lines
    assert _refused("Top\n\n\n\n\n\n\nBottom", html=html) == []


@pytest.mark.parametrize("blank", ["\u200b", "\u2003", "\u2800", "\ufeff"])
def test_lines_of_invisible_characters_are_empty(blank: str) -> None:
    assert _refused("Top\n" + f"{blank}\n" * 11 + "Bottom") == ["form.line_breaks"]


def test_empty_lines_between_quoted_paragraphs_are_not_a_wall() -> None:
    quoted = "\n\n".join(f"> question {n}?" for n in range(1, 13))
    assert _refused(f"On Monday you wrote:\n\n{quoted}\n\nAll answered in the manual.") == []


# -- attachments and images --------------------------------------------------------------


def test_animated_gif() -> None:
    details = _details(_with_files((gif(3), "party.gif", "image/gif")))
    assert details == ['form.animated_gif: "party.gif: 3 frames"']
    assert _ids(_with_files((gif(1), "still.gif", "image/gif"))) == []


def test_animated_png_is_not_an_animated_gif() -> None:
    facts = _facts(_with_files((png(frames=3), "moving.png", "image/png")))
    assert facts.attachments[0].image == ImageInfo("PNG", 4, 3, 3)
    apng_allowed = Policy.compile(_policy({"attach.type": {"allowed": ["png", "apng"]}}))
    assert check_content(facts, apng_allowed, TO_BUYER, ALIAS_DOMAIN).passed


@pytest.mark.parametrize(
    ("size", "ids"),
    [
        ((100, 50), []),
        ((101, 10), ["form.image_size"]),
        ((10, 51), ["form.image_size"]),
        ((1, 1), []),
    ],
)
def test_image_size(size: tuple[int, int], ids: list[str]) -> None:
    assert _ids(_with_files((png(*size), "shot.png", "image/png"))) == ids


def test_image_size_detail() -> None:
    assert _details(_with_files((png(120, 60), "shot.png", "image/png"))) == [
        'form.image_size: "shot.png: 120x60 px, at most 100x50"'
    ]


def test_huge_image_is_measured_from_its_header() -> None:
    huge = with_screen_size(gif(1, 1, 1), 60000, 40)
    assert _ids(_with_files((huge, "banner.gif", "image/gif"))) == ["form.image_size"]


def test_large_animated_gif_is_refused_under_the_default_policy() -> None:
    default = Policy.compile(ContentPolicy(PolicyFile.model_validate({}), Lexicon({}), "default"))
    animated = with_screen_size(gif(2, 1, 1), 7000, 6000)  # 42M pixels, 2 frames
    ids = _ids(_with_files((animated, "big.gif", "image/gif")), default)
    assert "form.animated_gif" in ids or "form.image_size" in ids


@pytest.mark.parametrize(
    ("data", "name", "mime", "found"),
    [
        (EXE, "photo.jpg", "image/jpeg", "photo.jpg is exe content"),
        (EXE, "setup.exe", "application/octet-stream", "setup.exe is exe content"),
        (EXE, "", "application/octet-stream", "application/octet-stream is exe content"),
        (zip_file(), "photo.jpg", "image/jpeg", "photo.jpg is zip content"),
        (b"plain text\n", "notes.exe", "text/plain", "notes.exe is a .exe file"),
        (b"<p>hi</p>\n", "page.html", "text/html", "page.html is a .html file"),
        (b"a,b\n1,2\n", "table.csv", "text/csv", "table.csv is a .csv file"),
        (
            bytes(range(256)) * 4,
            "blob.bin",
            "application/octet-stream",
            "blob.bin is unknown content",
        ),
    ],
)
def test_attachment_type_hits(data: bytes, name: str, mime: str, found: str) -> None:
    assert _details(_with_files((data, name, mime))) == [f'attach.type: "{found}"']


@pytest.mark.parametrize(
    ("data", "name", "mime"),
    [
        (png(), "shot.png", "image/png"),
        (png(), "SHOT.PNG", "application/octet-stream"),
        (gif(), "still.gif", "image/gif"),
        (b"plain text\n", "notes.txt", "text/plain"),
        (b"plain text\n", "README", "application/octet-stream"),
        (corpus_pdf("007-en-clean-invoice-pdf.eml"), "invoice.pdf", "application/pdf"),
        (docx_file("Hello"), "letter.docx", "application/octet-stream"),
    ],
)
def test_attachment_type_near_misses_pass(data: bytes, name: str, mime: str) -> None:
    assert _ids(_with_files((data, name, mime))) == []


def test_animated_png_named_png_is_a_png() -> None:
    assert _ids(_with_files((png(frames=2), "moving.png", "image/png"))) == []


def test_utf16_text_file_is_text() -> None:
    data = "Packing list\r\n2 x mug\r\n".encode("utf-16")  # with its byte order mark
    assert _ids(_with_files((data, "list.txt", "text/plain"))) == []


@pytest.mark.parametrize("start", ["BMW parts", "GIF89a sizes", "%PDF-1.4 notes"])
def test_text_dressed_as_an_image_or_pdf_is_refused(start: str) -> None:
    """Its first bytes claim an allowed kind that its bytes are not: it cannot be read as
    that kind, so its text cannot be judged, and the file is refused."""
    text = f"{start}\nQuestions? Call +1 415 555 2671\n".encode()
    assert _ids(_with_files((text, "notes.txt", "text/plain"))) == ["attach.type"]


def test_jpeg_named_jpeg_is_a_jpg() -> None:
    assert _ids(_with_files((jpeg(), "photo.jpeg", "image/jpeg"))) == []
    assert _ids(_with_files((jpeg(), "photo.JPE", "image/jpeg"))) == []


def test_attachment_size_counts_every_file() -> None:
    rules = Policy.compile(_policy({"attach.size": {"max_total_bytes": 1000}}))
    octets = "application/octet-stream"
    exactly = _with_files((b"a" * 600, "a.txt", octets), (b"b" * 400, "b.txt", octets))
    over = _with_files((b"a" * 600, "a.txt", octets), (b"b" * 401, "b.txt", octets))
    assert _ids(exactly, rules) == []
    assert _details(over, rules) == ['attach.size: "1,001 bytes of attachments, at most 1,000"']


# -- modes and directions ----------------------------------------------------------------


def test_shadow_mode_records_the_hit_and_lets_the_message_pass() -> None:
    rules = Policy.compile(_policy({"content.link": {"mode": "shadow"}}))
    verdict = _verdict(message("See evil-example.net and call +1 415 555 2671"), rules)
    assert [v.rule_id for v in verdict.refused] == ["content.phone"]
    assert [v.rule_id for v in verdict.shadowed] == ["content.link"]
    shadow_only = _verdict(message("See evil-example.net"), rules)
    assert shadow_only.passed and shadow_only.reply is None
    assert [v.detail for v in shadow_only.shadowed] == ['"evil-example.net"']


def test_off_mode_skips_the_rule() -> None:
    rules = Policy.compile(_policy({"content.link": {"mode": "off"}}))
    verdict = _verdict(message("See evil-example.net"), rules)
    assert verdict.passed and verdict.shadowed == ()
    assert "content.link" not in [rule.id for rule, _ in rules.rules.active(TO_BUYER)]


def test_mode_for_one_direction() -> None:
    rules = Policy.compile(
        _policy(
            {
                "form.emoji": {"buyer_to_seller": "off"},
                "content.link": {"mode": "off", "seller_to_buyer": "shadow"},
            }
        )
    )
    built = message("Party 😀 at evil-example.net")
    to_buyer = _verdict(built, rules, TO_BUYER)
    to_seller = _verdict(built, rules, TO_SELLER)
    assert [v.rule_id for v in to_buyer.refused] == ["form.emoji"]
    assert [v.rule_id for v in to_buyer.shadowed] == ["content.link"]
    assert to_seller.passed and to_seller.shadowed == ()
    assert to_seller.direction is TO_SELLER


def test_policy_mode_lookup() -> None:
    policy = _policy({"attach.type": {"mode": "shadow", "buyer_to_seller": "enforce"}})
    assert policy.mode("attach.type", TO_BUYER) is Mode.SHADOW
    assert policy.mode("attach.type", TO_SELLER) is Mode.ENFORCE
    assert policy.mode("attach.size", TO_SELLER) is Mode.ENFORCE
    with pytest.raises(KeyError):
        policy.mode("content.nothing", TO_BUYER)
    assert Policy.compile(OFF_POLICY).rules.active(TO_BUYER) == []


@pytest.mark.parametrize(
    "policy",
    [
        {"rules": {"content.nothing": {}}},
        {"rules": {"content.link": {"mode": "loud"}}},
        {"rules": {"content.link": {"allowed": ["x"]}}},
        {"rules": {"form.line_breaks": {"max_empty_lines": 0}}},
        {"rules": {"content.phone": {"min_digits": 3}}},
        {"surprise": True},
    ],
)
def test_invalid_policy_is_refused(policy: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        PolicyFile.model_validate(policy)


def test_invalid_lexicon_pattern_is_refused() -> None:
    with pytest.raises(pydantic.ValidationError, match="unterminated"):
        LexiconFile.model_validate({"social": {"patterns": ["(line"]}})


def test_lexicons_of_every_language_are_merged() -> None:
    lexicon = Lexicon(
        {
            "en": LexiconFile.model_validate({"marketing": {"phrases": ["big sale"]}}),
            "ja": LexiconFile.model_validate({"marketing": {"phrases": ["セール中"]}}),
        }
    )
    rules = Policy.compile(ContentPolicy(PolicyFile(), lexicon, "two"))
    assert _ids(message("Big  SALE today"), rules) == ["content.marketing"]
    assert _ids(message("今セール中です"), rules) == ["content.marketing"]  # no word breaks in CJK
    assert _ids(message("bigger sales"), rules) == []


# -- every violation, and the refusal ----------------------------------------------------


def test_every_violation_is_collected_in_rule_order() -> None:
    body = "Party 😀! Call +1 415 555 2671 or see evil-example.net"
    assert _refused(body) == ["content.link", "content.phone", "form.emoji"]


def test_refusal_lists_every_violation_in_ascii() -> None:
    verdict = _verdict(message("Visit магазин.рф or call +1 415 555 2671 😀"))
    assert verdict.reply is not None
    assert (verdict.reply.code, verdict.reply.enhanced) == (550, "5.7.1")
    assert str(verdict.reply) == "\r\n".join(
        [
            f"550-5.7.1 {status.CONTENT_REFUSED.text}",
            '550-5.7.1 content.link: "\\u043c\\u0430\\u0433\\u0430\\u0437\\u0438\\u043d.'
            '\\u0440\\u0444"',
            '550-5.7.1 content.phone: "+1 415 555 2671"',
            '550-5.7.1 form.emoji: "\\U0001f600"',
            f"550 5.7.1 Help: {HELP}",
        ]
    )
    assert str(verdict.reply).isascii()


def test_refusal_has_a_help_line_only_with_a_url() -> None:
    violations = [Violation("content.link", status.CONTENT_REFUSED, '"x.com"')]
    assert refusal(violations).details == ('content.link: "x.com"',)
    assert refusal(violations, HELP).details[-1] == f"Help: {HELP}"


def test_refusal_of_another_kind_is_returned_as_it_is() -> None:
    first = Violation("sender.from", status.LEAK_REFUSED, "x")
    content = Violation("content.link", status.CONTENT_REFUSED, '"x.com"')
    assert refusal([first, content], HELP) == status.LEAK_REFUSED


def test_long_detail_is_shortened_and_quotes_replaced() -> None:
    url = "https://evil-example.net/" + "a" * 100
    (detail,) = _details(message(f"See {url}"))
    assert detail == f'content.link: "{url[:57]}..."'
    html = '<a href="https://evil-example.net/?q=&quot;x&quot;">x</a>'
    assert _details(message("x", html=html)) == [
        "content.link: \"https://evil-example.net/?q='x'\""
    ]


def test_check_message_reads_raw_bytes_with_bare_line_ends() -> None:
    raw = b"From: s@shop.example\nSubject: hi\n\nCall +1 415 555 2671\n"
    verdict = check_message(raw, RULES, TO_BUYER, ALIAS_DOMAIN)
    assert [v.rule_id for v in verdict.refused] == ["content.phone"]
    assert verdict.policy_version == "test"


def test_an_unknown_phone_region_is_a_policy_error() -> None:
    with pytest.raises(ValidationError, match="unknown region codes"):
        PolicyFile.model_validate({"rules": {"content.phone": {"regions": ["DE", "XX"]}}})


@pytest.mark.parametrize(
    ("subject", "body"),
    [
        ("Re: pedido", "Tenemos el modelo 2023 o 2024 en stock, ¿cuál prefiere?"),
        ("Re: pedido", "Las tallas disponibles son 38, 40, 42 o 44."),
        ("Kanister", "Kanister in 5l, 10l, 20l und 30l lieferbar."),
        ("Flaschen", "Flaschen 0,5l 1l 1,5l, alle mit Pfand."),
        (
            "Lamp",
            "Thank you for your order!\n\n---\n\n"
            "The lamp needs an E14 bulb, which is not included.",
        ),
        ("Your order", ""),
        ("Bestellung 4711", ""),
    ],
)
def test_shipped_policy_passes_words_that_look_like_digits_or_filler(
    subject: str, body: str
) -> None:
    """ "o" (or) between numbers, litres, a rule above real content, a subject alone."""
    mail = EmailMessage()
    mail["From"] = "shop@shop.example"
    mail["To"] = "b@relay.example.test"
    mail["Subject"] = subject
    mail.set_content(body)
    verdict = check_message(bytes(mail), _shipped(), TO_BUYER, "relay.example.test")
    assert verdict.refused == (), verdict.refused


def test_only_a_texts_last_lines_are_read_for_a_signature() -> None:
    """A rule high up in a long text is not a signature's: only the last lines are looked
    at, so a text of many rules costs what one costs."""
    assert _last_lines("a\n\nb\nc\n", 2) == 2
    assert _last_lines("a\nb", 5) == 0
    many = "Thank you for your order.\n-- \n" * 50
    kept = _without_signature(many + "Anna\n")
    assert many.startswith(kept) and len(many) - len(kept) < 200  # only the tail is cut
    assert _without_signature("Danke!\n---\nDie Lampe braucht eine E14-Birne, nicht dabei.\n") == (
        "Danke!\n---\nDie Lampe braucht eine E14-Birne, nicht dabei.\n"
    )


@pytest.mark.parametrize(
    ("folded", "sentences"),
    [
        # folding made "！" and "？" "!" and "?": before a CJK character they end a sentence
        ("谢谢!您的订单已发货。真的?好的", ["谢谢!", "您的订单已发货。", "真的?", "好的"]),
        ("おおきに!ご注文ありがとう!", ["おおきに!", "ご注文ありがとう!"]),
        ("wow!great. $34.99 ok", ["wow!great.", "$34.99 ok"]),
    ],
)
def test_sentences_end_at_cjk_stops_and_before_cjk_text(folded: str, sentences: list[str]) -> None:
    assert list(sentences_of(folded)) == sentences
