"""Submission: sellers send through the gateway with STARTTLS (587) or implicit TLS (465) and
AUTH, only as themselves and only to their own buyers; guessing passwords gets locked out."""

from __future__ import annotations

import base64
import smtplib
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.core import status
from gateway.storage.credentials import NewCredential
from gateway.storage.schema import ClientFailure
from tests.support.gateway import (
    Parties,
    RunningGateway,
    client_tls,
    running_gateway,
    submission_session,
)
from tests.support.mail import read, text_message, wire_bytes


def auth_plain(client: smtplib.SMTP, username: str, password: str) -> tuple[int, bytes]:
    """One AUTH PLAIN attempt (smtplib's login() would go on to try LOGIN as well)."""
    token = base64.b64encode(f"\0{username}\0{password}".encode()).decode()
    return client.docmd("AUTH", f"PLAIN {token}")


def _seller(gw: RunningGateway, shop: str = "Sakura Shop") -> tuple[Parties, NewCredential]:
    parties = gw.register(shop=shop)
    return parties, gw.gateway.credentials.add(parties.seller_id)


def _mail(parties: Parties, subject: str = "Your order") -> bytes:
    return wire_bytes(
        text_message(sender=parties.seller_mailbox, to=parties.buyer_alias, subject=subject)
    )


def test_a_seller_sends_over_starttls_with_auth_plain(tmp_path: Path, db_url: str) -> None:
    with running_gateway(tmp_path, db_url) as gw:
        parties, credential = _seller(gw)
        with smtplib.SMTP("127.0.0.1", gw.submission_port, timeout=30) as client:
            client.ehlo()
            assert client.has_extn("starttls") and not client.has_extn("auth")
            client.starttls(context=client_tls())
            client.ehlo()
            assert client.esmtp_features["auth"].split() == ["LOGIN", "PLAIN"]
            client.login(credential.username, credential.password)  # smtplib picks PLAIN
            refused = client.sendmail(parties.seller_mailbox, [parties.buyer_alias], _mail(parties))
            assert refused == {}
        delivered = read(gw.delivered()[0])
        assert delivered["To"] == parties.buyer_address
        assert parties.seller_mailbox not in gw.delivered()[0].read_text()


def test_a_seller_sends_over_implicit_tls_with_auth_login(tmp_path: Path, db_url: str) -> None:
    with running_gateway(tmp_path, db_url) as gw:
        parties, credential = _seller(gw)
        with smtplib.SMTP_SSL(
            "127.0.0.1", gw.submissions_port, timeout=30, context=client_tls()
        ) as client:
            client.ehlo()
            assert not client.has_extn("starttls")
            client.user, client.password = credential.username, credential.password
            code, _ = client.auth("LOGIN", client.auth_login, initial_response_ok=False)
            assert code == 235
            client.sendmail(parties.seller_mailbox, [parties.buyer_alias], _mail(parties))
        assert read(gw.delivered()[0])["To"] == parties.buyer_address


def test_nothing_happens_before_tls_and_auth(tmp_path: Path, db_url: str) -> None:
    with running_gateway(tmp_path, db_url) as gw:
        parties, _ = _seller(gw)
        with smtplib.SMTP("127.0.0.1", gw.submission_port, timeout=30) as client:
            client.ehlo()
            code, text = client.docmd("AUTH", "PLAIN AGZvbwBiYXI=")
            assert code == 530 and b"STARTTLS" in text
            code, _ = client.docmd("MAIL", f"FROM:<{parties.seller_mailbox}>")
            assert code == 530
        with submission_session(gw) as client:
            code, text = client.docmd("MAIL", f"FROM:<{parties.seller_mailbox}>")
            assert (code, text) == (530, b"5.7.0 Authentication required")


def test_wrong_and_revoked_credentials_are_refused(tmp_path: Path, db_url: str) -> None:
    with running_gateway(tmp_path, db_url) as gw:
        _, credential = _seller(gw)
        with (
            submission_session(gw) as client,
            pytest.raises(smtplib.SMTPAuthenticationError) as wrong,
        ):
            client.login(credential.username, credential.password + "x")
        assert wrong.value.smtp_code == 535 and wrong.value.smtp_error.startswith(b"5.7.8")
        gw.gateway.credentials.revoke(credential.seller_id)
        with (
            submission_session(gw) as client,
            pytest.raises(smtplib.SMTPAuthenticationError) as revoked,
        ):
            client.login(credential.username, credential.password)
        assert revoked.value.smtp_code == 535


