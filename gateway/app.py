"""The composition root: the only module that knows every part and wires them together."""

from __future__ import annotations

import asyncio
import signal

from gateway.archive.store import ArchiveIntake
from gateway.core.clock import Clock, SystemClock
from gateway.core.ports import Transport
from gateway.db.dkim_keys import DkimKeyStore
from gateway.db.registry import Registry
from gateway.db.session import Database
from gateway.inbound.handler import GatewayHandler
from gateway.inbound.server import Listener
from gateway.obs.log import get_logger
from gateway.outbound.dkim import SigningTransport, new_private_key
from gateway.outbound.maildir import MaildirTransport
from gateway.outbound.smtp import SmtpTransport
from gateway.queue.repository import DatabaseQueue
from gateway.queue.worker import DeliveryWorkers
from gateway.settings import Settings

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


class Gateway:
    """Listener, delivery workers and storage of one gateway process."""

    def __init__(
        self,
        settings: Settings,
        *,
        database: Database,
        clock: Clock | None = None,
        transport: Transport | None = None,
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
        self.handler = GatewayHandler(
            alias_domain=settings.alias_domain,
            directory=self.registry,
            intake=ArchiveIntake(database),
            clock=self.clock,
            max_recipients=settings.smtp.max_recipients,
            max_mime_depth=settings.smtp.max_mime_depth,
            rcpt_refusal_delay=settings.smtp.rcpt_refusal_delay,
            on_queued=self.workers.wake,
        )
        smtp = settings.smtp
        self.listener = Listener(
            self.handler,
            host=smtp.host,
            port=smtp.port,
            hostname=smtp.hostname,
            max_message_size=smtp.max_message_size,
            idle_timeout=smtp.idle_timeout,
            max_commands=smtp.max_commands,
            max_sessions_per_client=smtp.max_sessions_per_client,
        )

    async def start(self) -> None:
        await asyncio.to_thread(
            self.dkim_keys.ensure_active, self.settings.dkim.selector, new_private_key
        )
        await self.listener.start()
        self.workers.start()
        _log.info("started", smtp_port=self.listener.port, workers=self.settings.delivery.workers)

    async def stop(self) -> None:
        await self.listener.stop(self.settings.smtp.shutdown_grace)
        await self.workers.stop()
        _log.info("stopped")

    async def run_until_signalled(self) -> None:
        """serve: run until SIGTERM or SIGINT, then shut down in order."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await self.start()
        try:
            await stop.wait()
        finally:
            _log.info("stopping")
            await self.stop()
            self.database.dispose()
