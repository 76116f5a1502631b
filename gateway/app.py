"""The composition root: the only module that knows every part and wires them together."""

from __future__ import annotations

import asyncio
import signal
import ssl

from dns.exception import DNSException

from gateway.admin.api import create_app
from gateway.admin.server import AdminServer
from gateway.archive.store import ArchiveIntake
from gateway.core.clock import Clock, SystemClock
from gateway.core.ports import Transport
from gateway.db.credentials import CredentialStore
from gateway.db.dkim_keys import DkimKeyStore
from gateway.db.registry import Registry
from gateway.db.reports import Reports
from gateway.db.session import Database
from gateway.inbound.auth import SubmissionAuth
from gateway.inbound.handler import GatewayHandler
from gateway.inbound.resolver import Resolver
from gateway.inbound.server import Listener, SessionLimits
from gateway.inbound.throttle import FailureThrottle
from gateway.inbound.tls import make_self_signed, server_context
from gateway.inbound.verify import SenderVerifier
from gateway.obs.log import get_logger
from gateway.obs.metrics import Metrics
from gateway.outbound.dkim import SigningTransport, new_private_key
from gateway.outbound.maildir import MaildirTransport
from gateway.outbound.smtp import SmtpTransport
from gateway.policy.config import ContentPolicy
from gateway.policy.rules.marketplace import MarketplacePolicy
from gateway.policyfile import PolicyError, load_policy
from gateway.queue.repository import DatabaseQueue
from gateway.queue.worker import DeliveryWorkers
from gateway.settings import ConfigError, Settings

_log = get_logger("app")


def build_transport(settings: Settings) -> Transport:
    delivery = settings.delivery
    if delivery.maildir_path is not None:
        return MaildirTransport(delivery.maildir_path)
    target = delivery.smarthost
    assert target is not None  # settings accept only maildir: and smtp://
    return SmtpTransport(
        host=target.host,
        port=target.port,
        timeout=delivery.attempt_timeout,
        helo_name=settings.smtp.hostname,
        username=target.username,
        password=target.password,
        starttls=target.starttls,
    )


def _sender_verifier(settings: Settings) -> SenderVerifier | None:
    if settings.smtp.sender_auth == "none":
        return None
    dns = settings.dns
    try:
        resolver = Resolver([str(ip) for ip in dns.nameservers], dns.port, dns.timeout)
    except DNSException as error:
        raise ConfigError(
            f"config error: dns.nameservers: none given and the system has none ({error})"
        ) from None
    return SenderVerifier(resolver)


def content_policy(settings: Settings) -> ContentPolicy:
    """The content policy the settings name; a broken one stops start-up like bad config."""
    try:
        return load_policy(settings.rules.content_policy or None)
    except PolicyError as error:
        raise ConfigError(str(error)) from None


def marketplace_policy(settings: Settings) -> MarketplacePolicy:
    rules = settings.rules
    return MarketplacePolicy(
        quota_base=rules.quota_base,
        quota_per_daily_order=rules.quota_per_order,
        quota_window_days=rules.quota_window_days,
        quota_permanent=rules.quota_permanent,
        contact_window_days=rules.contact_window_days,
        important_tag=rules.important_tag,
        reason_tags=tuple(rules.reason_tags),
    )


