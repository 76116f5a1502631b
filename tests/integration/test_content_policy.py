"""The shipped content policy over real SMTP: refusals a seller can act on, shadow mode,
per-direction modes, sanitised HTML, the policy version archived, SIGHUP reloads."""

from __future__ import annotations

import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.policyfile import LEXICON_DIR, embedded_policy_path, load_policy
from gateway.storage.schema import Message
from tests.support.databases import database_url
from tests.support.gateway import Parties, RunningGateway, running_gateway, wait_for
from tests.support.mail import data_reply, read, text_message
from tests.support.process import (
    json_log_lines,
    process_config,
    register_with_cli,
    run_cli,
    serving,
    serving_processes,
)
from tests.support.sink import free_port

SHIPPED = embedded_policy_path()
HELP_URL = load_policy(SHIPPED).settings.help_url


def policy_copy(folder: Path, **modes: str) -> Path:
    """The shipped policy, its lexicons and its model copied to `folder`, with some rules'
    modes set (`content_link="shadow"` sets [rules."content.link"] mode)."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(SHIPPED.parent / LEXICON_DIR, folder / LEXICON_DIR, dirs_exist_ok=True)
    model = load_policy(SHIPPED).settings.classifier.model
    if model:
        (folder / model).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SHIPPED.parent / model, folder / model)
    text = SHIPPED.read_text(encoding="utf-8")
    for key, mode in modes.items():
        rule_id = key.replace("_", ".", 1)
        table = f'[rules."{rule_id}"]\nmode = "enforce"'
        assert table in text, f"{rule_id} not in the shipped policy"
        text = text.replace(table, f'[rules."{rule_id}"]\nmode = "{mode}"')
    path = folder / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def gw(tmp_path: Path, db_url: str) -> Iterator[RunningGateway]:
    """A gateway enforcing the shipped policy."""
    with running_gateway(tmp_path, db_url, content_policy=SHIPPED) as running:
        yield running


def seller_says(gw: RunningGateway, p: Parties, body: str, subject: str = "Ihre Bestellung"):
    mail = text_message(sender=p.seller_mailbox, to=p.buyer_alias, subject=subject, body=body)
    return data_reply(gw.port, mail)


def archived(gw: RunningGateway) -> list[Message]:
    with gw.gateway.database.reading() as session:
        return list(session.scalars(select(Message).order_by(Message.id)))


SPAMMY = (
    "Hello Kim,\n\nyour parcel left our warehouse today. For faster help call me on "
    "+1 415 555 2671 or visit www.sakura-outlet.example.com, and follow us on "
    "Instagram for 20% off your next order! 😀\n\nMaria\n"
)


def test_refusal_lists_every_violation_with_what_matched(gw: RunningGateway) -> None:
    p = gw.register()
    code, text = seller_says(gw, p, SPAMMY)
    assert code == 550
    # smtplib joins the lines of a multi-line reply: what Outlook shows in its bounce.
    lines = [line.removeprefix("5.7.1 ") for line in text.splitlines()]
    assert lines[0].startswith("Message refused by the marketplace's messaging rules")
    listed = {line.split(":", 1)[0] for line in lines[1:-1]}
    assert {"content.link", "content.phone", "form.emoji"} <= listed
    assert any('content.phone: "+1 415 555 2671"' in line for line in lines)
    link = next(line for line in lines if line.startswith("content.link"))
    assert "sakura-outlet.example.com" in link
    assert lines[-1] == f"Help: {HELP_URL}"
    [row] = archived(gw)
    assert row.verdict == "refused"
    assert {"content.link", "content.phone", "form.emoji"} <= set(row.rule_hits.split(","))
    assert row.policy_version == load_policy(SHIPPED).version
    assert gw.maildir is not None and not list((gw.maildir / "new").iterdir())


def test_clean_seller_message_passes_and_records_the_policy_version(gw: RunningGateway) -> None:
    p = gw.register()
    body = (
        "Hello Kim,\n\nyour order 113-1234567-1234567 left our warehouse on 2026-11-21. "
        "Tracking: https://www.ups.com/track?tracknum=1Z999AA10123456784\n"
        "Could you confirm the apartment number for the delivery?\n\nMaria\n"
    )
    code, text = seller_says(gw, p, body, subject="Delivery address")
    assert code == 250, text
    [row] = archived(gw)
    assert (row.verdict, row.rule_hits, row.shadow_hits) == ("accepted", "", "")
    assert row.policy_version == load_policy(SHIPPED).version
    [path] = gw.delivered()
    assert "ups.com/track" in read(path).get_body(("plain",)).get_content()


def test_own_mailbox_in_a_signature_becomes_the_alias(gw: RunningGateway) -> None:
    """content.email leaves the sender's registered mailbox to the leak guard."""
    p = gw.register(seller="owner@sakura-shop.com")
    body = "Could you confirm the apartment number?\n-- \nMaria\nowner@sakura-shop.com\n"
    code, text = seller_says(gw, p, body, subject="Delivery address")
    assert code == 250, text
    [path] = gw.delivered()
    delivered = read(path).get_body(("plain",)).get_content()
    assert "owner@sakura-shop.com" not in delivered and p.seller_alias in delivered


