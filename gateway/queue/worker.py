"""Delivery workers: claim due rows, send, record the outcome; retry, or bounce with a DSN."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
import re
from datetime import datetime, timedelta

from gateway.core.clock import Clock
from gateway.core.model import ArchiveEntry
from gateway.core.ports import (
    ClaimedDelivery,
    DeliveryQueue,
    Outcome,
    SendResult,
    Settlement,
    Transport,
)
from gateway.obs import maillog
from gateway.obs.log import get_logger
from gateway.pipeline.dsn import delivery_failed_notice, scrub_addresses
from gateway.queue.schedule import retry_delay, should_give_up

_log = get_logger("queue")
_ENHANCED = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")


class DeliveryWorkers:
    """`count` workers on the event loop; each claims up to `claim_batch` due rows at a time."""

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
        claim_batch: int,
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
        self._batch = claim_batch
        self._poll = poll_interval
        self._rng = rng or random.Random()
        # One event per idle worker: new work wakes one of them, not all.
        self._idle: collections.deque[asyncio.Event] = collections.deque()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(), name=f"delivery-{n}") for n in range(self._count)
        ]

    def wake(self) -> None:
        """New rows were queued: one idle worker looks now rather than at its next poll.
        (A busy worker claims again as soon as its batch is done.)"""
        if self._idle:
            self._idle.popleft().set()

    async def stop(self) -> None:
        """Stop claiming; a delivery in flight is finished and recorded first."""
        self._stopping = True
        while self._idle:
            self._idle.popleft().set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._transport.close()

    async def _run(self) -> None:
        while not self._stopping:
            try:
                claimed = await asyncio.to_thread(
                    self._queue.claim, self._batch, self._clock.now(), self._lease
                )
            except Exception as error:
                _log.error("claim_failed", exc_info=error)
                claimed = []
            if claimed:
                await self._deliver(claimed)
            # A short batch drained the queue: rest until new work wakes this worker.
            if len(claimed) < self._batch and not self._stopping:
                await self._rest()

    async def _rest(self) -> None:
        woken = asyncio.Event()
        self._idle.append(woken)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), timeout=self._poll)
        finally:
            with contextlib.suppress(ValueError):
                self._idle.remove(woken)

    async def _deliver(self, claimed: list[ClaimedDelivery]) -> None:
        """Send a claimed batch at once (each attempt is bounded well inside the lease),
        then record every outcome in one commit."""
        results = await asyncio.gather(*(self._send(d) for d in claimed))
        try:
            await asyncio.to_thread(self._settle, claimed, results)
        except Exception as error:
            # The rows come back when their lease runs out and are tried again.
            _log.error(
                "record_failed", outbound_ids=[d.outbound_id for d in claimed], exc_info=error
            )

    async def _send(self, delivery: ClaimedDelivery) -> SendResult:
        try:
            return await self._transport.send(delivery)
        except Exception as error:
            _log.error("transport_error", outbound_id=delivery.outbound_id, exc_info=error)
            return SendResult(Outcome.TRANSIENT, "4.3.0 internal error in transport")

    def _settle(self, claimed: list[ClaimedDelivery], results: list[SendResult]) -> None:
        now = self._clock.now()
        settlements = [self._settlement(d, r, now) for d, r in zip(claimed, results, strict=True)]
        self._queue.settle(settlements)
        for delivery, settled in zip(claimed, settlements, strict=True):
            ids = {
                "outbound_id": delivery.outbound_id,
                "message_id": delivery.message_id,
                "attempts": delivery.attempts,
            }
            if settled.state == "delivered":
                maillog.delivered(**ids)
            elif settled.state == "queued":
                delay = (settled.when - now).total_seconds()
                maillog.deferred(**ids, retry_in=delay, error=settled.error or "")
            else:
                maillog.bounced(**ids, error=settled.error or "", notice=settled.notice is not None)

    def _settlement(
        self, delivery: ClaimedDelivery, result: SendResult, now: datetime
    ) -> Settlement:
        if result.outcome is Outcome.DELIVERED:
            return Settlement(delivery.outbound_id, "delivered", now)
        detail = scrub_addresses(result.detail, self._domain, "the recipient")
        expired = should_give_up(delivery.queued_at, now, self._give_up_after)
        if result.outcome is Outcome.TRANSIENT and not expired:
            delay = retry_delay(delivery.attempts, self._schedule, self._rng)
            return Settlement(
                delivery.outbound_id, "queued", now + timedelta(seconds=delay), detail
            )
        if result.outcome is Outcome.TRANSIENT:
            detail = f"gave up after {delivery.attempts} attempts; last error: {detail}"
        notice = None if delivery.is_notice else self._notice(delivery, result, detail)
        return Settlement(delivery.outbound_id, "failed", now, detail, notice)

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
        return delivery_failed_notice(
            context, code, detail, alias_domain=self._domain, now=self._clock.now()
        )
