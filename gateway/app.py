"""The composition root: the only module that knows every part and wires them together into
one gateway process (listeners, intake, committer, delivery workers, admin, metrics)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import ssl
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from dns.exception import DNSException
from sqlalchemy.engine import make_url

from gateway.admin.api import create_app
from gateway.admin.console import ConsoleConfig, create_console
from gateway.admin.server import AdminServer
from gateway.audit.checkpointer import Checkpointer
from gateway.audit.indexer import Indexer
from gateway.audit.purge import Purger
from gateway.audit.signing import new_log_key
from gateway.core.clock import Clock, SystemClock
from gateway.core.model import ArchiveLoad, QueueLoad, SuppressionRules
from gateway.core.throttle import ThrottleRules
from gateway.delivery.dkim import SigningTransport, new_private_key
from gateway.delivery.instance import is_alive, this_process
from gateway.delivery.maildir import MaildirTransport
from gateway.delivery.smtp import SmtpTransport
from gateway.delivery.transport import Transport
from gateway.delivery.worker import DeliveryWorkers
from gateway.imap.connection import Endpoint
from gateway.imap.poller import SourceConfig, SourcePoller, Timing, new_holder
from gateway.intake.intake import Intake
from gateway.intake.policy import Policy
from gateway.intake.resolver import Resolver
from gateway.intake.verify import SenderVerifier
from gateway.obs.health import BEAT_EVERY, Health
from gateway.obs.log import get_logger
from gateway.obs.metrics import Metrics
from gateway.services import Services, compile_policy
from gateway.settings import ConfigError, Settings
from gateway.smtp.auth import SubmissionAuth
from gateway.smtp.handler import HandlerLimits, SmtpHandler
from gateway.smtp.server import Listener, SessionLimits
from gateway.smtp.spool import ByteBudget
from gateway.smtp.tls import make_self_signed, server_context
from gateway.storage import archive_log, queue
from gateway.storage.archive_keys import ArchiveKeyStore
from gateway.storage.auditors import AuditorStore
from gateway.storage.changes import Change
from gateway.storage.client_failures import FailureThrottle
from gateway.storage.committer import Committer
from gateway.storage.database import Database
from gateway.storage.directory import ChangeWatcher, Directory
from gateway.storage.disk import DiskRoom
from gateway.storage.imap import MailboxLedger
from gateway.storage.migrate import schema_problem

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


def _written_paths(settings: Settings) -> list[Path]:
    """Where the gateway writes on this machine: SQLite's folder and the maildir."""
    paths = []
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        paths.append(Path(url.database).resolve().parent)
    maildir = settings.delivery.maildir_path
    if maildir is not None:
        paths.append(maildir.resolve())
    return paths


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


def build_pollers(
    settings: Settings, intake: Intake, database: Database, clock: Clock, metrics: Metrics
) -> list[SourcePoller]:
    """One poller per [[imap.sources]] entry; they share the database's leases."""
    imap = settings.imap
    timing = Timing(
        poll_interval=imap.poll_interval,
        idle_renew=imap.idle_renew,
        lease=imap.lease,
        backoff_min=imap.backoff_min,
        backoff_max=imap.backoff_max,
        batch=imap.batch,
        retry_message_after=imap.retry_message_after,
        max_message_size=settings.smtp.max_message_size,
    )
    ledger = MailboxLedger(database)
    holder = new_holder(socket.gethostname(), os.getpid())
    return [
        SourcePoller(
            SourceConfig(
                name=source.name,
                endpoint=Endpoint(
                    source.host, source.port, source.tls, source.ca_file, source.user, imap.timeout
                ),
                password=imap.password(source),
                folder=source.folder,
                move_to=source.move_to,
                quarantine_to=source.quarantine_to,
                recipient_headers=list(source.recipient_headers),
                sender_header=source.sender_header,
                trusted_authserv_ids=tuple(source.trusted_authserv_ids),
            ),
            timing,
            intake=intake,
            ledger=ledger,
            clock=clock,
            metrics=metrics,
            alias_domain=settings.alias_domain,
            holder=holder,
        )
        for source in imap.sources
    ]


def prepare(services: Services) -> None:
    """What must exist before any process serves: the alias domain's DKIM key, the key that
    signs the archive log, and the TLS certificate (made self-signed where the settings
    allow it)."""
    settings = services.settings
    services.dkim_keys.ensure_active(settings.dkim.selector, new_private_key)
    services.archive_keys.ensure_active(new_log_key)
    services.bounce_signer()  # the VERP key, made once before several processes need it
    if not (settings.smtp.starttls or settings.submission.enabled):
        return
    tls = settings.tls
    if tls.certificate.exists() and tls.private_key.exists():
        return
    if not tls.self_signed:
        missing = tls.certificate if not tls.certificate.exists() else tls.private_key
        raise ConfigError(f"config error: tls: {missing} not found (tls.self_signed is off)")
    make_self_signed(tls.certificate, tls.private_key, settings.smtp.hostname)
    _log.warning("self_signed_certificate_made", path=str(tls.certificate))


