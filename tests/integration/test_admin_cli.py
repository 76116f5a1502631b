"""The admin commands of the marketplace backend in subprocesses: order import from CSV and
JSON Lines, opt-outs, suspensions, vacations, pre-purchase questions, and the reports.

Each command costs a process start (about two seconds), so each test runs a few commands and
checks the stored state in process, through the registry."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.core.clock import SystemClock
from gateway.core.model import PairStanding
from gateway.storage.database import Database
from gateway.storage.migrate import open_database
from gateway.storage.registry import Registry, RegistryError
from gateway.storage.schema import Order, Vacation
from tests.support.admin import (
    buyer_writes,
    cli_error,
    described,
    make_traffic,
    operator_config,
)
from tests.support.gateway import running_gateway
from tests.support.process import cli_json, one_json_object, run_cli

ALIAS_DOMAIN = "relay.example.test"  # of config/gateway.toml, which every config here keeps
SELLER = "owner@sakura-shop.example"
KIM = "kim.buyer@buyer-mail.example"
LEE = "lee@buyer-mail.example"
PLACED = "2026-11-01T10:00:00Z"


# -- helpers of this file --------------------------------------------------------------------


@contextmanager
def _store(database_url: str) -> Iterator[tuple[Database, Registry]]:
    """The database the commands work on, opened in this process to set up and check."""
    database = open_database(database_url)
    try:
        yield database, Registry(database, ALIAS_DOMAIN, SystemClock())
    finally:
        database.dispose()


def _orders(database: Database) -> int:
    with database.reading() as session:
        return session.scalar(select(func.count(Order.id))) or 0


def _buyer_id(registry: Registry, address: str) -> int:
    buyer_id, created = registry.add_buyer(address)
    assert not created, f"{address} was not registered"
    return buyer_id


def _standing(registry: Registry, alias: str) -> PairStanding:
    conversation = registry.find_alias(alias.partition("@")[0])
    assert conversation is not None
    return conversation.standing


def _import(config: Path, file: Path, *options: str) -> tuple[dict[str, int], dict[int, str]]:
    """`order import --json` of a file with bad rows: exit 1; the counts, and the error of
    each failed line."""
    result = run_cli(config, "order", "import", str(file), *options, "--json")
    assert result.returncode == 1, described(result)
    summary = one_json_object(result.stdout)
    failed = {row["line"]: row["error"] for row in summary.pop("failed")}
    return summary, failed


def _json_order(seller: int, buyer: str, ref: str, placed_at: str = PLACED) -> str:
    return json.dumps({"seller": seller, "buyer": buyer, "order_ref": ref, "placed_at": placed_at})


@pytest.fixture
def config(tmp_path: Path, db_url: str) -> Path:
    return operator_config(tmp_path, db_url)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """For commands whose checks come before, or do not depend on, the kind of store."""
    return f"sqlite:///{tmp_path / 'gateway.db'}"


# -- order import ----------------------------------------------------------------------------


def test_csv_import_takes_the_good_rows_and_reports_each_bad_one_by_line(
    tmp_path: Path, config: Path, db_url: str
) -> None:
    with _store(db_url) as (database, registry):
        sakura = registry.add_seller("Sakura Shop", [SELLER])
        other = registry.add_seller("Other Shop", ["owner@other-shop.example"])
        # As spreadsheets export it: a byte order mark, CRLF line ends, a blank line.
        rows = [
            "seller,buyer,order_ref,placed_at",
            f"{sakura},{KIM},ORD-1,{PLACED}",
            f"{sakura},not-an-address,ORD-2,{PLACED}",
            "",
            f"{sakura},{LEE},ORD-3,2026-13-01T10:00:00Z",
            f"999,{KIM},ORD-4,{PLACED}",
            f"{other},{LEE},ORD-5,{PLACED}",
            f"{sakura},{KIM},ORD-1,{PLACED}",  # the same order again: already known
            f"{other},{KIM},ORD-1,{PLACED}",  # its ref for another pair
            f"{sakura},{LEE},ORD-6,2026-11-01T10:00:00",
        ]
        orders = tmp_path / "orders.csv"
        orders.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(rows).encode() + b"\r\n")

        counts, failed = _import(config, orders)
        assert counts == {"imported": 2, "known": 1}
        assert sorted(failed) == [3, 5, 6, 9, 10]
        assert failed[3] == "buyer: not a valid mailbox: 'not-an-address'"
        assert failed[5].startswith("placed_at: Input should be a valid datetime")
        assert failed[6] == "no seller 999"
        assert failed[9] == "order ref 'ORD-1' belongs to another pair"
        assert failed[10] == "placed_at: Input should have timezone info"

        kim, lee = _buyer_id(registry, KIM), _buyer_id(registry, LEE)
        assert registry.show_pair(sakura, kim).buyer_alias.endswith(f"@{ALIAS_DOMAIN}")
        assert registry.show_pair(other, lee).pair_id
        # The refused row left nothing behind: not even the pair it would have made.
        with pytest.raises(RegistryError, match="no pair yet"):
            registry.show_pair(other, kim)
        assert _orders(database) == 2

        # Importing the same file again changes nothing: every good row is known by its ref.
        assert _import(config, orders) == ({"imported": 0, "known": 3}, failed)
        assert _orders(database) == 2


def test_json_lines_import_reports_bad_lines_and_prints_them_for_people(
    tmp_path: Path, config: Path, db_url: str
) -> None:
    with _store(db_url) as (database, registry):
        sakura = registry.add_seller("Sakura Shop", [SELLER])
        lines = [
            _json_order(sakura, KIM, "A-1"),
            _json_order(sakura, "kim@", "A-2"),
            "",
            _json_order(sakura, LEE, "A-3", placed_at="soon"),
            _json_order(999, LEE, "A-4")[:-1],  # cut short
            _json_order(999, LEE, "A-5"),
            '["not", "an", "object"]',
            _json_order(sakura, LEE, "A-6"),
        ]
        # Not named .jsonl: --format says what it is.
        orders = tmp_path / "orders.txt"
        orders.write_text("\n".join(lines) + "\n")

        counts, failed = _import(config, orders, "--format", "jsonl")
        assert counts == {"imported": 2, "known": 0}
        assert sorted(failed) == [2, 4, 5, 6, 7]
        assert failed[2] == "buyer: not a valid mailbox: 'kim@'"
        assert failed[4].startswith("placed_at: Input should be a valid datetime")
        assert failed[5].startswith("not JSON: ")
        assert failed[6] == "no seller 999"
        assert failed[7] == "not a JSON object"
        assert registry.show_pair(sakura, _buyer_id(registry, LEE)).pair_id

        # Without --json: a count on stdout, each bad line on stderr; still exit 1.
        human = run_cli(config, "order", "import", str(orders), "--format", "jsonl")
        assert human.returncode == 1, described(human)
        assert "0 imported, 2 already known" in human.stdout
        for line in (2, 4, 5, 6, 7):
            assert f"line {line}: " in human.stderr
        assert _orders(database) == 2


def test_a_csv_without_a_needed_column_imports_nothing_and_names_it(
    tmp_path: Path, sqlite_url: str
) -> None:
    config = operator_config(tmp_path, sqlite_url)
    with _store(sqlite_url) as (database, registry):
        sakura = registry.add_seller("Sakura Shop", [SELLER])
        orders = tmp_path / "orders.csv"
        orders.write_text(f"seller,buyer,order_ref\n{sakura},{KIM},ORD-1\n")
        assert _import(config, orders) == (
            {"imported": 0, "known": 0},
            {1: "header lacks placed_at (needs seller, buyer, order_ref, placed_at)"},
        )
        assert _orders(database) == 0


# -- standing: opt-out, suspension, vacation, pre-purchase -----------------------------------


def test_standing_commands_print_json_and_change_the_pair(config: Path, db_url: str) -> None:
    with _store(db_url) as (database, registry):
        seller = registry.add_seller("Sakura Shop", [SELLER])
        buyer, _ = registry.add_buyer(KIM)
        alias = registry.add_order(seller, buyer, None, None).pair.buyer_alias
        sid = str(seller)

        assert cli_json(config, "buyer", "opt-out", KIM) == {
            "buyer_id": buyer,
            "opted_out": True,
            "changed": True,
        }
        assert _standing(registry, alias).buyer_opted_out
        # The same mailbox: domains are case-insensitive.
        opted_in = cli_json(config, "buyer", "opt-in", KIM.replace("buyer-mail", "Buyer-Mail"))
        assert opted_in == {"buyer_id": buyer, "opted_out": False, "changed": True}
        assert not _standing(registry, alias).buyer_opted_out

        suspended = cli_json(config, "seller", "suspend", sid)
        assert suspended == {"seller_id": seller, "suspended": True, "changed": True}
        assert _standing(registry, alias).seller_suspended
        reinstated = cli_json(config, "seller", "reinstate", sid)
        assert reinstated == {"seller_id": seller, "suspended": False, "changed": True}
        assert not _standing(registry, alias).seller_suspended

        vacation = cli_json(
            config, "seller", "vacation", sid, "--from", "2026-12-20T00:00:00Z",
            "--until", "2026-12-27T09:00:00+09:00",
        )  # fmt: skip
        assert vacation == {
            "vacation_id": vacation["vacation_id"],
            "seller_id": seller,
            "starts_at": "2026-12-20T00:00:00+00:00",
            "ends_at": "2026-12-27T09:00:00+09:00",
        }
        with database.reading() as session:
            stored = session.scalars(select(Vacation)).one()
        assert (stored.id, stored.seller_id) == (vacation["vacation_id"], seller)
        assert stored.ends_at == datetime(2026, 12, 27, tzinfo=UTC)

        allowed = cli_json(config, "seller", "pre-purchase", sid, "--allow")
        assert allowed == {"seller_id": seller, "pre_purchase": True}
        assert _standing(registry, alias).pre_purchase_allowed


def test_pair_add_before_any_order(config: Path, db_url: str) -> None:
    with _store(db_url) as (database, registry):
        seller = registry.add_seller("Sakura Shop", [SELLER])
        buyer, _ = registry.add_buyer(KIM)
        pair = cli_json(config, "pair", "add", "--seller", str(seller), "--buyer", str(buyer))
        assert pair == {
            "pair_id": pair["pair_id"],
            "seller_id": seller,
            "buyer_id": buyer,
            "buyer_alias": pair["buyer_alias"],
            "seller_alias": pair["seller_alias"],
        }
        assert registry.show_pair(seller, buyer).buyer_alias == pair["buyer_alias"]
        assert _standing(registry, pair["buyer_alias"]).latest_order_at is None
        assert _orders(database) == 0


def test_standing_commands_refuse_bad_input_with_a_json_error(
    tmp_path: Path, sqlite_url: str
) -> None:
    config = operator_config(tmp_path, sqlite_url)
    with _store(sqlite_url) as (database, registry):
        sid = str(registry.add_seller("Sakura Shop", [SELLER]))

        assert cli_error(config, "seller", "suspend", "999") == "no seller 999"
        assert cli_error(config, "seller", "pre-purchase", "999", "--refuse") == "no seller 999"
        assert cli_error(config, "pair", "add", "--seller", sid, "--buyer", "999") == "no buyer 999"
        assert cli_error(config, "buyer", "opt-out", "kim@") == "not a valid mailbox: 'kim@'"
        backwards = ("--from", "2026-12-27T00:00:00Z", "--until", "2026-12-20T00:00:00Z")
        assert cli_error(config, "seller", "vacation", sid, *backwards) == (
            "a vacation must end after it starts"
        )
        no_zone = ("--from", "2026-12-20T00:00:00", "--until", "2026-12-27T00:00:00Z")
        assert cli_error(config, "seller", "vacation", sid, *no_zone) == (
            "--from '2026-12-20T00:00:00' needs a zone, e.g. 2026-11-01T10:00:00Z"
        )
        assert cli_error(config, "message", "no-response-needed", "999") == "no message 999"
        with database.reading() as session:
            assert session.scalar(select(func.count(Vacation.id))) == 0


def test_an_id_beyond_the_store_is_an_error_not_a_crash(tmp_path: Path, sqlite_url: str) -> None:
    """Ids past 2**63 - 1 cannot be in the store: "no seller N", not a traceback."""
    config = operator_config(tmp_path, sqlite_url)
    assert cli_error(config, "seller", "suspend", str(2**63)) == f"no seller {2**63}"


# -- message marks and reports ---------------------------------------------------------------


def test_reports_after_traffic(tmp_path: Path, config: Path, db_url: str) -> None:
    with running_gateway(tmp_path, db_url) as gw:
        parties = gw.register()
        second = make_traffic(gw.port, parties)
        seller = parties.seller_id

        marked = cli_json(config, "message", "no-response-needed", str(second))
        assert marked == {"message_id": second, "no_response_needed": True}
        # Its wait is closed, so the next buyer message opens another one.
        buyer_writes(gw.port, parties, "And the invoice?")

        times = cli_json(config, "report", "response-times", "--seller", str(seller))
        # Three buyer messages: one answered at once, one needing no response, one waiting.
        assert times == {
            "sellers": [
                {
                    "seller_id": seller,
                    "seller": "Sakura Shop",
                    "buyer_messages": 2,
                    "average_response_hours": 0.0,
                    "answered_within_24h": 0.5,
                    "answered_later": 0.0,
                    "unanswered": 0.5,
                    "no_response_needed": 1,
                }
            ]
        }
        later = cli_json(config, "report", "response-times", "--since", "2099-01-01T00:00:00Z")
        assert later == {"sellers": []}

        # One of the seller's two messages is [Important]: above the configured 0.2 ...
        important = {"seller_id": seller, "seller": "Sakura Shop", "messages": 2, "important": 1}
        assert cli_json(config, "report", "important") == {
            "threshold": 0.2,
            "sellers": [{**important, "share": 0.5}],
        }
        # ... and not above 0.5: only shares above the threshold are listed.
        assert cli_json(config, "report", "important", "--threshold", "0.5") == {
            "threshold": 0.5,
            "sellers": [],
        }
