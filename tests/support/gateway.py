"""A real gateway on a free loopback port, run on its own event loop in a thread."""

from __future__ import annotations

import asyncio
import atexit
import shutil
import smtplib
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from gateway.app import Gateway
from gateway.core.clock import Clock
from gateway.delivery.transport import Transport
from gateway.settings import Settings, load_settings
from gateway.smtp.tls import make_self_signed
from gateway.storage.credentials import NewCredential
from gateway.storage.migrate import open_database
from gateway.storage.registry import OrderView, Registry
from tests.support.mail import send, text_message
from tests.support.sink import Sink, smtp_sink

ADMIN_TOKEN = "test-admin-token-0123456789"
CLAIM_LEASE = 8.0  # [delivery] claim_lease: a delivery claimed by a dead process waits this long
TEST_CONFIG = """
database_url = "{database_url}"
[smtp]
port = 0
shutdown_grace = 5
sender_auth = "{sender_auth}"
{smtp_extra}
[dns]
{dns}
[submission]
starttls_port = 0
tls_port = 0
{submission_extra}
[tls]
certificate = "{certificate}"
private_key = "{private_key}"
self_signed = false
[metrics]
port = 0
[admin]
enabled = true
port = 0
token = "{admin_token}"
[auditor]
port = 0
{auditor_extra}
[delivery]
transport = "{transport}"
retry_schedule = [0.2]
poll_interval = 0.1
claim_lease = {claim_lease}
attempt_timeout = 2
heartbeat = 0.5
dead_after = 6
{extra}
[rules]
content_policy = "{content_policy}"
{rules_extra}
"""

# Most tests are about transport, storage and the marketplace's rules, and their messages
# carry addresses and links: the content rules are off unless a test names a policy.
CONTENT_POLICY_OFF = """\
[html]
sanitize = false
""" + "".join(
    f'[rules."{rule_id}"]\nmode = "off"\n'
    for rule_id in (
        "content.link",
        "content.email",
        "content.phone",
        "content.social",
        "content.marketing",
        "content.feedback_request",
        "content.confirmation_only",
        "content.thanks_only",
        "content.cancel_reason",
        "content.business_name",
        "form.emoji",
        "form.styled_text",
        "form.line_breaks",
        "form.animated_gif",
        "form.image_size",
        "attach.type",
        "attach.size",
    )
)


