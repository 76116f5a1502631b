"""Delivery workers of one process: take deliveries (from the intake, in memory, or claimed
from the queue), sign and send them, and record each outcome; retry, or give up with a DSN.

The intake enqueues its deliveries already leased to this process and hands them over
here: no poll interval between a 250 and the first attempt. The queue is read every
poll_interval for what is left: retries that came due, DSNs, and deliveries of a process
that died (given back when it is known dead, or their lease ran out). Outcomes are written
in batches through the committer. Every `heartbeat` this process says it is alive and looks
for processes that are not.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import Connection

from gateway.core.addresses import BounceSigner
from gateway.core.clock import Clock
from gateway.core.model import HardBounce, SuppressionRules
from gateway.delivery.schedule import retry_delay, should_give_up
from gateway.delivery.transport import Outcome, SendResult, Transport
from gateway.obs import maillog
from gateway.obs.log import get_logger
from gateway.obs.metrics import Metrics
from gateway.pipeline.bounces import REMOTE_REFUSED, is_hard, safe_diagnostic
from gateway.pipeline.dsn import delivery_failed_notice
from gateway.storage import instances, queue, suppressions
from gateway.storage.committer import Committer
from gateway.storage.instances import ProcessIdentity
from gateway.storage.queue import ClaimedDelivery, QueueState, Settlement

_log = get_logger("delivery")
_RESULTS = {
    QueueState.DELIVERED: "delivered",
    QueueState.QUEUED: "deferred",
    QueueState.FAILED: "failed",
}
_ENHANCED = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")
LEASE_MARGIN = 2.0  # seconds: an attempt starts only if it can end inside its lease
# Bytes of deliveries held in memory at most: past it, the intake leaves its deliveries to
# the queue and the queue is not read (a few large messages, not a backlog of them).
HELD_BYTES = 64 * 1024 * 1024
DATABASE_RETRY_MAX = 5.0  # seconds: the longest wait between claims while the database is away


@dataclass(frozen=True, slots=True)
class _Held:
    delivery: ClaimedDelivery
    lease_until: datetime


@dataclass(frozen=True, slots=True)
class _Done:
    delivery: ClaimedDelivery
    result: SendResult
    at: datetime


class DeliveryWorkers:
    """`concurrency` deliveries in flight at once, fed from memory and from the queue."""

    def __init__(
        self,
        *,
        committer: Committer,
        transport: Transport,
        clock: Clock,
        alias_domain: str,
        bounce_signer: BounceSigner,
        suppression: SuppressionRules,
        concurrency: int,
        retry_schedule: list[float],
        give_up_after: float,
        claim_lease: float,
        claim_batch: int,
        poll_interval: float,
        attempt_timeout: float,
        identity: ProcessIdentity,
        heartbeat: float,
        dead_after: float,
        is_alive: Callable[[int, str], bool],
        metrics: Metrics,
        rng: random.Random | None = None,
    ) -> None:
        self._committer = committer
        self._metrics = metrics
        self._transport = transport
        self._clock = clock
        self._domain = alias_domain
        self._bounce_signer = bounce_signer
        self._suppression = suppression
        self._concurrency = concurrency
        self._schedule = retry_schedule
        self._give_up_after = give_up_after
        self._lease = claim_lease
        self._batch = claim_batch
        self._poll = poll_interval
        self._attempt_timeout = attempt_timeout
        self._me = identity
        self._heartbeat = heartbeat
        self._dead_after = dead_after
        self._is_alive = is_alive
        # Until when others will not take this process for dead (its last heartbeat written
        # + dead_after, on the monotonic clock): an attempt starts only if it ends before.
        self._trusted_until = time.monotonic() + dead_after
        self._failures = 0  # database errors in a row (claims, heartbeats)
        self._rng = rng or random.Random()
        # Deliveries held but not yet started; a bound keeps memory in check under a
        # backlog (past it the intake leaves its deliveries to the queue).
        self._held: asyncio.Queue[_Held | None] = asyncio.Queue()
        self._backlog = max(64, concurrency * 16)
        # Flow control (as Postfix's in_flow_delay): past this many deliveries waiting, the
        # intake waits a moment before it answers, so that taking mail in cannot starve
        # sending it out on a busy loop.
        self._flow_limit = max(8, concurrency * 4)
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._done: list[_Done] = []
        self._done_ready = asyncio.Event()
        self._sending = 0
        self._held_bytes = 0  # the contents of what is held, sending or not
        self._stopping = False
        self._sent_all = False
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def lease_seconds(self) -> float:
        return self._lease

    @property
    def holder(self) -> str:
        return self._me.id

    # -- taking work ----------------------------------------------------------------

    def room(self, count: int, size: int = 0) -> bool:
        held = self._held.qsize() + self._sending
        if self._stopping or held + count > self._backlog:
            return False
        return self._held_bytes == 0 or self._held_bytes + size <= HELD_BYTES

    def take(self, deliveries: Sequence[ClaimedDelivery], lease_until: datetime) -> None:
        """Deliveries this process holds the lease of (until `lease_until`)."""
        for delivery in deliveries:
            self._held_bytes += len(delivery.content)
            self._held.put_nowait(_Held(delivery, lease_until))
        self._check_flow()

    async def admit(self, at_most: float) -> None:
        """Returns when the deliveries waiting are few again, or after `at_most` seconds."""
        if not self._flowing.is_set():
            # asyncio.timeout, not wait_for: no task of its own for every message that waits
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(at_most):
                    await self._flowing.wait()

    def _check_flow(self) -> None:
        if self._held.qsize() + self._sending > self._flow_limit:
            self._flowing.clear()
        else:
            self._flowing.set()

    # -- running --------------------------------------------------------------------

    def start(self) -> None:
        self._tasks = [
            *(
                asyncio.create_task(self._sender(), name=f"delivery-{n}")
                for n in range(self._concurrency)
            ),
            asyncio.create_task(self._keeper(), name="delivery-heartbeat"),
            asyncio.create_task(self._poller(), name="delivery-poller"),
            asyncio.create_task(self._recorder(), name="delivery-recorder"),
        ]

    async def stop(self) -> None:
        """Stop taking work; deliveries in flight are finished and recorded; those held but
        not started are given back to the queue, due now for whichever process is next."""
        self._stopping = True
        senders, (keeper, poller, recorder) = self._tasks[:-3], self._tasks[-3:]
        keeper.cancel()
        poller.cancel()
        held = self._drain()
        for _ in senders:
            self._held.put_nowait(None)
        await asyncio.gather(*senders, keeper, poller, return_exceptions=True)
        self._sent_all = True  # nothing more will finish: the recorder ends when it is written
        self._done_ready.set()
        await asyncio.gather(recorder, return_exceptions=True)
        held += self._drain()
        now = self._clock.now()

        def _leave(connection: Connection) -> None:
            queue.release(connection, held, now)
            instances.leave(connection, self._me)

        with contextlib.suppress(Exception):  # if not, their leases run out
            await self._committer.run(_leave)
        await self._transport.close()

    def _drain(self) -> list[int]:
        """The outbound ids of what is held and not started, taken out of the way."""
        drained = []
        while not self._held.empty():
            held = self._held.get_nowait()
            if held is not None:
                self._held_bytes -= len(held.delivery.content)
                drained.append(held.delivery.outbound_id)
        return drained

    async def _sender(self) -> None:
        while True:
            held = await self._held.get()
            self._check_flow()
            if held is None:
                return
            now = self._clock.now()
            left = min(
                (held.lease_until - now).total_seconds(), self._trusted_until - time.monotonic()
            )
            if left < self._attempt_timeout + LEASE_MARGIN:
                self._held_bytes -= len(held.delivery.content)
                continue  # too late to finish inside the lease: the queue gives it back
            self._sending += 1
            try:
                result = await self._send(held.delivery)
            finally:
                self._sending -= 1
                self._held_bytes -= len(held.delivery.content)
            self._done.append(_Done(held.delivery, result, self._clock.now()))
            self._done_ready.set()

    async def _send(self, delivery: ClaimedDelivery) -> SendResult:
        if delivery.envelope_from:  # a DSN goes from <>
            # Signed at each attempt: a report may come days after the last one.
            signed = self._bounce_signer.address(delivery.token, self._clock.now())
            delivery = replace(delivery, envelope_from=signed)
        try:
            return await self._transport.send(delivery)
        except Exception as error:
            _log.error("transport_error", outbound_id=delivery.outbound_id, exc_info=error)
            return SendResult(Outcome.TRANSIENT, "4.3.0 internal error in transport")

    async def _keeper(self) -> None:
        """The heartbeat, and the claims of processes known dead given back."""
        while True:
            now, started = self._clock.now(), time.monotonic()
            try:
                dead, given = await self._committer.run(functools.partial(self._keep, now=now))
            except Exception as error:
                self._database_failed("heartbeat", error)
            else:
                self._database_back()
                self._trusted_until = started + self._dead_after
                if dead:
                    _log.warning("claims_taken_over", instances=dead, deliveries=given)
            await asyncio.sleep(self._heartbeat)

    def _keep(self, connection: Connection, now: datetime) -> tuple[int, int]:
        instances.beat(connection, self._me, now)
        dead = instances.find_dead(connection, self._me, now, self._dead_after, self._is_alive)
        given = queue.give_back(connection, dead, now)
        instances.forget(connection, dead)
        return len(dead), given

    async def _poller(self) -> None:
        """What the queue holds for anyone: retries come due, DSNs, orphaned leases."""
        while True:
            # While the database is away, it is asked again less and less often.
            await asyncio.sleep(min(self._poll * 2**self._failures, DATABASE_RETRY_MAX))
            if not self.room(self._batch) or self._held_bytes > HELD_BYTES // 2:
                continue
            now, lease = self._clock.now(), self._lease
            job = functools.partial(
                queue.claim,
                limit=self._batch,
                now=now,
                lease_seconds=lease,
                holder=self._me.id,
                max_bytes=max(0, HELD_BYTES - self._held_bytes),
            )
            try:
                claimed = await self._committer.run(job)
            except Exception as error:
                self._database_failed("claim", error)
                continue
            self._database_back()
            self.take(claimed, now + timedelta(seconds=lease))

    def _database_failed(self, doing: str, error: Exception) -> None:
        """One error line when the database goes away (with the traceback), not one at
        every poll while it stays away."""
        self._failures = min(self._failures + 1, 16)
        if self._failures == 1:
            _log.error("queue_database_failed", doing=doing, exc_info=error)

    def _database_back(self) -> None:
        if self._failures:
            _log.info("queue_database_back", failures=self._failures)
            self._failures = 0

    async def _recorder(self) -> None:
        """Outcomes, recorded in batches: one commit for whatever finished meanwhile."""
        while True:
            await self._done_ready.wait()
            self._done_ready.clear()
            done, self._done = self._done, []
            if done:
                await self._record(done)
            if self._sent_all and not self._done:
                return

    async def _record(self, done: list[_Done]) -> None:
        try:
            settlements = await self._committer.run(lambda c: self._settle(c, done))
        except Exception as error:
            # The rows come back when their lease runs out and are tried again.
            _log.error(
                "record_failed", outbound_ids=[d.delivery.outbound_id for d in done], exc_info=error
            )
            return
        for item, settled in zip(done, settlements, strict=True):
            ids = {
                "outbound_id": item.delivery.outbound_id,
                "message_id": item.delivery.message_id,
                "attempts": item.delivery.attempts,
            }
            if settled.state is QueueState.DELIVERED:
                maillog.delivered(**ids)
                waited = (settled.when - item.delivery.queued_at).total_seconds()
                self._metrics.delivery_seconds.observe(max(waited, 0.0))
            elif settled.state is QueueState.QUEUED:
                delay = (settled.when - item.at).total_seconds()
                maillog.deferred(**ids, retry_in=delay, error=settled.error or "")
            else:
                maillog.bounced(**ids, error=settled.error or "", notice=settled.notice is not None)
                if settled.notice is not None:
                    self._metrics.notices.labels("failed").inc()
            self._metrics.deliveries.labels(_RESULTS[settled.state]).inc()

    # -- outcomes (in the committer's transaction) ----------------------------------

    def _settle(self, connection: Connection, done: list[_Done]) -> list[Settlement]:
        settlements = [self._settlement(connection, d.delivery, d.result, d.at) for d in done]
        queue.settle(connection, settlements)
        hard = [s.hard_bounce for s in settlements if s.hard_bounce is not None]
        if hard:
            suppressions.record(connection, hard, self._suppression)
        return settlements

    def _settlement(
        self, connection: Connection, delivery: ClaimedDelivery, result: SendResult, now: datetime
    ) -> Settlement:
        if result.outcome is Outcome.DELIVERED:
            return Settlement(delivery.outbound_id, QueueState.DELIVERED, now)
        detail = safe_diagnostic(result.detail, delivery.recipient, self._domain, REMOTE_REFUSED)
        expired = should_give_up(delivery.queued_at, now, self._give_up_after)
        if result.outcome is Outcome.TRANSIENT and not expired:
            delay = retry_delay(delivery.attempts, self._schedule, self._rng)
            when = now + timedelta(seconds=delay)
            return Settlement(delivery.outbound_id, QueueState.QUEUED, when, detail)
        if result.outcome is Outcome.TRANSIENT:
            detail = f"gave up after {delivery.attempts} attempts; last error: {detail}"
            code = "5.4.7"  # delivery time expired
        else:
            match = _ENHANCED.search(result.detail)
            code = match.group(1) if match and match.group(1)[0] == "5" else "5.0.0"
        context = queue.bounce_context(connection, delivery.outbound_id)
        hard = None
        if result.outcome is Outcome.PERMANENT and is_hard(code):
            hard = HardBounce(delivery.recipient, code, now, context.pair_id)
        notice = None
        # Never a DSN about a DSN, nor one to the null sender.
        if not delivery.is_notice and context.original_sender:
            notice = delivery_failed_notice(
                context, code, detail, alias_domain=self._domain, now=self._clock.now()
            )
        return Settlement(delivery.outbound_id, QueueState.FAILED, now, detail, notice, hard)
