"""A mailbox source's lease, as one process holds it: taken when free or run out, renewed in
the background every third of its length for as long as it is held (a long batch or IDLE
round does not let it lapse), and lost when a renewal finds another holder, or when the
database could not renew it before two thirds of it had gone by."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from gateway.core.clock import Clock
from gateway.obs.log import get_logger
from gateway.storage.imap import MailboxLedger

_log = get_logger("imap")


class LeaseLost(Exception):
    """Another process holds the source's lease now, or may soon: stop polling it."""


class Lease:
    def __init__(
        self, ledger: MailboxLedger, source: str, holder: str, seconds: float, clock: Clock
    ) -> None:
        self._ledger = ledger
        self._source = source
        self._holder = holder
        self._seconds = seconds
        self._clock = clock
        self._renewed_at = 0.0  # loop time of the last write that held it
        self._renewer: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()

    async def take(self) -> bool:
        """Whether this process holds the lease now (False too if the database cannot
        say: a source whose lease cannot be written is polled by nobody)."""
        try:
            held = await self._write()
        except Exception as error:
            _log.error("imap_lease_failed", error=type(error).__name__)
            return False
        if held and (self._renewer is None or self._renewer.done()):
            self._lost.clear()
            self._renewer = asyncio.create_task(self._renew(), name=f"lease {self._source}")
        return held

    async def renew_now(self) -> bool:
        """Renewed at once: whether the database takes a write now and the lease is still
        this process's (an error: it does not)."""
        try:
            return await self._write()
        except Exception:
            return False

    def check(self) -> None:
        """Raises LeaseLost once the lease is no longer surely this process's."""
        if self._lost.is_set() or self._renewer is None:
            raise LeaseLost

    async def lost(self) -> None:
        """Returns once the lease is lost."""
        await self._lost.wait()

    async def release(self) -> None:
        """Renewal stopped; the row given up, so that another process takes it at once."""
        await self._stop_renewing()
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self._ledger.release, self._source, self._holder)

    async def drop(self) -> None:
        """Renewal stopped without a word to the database (the lease is lost already)."""
        await self._stop_renewing()

    async def _stop_renewing(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None

    async def _write(self) -> bool:
        now = self._clock.now()
        until = now + timedelta(seconds=self._seconds)
        held = await asyncio.to_thread(self._ledger.acquire, self._source, self._holder, now, until)
        if held:
            self._renewed_at = asyncio.get_running_loop().time()
        return held

    async def _renew(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._seconds / 3)
            try:
                held = await self._write()
            except Exception as error:
                _log.warning("imap_lease_not_renewed", error=type(error).__name__)
                held = loop.time() - self._renewed_at < self._seconds * 2 / 3
            if not held:
                _log.warning("imap_lease_lost")
                self._lost.set()
                return