@cache
def tls_certificate() -> tuple[Path, Path]:
    """One self-signed certificate for every gateway of the test run (made once: RSA key
    generation takes a while)."""
    folder = Path(tempfile.mkdtemp(prefix="bsm-tls-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    certificate, private_key = folder / "cert.pem", folder / "key.pem"
    make_self_signed(certificate, private_key, "mx.relay.example.test")
    return certificate, private_key


def client_tls() -> ssl.SSLContext:
    """Trusts the test certificate; the name is not checked (clients connect to 127.0.0.1)."""
    context = ssl.create_default_context(cafile=str(tls_certificate()[0]))
    context.check_hostname = False
    return context


def write_config(
    folder: Path,
    database_url: str,
    transport: str,
    extra: str = "",
    smtp_extra: str = "",
    submission_extra: str = "",
    sender_auth: str = "none",
    dns_port: int | None = None,
    rules_extra: str = "",
    content_policy: Path | None = None,
    auditor_extra: str = "",
) -> Path:
    """A test config: `extra` lands in [delivery], `smtp_extra` in [smtp], `submission_extra`
    in [submission], `rules_extra` in [rules]. The MX path checks no DKIM/SPF unless
    `sender_auth` says so (the tests of that give the port of their local DNS server), and
    no content rule runs unless `content_policy` names a policy.toml."""
    certificate, private_key = tls_certificate()
    if content_policy is None:
        content_policy = folder / "policy-off.toml"
        content_policy.write_text(CONTENT_POLICY_OFF)
    path = folder / "gateway.toml"
    path.write_text(
        TEST_CONFIG.format(
            database_url=database_url,
            transport=transport,
            extra=extra,
            smtp_extra=smtp_extra,
            submission_extra=submission_extra,
            rules_extra=rules_extra,
            content_policy=content_policy,
            auditor_extra=auditor_extra,
            sender_auth=sender_auth,
            dns=f'nameservers = ["127.0.0.1"]\nport = {dns_port}' if dns_port else "",
            admin_token=ADMIN_TOKEN,
            claim_lease=CLAIM_LEASE,
            certificate=certificate,
            private_key=private_key,
        )
    )
    return path


@dataclass
class Parties:
    seller_id: int
    buyer_id: int
    seller_mailbox: str
    buyer_address: str
    buyer_alias: str
    seller_alias: str
    pair_id: int


class RunningGateway:
    def __init__(self, gateway: Gateway, loop: asyncio.AbstractEventLoop, maildir: Path | None):
        self.gateway = gateway
        self.loop = loop
        self.maildir = maildir

    @property
    def port(self) -> int:
        return self.gateway.listener.port

    @property
    def submission_port(self) -> int:
        """STARTTLS, then AUTH."""
        return self.gateway.listeners["submission"].port

    @property
    def submissions_port(self) -> int:
        """Implicit TLS."""
        return self.gateway.listeners["submissions"].port

    @property
    def admin_url(self) -> str:
        assert self.gateway.admin is not None
        return f"http://127.0.0.1:{self.gateway.admin.port}"

    @property
    def registry(self) -> Registry:
        return self.gateway.registry

    @property
    def settings(self) -> Settings:
        return self.gateway.settings

    def call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)

    def register(
        self,
        *,
        shop: str = "Sakura Shop",
        seller: str | None = None,
        buyer: str | None = None,
        mailboxes: tuple[str, ...] = (),
    ) -> Parties:
        seller = seller or f"owner@{shop.lower().replace(' ', '-')}.example"
        buyer = buyer or "buyer@mail.example"
        seller_id = self.registry.add_seller(shop, [seller, *mailboxes])
        buyer_id, _ = self.registry.add_buyer(buyer)
        view: OrderView = self.registry.add_order(seller_id, buyer_id, None, None)
        return Parties(
            seller_id=seller_id,
            buyer_id=buyer_id,
            seller_mailbox=seller,
            buyer_address=buyer,
            buyer_alias=view.pair.buyer_alias,
            seller_alias=view.pair.seller_alias,
            pair_id=view.pair.pair_id,
        )

    def seller_writes(self, parties: Parties, **message: str) -> None:
        """The seller sends one message to its buyer's alias over SMTP (it must be accepted)."""
        mail = text_message(sender=parties.seller_mailbox, to=parties.buyer_alias, **message)
        assert send(self.port, parties.seller_mailbox, [parties.buyer_alias], mail) == {}

    def delivered(self, count: int = 1, timeout: float = 15) -> list[Path]:
        """Wait until the maildir holds `count` messages; returns them oldest first."""
        assert self.maildir is not None
        return wait_for(
            lambda: (
                sorted((self.maildir / "new").iterdir(), key=lambda p: p.stat().st_mtime_ns)
                if len(list((self.maildir / "new").iterdir())) >= count
                else None
            ),
            timeout,
        )


@contextmanager
def submission_session(
    gw: RunningGateway, credential: NewCredential | None = None
) -> Iterator[smtplib.SMTP]:
    """A session on the STARTTLS submission port, encrypted, logged in if given a login."""
    with smtplib.SMTP("127.0.0.1", gw.submission_port, timeout=30) as client:
        client.starttls(context=client_tls())
        client.ehlo()
        if credential is not None:
            client.login(credential.username, credential.password)
        yield client


@contextmanager
def smarthost_gateway(
    folder: Path, database_url: str, script: list[str] | None = None, clock: Clock | None = None
) -> Iterator[tuple[Sink, RunningGateway]]:
    """A gateway delivering through an aiosmtpd smarthost that answers DATA from `script`."""
    with (
        smtp_sink(script) as sink,
        running_gateway(
            folder, database_url, transport=f"smtp://127.0.0.1:{sink.port}", clock=clock
        ) as gateway,
    ):
        yield sink, gateway


def wait_for(probe: Callable[[], Any], timeout: float = 15, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {probe}")
        time.sleep(interval)


@contextmanager
def running_gateway(
    folder: Path,
    database_url: str,
    *,
    transport: str | None = None,
    transport_object: Transport | None = None,
    clock: Clock | None = None,
    extra_config: str = "",
    smtp_config: str = "",
    submission_config: str = "",
    sender_auth: str = "none",
    dns_port: int | None = None,
    rules_config: str = "",
    content_policy: Path | None = None,
    auditor_config: str = "",
) -> Iterator[RunningGateway]:
    maildir = folder / "outbox"
    config = write_config(
        folder,
        database_url,
        transport or f"maildir:{maildir}",
        extra_config,
        smtp_config,
        submission_config,
        sender_auth,
        dns_port,
        rules_config,
        content_policy,
        auditor_config,
    )
    settings = load_settings(config)
    database = open_database(settings.database_url)
    loop = asyncio.new_event_loop()
    started: Future[Gateway] = Future()
    stop = threading.Event()

    async def main() -> None:
        gateway = Gateway(settings, database=database, clock=clock, transport=transport_object)
        await gateway.start()
        started.set_result(gateway)
        while not stop.is_set():
            await asyncio.sleep(0.05)
        await gateway.stop()

    def run() -> None:
        try:
            loop.run_until_complete(main())
        except BaseException as error:  # surface start-up failures to the test
            if not started.done():
                started.set_exception(error)
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="gateway", daemon=True)
    thread.start()
    gateway = started.result(30)
    try:
        yield RunningGateway(gateway, loop, maildir if settings.delivery.maildir_path else None)
    finally:
        stop.set()
        thread.join(30)
        database.dispose()
