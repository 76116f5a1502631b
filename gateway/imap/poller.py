"""The IMAP adapter: one poller per mailbox source, on the gateway's loop. It holds the
source's lease (one process of those sharing the database polls it), fetches what is new
by UID, hands each message to the same intake as an SMTP DATA, and only after the commit
moves or flags it. What was taken in is recorded in the archive's transaction, by
(source, UIDVALIDITY, UID) and the bytes' SHA-256: a message found again (a crash before
the MOVE, a folder whose UIDVALIDITY changed) is only moved, never taken in twice."""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum

import structlog

from gateway.core import status
from gateway.core.clock import Clock
from gateway.core.model import Violation
from gateway.imap.connection import (
    TAKEN_KEYWORD,
    AuthenticationFailed,
    Endpoint,
    MailboxConnection,
    MailboxError,
)
from gateway.imap.envelope import MailboxEnvelope, digest, read_envelope
from gateway.intake.intake import Intake
from gateway.intake.model import Arrival, Client, MailboxOrigin, Recipient
from gateway.obs.log import get_logger
from gateway.obs.metrics import Metrics
from gateway.storage.imap import MailboxLedger, Taken

_log = get_logger("imap")

NO_ENVELOPE = Violation("imap.envelope", status.UNKNOWN_ALIAS, "no alias in the envelope headers")
STATES = ("standby", "connecting", "idle", "polling", "fetching", "backoff", "auth_failed")


@dataclass(frozen=True, slots=True)
class SourceConfig:
    name: str
    endpoint: Endpoint
    password: str
    folder: str
    move_to: str  # "": flag instead
    quarantine_to: str
    recipient_headers: list[str]
    sender_header: str
    trusted_authserv_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Timing:
    poll_interval: float
    idle_renew: float
    lease: float
    backoff_min: float
    backoff_max: float
    batch: int
    max_message_size: int


class Fate(Enum):
    TAKEN = "processed"  # committed, and accepted for a recipient at least
    REFUSED = "refused"  # committed as refused (told by DSN where the sender is known)
    DUPLICATE = "duplicate"  # taken in before
    QUARANTINED = "quarantined"  # committed as refused, and put aside for the operators
    DEFERRED = "deferred"  # not committed (a temporary failure): left for the next round


_FINISHED = (Fate.TAKEN, Fate.REFUSED, Fate.DUPLICATE)


class LeaseLost(Exception):
    """Another process took the source's lease: this one stops polling it."""


class TemporaryFailure(Exception):
    """The database could not be read or the intake could not commit: the round is tried
    again later, what was not committed left where it was."""