def test_a_seller_writes_only_as_itself_and_only_to_its_own_buyers(
    tmp_path: Path, db_url: str
) -> None:
    with running_gateway(tmp_path, db_url) as gw:
        parties, credential = _seller(gw)
        other, _ = _seller(gw, shop="Other Shop")
        unknown_alias = "aaaaaaaaaaaaaaaa@relay.example.test"
        with submission_session(gw, credential) as client:
            code, text = client.docmd("MAIL", f"FROM:<{other.seller_mailbox}>")
            assert code == 550 and text.startswith(b"5.7.1")
            assert client.docmd("MAIL", "FROM:<>")[0] == 550
            assert client.docmd("MAIL", f"FROM:<{parties.seller_mailbox}>")[0] == 250
            # Another seller's buyer, its own seller alias, an alias that does not exist:
            # one answer for all, so nothing is learnt about other sellers' aliases.
            answers = {
                client.docmd("RCPT", f"TO:<{rcpt}>")
                for rcpt in (other.buyer_alias, parties.seller_alias, unknown_alias)
            }
            assert len(answers) == 1
            code, text = answers.pop()
            assert code == 550 and text.startswith(b"5.7.1")
            for relay in ("user@other.example", '"x@relay.example.test"@other.example'):
                code, text = client.docmd("RCPT", f"TO:<{relay}>")
                assert code in (501, 554), (relay, code, text)
            client.rset()
            # A From that is not its own is refused at DATA even with its own envelope.
            forged = wire_bytes(text_message(sender=other.seller_mailbox, to=parties.buyer_alias))
            with pytest.raises(smtplib.SMTPDataError) as refused:
                client.sendmail(parties.seller_mailbox, [parties.buyer_alias], forged)
            assert refused.value.smtp_code == 550


def test_repeated_auth_failures_are_locked_out_and_counted(tmp_path: Path, db_url: str) -> None:
    config = "auth_free_failures = 1\nauth_failure_limit = 3\nauth_lockout = 600"
    with running_gateway(tmp_path, db_url, submission_config=config) as gw:
        _, credential = _seller(gw)
        with submission_session(gw) as client:
            codes = [auth_plain(client, credential.username, "guess")[0] for _ in range(3)]
            assert codes == [535, 535, 535]
            # Locked: even the right password is refused now.
            code, text = auth_plain(client, credential.username, credential.password)
            assert code == 454 and text.startswith(b"4.7.0")
        with submission_session(gw) as client:
            assert auth_plain(client, credential.username, credential.password)[0] == 454

        assert gw.gateway.metrics_port is not None
        url = f"http://127.0.0.1:{gw.gateway.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            metrics = response.read().decode()
        assert 'bsm_auth_attempts_total{result="failure"} 3.0' in metrics
        assert 'bsm_auth_attempts_total{result="locked"} 2.0' in metrics
        assert 'bsm_auth_lockouts_total{scope="client"} 1.0' in metrics
        assert 'bsm_auth_lockouts_total{scope="user"} 1.0' in metrics


def test_replicas_on_one_database_lock_a_guesser_out_together(tmp_path: Path, db_url: str) -> None:
    """Failures on one replica count on the other: a guesser cannot spread its tries over
    the replicas behind a load balancer."""
    config = "auth_free_failures = 0\nauth_failure_limit = 3\nauth_lockout = 600"
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    with (
        running_gateway(tmp_path / "a", db_url, submission_config=config) as first,
        running_gateway(tmp_path / "b", db_url, submission_config=config) as second,
    ):
        _, credential = _seller(first)
        for gw in (first, second, first):
            with submission_session(gw) as client:
                assert auth_plain(client, credential.username, "guess")[0] == 535
        for gw in (second, first):
            with submission_session(gw) as client:
                code, text = auth_plain(client, credential.username, credential.password)
                assert (code, text[:5]) == (454, b"4.7.0")


def test_the_mx_takes_no_auth_even_over_tls(tmp_path: Path, db_url: str) -> None:
    with (
        running_gateway(tmp_path, db_url) as gw,
        smtplib.SMTP("127.0.0.1", gw.port, timeout=30) as client,
    ):
        client.ehlo()
        assert client.has_extn("starttls")
        client.starttls(context=client_tls())
        client.ehlo()
        assert not client.has_extn("auth")
        assert client.docmd("AUTH", "PLAIN AGZvbwBiYXI=")[0] == 504


def test_a_sellers_mistaken_recipients_do_not_count_as_guessing(
    tmp_path: Path, db_url: str
) -> None:
    """Relay refusals to an authenticated seller (an outside address typed by mistake) are
    no sign of alias guessing: its office's address is not slowed down for them."""
    with running_gateway(tmp_path, db_url, smtp_config="rcpt_refusal_free = 0") as gw:
        parties, credential = _seller(gw)
        with submission_session(gw, credential) as client:
            client.mail(parties.seller_mailbox)
            assert client.rcpt("friend@elsewhere.example")[0] == status.RELAY_DENIED.code
        with gw.gateway.database.reading() as session:
            assert session.scalar(select(func.count()).select_from(ClientFailure)) == 0
        with smtplib.SMTP("127.0.0.1", gw.port, timeout=30) as client:  # the MX counts
            client.ehlo()
            client.mail("someone@elsewhere.example")
            assert client.rcpt("friend@elsewhere.example")[0] == status.RELAY_DENIED.code
        with gw.gateway.database.reading() as session:
            assert session.scalar(select(func.count()).select_from(ClientFailure)) == 1
