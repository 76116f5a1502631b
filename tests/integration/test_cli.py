"""The bsm-gateway command in subprocesses: --json output, idempotency, errors, config errors."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.storage import migrate
from gateway.storage.database import Database
from gateway.storage.schema import SellerCredential
from tests.support.process import clean_env, cli_json, one_json_object, run_cli

SELLER = "owner@sakura-shop.example"
BUYER = "kim.buyer@buyer-mail.example"


def _config(folder: Path, database_url: str, body: str = "") -> Path:
    """An operator config: the database, a maildir under `folder`, and `body`."""
    path = folder / "operator.toml"
    path.write_text(
        f'database_url = "{database_url}"\n'
        f"{body}\n"
        f'[delivery]\ntransport = "maildir:{folder / "outbox"}"\n'
    )
    return path


@pytest.fixture
def config(tmp_path: Path, db_url: str) -> Path:
    return _config(tmp_path, db_url)


def _failed_json(result: subprocess.CompletedProcess[str]) -> dict[str, object]:
    """A --json command that failed: non-zero exit, one {"error": "..."} on stdout."""
    assert result.returncode != 0, f"exited 0: {result.stdout!r}"
    error = one_json_object(result.stdout)
    assert set(error) == {"error"} and isinstance(error["error"], str) and error["error"]
    return error


def test_every_json_command_prints_one_object(config: Path) -> None:
    upgraded = cli_json(config, "db", "upgrade")
    assert upgraded == {"from": None, "to": migrate.head_revision()}
    assert cli_json(config, "db", "upgrade") == {"from": upgraded["to"], "to": upgraded["to"]}

    seller = cli_json(config, "seller", "add", "Sakura Shop", "--mailbox", SELLER)
    assert set(seller) == {"seller_id"} and isinstance(seller["seller_id"], int)
    buyer = cli_json(config, "buyer", "add", BUYER)
    assert set(buyer) == {"buyer_id", "created"} and buyer["created"] is True

    ids = ("--seller", str(seller["seller_id"]), "--buyer", str(buyer["buyer_id"]))
    order = cli_json(config, "order", "add", *ids)
    assert order["created"] is True and isinstance(order["order_id"], int)
    assert order["seller_id"] == seller["seller_id"] and order["buyer_id"] == buyer["buyer_id"]
    for alias in (order["buyer_alias"], order["seller_alias"]):
        assert alias.endswith("@relay.example.test")
    assert order["buyer_alias"] != order["seller_alias"]

    pair = cli_json(config, "pair", "show", *ids)
    assert pair == {
        "pair_id": order["pair_id"],
        "seller_id": seller["seller_id"],
        "buyer_id": buyer["buyer_id"],
        "buyer_alias": order["buyer_alias"],
        "seller_alias": order["seller_alias"],
    }
    # No real address in what the registry prints back.
    for value in (*order.values(), *pair.values()):
        assert value not in (SELLER, BUYER)


def test_buyer_add_twice_returns_the_same_id(config: Path) -> None:
    first = cli_json(config, "buyer", "add", BUYER)
    same = cli_json(config, "buyer", "add", BUYER)
    assert first["created"] is True
    assert same == {"buyer_id": first["buyer_id"], "created": False}
    # Domains are case-insensitive: the same mailbox.
    shouted = cli_json(config, "buyer", "add", BUYER.replace("buyer-mail", "BUYER-Mail"))
    assert shouted == {"buyer_id": first["buyer_id"], "created": False}


def test_order_add_with_the_same_ref_is_idempotent(config: Path) -> None:
    seller = cli_json(config, "seller", "add", "Sakura Shop", "--mailbox", SELLER)["seller_id"]
    buyer = cli_json(config, "buyer", "add", BUYER)["buyer_id"]
    ids = ("--seller", str(seller), "--buyer", str(buyer))
    first = cli_json(config, "order", "add", *ids, "--order-ref", "ORD-1001")
    second = cli_json(config, "order", "add", *ids, "--order-ref", "ORD-1001")
    assert first["created"] is True
    assert second == {**first, "created": False}
    # Another order of the same pair keeps the pair's aliases.
    other = cli_json(config, "order", "add", *ids, "--order-ref", "ORD-1002")
    assert other["created"] is True and other["order_id"] != first["order_id"]
    assert (other["pair_id"], other["buyer_alias"], other["seller_alias"]) == (
        first["pair_id"],
        first["buyer_alias"],
        first["seller_alias"],
    )


def test_order_add_for_an_unknown_seller_fails_with_a_json_error(config: Path) -> None:
    buyer = cli_json(config, "buyer", "add", BUYER)["buyer_id"]
    result = run_cli(config, "order", "add", "--seller", "999", "--buyer", str(buyer), "--json")
    error = _failed_json(result)
    assert "999" in str(error["error"])


def test_pair_show_for_a_missing_pair_fails(config: Path) -> None:
    seller = cli_json(config, "seller", "add", "Sakura Shop", "--mailbox", SELLER)["seller_id"]
    buyer = cli_json(config, "buyer", "add", BUYER)["buyer_id"]
    ids = ("--seller", str(seller), "--buyer", str(buyer))

    _failed_json(run_cli(config, "pair", "show", *ids, "--json"))

    human = run_cli(config, "pair", "show", *ids)
    assert human.returncode != 0
    assert human.stdout == ""
    assert "error" in human.stderr.lower()


def test_credential_add_shows_the_password_once_and_stores_only_its_hash(
    config: Path, db_url: str
) -> None:
    seller = cli_json(config, "seller", "add", "Sakura Shop", "--mailbox", SELLER)["seller_id"]
    made = cli_json(config, "seller", "credential", "add", str(seller))
    assert set(made) == {"seller_id", "username", "password"} and made["seller_id"] == seller
    assert len(made["password"]) >= 20
    database = Database.from_url(db_url)
    try:
        with database.reading() as session:
            stored = session.scalars(select(SellerCredential.password_hash)).one()
    finally:
        database.dispose()
    assert stored.startswith("$argon2id$") and made["password"] not in stored

    human = run_cli(config, "seller", "credential", "add", str(seller))
    assert human.returncode == 0 and "shown only now" in human.stdout

    revoked = cli_json(
        config, "seller", "credential", "revoke", str(seller), "--username", made["username"]
    )
    assert revoked == {"seller_id": seller, "revoked": [made["username"]]}
    remaining = cli_json(config, "seller", "credential", "revoke", str(seller))
    assert len(remaining["revoked"]) == 1 and made["username"] not in remaining["revoked"]
    _failed_json(run_cli(config, "seller", "credential", "revoke", str(seller), "--json"))
    _failed_json(run_cli(config, "seller", "credential", "add", "999", "--json"))


def test_serve_without_its_certificate_exits_2_naming_it(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        f"sqlite:///{tmp_path / 'gateway.db'}",
        f"[smtp]\nport = 0\n[submission]\nstarttls_port = 0\ntls_port = 0\n[metrics]\nport = 0\n"
        f'[tls]\ncertificate = "{tmp_path}/none.pem"\nprivate_key = "{tmp_path}/none.key"\n'
        "self_signed = false",
    )
    result = run_cli(config, "serve", timeout=30)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "config error: tls:" in result.stderr and "none.pem" in result.stderr


@pytest.mark.parametrize("processes", ["1", "2"])
def test_serve_on_a_port_in_use_exits_2_naming_it(tmp_path: Path, processes: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = _config(
            tmp_path,
            f"sqlite:///{tmp_path / 'gateway.db'}",
            f"[smtp]\nport = {port}\n[submission]\nenabled = false\n[metrics]\nport = 0\n",
        )
        env = clean_env(BSM_SERVER__PROCESSES=processes)
        result = run_cli(config, "serve", env=env, timeout=30)
    assert result.returncode == 2, (result.stdout, result.stderr)
    last = result.stderr.strip().splitlines()[-1]
    assert (
        last
        == f"error: config error: mx: cannot listen on 127.0.0.1:{port}: Address already in use"
    )


# -- configuration errors: exit 2, one line on stderr naming the key -------------------------

COMMANDS = [
    pytest.param(["serve"], id="serve"),
    pytest.param(["check"], id="check"),
    pytest.param(["db", "upgrade", "--json"], id="db-upgrade"),
    pytest.param(["seller", "add", "Shop", "--mailbox", SELLER, "--json"], id="seller-add"),
    pytest.param(["buyer", "add", BUYER, "--json"], id="buyer-add"),
    pytest.param(["order", "add", "--seller", "1", "--buyer", "1", "--json"], id="order-add"),
    pytest.param(["pair", "show", "--seller", "1", "--buyer", "1", "--json"], id="pair-show"),
]

BAD_CONFIGS = [
    pytest.param("[smtp]\nprot = 25", {}, "smtp.prot", id="unknown-key"),
    pytest.param("[smtp]\nport = 70000", {}, "smtp.port", id="port-out-of-range"),
    pytest.param("", {"BSM_SMTP__PORT": "abc"}, "smtp.port", id="env-port-not-a-number"),
]


@pytest.mark.parametrize(("body", "env", "key"), BAD_CONFIGS)
@pytest.mark.parametrize("command", COMMANDS)
def test_a_bad_config_exits_2_with_one_line_naming_the_key(
    tmp_path: Path, command: list[str], body: str, env: dict[str, str], key: str
) -> None:
    database = tmp_path / "gateway.db"
    config = _config(tmp_path, f"sqlite:///{database}", body)
    result = run_cli(config, *command, env=clean_env(**env), timeout=30)
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {result.stderr!r}"
    assert key in lines[0], f"{key} not named in {lines[0]!r}"
    assert not database.exists(), "a command ran on a config it rejected"


def test_db_upgrade_on_a_fresh_sqlite_file(tmp_path: Path) -> None:
    database = tmp_path / "fresh" / "gateway.db"
    config = _config(tmp_path, f"sqlite:///{database}")
    assert cli_json(config, "db", "upgrade") == {"from": None, "to": migrate.head_revision()}
    assert database.is_file()


# -- policy score ------------------------------------------------------------------------------

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "policy"


def test_policy_score_counts_each_rule_and_language(tmp_path: Path, config: Path) -> None:
    corpus = tmp_path / "labelled"
    corpus.mkdir()
    for name in ("001-en-clean-delay-ups-tracking.eml", "125-ja-phone-mobile.eml"):
        (corpus / name).write_bytes((CORPUS / name).read_bytes())
    # A clean message labelled as a phone: one false negative of the labels' own making.
    wrong = (CORPUS / "002-en-clean-address-missing-apartment.eml").read_bytes()
    (corpus / "900-en-phone-mislabelled.eml").write_bytes(
        wrong.replace(b"X-Policy-Expect: none", b"X-Policy-Expect: content.phone")
    )
    report = cli_json(config, "policy", "score", str(corpus))
    assert (report["messages"], report["clean"], report["clean_passed"]) == (3, 1, 1)
    [phone] = [r for r in report["rules"] if r["rule"] == "content.phone"]
    assert (phone["positives"], phone["found"], phone["true_positives"]) == (2, 1, 1)
    assert (phone["precision"], phone["recall"]) == (1.0, 0.5)
    assert set(report["languages"]) == {"en", "ja"}
    assert report["languages"]["ja"]["overall"]["recall"] == 1.0

    shown = run_cli(config, "policy", "score", "--misses", str(corpus))
    assert shown.returncode == 0, shown.stderr
    assert "900-en-phone-mislabelled.eml: expected ['content.phone'], found none" in shown.stdout
    table = run_cli(config, "policy", "score", "--markdown", str(corpus))
    assert "| `content.phone` | 2 | 1 | 1.00 | 0.50 |" in table.stdout

    # A corpus that labels the content rules only is scored by them alone: an emoji its
    # writers were never asked about is no false alarm there.
    (corpus / "056-en-emoji-party-grin.eml").write_bytes(
        (CORPUS / "056-en-emoji-party-grin.eml").read_bytes()
    )
    every = cli_json(config, "policy", "score", str(corpus))
    assert "form.emoji" in {r["rule"] for r in every["rules"]}
    content = cli_json(config, "policy", "score", "--only", "content.", str(corpus))
    assert {r["rule"] for r in content["rules"]} == {"content.phone"}
    assert (content["clean"], content["clean_passed"]) == (2, 2)

    (corpus / "901-en-unlabelled.eml").write_bytes(b"Subject: hi\r\n\r\nhello\r\n")
    error = _failed_json(run_cli(config, "policy", "score", "--json", str(corpus)))
    assert "901-en-unlabelled.eml: no X-Policy-Expect" in str(error["error"])