class SourcePoller:
    def __init__(
        self,
        config: SourceConfig,
        timing: Timing,
        *,
        intake: Intake,
        ledger: MailboxLedger,
        clock: Clock,
        metrics: Metrics,
        alias_domain: str,
        holder: str,
    ) -> None:
        self.config = config
        self._timing = timing
        self._intake = intake
        self._ledger = ledger
        self._clock = clock
        self._metrics = metrics
        self._domain = alias_domain
        self._holder = holder
        self._leased_at = 0.0
        self.state = "standby"

    # -- the loop -------------------------------------------------------------------

    async def run(self) -> None:
        """Until cancelled: hold the lease, poll; on failure back off and start again."""
        failures = 0
        name = self.config.name
        structlog.contextvars.bind_contextvars(imap_source=name)
        try:
            while True:
                if not await self._take_lease():
                    self._set_state("standby")
                    await asyncio.sleep(self._timing.lease / 3)
                    continue
                try:
                    await self._session()
                except LeaseLost:
                    _log.warning("imap_lease_lost")
                    continue
                except TemporaryFailure as error:
                    failures += 1
                    self._metrics.imap_errors.labels(name, "database").inc()
                    _log.warning("imap_round_deferred", reason=str(error))
                    await self._back_off(failures, "backoff", str(error))
                except AuthenticationFailed as error:
                    failures += 1
                    self._metrics.imap_errors.labels(name, error.kind).inc()
                    _log.error("imap_login_failed", reason=str(error), failures=failures)
                    await self._back_off(failures, "auth_failed", str(error))
                except MailboxError as error:
                    failures += 1
                    self._metrics.imap_errors.labels(name, error.kind).inc()
                    _log.warning("imap_connection_failed", kind=error.kind, reason=str(error))
                    await self._back_off(failures, "backoff", f"{error.kind}: {error}")
                except Exception as error:  # a fault of the gateway's own: never the end of it
                    failures += 1
                    self._metrics.imap_errors.labels(name, "internal").inc()
                    _log.error("imap_round_failed", exc_info=error)
                    await self._back_off(failures, "backoff", type(error).__name__)
                else:
                    failures = 0
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(asyncio.to_thread(self._ledger.release, name, self._holder))
            self._set_state("standby", record=False)

    async def _session(self) -> None:
        """One connection: select, take in what is there, wait for more, again."""
        config = self.config
        self._set_state("connecting")
        connection = await MailboxConnection.open(config.endpoint, config.password)
        try:
            for folder in (config.move_to, config.quarantine_to):
                if folder:
                    await connection.ensure_folder(folder)
            uidvalidity = None
            _log.info("imap_connected", idle=connection.has("IDLE"))
            while True:
                # Selected again each round: a folder deleted and made again meanwhile (a
                # restore, a migration) is seen at once, with its new UIDVALIDITY.
                selected = await connection.select(config.folder)
                if selected.uidvalidity != uidvalidity:
                    if uidvalidity is not None:
                        _log.warning(
                            "imap_uidvalidity_changed",
                            previous=uidvalidity,
                            uidvalidity=selected.uidvalidity,
                        )
                    uidvalidity = selected.uidvalidity
                    await self._record_state("polling", "", uidvalidity=uidvalidity, ok=True)
                await self._round(connection, uidvalidity)
                await self._record_state(
                    "idle" if connection.has("IDLE") else "polling", "", ok=True
                )
                await self._wait_for_news(connection)
                await self._keep_lease()
        finally:
            await connection.close()

    async def _wait_for_news(self, connection: MailboxConnection) -> None:
        """IDLE where the server has it, in rounds no longer than a third of the lease (so
        the lease is renewed and a dead connection found), re-issued well before RFC
        2177's 29 minutes; else a NOOP every poll interval."""
        timing = self._timing
        loop = asyncio.get_running_loop()
        started = loop.time()
        round_length = min(timing.idle_renew, timing.lease / 3)
        if connection.has("IDLE"):
            self._set_state("idle")
            while not await connection.idle(round_length):
                await self._keep_lease()
                if loop.time() - started >= timing.poll_interval * 10:
                    return  # a search now and then, whatever IDLE said
            return
        self._set_state("polling")
        while (left := timing.poll_interval - (loop.time() - started)) > 0:
            await asyncio.sleep(min(left, timing.lease / 3))
            await self._keep_lease()
        await connection.noop()

    async def _back_off(self, failures: int, state: str, detail: str) -> None:
        timing = self._timing
        delay = min(timing.backoff_max, timing.backoff_min * 2 ** min(failures - 1, 20))
        delay *= random.uniform(0.8, 1.2)
        await self._record_state(state, detail)
        # The lease is kept meanwhile, so that a source that fails is not handed around.
        loop = asyncio.get_running_loop()
        until = loop.time() + delay
        while (left := until - loop.time()) > 0:
            await asyncio.sleep(min(left, timing.lease / 3))
            if not await self._take_lease():
                return

    # -- one round --------------------------------------------------------------------

    async def _round(self, connection: MailboxConnection, uidvalidity: int) -> None:
        """Everything in the folder: what was taken in before is only moved (or flagged),
        the rest fetched and handed to the intake, a batch at a time."""
        config, timing = self.config, self._timing
        criteria = ("ALL",) if config.move_to else ("UNKEYWORD", TAKEN_KEYWORD)
        uids = await connection.search(*criteria)
        if not uids:
            return
        try:
            known = await asyncio.to_thread(self._ledger.known, config.name, uidvalidity, uids)
        except Exception as error:
            raise TemporaryFailure(
                f"the database could not be read: {type(error).__name__}"
            ) from error
        if known:
            self._count(Fate.DUPLICATE, len(known))
            await self._finish(connection, sorted(known))
        fresh = [uid for uid in uids if uid not in known]
        deferred = False
        for start in range(0, len(fresh), timing.batch):
            await self._keep_lease()
            self._set_state("fetching")
            batch = fresh[start : start + timing.batch]
            sizes = await connection.sizes(batch)
            oversized = [uid for uid in batch if sizes.get(uid, 0) > timing.max_message_size]
            if oversized:
                _log.error("imap_message_too_large", uids=oversized, limit=timing.max_message_size)
                self._count(Fate.QUARANTINED, len(oversized))
                await self._put_aside(connection, oversized)
            wanted = [uid for uid in batch if uid not in oversized]
            fetched = await connection.fetch(wanted) if wanted else {}
            self._metrics.imap_messages.labels(config.name, "fetched").inc(len(fetched))
            fates = await asyncio.gather(
                *(self._take(uid, raw, uidvalidity) for uid, raw in fetched.items())
            )
            done = [uid for uid, fate in zip(fetched, fates, strict=True) if fate in _FINISHED]
            aside = [
                uid for uid, fate in zip(fetched, fates, strict=True) if fate is Fate.QUARANTINED
            ]
            for fate in fates:
                self._count(fate)
            await self._finish(connection, done)
            await self._put_aside(connection, aside)
            deferred = deferred or Fate.DEFERRED in fates
        if deferred:
            raise TemporaryFailure("a message could not be committed; it stays for a retry")

    async def _take(self, uid: int, raw: bytes, uidvalidity: int) -> Fate:
        """One message through the intake; its fate decides what is done with it."""
        config = self.config
        session_id = secrets.token_hex(6)
        structlog.contextvars.bind_contextvars(session_id=session_id)
        envelope = read_envelope(
            raw, self._domain, config.recipient_headers, config.sender_header, config.endpoint.user
        )
        origin = MailboxOrigin(
            config.name,
            uidvalidity,
            uid,
            digest(raw),
            envelope.message_id,
            config.trusted_authserv_ids,
        )
        try:
            earlier = await asyncio.to_thread(
                self._ledger.taken_before, config.name, origin.digest, origin.message_id
            )
            if earlier is not None:
                taken = Taken(
                    config.name, uidvalidity, uid, origin.digest, origin.message_id, earlier
                )
                await asyncio.to_thread(self._ledger.seen_again, taken, self._clock.now())
                _log.info("imap_seen_again", uid=uid, message_id=earlier)
                return Fate.DUPLICATE
            arrival = await self._arrival(envelope, raw, origin, session_id)
        except TemporaryFailure:
            return Fate.DEFERRED
        except Exception as error:  # the database, most likely: try again next round
            _log.error("imap_take_failed", uid=uid, exc_info=error)
            return Fate.DEFERRED
        if arrival is None:
            return Fate.DEFERRED
        receipt = await self._intake.accept(arrival)
        if receipt.reply.code >= 400 and not receipt.record_ids:
            return Fate.DEFERRED  # not committed (451): the message stays for a retry
        _log.info(
            "imap_taken", uid=uid, message_ids=list(receipt.record_ids), code=receipt.reply.code
        )
        if receipt.unreadable or not envelope.recipients:
            return Fate.QUARANTINED
        return Fate.REFUSED if receipt.reply.code >= 500 else Fate.TAKEN

    async def _arrival(
        self, envelope: MailboxEnvelope, raw: bytes, origin: MailboxOrigin, session_id: str
    ) -> Arrival | None:
        """The envelope as RCPT would have judged it: the recipients that lead somewhere,
        and those refused (archived with the message, told to nobody)."""
        sender = envelope.sender if envelope.sender is not None else ""
        recipients: list[Recipient] = []
        refused: list[tuple[str, Violation]] = []
        for address in envelope.recipients:
            check = await self._intake.recipient(address, sender)
            if check.target is not None:
                recipients.append(Recipient(address, check.target))
            elif check.reply.code >= 400 and check.reply.code < 500:
                raise TemporaryFailure  # a look-up failed: the whole message waits
            else:
                violation = check.violation or Violation("rcpt.refused", check.reply)
                refused.append((address, violation))
        if not envelope.recipients:
            refused.append(("", NO_ENVELOPE))
        return Arrival(
            envelope_from=sender,
            recipients=tuple(recipients),
            raw=raw,
            client=Client(listener="imap", session_id=session_id),
            refused=tuple(refused),
            origin=origin,
        )

    async def _finish(self, connection: MailboxConnection, uids: Sequence[int]) -> None:
        if not uids:
            return
        if self.config.move_to:
            await connection.move(uids, self.config.move_to)
        else:
            await connection.flag(uids)

    async def _put_aside(self, connection: MailboxConnection, uids: Sequence[int]) -> None:
        await connection.move(uids, self.config.quarantine_to)

    # -- lease and state ----------------------------------------------------------------

    async def _take_lease(self) -> bool:
        """Whether this process holds the lease now (False as well if the database cannot
        say: nobody polls a source whose lease cannot be written)."""
        try:
            return await self._acquire()
        except Exception as error:
            _log.error("imap_lease_failed", error=type(error).__name__)
            return False

    async def _acquire(self) -> bool:
        now = self._clock.now()
        until = now + timedelta(seconds=self._timing.lease)
        held = await asyncio.to_thread(
            self._ledger.acquire, self.config.name, self._holder, now, until
        )
        if held:
            self._leased_at = asyncio.get_running_loop().time()
        return held

    async def _keep_lease(self) -> None:
        """Renewed once a third of it has gone by; lost (another process took it after this
        one stalled past it): stop."""
        if asyncio.get_running_loop().time() - self._leased_at < self._timing.lease / 3:
            return
        try:
            held = await self._acquire()
        except Exception as error:
            raise TemporaryFailure(
                f"the lease could not be renewed: {type(error).__name__}"
            ) from error
        if not held:
            raise LeaseLost

    def _set_state(self, state: str, *, record: bool = True) -> None:
        if state == self.state:
            return
        gauge = self._metrics.imap_state
        gauge.labels(self.config.name, self.state).set(0)
        gauge.labels(self.config.name, state).set(1)
        self.state = state

    async def _record_state(
        self, state: str, detail: str, *, uidvalidity: int | None = None, ok: bool = False
    ) -> None:
        self._set_state(state)
        try:
            await asyncio.to_thread(
                self._ledger.set_state,
                self.config.name,
                self._holder,
                state,
                detail,
                self._clock.now(),
                uidvalidity=uidvalidity,
                ok=ok,
            )
        except Exception as error:  # only the status shown is late
            _log.warning("imap_state_not_recorded", error=type(error).__name__)

    def _count(self, fate: Fate, count: int = 1) -> None:
        self._metrics.imap_messages.labels(self.config.name, fate.value).inc(count)


def new_holder(hostname: str, pid: int) -> str:
    """Names the process that holds a lease: host, process and a random part (a restarted
    process with the same pid is another holder)."""
    return f"{hostname}:{pid}:{secrets.token_hex(4)}"
