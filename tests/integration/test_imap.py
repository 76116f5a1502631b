"""IMAP ingest against a real Dovecot: a message APPENDed to the source folder goes through the
same intake as one on the MX, exactly once, whatever fails on the way."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import dkim
import httpx
import pytest
import structlog.testing
from sqlalchemy.engine import make_url

from gateway.delivery.dkim import dns_record, new_private_key
from gateway.storage.imap import MailboxLedger, SourceState
from tests.support.databases import postgres_schema
from tests.support.dns import LocalDns, local_dns
from tests.support.dovecot import CATCHALL, Dovecot, running_dovecot, tls_files
from tests.support.gateway import (
    ADMIN_TOKEN,
    Parties,
    RunningGateway,
    running_gateway,
    wait_for,
    write_config,
)
from tests.support.mail import read, text_message, wire_bytes
from tests.support.process import clean_env, cli_json, run_cli
from tests.support.proxy import tcp_proxy
from tests.support.sink import free_port


def imap_config(
    dovecot: Dovecot,
    *,
    folder: str = "INBOX",
    finish: str = 'move_to = "Processed"',
    tls: str = "none",
    port: int | None = None,
    password: str | None = None,
    extra: str = "",
) -> str:
    """An [imap] section with one source, `catchall`, on the test Dovecot (short timings)."""
    return f"""
