"""Searching the archive on both stores: every filter, full text in the languages the
gateway serves (a Chinese or Japanese word inside a sentence, Russian and German words in
any case or form), the CLI's JSON, `archive show`, and purged records leaving the index."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.audit.checkpointer import Checkpointer
from gateway.audit.indexer import Indexer, bring_up_to_date
from gateway.audit.purge import Purger
from gateway.core.clock import FrozenClock
from gateway.core.terms import query_phrases
from gateway.policyfile import embedded_policy_path
from gateway.storage import search as search_module
from gateway.storage.search import SearchQuery, search
from tests.support.gateway import Parties, RunningGateway, running_gateway
from tests.support.mail import data_reply, send, text_message
from tests.support.process import cli_json, run_cli

WRITTEN = {
    "zh": ("订单发货", "您好，您的订单已经发货了，请注意查收。退款申请已经处理。请问需要发票吗？"),
    "ja": ("発送のお知らせ", "ご注文の商品は本日発送しました。少々お待ちください。領収書は必要？"),
    "ru": ("Ваш заказ", "Здравствуйте! Ваш заказ отправлен сегодня. Вам нужен чек?"),
    "de": ("Ihre Rechnung", "Die Rechnung liegt bei. Größe M ist ausverkauft. Möchten Sie L?"),
}


@pytest.fixture
def gw(tmp_path: Path, db_url: str) -> Iterator[RunningGateway]:
    with running_gateway(tmp_path, db_url, content_policy=embedded_policy_path()) as running:
        yield running


@pytest.fixture
def archived(gw: RunningGateway) -> tuple[Parties, Parties]:
    """Four seller messages in four languages, a refused one and a buyer's question in a
    second pair; all logged and indexed."""
    first = gw.register(shop="Sakura Shop", buyer="kim@buyer-mail.example")
    second = gw.register(shop="Tea House", buyer="lee@buyer-mail.example")
    gw.registry.add_order(second.seller_id, second.buyer_id, "302-5550123", None)
    for subject, body in WRITTEN.values():
        gw.seller_writes(first, subject=subject, body=body + "\n")
    phone = text_message(
        sender=second.seller_mailbox, to=second.buyer_alias, subject="Call me",
        body="Please call me on +1 415 555 2671 about the parcel.\n",
    )  # fmt: skip
    assert data_reply(gw.port, phone)[0] == 550
    question = text_message(
        sender=second.buyer_address, to=second.seller_alias, subject="Where is my parcel?",
        body="Hello, my parcel has not arrived yet. Could you check the tracking?\n",
    )  # fmt: skip
    assert send(gw.port, second.buyer_address, [second.seller_alias], question) == {}
    gw.delivered(5)
    catch_up(gw)
    return first, second


def catch_up(gw: RunningGateway) -> None:
    key = gw.gateway.services.archive_keys.active()
    assert key is not None
    bring_up_to_date(gw.gateway.database, Checkpointer(gw.gateway.database, key, gw.gateway.clock))


def subjects(gw: RunningGateway, **asked: object) -> list[str | None]:
    if "text" in asked:
        asked["phrases"] = tuple(query_phrases(str(asked.pop("text"))))
    with gw.gateway.database.read_connection() as connection:
        result = search(connection, SearchQuery(**asked))  # type: ignore[arg-type]
    assert result.exact and result.total >= len(result.results)
    return [found.subject for found in result.results]


@pytest.mark.parametrize(
    ("words", "found"),
    [
        ("发货", "订单发货"),  # a Chinese word inside a sentence
        ("退款申请", "订单发货"),  # a longer one: a phrase of pairs
        ("発送", "発送のお知らせ"),  # Japanese
        ("お待ち", "発送のお知らせ"),
        ("заказ", "Ваш заказ"),
        ("ОТПРАВ", "Ваш заказ"),  # any case, the start of an inflected word
        ("Größe", "Ihre Rechnung"),
        ("GRÖSSE ausverkauft", "Ihre Rechnung"),  # every word must be there
        ("tracking", "Where is my parcel?"),
    ],
)
def test_full_text_finds_words_in_every_language(
    gw: RunningGateway, archived: tuple[Parties, Parties], words: str, found: str
) -> None:
    assert subjects(gw, text=words) == [found]


def test_words_that_are_not_together_or_not_there_find_nothing(
    gw: RunningGateway, archived: tuple[Parties, Parties]
) -> None:
    assert subjects(gw, text="退款处理") == []  # both words are there, not side by side
    assert subjects(gw, text="Größe refund") == []
    assert subjects(gw, text="parcel") == ["Where is my parcel?", "Call me"]


def test_every_filter(gw: RunningGateway, archived: tuple[Parties, Parties]) -> None:
    first, second = archived
    assert len(subjects(gw, seller_id=first.seller_id)) == 4
    assert subjects(gw, buyer="LEE@buyer-mail.example") == ["Where is my parcel?", "Call me"]
    assert subjects(gw, alias=second.seller_alias) == ["Where is my parcel?", "Call me"]
    assert len(subjects(gw, pair_id=first.pair_id)) == 4
    assert len(subjects(gw, order_ref="302-5550123")) == 2
    assert subjects(gw, direction="buyer_to_seller") == ["Where is my parcel?"]
    assert subjects(gw, verdict="refused") == ["Call me"]
    assert subjects(gw, rule="content.phone") == ["Call me"]
    assert subjects(gw, rule="content.phone", pair_id=first.pair_id) == []
    now = datetime.now(UTC)
    assert len(subjects(gw, since=now - timedelta(hours=1), until=now + timedelta(hours=1))) == 6
    assert subjects(gw, until=now - timedelta(hours=1)) == []
    with gw.gateway.database.read_connection() as connection:
        page = search(connection, SearchQuery(limit=2, offset=1))
    assert (page.total, len(page.results), page.results[0].subject) == (6, 2, "Call me")


def test_the_search_and_show_commands(
    tmp_path: Path, gw: RunningGateway, archived: tuple[Parties, Parties]
) -> None:
    config = tmp_path / "gateway.toml"
    found = cli_json(config, "archive", "search", "--text", "发货", "--seller", "1")
    assert found["total"] == 1
    [result] = found["results"]
    assert set(result) == {
        "message_id", "pair_id", "direction", "received_at", "verdict", "rules", "subject",
    }  # fmt: skip
    assert (result["subject"], result["verdict"]) == ("订单发货", "accepted")
    asked = cli_json(config, "archive", "search", "--direction", "buyer-to-seller")
    assert [r["direction"] for r in asked["results"]] == ["buyer-to-seller"]
    refused = cli_json(config, "archive", "search", "--verdict", "refused", "--limit", "5")
    [call] = refused["results"]
    assert "content.phone" in call["rules"]

    shown = cli_json(config, "archive", "show", str(call["message_id"]))
    assert shown["verdict"] == "refused" and "content.phone" in shown["rules"]
    assert '"+1 415 555 2671"' in shown["reply"]  # what matched, quoted
    assert "call me on +1 415 555 2671" in shown["received"]["text"]
    assert shown["delivered"] is None
    accepted = cli_json(config, "archive", "show", str(result["message_id"]))
    assert "退款申请" in accepted["received"]["text"]
    assert "退款申请" in accepted["delivered"]["text"]
    headers = dict(accepted["delivered"]["headers"])
    assert headers["Subject"] == "订单发货"

    bad = run_cli(config, "archive", "search", "--direction", "sideways")
    assert bad.returncode == 1 and "--direction is one of" in bad.stderr
    missing = run_cli(config, "archive", "show", "999999")
    assert missing.returncode == 1 and "no such record" in missing.stderr


def test_a_purged_record_leaves_the_index(
    gw: RunningGateway, archived: tuple[Parties, Parties]
) -> None:
    later = datetime.now(UTC) + timedelta(days=731)
    assert Purger(gw.gateway.database, FrozenClock(later), 730).run().records == 6
    assert subjects(gw, text="发货") == []
    assert subjects(gw) == []
    catch_up(gw)  # the purge's own leaf: nothing to index, nothing comes back
    assert subjects(gw, text="parcel") == []


def test_a_message_logged_after_the_index_ran_is_indexed_on_the_next_run(
    gw: RunningGateway, archived: tuple[Parties, Parties]
) -> None:
    first, _ = archived
    assert Indexer(gw.gateway.database).run_once() == 0
    gw.seller_writes(first, subject="Neue Lieferung", body="Die Lieferung kommt morgen.\n")
    gw.delivered(6)
    assert subjects(gw, text="Lieferung") == []  # not in the log yet
    catch_up(gw)
    assert subjects(gw, text="lieferung") == ["Neue Lieferung"]


@pytest.mark.parametrize("few", [0, search_module.FEW])
def test_words_within_some_pairs_by_either_plan(
    gw: RunningGateway,
    archived: tuple[Parties, Parties],
    monkeypatch: pytest.MonkeyPatch,
    few: int,
) -> None:
    """SQLite looks in each record's words when the other filters leave few, and reads
    the index otherwise: both find the same."""
    monkeypatch.setattr(search_module, "FEW", few)
    first, second = archived
    assert subjects(gw, text="发货", seller_id=first.seller_id) == ["订单发货"]
    assert subjects(gw, text="退款申请", pair_id=first.pair_id) == ["订单发货"]
    assert subjects(gw, text="退款处理", pair_id=first.pair_id) == []
    assert subjects(gw, text="发货", seller_id=second.seller_id) == []
    assert subjects(gw, text="PARC", pair_id=second.pair_id) == ["Where is my parcel?", "Call me"]
    assert subjects(gw, text="größe ausverk", buyer=first.buyer_address) == ["Ihre Rechnung"]


def test_past_the_cap_the_total_says_at_least_and_pages_still_come_newest_first(
    gw: RunningGateway, archived: tuple[Parties, Parties], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search_module, "TOTAL_CAP", 1)
    since = datetime.now(UTC) - timedelta(hours=1)
    for asked, shown in (
        (SearchQuery(limit=3), 3),
        (SearchQuery(limit=3, since=since), 3),
        (SearchQuery(limit=3, phrases=tuple(query_phrases("parcel"))), 2),
    ):
        with gw.gateway.database.read_connection() as connection:
            result = search(connection, asked)
        assert (result.total, result.exact) == (1, False)
        ids = [found.message_id for found in result.results]
        assert len(ids) == shown and ids == sorted(ids, reverse=True)
    assert [f.subject for f in result.results] == ["Where is my parcel?", "Call me"]


def test_the_indexer_reads_a_stretch_of_at_most_index_bytes(
    gw: RunningGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Large messages are read a few at a time (at least one per stretch), and all are
    indexed all the same."""
    parties = gw.register()
    for n in range(4):
        gw.seller_writes(parties, subject=f"Big parcel {n}", body="parcel words\n" * 200)
    gw.delivered(4)
    key = gw.gateway.services.archive_keys.active()
    assert key is not None
    Checkpointer(gw.gateway.database, key, gw.gateway.clock).run_once()
    monkeypatch.setattr(search_module, "INDEX_BYTES", 3000)  # about one message
    stretches = []
    with gw.gateway.database.read_connection() as connection:
        first = search_module.pending(connection)
    stretches.append(len(first.messages))
    assert stretches == [1] and first.end < first.start + 4
    assert Indexer(gw.gateway.database).run_once() == 4
    assert sorted(s or "" for s in subjects(gw, text="parcel")) == [
        f"Big parcel {n}" for n in range(4)
    ]