class Gateway:
    """Listener, delivery workers and storage of one gateway process."""

    def __init__(
        self,
        settings: Settings,
        *,
        database: Database,
        clock: Clock | None = None,
        transport: Transport | None = None,
        policy: ContentPolicy | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.database = database
        self.registry = Registry(database, settings.alias_domain, self.clock)
        self.queue = DatabaseQueue(database)
        self.dkim_keys = DkimKeyStore(database, self.clock)
        delivery = settings.delivery
        self.workers = DeliveryWorkers(
            queue=self.queue,
            transport=SigningTransport(
                transport or build_transport(settings),
                self.dkim_keys.active,
                settings.alias_domain,
            ),
            clock=self.clock,
            alias_domain=settings.alias_domain,
            count=delivery.workers,
            retry_schedule=list(delivery.retry_schedule),
            give_up_after=delivery.give_up_after,
            claim_lease=delivery.claim_lease,
            claim_batch=delivery.claim_batch,
            poll_interval=delivery.poll_interval,
        )
        self.metrics = Metrics()
        self.credentials = CredentialStore(database, self.clock)
        smtp = settings.smtp
        self.handler = GatewayHandler(
            alias_domain=settings.alias_domain,
            directory=self.registry,
            intake=ArchiveIntake(database),
            clock=self.clock,
            max_recipients=smtp.max_recipients,
            max_mime_depth=smtp.max_mime_depth,
            rcpt_refusal_delay=smtp.rcpt_refusal_delay,
            metrics=self.metrics,
            verifier=_sender_verifier(settings),
            sender_auth=smtp.sender_auth,
            marketplace=marketplace_policy(settings),
            content_policy=policy or content_policy(settings),
            on_queued=self.workers.wake,
        )
        self.listeners: dict[str, Listener] = {}
        self.metrics_port: int | None = None
        self.admin = self._build_admin()

    def _build_listeners(self) -> None:
        """The MX and the submission ports; their TLS needs the certificate files first."""
        settings = self.settings
        smtp, submission = settings.smtp, settings.submission
        limits = SessionLimits(
            hostname=smtp.hostname,
            max_message_size=smtp.max_message_size,
            idle_timeout=smtp.idle_timeout,
            max_commands=smtp.max_commands,
            max_sessions_per_client=smtp.max_sessions_per_client,
        )
        tls = None
        if smtp.starttls or submission.enabled:
            try:
                tls = server_context(settings.tls.certificate, settings.tls.private_key)
            except (OSError, ssl.SSLError) as error:
                raise ConfigError(
                    f"config error: tls: cannot load the certificate: {error}"
                ) from None
        self.listeners["mx"] = Listener(
            self.handler,
            name="mx",
            host=smtp.host,
            port=smtp.port,
            limits=limits,
            tls=tls if smtp.starttls else None,
        )
        if not submission.enabled:
            return
        auth = SubmissionAuth(
            self.credentials,
            FailureThrottle(
                free=submission.auth_free_failures,
                limit=submission.auth_failure_limit,
                window=submission.auth_failure_window,
                lockout=submission.auth_lockout,
            ),
            self.metrics,
        )
        for name, port, implicit in (
            ("submission", submission.starttls_port, False),
            ("submissions", submission.tls_port, True),  # RFC 8314 names port 465 so
        ):
            self.listeners[name] = Listener(
                self.handler,
                name=name,
                host=submission.host,
                port=port,
                limits=limits,
                tls=tls,
                implicit_tls=implicit,
                auth=auth,
                auth_require_tls=submission.auth_require_tls,
            )

    def _ensure_certificate(self) -> None:
        tls = self.settings.tls
        if tls.certificate.exists() and tls.private_key.exists():
            return
        if not tls.self_signed:
            missing = tls.certificate if not tls.certificate.exists() else tls.private_key
            raise ConfigError(f"config error: tls: {missing} not found (tls.self_signed is off)")
        make_self_signed(tls.certificate, tls.private_key, self.settings.smtp.hostname)
        _log.warning("self_signed_certificate_made", path=str(tls.certificate))

    def _build_admin(self) -> AdminServer | None:
        admin = self.settings.admin
        if not admin.enabled:
            return None
        api = create_app(
            self.registry,
            Reports(self.database, self.clock),
            admin.token,
            self.settings.rules.important_share_threshold,
        )
        return AdminServer(api, admin.host, admin.port)

    async def start(self) -> None:
        await asyncio.to_thread(
            self.dkim_keys.ensure_active, self.settings.dkim.selector, new_private_key
        )
        if self.settings.smtp.starttls or self.settings.submission.enabled:
            await asyncio.to_thread(self._ensure_certificate)
        self._build_listeners()
        for listener in self.listeners.values():
            await listener.start()
        if self.admin is not None:
            await self.admin.start()
        metrics = self.settings.metrics
        if metrics.enabled:
            self.metrics_port = self.metrics.serve(metrics.host, metrics.port)
        self.workers.start()
        _log.info(
            "started",
            ports={name: listener.port for name, listener in self.listeners.items()},
            metrics_port=self.metrics_port,
            admin_port=self.admin.port if self.admin else None,
            workers=self.settings.delivery.workers,
            policy_version=self.handler.policy_version,
        )

    def reload_policy(self) -> bool:
        """SIGHUP (in a worker thread): read the content policy again. An invalid one is
        refused with its error logged, and the policy in force stays."""
        try:
            policy = load_policy(self.settings.rules.content_policy or None)
        except PolicyError as error:
            self.metrics.policy_reloads.labels("refused").inc()
            _log.error("policy_reload_refused", error=str(error), kept=self.handler.policy_version)
            return False
        previous = self.handler.policy_version
        self.handler.use_policy(policy)
        self.metrics.policy_reloads.labels("loaded").inc()
        _log.info("policy_reloaded", policy_version=policy.version, previous=previous)
        return True

    @property
    def listener(self) -> Listener:
        """The MX listener."""
        return self.listeners["mx"]

    async def stop(self) -> None:
        grace = self.settings.smtp.shutdown_grace
        await asyncio.gather(*(listener.stop(grace) for listener in self.listeners.values()))
        await self.workers.stop()
        if self.admin is not None:
            await self.admin.stop()
        self.metrics.close()
        _log.info("stopped")

    async def run_until_signalled(self) -> None:
        """serve: run until SIGTERM or SIGINT, then shut down in order."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        reloads: set[asyncio.Task[bool]] = set()

        def reload_in_background() -> None:
            # Reading and compiling a policy takes a moment: not on the loop that serves SMTP.
            task = loop.create_task(asyncio.to_thread(self.reload_policy))
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        loop.add_signal_handler(signal.SIGHUP, reload_in_background)
        await self.start()
        try:
            await stop.wait()
        finally:
            _log.info("stopping")
            await self.stop()
            self.database.dispose()