class ArchiveTasks:
    """The archive log's checkpointer, the search indexer that follows the log, and the
    daily purge: in the gateway's one process, or in a process of their own beside several
    workers (keep_archive)."""

    def __init__(self, settings: Settings, database: Database, clock: Clock) -> None:
        key = ArchiveKeyStore(database, clock).active()
        assert key is not None, "prepare() made the archive log's key"
        interval = settings.archive.checkpoint_interval
        self.checkpointer = Checkpointer(database, key, clock, interval=interval)
        self._indexer = Indexer(database, interval=interval)
        self._purger = Purger(database, clock, settings.archive.retention_days)
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self.checkpointer.run(), name="checkpointer"),
            asyncio.create_task(self._indexer.run(), name="search indexer"),
            asyncio.create_task(self._purger.run_daily(), name="purger"),
        ]

    async def stop(self) -> None:
        """The tasks stopped, and the last records appended and signed before the end."""
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        try:
            await asyncio.to_thread(self.checkpointer.run_once)
        except Exception as error:  # the next start appends them
            _log.error("archive_checkpoint_failed", exc_info=error)


async def keep_archive(settings: Settings, database: Database) -> None:
    """The archive's process beside several workers, until SIGTERM or SIGINT. It runs at a
    lower CPU priority than they do (the supervisor nices it): decoding every message for the
    search index takes CPU that intake would otherwise lose, so it takes what is idle."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: None)  # a reload concerns the workers
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
    tasks = ArchiveTasks(settings, database, SystemClock())
    tasks.start()
    _log.info("archive_keeper_started")
    try:
        await stop.wait()
    finally:
        await tasks.stop()
        database.dispose()
        _log.info("stopped")


class Gateway:
    """One gateway process: its listeners, intake, committer and delivery workers."""

    def __init__(
        self,
        settings: Settings,
        *,
        database: Database,
        clock: Clock | None = None,
        transport: Transport | None = None,
        policy: Policy | None = None,
        sockets: Mapping[str, socket.socket] | None = None,
        serves_admin: bool = True,
        serves_metrics: bool = True,
        keeps_archive_log: bool = True,
    ) -> None:
        """`sockets`: listening sockets a parent bound (several processes), by listener
        name. `serves_admin`, `serves_metrics`, `keeps_archive_log`: whether this process
        serves the admin API and the metrics and runs the archive log's checkpointer (of
        several processes, one does)."""
        self.settings = settings
        self.services = Services(settings, database, clock or SystemClock(), self._changed)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.clock = self.services.clock
        self.database = database
        self.registry = self.services.registry
        self.dkim_keys = self.services.dkim_keys
        self.credentials = self.services.credentials
        self.metrics = Metrics()
        self.health = Health(
            {
                "database": lambda: schema_problem(database),
                "queue": self._queue_problem,
                "listeners": self._listeners_problem,
            }
        )
        self._beating: asyncio.Task[None] | None = None
        self.committer = Committer(database)
        self.directory = Directory(database, settings.alias_domain, reads_inline=database.is_sqlite)
        self.watcher = ChangeWatcher(self.directory, database, self.clock)
        delivery = settings.delivery
        bounce_signer = self.services.bounce_signer()
        bounces = settings.bounces
        suppression = SuppressionRules(
            after=bounces.suppress_after,
            window=timedelta(seconds=bounces.suppress_window),
            pause=timedelta(seconds=bounces.suppress_for),
        )
        self.workers = DeliveryWorkers(
            committer=self.committer,
            transport=SigningTransport(
                transport or build_transport(settings),
                self.dkim_keys.active,
                settings.alias_domain,
            ),
            clock=self.clock,
            alias_domain=settings.alias_domain,
            bounce_signer=bounce_signer,
            suppression=suppression,
            concurrency=delivery.workers,
            retry_schedule=list(delivery.retry_schedule),
            give_up_after=delivery.give_up_after,
            claim_lease=delivery.claim_lease,
            claim_batch=delivery.claim_batch,
            poll_interval=delivery.poll_interval,
            attempt_timeout=delivery.attempt_timeout,
            identity=this_process(),
            heartbeat=delivery.heartbeat,
            dead_after=delivery.dead_after,
            is_alive=is_alive,
            metrics=self.metrics,
        )
        self.intake = Intake(
            policy=policy or compile_policy(settings),
            directory=self.directory,
            committer=self.committer,
            deliveries=self.workers,
            clock=self.clock,
            metrics=self.metrics,
            alias_domain=settings.alias_domain,
            bounce_signer=bounce_signer,
            suppression=suppression,
            max_mime_depth=settings.smtp.max_mime_depth,
            verifier=_sender_verifier(settings),
        )
        self.pollers = build_pollers(settings, self.intake, database, self.clock, self.metrics)
        self._poller_tasks: list[asyncio.Task[None]] = []
        smtp = settings.smtp
        self.handler = SmtpHandler(
            self.intake,
            HandlerLimits(
                smtp.max_recipients,
                smtp.rcpt_refusal_delay,
                smtp.spool_after,
                Path(smtp.spool_folder) if smtp.spool_folder else None,
            ),
            DiskRoom(_written_paths(settings), smtp.disk_reserve),
            ByteBudget(smtp.processing_budget),
            self._guess_throttle(),
        )
        self._sockets = dict(sockets or {})
        self._serves_metrics = serves_metrics
        self._keeps_archive_log = keeps_archive_log
        self.archive_tasks: ArchiveTasks | None = None
        self.listeners: dict[str, Listener] = {}
        self.metrics_port: int | None = None
        self.admin = self._build_admin() if serves_admin else None
        self._serves_console = serves_admin
        self.console: AdminServer | None = None

    def _guess_throttle(self) -> FailureThrottle | None:
        smtp = self.settings.smtp
        if not smtp.rcpt_refusal_delay:
            return None
        rules = ThrottleRules(
            smtp.rcpt_refusal_free,
            timedelta(seconds=smtp.rcpt_refusal_window),
            base=smtp.rcpt_refusal_delay,
        )
        return FailureThrottle(self.database, self.clock, "rcpt", rules)

    def _login_throttle(
        self, scope: str, free: int, limit: int, window: float, lockout: float
    ) -> FailureThrottle:
        rules = ThrottleRules(
            free,
            timedelta(seconds=window),
            limit=limit,
            lockout=timedelta(seconds=lockout),
        )
        return FailureThrottle(self.database, self.clock, scope, rules)

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
            proxy_from=tuple(smtp.proxy_networks) if smtp.proxy_protocol else None,
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
            sock=self._sockets.get("mx"),
        )
        if not submission.enabled:
            return
        auth = SubmissionAuth(
            self.credentials,
            self._login_throttle(
                "smtp",
                submission.auth_free_failures,
                submission.auth_failure_limit,
                submission.auth_failure_window,
                submission.auth_lockout,
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
                # asyncio's TLS server begins the handshake with the first byte: a PROXY
                # header sent before it is not read on the implicit-TLS port.
                limits=replace(limits, proxy_from=None) if implicit else limits,
                tls=tls,
                implicit_tls=implicit,
                auth=auth,
                auth_require_tls=submission.auth_require_tls,
                sock=self._sockets.get(name),
            )

    def _build_admin(self) -> AdminServer | None:
        admin = self.settings.admin
        if not admin.enabled:
            return None
        api = create_app(
            self.registry,
            self.services.reports,
            admin.token,
            self.settings.rules.important_share_threshold,
            self.services.imap_status,
        )
        return AdminServer(api, admin.host, admin.port)

    def _build_console(self) -> AdminServer | None:
        """The auditor console; it signs its exports with the archive log's key, which
        prepare() has made by now."""
        auditor = self.settings.auditor
        if not auditor.enabled or not self._serves_console:
            return None
        key = self.services.archive_keys.active()
        assert key is not None, "prepare() made the archive log's key"
        console = create_console(
            self.database,
            AuditorStore(self.database, self.clock),
            Checkpointer(self.database, key, self.clock),
            self._login_throttle(
                "console",
                auditor.login_free_failures,
                auditor.login_failure_limit,
                auditor.login_failure_window,
                auditor.login_lockout,
            ),
            self.clock,
            ConsoleConfig(
                session_lifetime=timedelta(minutes=auditor.session_minutes),
                secure_cookies=auditor.tls,
                retention_days=self.settings.archive.retention_days,
            ),
        )
        tls = self.settings.tls
        files = (str(tls.certificate), str(tls.private_key)) if auditor.tls else None
        return AdminServer(console, auditor.host, auditor.port, name="auditor console", tls=files)

    def _changed(self, change: Change) -> None:
        """A registry change made in this process (the admin API, a test): the directory
        drops what it touched before the next message, on the loop that owns it."""
        if self._loop is None:
            self.directory.apply(change)
        else:
            self._loop.call_soon_threadsafe(self.directory.apply, change)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(prepare, self.services)
        self._build_listeners()
        self.committer.start()
        await self.watcher.start()
        self.workers.start()
        for name, listener in self.listeners.items():
            try:
                await listener.start()
            except OSError as error:
                reason = os.strerror(error.errno) if error.errno else str(error)
                raise ConfigError(
                    f"config error: {name}: cannot listen on {listener.address}: {reason}"
                ) from None
        if self.admin is not None:
            await self.admin.start()
        self.console = self._build_console()
        if self.console is not None:
            try:
                await self.console.start()
            except OSError as error:
                raise ConfigError(f"config error: auditor: {error}") from None
        if self._keeps_archive_log:
            self.archive_tasks = ArchiveTasks(self.settings, self.database, self.clock)
            self.archive_tasks.start()
        self._poller_tasks = [
            asyncio.create_task(poller.run(), name=f"imap {poller.config.name}")
            for poller in self.pollers
        ]
        self._beating = asyncio.create_task(self._beat(), name="health beat")
        metrics = self.settings.metrics
        if metrics.enabled and self._serves_metrics:
            self.metrics_port = self.metrics.serve(
                metrics.host, metrics.port, self.health, self._queue_load, self._archive_load
            )
        _log.info(
            "started",
            ports={name: listener.port for name, listener in self.listeners.items()},
            metrics_port=self.metrics_port,
            admin_port=self.admin.port if self.admin else None,
            console_port=self.console.port if self.console else None,
            workers=self.settings.delivery.workers,
            policy_version=self.intake.policy.version,
        )

    async def _beat(self) -> None:
        while True:
            self.health.beat()
            await asyncio.sleep(BEAT_EVERY)

    def _queue_load(self) -> QueueLoad:
        with self.database.read_connection() as connection:
            return queue.load(connection, self.clock.now())

    def _archive_load(self) -> ArchiveLoad:
        with self.database.read_connection() as connection:
            checkpoint = archive_log.latest_checkpoint(connection)
            return ArchiveLoad(
                archive_log.head(connection).size,
                archive_log.unlogged(connection),
                (self.clock.now() - checkpoint.signed_at).total_seconds() if checkpoint else None,
            )

    def _queue_problem(self) -> str | None:
        waited = self._queue_load().oldest_due_age
        if waited > self.settings.metrics.queue_stuck_after:
            return f"a delivery has been due for {waited:.0f} s and no worker took it"
        return None

    def _listeners_problem(self) -> str | None:
        down = [name for name, listener in self.listeners.items() if not listener.serving]
        if not self.listeners or down:
            return f"not listening: {', '.join(down) or 'nothing started yet'}"
        return None

    def reload_policy(self) -> bool:
        """SIGHUP (in a worker thread): read the content policy again. An invalid one is
        refused with its error logged, and the policy in force stays."""
        try:
            policy = compile_policy(self.settings)
        except ConfigError as error:
            self.metrics.policy_reloads.labels("refused").inc()
            _log.error("policy_reload_refused", error=str(error), kept=self.intake.policy.version)
            return False
        previous = self.intake.policy.version
        self.intake.use_policy(policy)
        self.metrics.policy_reloads.labels("loaded").inc()
        _log.info("policy_reloaded", policy_version=policy.version, previous=previous)
        return True

    @property
    def listener(self) -> Listener:
        """The MX listener."""
        return self.listeners["mx"]

    async def stop(self) -> None:
        grace = self.settings.smtp.shutdown_grace
        # A poller stopped mid-message loses nothing: what was committed is recorded as
        # taken in, and is only moved on the next start.
        for task in self._poller_tasks:
            task.cancel()
        await asyncio.gather(*self._poller_tasks, return_exceptions=True)
        await asyncio.gather(*(listener.stop(grace) for listener in self.listeners.values()))
        await self.workers.stop()
        if self.archive_tasks is not None:
            await self.archive_tasks.stop()
        await self.watcher.stop()
        await self.committer.stop()
        self.directory.close()
        if self.admin is not None:
            await self.admin.stop()
        if self.console is not None:
            await self.console.stop()
        self.metrics.close()
        if self._beating is not None:
            self._beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beating
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
        # A worker process of several starts with them blocked: handled now, let them in.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
        await self.start()
        try:
            await stop.wait()
        finally:
            _log.info("stopping")
            await self.stop()
            self.database.dispose()
