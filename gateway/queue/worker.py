"""Delivery workers: claim due rows, send, record the outcome; retry, or bounce with a DSN."""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
from datetime import timedelta

from gateway.core.clock import Clock
from gateway.core.model import ArchiveEntry
from gateway.core.ports import ClaimedDelivery, DeliveryQueue, Outcome, SendResult, Transport
from gateway.obs import maillog
from gateway.obs.log import get_logger
from gateway.pipeline.dsn import FailedRecipient, failure_notice, scrub_addresses
from gateway.queue.schedule import retry_delay, should_give_up

_log = get_logger("queue")
_ENHANCED = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")


class DeliveryWorkers:
    """`count` workers on the event loop; each claims one row at a time."""

    def __init__(
        self,
        *,
        queue: DeliveryQueue,
        transport: Transport,
        clock: Clock,
        alias_domain: str,
        count: int,
        retry_schedule: list[float],
        give_up_after: float,
        claim_lease: float,
        poll_interval: float,
        rng: random.Random | None = None,
    ) -> None:
        self._queue = queue
        self._transport = transport
        self._clock = clock
        self._domain = alias_domain
        self._count = count
        self._schedule = retry_schedule
        self._give_up_after = give_up_after
        self._lease = claim_lease
        self._poll = poll_interval
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(), name=f"delivery-{n}") for n in range(self._count)
        ]

    def wake(self) -> None:
        """New rows were queued: look now rather than at the next poll."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop claiming; a delivery in flight is finished and recorded first."""
        self._stopping = True
        self._wake.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _run(self) -> None:
        while not self._stopping:
            try:
                claimed = await asyncio.to_thread(
                    self._queue.claim, 1, self._clock.now(), self._lease
                )
            except Exception as error:
                _log.error("claim_failed", exc_info=error)
                claimed = []
            for delivery in claimed:
                await self._deliver(delivery)
            if not claimed and not self._stopping:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._poll)

    async def _deliver(self, delivery: ClaimedDelivery) -> None:
        try:
            result = await self._transport.send(delivery)
        except Exception as error:
            _log.error("transport_error", outbound_id=delivery.outbound_id, exc_info=error)
            result = SendResult(Outcome.TRANSIENT, "4.3.0 internal error in transport")
        try:
            await asyncio.to_thread(self._record, delivery, result)
        except Exception as error:
            # The row comes back when its lease runs out and is tried again.
            _log.error("record_failed", outbound_id=delivery.outbound_id, exc_info=error)

    def _record(self, delivery: ClaimedDelivery, result: SendResult) -> None:
        now = self._clock.now()
        ids = {"outbound_id": delivery.outbound_id, "message_id": delivery.message_id}
        detail = scrub_addresses(result.detail, self._domain, "the recipient")
        if result.outcome is Outcome.DELIVERED:
            self._queue.delivered(delivery.outbound_id, now)
            maillog.delivered(**ids, attempts=delivery.attempts)
            return
        expired = should_give_up(delivery.queued_at, now, self._give_up_after)
        if result.outcome is Outcome.TRANSIENT and not expired:
            delay = retry_delay(delivery.attempts, self._schedule, self._rng)
            self._queue.retry_at(delivery.outbound_id, now + timedelta(seconds=delay), detail)
            maillog.deferred(**ids, attempts=delivery.attempts, retry_in=delay, error=detail)
            return
        if expired and result.outcome is Outcome.TRANSIENT:
            detail = f"gave up after {delivery.attempts} attempts; last error: {detail}"
        notice = None if delivery.is_notice else self._notice(delivery, result, detail)
        self._queue.failed(delivery.outbound_id, now, detail, notice)
        maillog.bounced(**ids, attempts=delivery.attempts, error=detail, notice=notice is not None)

    def _notice(
        self, delivery: ClaimedDelivery, result: SendResult, detail: str
    ) -> ArchiveEntry | None:
        context = self._queue.bounce_context(delivery.outbound_id)
        if not context.original_sender:
            return None  # never bounce to the null sender
        if result.outcome is Outcome.PERMANENT:
            match = _ENHANCED.search(result.detail)
            code = match.group(1) if match and match.group(1)[0] == "5" else "5.0.0"
        else:
            code = "5.4.7"  # delivery time expired
        return failure_notice(
            alias_domain=self._domain,
            pair_id=context.pair_id,
            original_sender=context.original_sender,
            original_headers=context.original_headers,
            arrival=context.received_at,
            now=self._clock.now(),
            failed=[FailedRecipient(context.alias_written_to, code, detail)],
        )