def test_cjk_refusal_is_ascii_and_names_the_handle(gw: RunningGateway) -> None:
    p = gw.register()
    code, text = seller_says(gw, p, "您好\uff0c有问题请加微信 sakura_shop88 联系我们。\n", "订单")
    assert code == 550
    line = next(line for line in text.splitlines() if line.startswith("5.7.1 content.social"))
    assert line.isascii() and "sakura_shop88" in line and "\\u5fae\\u4fe1" in line


def test_buyer_may_use_emoji_but_not_share_a_phone_number(gw: RunningGateway) -> None:
    p = gw.register()
    thanks = text_message(sender=p.buyer_address, to=p.seller_alias, body="Got it, thanks! 😊\n")
    assert data_reply(gw.port, thanks)[0] == 250
    phone = text_message(
        sender=p.buyer_address, to=p.seller_alias, body="Call me: +49 151 23456789\n"
    )
    code, text = data_reply(gw.port, phone)
    assert code == 550 and "content.phone" in text


def test_html_is_sanitised_and_the_plain_part_kept_in_step(tmp_path: Path, db_url: str) -> None:
    """content.link in shadow mode: the message goes through, the link is unwrapped in the
    HTML and removed from the plain text, and the hit is archived."""
    policy = policy_copy(tmp_path / "policy", content_link="shadow")
    with running_gateway(tmp_path, db_url, content_policy=policy) as gw:
        p = gw.register()
        mail = text_message(sender=p.seller_mailbox, to=p.buyer_alias, subject="Manual")
        mail.set_content("The manual: https://files.elsewhere.example/manual\nMaria\n")
        mail.add_alternative(
            "<html><head><style>p{color:red}</style><script>alert(1)</script></head><body>"
            '<p>The manual: <a href="https://files.elsewhere.example/manual">manual</a></p>'
            "<marquee>Maria</marquee></body></html>",
            subtype="html",
        )
        code, text = data_reply(gw.port, mail)
        assert code == 250, text
        [row] = archived(gw)
        assert (row.verdict, row.rule_hits, row.shadow_hits) == ("accepted", "", "content.link")
        [path] = gw.delivered()
        delivered = read(path)
        html = delivered.get_body(("html",)).get_content()
        plain = delivered.get_body(("plain",)).get_content()
    assert "<script" not in html and "alert(1)" not in html and "color:red" not in html
    assert "<marquee" not in html and "Maria" in html  # the tag goes, its text stays
    assert "<a>manual</a>" in html and "files.elsewhere.example" not in html
    assert "files.elsewhere.example" not in plain and "[link removed]" in plain


def test_sighup_reloads_the_policy_and_keeps_it_when_the_new_one_is_broken(
    tmp_path: Path,
) -> None:
    policy = policy_copy(tmp_path / "policy")
    port = free_port()
    with database_url("sqlite", tmp_path) as url:
        config = process_config(tmp_path, url, f"maildir:{tmp_path / 'outbox'}", port, policy)
        p = register_with_cli(config)
        link = "Our other shop: www.sakura-outlet.example.com\n"

        def send_link() -> int:
            mail = text_message(sender=p.seller_mailbox, to=p.buyer_alias, body=link)
            return data_reply(port, mail)[0]

        def logged(event: str) -> int:
            return sum(1 for r in json_log_lines(serve.stderr()) if r.get("event") == event)

        with serving(config, port, tmp_path) as serve:
            assert send_link() == 550
            processes = serving_processes(serve)
            policy_copy(tmp_path / "policy", content_link="off")
            serve.signal(signal.SIGHUP)
            wait_for(lambda: logged("policy_reloaded") == processes)  # each one reloads
            assert send_link() == 250

            policy.write_text('[rules."content.link"]\nmode = "sometimes"\n')
            serve.signal(signal.SIGHUP)
            wait_for(lambda: logged("policy_reload_refused") == processes)
            assert send_link() == 250  # the policy in force stayed
            assert serve.stop() == 0
            records = json_log_lines(serve.stderr())
    refusals = [r for r in records if r.get("event") == "policy_reload_refused"]
    reloads = [r for r in records if r.get("event") == "policy_reloaded"]
    assert len(refusals) == len(reloads) == processes
    for refused, reloaded in zip(refusals, reloads, strict=True):
        assert "content.link.mode" in refused["error"] and "sometimes" in refused["error"]
        assert refused["kept"] == reloaded["policy_version"] != reloaded["previous"]


def test_broken_policy_stops_start_up_with_one_line(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('languages = ["xx"]\n')
    with database_url("sqlite", tmp_path) as url:
        config = process_config(tmp_path, url, f"maildir:{tmp_path / 'outbox'}", 0, policy)
        result = run_cli(config, "serve", timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: policy error: {tmp_path / LEXICON_DIR / 'xx.toml'}: not found"
    ]
    assert not (tmp_path / "gateway.db").exists()  # stopped before any work