[imap]
poll_interval = 0.5
idle_renew = 2
timeout = 5
lease = 6
backoff_min = 0.2
backoff_max = 1
retry_message_after = 0.2
[imap.passwords]
catchall = "{password or dovecot.users[CATCHALL]}"
[[imap.sources]]
name = "catchall"
host = "{"localhost" if tls != "none" else "127.0.0.1"}"
port = {port or dovecot.port}
tls = "{tls}"
{f'ca_file = "{tls_files()[0]}"' if tls != "none" else ""}
user = "{CATCHALL}"
folder = "{folder}"
{finish}
quarantine_to = "Quarantine"
{extra}
"""


def delivered_by_mx(parties: Parties, body: str = "Your parcel left today.\n") -> bytes:
    """A seller's message as the marketplace's MX delivers it into the catch-all mailbox:
    with the envelope written into Return-Path and Delivered-To."""
    message = text_message(sender=parties.seller_mailbox, to=parties.buyer_alias, body=body)
    return envelope_headers(message, parties.seller_mailbox, parties.buyer_alias)


def envelope_headers(message: EmailMessage, sender: str, recipient: str) -> bytes:
    return f"Return-Path: <{sender}>\r\nDelivered-To: {recipient}\r\n".encode() + wire_bytes(
        message
    )


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    with running_dovecot() as server:
        yield server


@pytest.fixture
def imap_gw(tmp_path: Path, db_url: str, dovecot: Dovecot) -> Iterator[RunningGateway]:
    with running_gateway(tmp_path, db_url, extra_config=imap_config(dovecot)) as gateway:
        yield gateway


def ledger(gw: RunningGateway) -> MailboxLedger:
    return MailboxLedger(gw.gateway.database)


def test_message_in_the_mailbox_reaches_the_buyer_rewritten_and_is_moved(
    imap_gw: RunningGateway, dovecot: Dovecot
) -> None:
    parties = imap_gw.register()
    dovecot.append(CATCHALL, delivered_by_mx(parties))

    [path] = imap_gw.delivered()
    delivered = read(path)
    assert str(delivered["To"]) == parties.buyer_address
    assert parties.seller_alias in str(delivered["From"])
    assert parties.seller_mailbox.encode() not in path.read_bytes()
    wait_for(lambda: len(dovecot.messages(CATCHALL, "Processed")) == 1)
    assert dovecot.messages(CATCHALL, "INBOX") == []
    [state] = ledger(imap_gw).states()
    assert (state.name, state.taken) == ("catchall", 1)


def archived(gw: RunningGateway) -> list[tuple[str, str, int]]:
    """The archive: (direction, recipient, reply code) of each record, oldest first."""
    with gw.gateway.database.read_connection() as connection:
        rows = connection.exec_driver_sql(
            "SELECT direction, recipient, smtp_reply FROM messages ORDER BY id"
        ).all()
    return [(str(r[0]), str(r[1]), int(str(r[2])[:3])) for r in rows]


def queued(gw: RunningGateway) -> int:
    with gw.gateway.database.read_connection() as connection:
        return int(connection.exec_driver_sql("SELECT count(*) FROM outbound").scalar_one())


def test_refused_message_tells_the_sender_by_dsn_naming_only_the_alias(
    imap_gw: RunningGateway, dovecot: Dovecot
) -> None:
    parties = imap_gw.register()
    imap_gw.registry.set_suspended(parties.seller_id, True)
    dovecot.append(CATCHALL, delivered_by_mx(parties))

    [path] = imap_gw.delivered()
    report = read(path)
    assert str(report["To"]) == parties.seller_mailbox
    assert report.get_content_type() == "multipart/report"
    text = path.read_bytes().decode()
    assert parties.buyer_alias in text
    assert parties.buyer_address not in text
    wait_for(lambda: len(dovecot.messages(CATCHALL, "Processed")) == 1)
    directions = [direction for direction, _, _ in archived(imap_gw)]
    assert directions == ["seller_to_buyer", "notice"]


def test_unknown_sender_is_archived_as_refused_and_told_nothing(
    imap_gw: RunningGateway, dovecot: Dovecot
) -> None:
    parties = imap_gw.register()
    message = text_message(sender="stranger@elsewhere.example", to=parties.buyer_alias)
    dovecot.append(
        CATCHALL, envelope_headers(message, "stranger@elsewhere.example", parties.buyer_alias)
    )

    wait_for(lambda: len(dovecot.messages(CATCHALL, "Processed")) == 1)
    [(direction, recipient, code)] = archived(imap_gw)
    assert (direction, recipient, code) == ("unrouted", parties.buyer_alias, 550)
    assert queued(imap_gw) == 0  # no DSN: it would have been written in the same commit


def test_message_that_cannot_be_read_is_archived_and_quarantined(
    tmp_path: Path, db_url: str, dovecot: Dovecot
) -> None:
    with running_gateway(
        tmp_path, db_url, extra_config=imap_config(dovecot), smtp_config="max_mime_depth = 3"
    ) as gw:
        parties = gw.register()
        nested = "".join(
            f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n' for i in range(6)
        )
        raw = (
            f"Return-Path: <{parties.seller_mailbox}>\r\nDelivered-To: {parties.buyer_alias}\r\n"
            f"From: {parties.seller_mailbox}\r\nTo: {parties.buyer_alias}\r\nSubject: deep\r\n"
            f"MIME-Version: 1.0\r\n{nested}\r\ntext\r\n"
        ).encode()
        dovecot.append(CATCHALL, raw)
        # And one whose headers name no alias at all (a misrouted message).
        dovecot.append(CATCHALL, b"From: a@b.example\r\nSubject: lost\r\n\r\nhello\r\n")

        wait_for(lambda: len(dovecot.messages(CATCHALL, "Quarantine")) == 2)
        assert dovecot.messages(CATCHALL, "INBOX") == []
        records = archived(gw)
        assert sorted((d, code) for d, _, code in records) == [
            ("notice", 250),  # the seller is told its message could not be read
            ("seller_to_buyer", 554),
            ("unrouted", 550),  # nobody to tell
        ]
        [report] = gw.delivered(1)
        assert str(read(report)["To"]) == parties.seller_mailbox


def test_idle_wakes_the_poller_within_seconds(
    tmp_path: Path, db_url: str, dovecot: Dovecot
) -> None:
    config = imap_config(dovecot).replace("idle_renew = 2", "idle_renew = 600")
    with running_gateway(tmp_path, db_url, extra_config=config) as gw:
        parties = gw.register()
        wait_for(lambda: [s.state for s in ledger(gw).states()] == ["idle"])
        dovecot.append(CATCHALL, delivered_by_mx(parties))
        gw.delivered(timeout=10)  # far within the IDLE round: the server's EXISTS woke it


def test_flagged_source_survives_a_changed_uidvalidity_without_duplicates(
    tmp_path: Path, db_url: str, dovecot: Dovecot
) -> None:
    config = imap_config(dovecot, folder="Orders", finish="flag = true")
    with running_gateway(tmp_path, db_url, extra_config=config) as gw:
        parties = gw.register()
        before = dovecot.append(CATCHALL, delivered_by_mx(parties), folder="Orders")
        gw.delivered(1)
        wait_for(lambda: "$BsmTaken" in " ".join(dovecot.flags(CATCHALL, "Orders")))
        validity = dovecot.uidvalidity(CATCHALL, "Orders")

        dovecot.recreate(CATCHALL, "Orders")  # new UIDVALIDITY, the message unflagged again
        assert dovecot.uidvalidity(CATCHALL, "Orders") != validity
        dovecot.append(CATCHALL, delivered_by_mx(parties, "A second message.\n"), folder="Orders")

        gw.delivered(2)
        wait_for(lambda: all("$BsmTaken" in f for f in dovecot.flags(CATCHALL, "Orders")))
        assert len(dovecot.flags(CATCHALL, "Orders")) == 2
        assert len(list((gw.maildir / "new").iterdir())) == 2  # the first one not again
        assert before >= 1
        [state] = ledger(gw).states()
        assert state.uidvalidity == dovecot.uidvalidity(CATCHALL, "Orders")
        assert state.taken == 3  # two messages, and the first one's new place


def test_wrong_password_is_one_clear_error_and_retried_with_backoff(
    tmp_path: Path, db_url: str, dovecot: Dovecot
) -> None:
    config = imap_config(dovecot, password="not-the-password")
    with (
        structlog.testing.capture_logs() as logs,
        running_gateway(tmp_path, db_url, extra_config=config) as gw,
    ):
        parties = gw.register()
        state = wait_for(lambda: _state_named(gw, "auth_failed"))
        assert "login refused: [AUTHENTICATIONFAILED]" in state.detail
        wide = clean_env(COLUMNS="300")  # one line per source
        shown = run_cli(tmp_path / "gateway.toml", "imap", "status", env=wide)
        assert shown.returncode == 0
        assert "[AUTHENTICATIONFAILED]" in shown.stdout  # the server's words, as it wrote them
        wait_for(lambda: _metric(gw, "bsm_imap_errors_total", 'kind="auth"') >= 2)
        gw.seller_writes(parties)  # the gateway serves on meanwhile
        gw.delivered(1)
    failures = [log for log in logs if log["event"] == "imap_login_failed"]
    assert len(failures) >= 2
    assert failures[0]["log_level"] == "error"
    assert all("not-the-password" not in repr(log) for log in logs)


def _state_named(gw: RunningGateway, state: str) -> SourceState | None:
    return next((s for s in ledger(gw).states() if s.state == state), None)


def test_dovecot_stopped_and_started_again_mid_run(
    imap_gw: RunningGateway, dovecot: Dovecot
) -> None:
    parties = imap_gw.register()
    dovecot.append(CATCHALL, delivered_by_mx(parties))
    imap_gw.delivered(1)

    dovecot.stop()
    wait_for(lambda: [s.state for s in ledger(imap_gw).states()] == ["backoff"])
    dovecot.start()
    dovecot.append(CATCHALL, delivered_by_mx(parties, "After the restart.\n"))

    imap_gw.delivered(2)
    wait_for(lambda: len(dovecot.messages(CATCHALL, "Processed")) == 2)


@pytest.mark.parametrize("tls", ["implicit", "starttls"])
def test_tls_to_the_server(tmp_path: Path, tls: str) -> None:
    with running_dovecot(tls=True) as server:
        port = server.tls_port if tls == "implicit" else server.port
        config = imap_config(server, tls=tls, port=port)
        with running_gateway(
            tmp_path, f"sqlite:///{tmp_path / 'gw.db'}", extra_config=config
        ) as gw:
            parties = gw.register()
            server.append(CATCHALL, delivered_by_mx(parties))
            gw.delivered(1)
        assert ", TLS, " in server.log  # Dovecot's word for a login over TLS


def _metric(gw: RunningGateway, name: str, label: str) -> float:
    port = gw.gateway.metrics_port
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and label in line
    )


def test_status_in_the_cli_and_the_admin_api(
    tmp_path: Path, imap_gw: RunningGateway, dovecot: Dovecot
) -> None:
    parties = imap_gw.register()
    dovecot.append(CATCHALL, delivered_by_mx(parties))
    imap_gw.delivered(1)
    wait_for(lambda: _state_named(imap_gw, "idle"))

    [shown] = cli_json(tmp_path / "gateway.toml", "imap", "status")["sources"]
    assert shown["name"] == "catchall"
    assert shown["state"] == "idle"
    assert shown["taken"] == 1
    assert shown["after"] == "move to Processed"
    assert shown["polled_by"]
    assert CATCHALL not in json.dumps(shown)  # the mailbox's own address is not shown
    human = run_cli(tmp_path / "gateway.toml", "imap", "status")
    assert human.returncode == 0 and "catchall" in human.stdout and "idle" in human.stdout

    response = httpx.get(
        f"{imap_gw.admin_url}/v1/imap/sources",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=10,
    )
    assert response.status_code == 200
    [source] = response.json()["sources"]
    assert (source["name"], source["state"], source["taken"]) == ("catchall", "idle", 1)


def test_a_server_that_stops_answering_inside_idle_is_left_and_reconnected(
    tmp_path: Path, dovecot: Dovecot
) -> None:
    with tcp_proxy("127.0.0.1", dovecot.port) as proxy:
        config = imap_config(dovecot, port=proxy.port)  # IDLE rounds of 2 s
        with running_gateway(
            tmp_path, f"sqlite:///{tmp_path / 'gw.db'}", extra_config=config
        ) as gw:
            parties = gw.register()
            wait_for(lambda: _state_named(gw, "idle"))
            proxy.freeze()  # no reply to DONE, nor to anything else: aioimaplib would wait on
            state = wait_for(lambda: _state_named(gw, "backoff"), timeout=30)
            assert "timeout" in state.detail
            proxy.freeze(False)
            dovecot.append(CATCHALL, delivered_by_mx(parties))
            gw.delivered(1, timeout=30)


def test_database_down_leaves_the_message_in_the_mailbox_until_it_is_back(
    tmp_path: Path, dovecot: Dovecot
) -> None:
    with postgres_schema() as direct_url:
        url = make_url(direct_url)
        with tcp_proxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
            proxied = url.set(port=proxy.port).render_as_string(hide_password=False)
            with running_gateway(tmp_path, proxied, extra_config=imap_config(dovecot)) as gw:
                parties = gw.register()
                wait_for(lambda: _state_named(gw, "idle"))
                proxy.cut()
                dovecot.append(CATCHALL, delivered_by_mx(parties))
                # Not taken in: left where it was, tried again with backoff.
                wait_for(lambda: _metric(gw, "bsm_imap_errors_total", 'kind="database"') > 0)
                assert len(dovecot.messages(CATCHALL, "INBOX")) == 1
                proxy.restore()
                gw.delivered(1, timeout=30)
                wait_for(lambda: dovecot.messages(CATCHALL, "INBOX") == [])


def test_the_sender_is_proven_by_dkim_or_a_trusted_servers_results(
    tmp_path: Path, dovecot: Dovecot
) -> None:
    config = imap_config(dovecot, extra='trusted_authserv_ids = ["mx.market.example"]')
    with (
        local_dns() as dns,
        running_gateway(
            tmp_path,
            f"sqlite:///{tmp_path / 'gw.db'}",
            extra_config=config,
            sender_auth="aligned",
            dns_port=dns.port,
        ) as gw,
    ):
        parties = gw.register()
        domain = parties.seller_mailbox.rpartition("@")[2]
        message = text_message(sender=parties.seller_mailbox, to=parties.buyer_alias)
        signed = _dkim_signed(wire_bytes(message), domain, dns)
        head = f"Return-Path: <{parties.seller_mailbox}>\r\nDelivered-To: {parties.buyer_alias}\r\n"
        spf = f"Authentication-Results: mx.market.example; spf=pass smtp.mailfrom={domain}\r\n"
        forged = f"Authentication-Results: elsewhere.example; spf=pass smtp.mailfrom={domain}\r\n"
        plain = wire_bytes(text_message(sender=parties.seller_mailbox, to=parties.buyer_alias))
        dovecot.append(CATCHALL, head.encode() + signed)  # its own DKIM signature
        dovecot.append(CATCHALL, (head + spf).encode() + plain)  # the trusted MX's SPF
        dovecot.append(CATCHALL, (head + forged).encode() + plain)  # anyone's word: no

        wait_for(lambda: len(dovecot.messages(CATCHALL, "Processed")) == 3)
        gw.delivered(2)
        verdicts = sorted(code for _, _, code in archived(gw))
        assert verdicts == [250, 250, 550]  # and no DSN: a sender rule refused it
        assert queued(gw) == 2


def _dkim_signed(raw: bytes, domain: str, dns: LocalDns | None) -> bytes:
    """`raw` signed for `domain`; its key published on `dns` (None: nowhere)."""
    key = new_private_key()
    if dns is not None:
        dns.zones.txt[f"s1._domainkey.{domain}"] = [dns_record(key)]
    return bytes(dkim.sign(raw, b"s1", domain.encode(), key.encode())) + raw


def test_a_bye_from_the_server_is_followed_by_a_new_connection(
    imap_gw: RunningGateway, dovecot: Dovecot
) -> None:
    parties = imap_gw.register()
    wait_for(lambda: _state_named(imap_gw, "idle"))
    dovecot.kick(CATCHALL)  # "* BYE Server shutting down." inside IDLE
    wait_for(lambda: _metric(imap_gw, "bsm_imap_errors_total", 'kind="dropped"') > 0)
    dovecot.append(CATCHALL, delivered_by_mx(parties))
    imap_gw.delivered(1)


# A fault in the database itself, for one message: its archive record can never be written.
POISON_TRIGGER = {
    "sqlite": [
        """CREATE TRIGGER poison BEFORE INSERT ON messages
        WHEN NEW.original_message_id = '<poison@client.example>'
        BEGIN SELECT RAISE(ABORT, 'this message cannot be stored'); END"""
    ],
    "postgresql": [
        """CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN
        IF NEW.original_message_id = '<poison@client.example>' THEN
            RAISE EXCEPTION 'this message cannot be stored';
        END IF;
        RETURN NEW; END $$ LANGUAGE plpgsql""",
        """CREATE TRIGGER poison BEFORE INSERT ON messages
        FOR EACH ROW EXECUTE FUNCTION poison()""",
    ],
}


def test_a_message_that_can_never_be_stored_is_put_aside_after_five_tries(
    imap_gw: RunningGateway, dovecot: Dovecot
) -> None:
    database = imap_gw.gateway.database
    kind = "sqlite" if database.is_sqlite else "postgresql"
    with database.writing() as connection:
        for statement in POISON_TRIGGER[kind]:
            connection.exec_driver_sql(statement)
    parties = imap_gw.register()
    poison = text_message(
        sender=parties.seller_mailbox,
        to=parties.buyer_alias,
        message_id="<poison@client.example>",
    )
    dovecot.append(CATCHALL, envelope_headers(poison, parties.seller_mailbox, parties.buyer_alias))
    dovecot.append(CATCHALL, delivered_by_mx(parties))

    imap_gw.delivered(1)  # the other one is not held up
    wait_for(lambda: len(dovecot.messages(CATCHALL, "Quarantine")) == 1, timeout=30)
    assert b"<poison@client.example>" in dovecot.messages(CATCHALL, "Quarantine")[0]
    assert dovecot.messages(CATCHALL, "INBOX") == []
    assert _metric(imap_gw, "bsm_imap_messages_total", 'outcome="deferred"') == 5
    assert [direction for direction, _, _ in archived(imap_gw)] == ["seller_to_buyer"]


@pytest.mark.parametrize(
    "capability",
    [
        "IMAP4rev1 LITERAL+ IDLE UIDPLUS",  # COPY, STORE \Deleted, UID EXPUNGE
        "IMAP4rev1 LITERAL+ IDLE",  # COPY, STORE \Deleted, EXPUNGE
    ],
)
def test_a_server_without_move_gets_copy_delete_and_expunge(
    tmp_path: Path, capability: str
) -> None:
    with running_dovecot(capability=capability) as server:
        config = imap_config(server)
        with running_gateway(
            tmp_path, f"sqlite:///{tmp_path / 'gw.db'}", extra_config=config
        ) as gw:
            parties = gw.register()
            server.append(CATCHALL, delivered_by_mx(parties))
            server.append(CATCHALL, delivered_by_mx(parties, "A second one.\n"))
            gw.delivered(2)
            wait_for(lambda: len(server.messages(CATCHALL, "Processed")) == 2)
            wait_for(lambda: server.messages(CATCHALL, "INBOX") == [])
        # Dovecot counts what its sessions marked \Deleted and expunged (a MOVE does neither).
        deleted = [int(n) for n in re.findall(r" deleted=(\d+) expunged=\1 ", server.log)]
        assert sum(deleted) == 2
        assert len(list((gw.maildir / "new").iterdir())) == 2


def test_a_message_over_the_size_limit_is_put_aside_unread(
    tmp_path: Path, dovecot: Dovecot
) -> None:
    with running_gateway(
        tmp_path,
        f"sqlite:///{tmp_path / 'gw.db'}",
        extra_config=imap_config(dovecot),
        smtp_config="max_message_size = 20000",
    ) as gw:
        parties = gw.register()
        dovecot.append(CATCHALL, delivered_by_mx(parties, "A long one.\n" * 3000))
        dovecot.append(CATCHALL, delivered_by_mx(parties))
        gw.delivered(1)
        wait_for(lambda: len(dovecot.messages(CATCHALL, "Quarantine")) == 1)
        assert archived(gw) == [("seller_to_buyer", parties.buyer_alias, 250)]


def test_a_sender_whose_dns_does_not_answer_waits_in_the_mailbox(
    tmp_path: Path, dovecot: Dovecot
) -> None:
    silent = free_port()  # nothing answers there: every look-up times out
    with running_gateway(
        tmp_path,
        f"sqlite:///{tmp_path / 'gw.db'}",
        extra_config=imap_config(dovecot).replace(
            "retry_message_after = 0.2", "retry_message_after = 30"
        ),
        sender_auth="aligned",
        dns_port=silent,
    ) as gw:
        parties = gw.register()
        domain = parties.seller_mailbox.rpartition("@")[2]
        message = wire_bytes(text_message(sender=parties.seller_mailbox, to=parties.buyer_alias))
        signed = _dkim_signed(message, domain, None)
        dovecot.append(CATCHALL, envelope_headers_raw(signed, parties))
        wait_for(lambda: _metric(gw, "bsm_imap_messages_total", 'outcome="deferred"') > 0, 30)
        assert archived(gw) == []  # not committed: nothing refused it for good
        assert len(dovecot.messages(CATCHALL, "INBOX")) == 1
        assert queued(gw) == 0


def envelope_headers_raw(raw: bytes, parties: Parties) -> bytes:
    head = f"Return-Path: <{parties.seller_mailbox}>\r\nDelivered-To: {parties.buyer_alias}\r\n"
    return head.encode() + raw


def test_status_without_sources_says_so(tmp_path: Path) -> None:
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'gw.db'}", "maildir:outbox")
    shown = run_cli(config, "imap", "status")
    assert shown.returncode == 0
    assert "No mailbox sources: [[imap.sources]] names none." in shown.stdout
    assert cli_json(config, "imap", "status") == {"sources": []}
