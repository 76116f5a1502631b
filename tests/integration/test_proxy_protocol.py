"""Behind a TCP load balancer: Debian's HAProxy in front of the gateway, passing each
client's address on in a PROXY header (v1 and v2). The address it names is the one SPF, the
limits per client and the guessing counts see; only a trusted balancer may name one."""

from __future__ import annotations

import hashlib
import smtplib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.storage.schema import ClientFailure
from tests.support.archive import archived
from tests.support.dns import LocalDns, local_dns
from tests.support.gateway import client_tls, running_gateway, wait_for
from tests.support.haproxy import balancer, require_haproxy
from tests.support.mail import text_message, wire_bytes
from tests.support.process import process_config, reserve_port, run_cli, serving

SHOP = "sakura-shop.example"
SELLER_HOST = "127.0.0.5"  # the only address SPF lets send for the shop
OTHER_HOST = "127.0.0.6"
PROXY_CONFIG = "proxy_protocol = true\nmax_sessions_per_client = 2\nrcpt_refusal_delay = 0.01"


@pytest.fixture
def dns() -> Iterator[LocalDns]:
    require_haproxy()
    with local_dns() as server:
        server.zones.txt[SHOP] = [f"v=spf1 ip4:{SELLER_HOST} -all"]
        yield server


def _client(port: int, source: str) -> smtplib.SMTP:
    return smtplib.SMTP("127.0.0.1", port, timeout=30, source_address=(source, 0))


def _greeting(port: int, source: str) -> tuple[socket.socket, bytes]:
    connection = socket.create_connection(("127.0.0.1", port), 10, source_address=(source, 0))
    return connection, connection.recv(1024)


def _closed_unanswered(connection: socket.socket, send: bytes) -> bool:
    connection.settimeout(10)
    connection.sendall(send)
    try:
        return connection.recv(1024) == b""
    except ConnectionResetError:
        return True


@pytest.mark.parametrize("version", [1, 2])
def test_the_client_the_balancer_names_is_the_one_spf_and_the_limits_see(
    tmp_path: Path, db_url: str, dns: LocalDns, version: int
) -> None:
    with (
        running_gateway(
            tmp_path, db_url, smtp_config=PROXY_CONFIG, sender_auth="spf", dns_port=dns.port
        ) as gw,
        balancer(tmp_path / "haproxy", gw.port, version=version) as lb,
    ):
        parties = gw.register(shop="Sakura Shop")
        raw = wire_bytes(text_message(sender=parties.seller_mailbox, to=parties.buyer_alias))

        # SPF passes only for the seller's own host: the balancer (127.0.0.1) is not it.
        # STARTTLS begins a new session (RFC 3207 4.2): the named client stays its peer.
        with _client(lb.port, SELLER_HOST) as client:
            assert client.sendmail(parties.seller_mailbox, [parties.buyer_alias], raw) == {}
        with _client(lb.port, SELLER_HOST) as client:
            client.starttls(context=client_tls())
            assert client.sendmail(parties.seller_mailbox, [parties.buyer_alias], raw) == {}
        with _client(lb.port, OTHER_HOST) as client, pytest.raises(smtplib.SMTPDataError) as no:
            client.sendmail(parties.seller_mailbox, [parties.buyer_alias], raw)
        assert (no.value.smtp_code, no.value.smtp_error[:6]) == (550, b"5.7.23")  # SPF fails
        header = archived(gw.gateway.database)[0].raw_received
        assert header is not None and f"spf=pass smtp.mailfrom={parties.seller_mailbox}" in (
            header.split(b"\r\n\r\n", 1)[0].decode()
        )

        # Two sessions per client: the third from the seller's host is refused, while
        # another host behind the same balancer is served.
        held = [_greeting(lb.port, SELLER_HOST) for _ in range(2)]
        try:
            assert all(greeting.startswith(b"220 ") for _, greeting in held)
            third, refused = _greeting(lb.port, SELLER_HOST)
            third.close()
            assert refused.startswith(b"421 4.7.0")
            other, served = _greeting(lb.port, OTHER_HOST)
            other.close()
            assert served.startswith(b"220 ")
        finally:
            for connection, _ in held:
                connection.close()

        def served_again() -> bool:  # the closed sessions' slots are free once they end
            connection, greeting = _greeting(lb.port, SELLER_HOST)
            connection.close()
            return greeting.startswith(b"220 ")

        wait_for(served_again, timeout=10)

        # A guess is counted against the client's address, not the balancer's.
        with _client(lb.port, OTHER_HOST) as client:
            client.ehlo()
            client.mail(parties.seller_mailbox)
            assert client.rcpt(f"nobody@{parties.buyer_alias.split('@')[1]}")[0] == 550
        with gw.gateway.database.reading() as session:
            keys = set(session.scalars(select(ClientFailure.key)))
        assert keys == {hashlib.sha256(f"client:{OTHER_HOST}".encode()).hexdigest()}

        # The balancer's own SMTP health checks come with a LOCAL header: they pass.
        wait_for(lambda: lb.server_status() == "UP", timeout=20)


def test_only_a_trusted_balancer_may_name_a_client(tmp_path: Path, db_url: str) -> None:
    require_haproxy()
    trusted = "127.0.0.2"
    config = f'proxy_protocol = true\nproxy_networks = ["{trusted}/32"]'
    forged = b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 25\r\n"
    with (
        running_gateway(tmp_path, db_url, smtp_config=config) as gw,
        balancer(tmp_path / "haproxy", gw.port, source=trusted) as lb,
    ):
        with _client(lb.port, SELLER_HOST) as client:
            assert client.ehlo()[0] == 250
        # Straight from an untrusted address, a header is not believed: closed unanswered.
        with socket.create_connection(("127.0.0.1", gw.port), 10) as direct:
            assert _closed_unanswered(direct, forged)
        # From the balancer's address, a connection without its header is closed too.
        with socket.create_connection(
            ("127.0.0.1", gw.port), 10, source_address=(trusted, 0)
        ) as headless:
            assert _closed_unanswered(headless, b"EHLO client.example\r\n")
        with socket.create_connection(
            ("127.0.0.1", gw.port), 10, source_address=(trusted, 0)
        ) as named:
            named.sendall(forged)
            assert named.recv(1024).startswith(b"220 ")


def test_the_containers_health_check_speaks_first_as_a_balancer_does(
    tmp_path: Path, db_url: str
) -> None:
    """Behind a balancer the MX awaits a PROXY header before it greets: `check` (the image's
    HEALTHCHECK, over loopback) sends the one a balancer's own health check sends."""
    port, metrics_port = reserve_port(), reserve_port()
    config = process_config(tmp_path, db_url, f"maildir:{tmp_path / 'outbox'}", port)
    text = config.read_text().replace("[smtp]\n", "[smtp]\nproxy_protocol = true\n", 1)
    config.write_text(text.replace("[metrics]\nport = 0", f"[metrics]\nport = {metrics_port}"))
    with serving(config, port, tmp_path):
        assert run_cli(config, "check").stdout.strip() == "ok"
        with socket.create_connection(("127.0.0.1", port), 10) as plain:
            assert _closed_unanswered(plain, b"NOOP\r\n")  # no header: not a balancer
