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
from dataclasses import dataclass, field
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
from gateway.imap.lease import Lease, LeaseLost
from gateway.intake.intake import Intake
from gateway.intake.model import Arrival, Client, MailboxOrigin, Recipient
from gateway.obs.log import get_logger
from gateway.obs.metrics import Metrics
from gateway.storage.imap import MailboxLedger, Taken

_log = get_logger("imap")

NO_ENVELOPE = Violation("imap.envelope", status.UNKNOWN_ALIAS, "no alias in the envelope headers")
# A message whose commit failed this many times while the database took other writes is
# put aside: it is the message, not the database.
MAX_ATTEMPTS = 5
BATCH_BYTES = 32 * 1024 * 1024  # fetched at once: a batch of large messages is split


@dataclass(frozen=True, slots=True)
class SourceConfig:
    name: str
    endpoint: Endpoint
    password: str = field(repr=False)
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
    retry_message_after: float


class Fate(Enum):
    TAKEN = "processed"  # committed, and accepted for a recipient at least
    REFUSED = "refused"  # committed as refused (told by DSN where the sender is known)
    DUPLICATE = "duplicate"  # taken in before
    QUARANTINED = "quarantined"  # put aside for the operators (committed if it could be)
    DEFERRED = "deferred"  # not committed (a temporary failure): left for a later round


_FINISHED = (Fate.TAKEN, Fate.REFUSED, Fate.DUPLICATE)


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
        self._lease = Lease(ledger, config.name, holder, timing.lease, clock)
        self._served = False  # the current connection completed a round
        # Messages whose commit failed: (UIDVALIDITY, UID) -> failures, and when to retry.
        self._attempts: dict[tuple[int, int], int] = {}
        self._retry_at: dict[tuple[int, int], float] = {}
        self.state = "standby"

    # -- the loop -------------------------------------------------------------------

    async def run(self) -> None:
        """Until cancelled: hold the lease, poll; on failure back off and start again."""
        failures = 0
        name = self.config.name
        structlog.contextvars.bind_contextvars(imap_source=name)
        try:
            while True:
                if not await self._lease.take():
                    self._set_state("standby")
                    await asyncio.sleep(self._timing.lease / 3)
                    continue
                self._served = False
                try:
                    await self._session()
                except LeaseLost:
                    await self._lease.drop()
                    continue
                except Exception as error:
                    # A connection that served a round was healthy: count afresh.
                    failures = 1 if self._served else failures + 1
                    state, detail = self._failed(error, failures)
                    await self._back_off(failures, state, detail)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._lease.release())
            self._set_state("standby")

    def _failed(self, error: Exception, failures: int) -> tuple[str, str]:
        """Logged once and counted by kind; the state and detail to show."""
        name = self.config.name
        if isinstance(error, AuthenticationFailed):
            self._metrics.imap_errors.labels(name, error.kind).inc()
            _log.error("imap_login_failed", reason=str(error), failures=failures)
            return "auth_failed", str(error)
        if isinstance(error, MailboxError):
            self._metrics.imap_errors.labels(name, error.kind).inc()
            _log.warning("imap_connection_failed", kind=error.kind, reason=str(error))
            return "backoff", f"{error.kind}: {error}"
        if isinstance(error, TemporaryFailure):
            self._metrics.imap_errors.labels(name, "database").inc()
            _log.warning("imap_round_deferred", reason=str(error))
            return "backoff", str(error)
        # A fault of the gateway's own: logged whole, and never the end of the poller.
        self._metrics.imap_errors.labels(name, "internal").inc()
        _log.error("imap_round_failed", exc_info=error)
        return "backoff", type(error).__name__

    async def _session(self) -> None:
        """One connection: select, take in what is there, again while there is more, then
        wait for news."""
        config = self.config
        self._set_state("connecting")
        connection = await MailboxConnection.open(config.endpoint, config.password)
        try:
            for folder in (config.move_to, config.quarantine_to):
                if folder:
                    await connection.ensure_folder(folder)
            _log.info("imap_connected", idle=connection.has("IDLE"))
            uidvalidity = None
            while True:
                self._lease.check()
                # Selected again each round: a folder deleted and made again meanwhile (a
                # restore, a migration) is seen at once, with its new UIDVALIDITY.
                selected = await connection.select(config.folder)
                if not config.move_to and not selected.keeps_keyword:
                    raise MailboxError(
                        "protocol", f"the folder keeps no {TAKEN_KEYWORD} flag: use move_to"
                    )
                if selected.uidvalidity != uidvalidity:
                    if uidvalidity is not None:
                        _log.warning(
                            "imap_uidvalidity_changed",
                            previous=uidvalidity,
                            uidvalidity=selected.uidvalidity,
                        )
                    uidvalidity = selected.uidvalidity
                    await self._record_state("polling", "", uidvalidity=uidvalidity, ok=True)
                handled = await self._round(connection, uidvalidity)
                self._served = True
                # What arrived during the round may have been reported only to the
                # commands of the round: search again before waiting.
                if handled or connection.news:
                    continue
                waiting = "idle" if connection.has("IDLE") else "polling"
                await self._record_state(waiting, "", ok=True)
                await self._wait_for_news(connection)
        finally:
            await connection.close()

    async def _wait_for_news(self, connection: MailboxConnection) -> None:
        """IDLE for one round of `idle_renew` (RFC 2177: re-issued before 29 minutes; its
        end proves the server still answers), or, where the server has no IDLE, the poll
        interval; a lease lost ends the wait at once."""
        timing = self._timing
        if connection.has("IDLE"):
            self._set_state("idle")
            await connection.idle(timing.idle_renew, interrupt=self._lease.lost())
            return
        self._set_state("polling")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._lease.lost(), timing.poll_interval)
        await connection.noop()

    async def _back_off(self, failures: int, state: str, detail: str) -> None:
        """The lease is kept meanwhile, so that a source that fails is not handed around."""
        timing = self._timing
        delay = min(timing.backoff_max, timing.backoff_min * 2 ** min(failures - 1, 20))
        delay *= random.uniform(0.8, 1.2)
        await self._record_state(state, detail)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._lease.lost(), delay)

    # -- one round --------------------------------------------------------------------

    async def _round(self, connection: MailboxConnection, uidvalidity: int) -> int:
        """Everything in the folder: what was taken in before is only moved (or flagged),
        the rest fetched and handed to the intake, a batch at a time. Returns how many
        messages it handled."""
        config = self.config
        criteria = ("UNDELETED",) if config.move_to else ("UNKEYWORD", TAKEN_KEYWORD)
        now = asyncio.get_running_loop().time()
        uids = [
            uid
            for uid in await connection.search(*criteria)
            if self._retry_at.get((uidvalidity, uid), 0.0) <= now
        ]
        if not uids:
            return 0
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
        deferred: list[int] = []
        committed = len(known)
        for start in range(0, len(fresh), self._timing.batch):
            for batch in await self._batches(connection, fresh[start : start + self._timing.batch]):
                self._lease.check()
                self._set_state("fetching")
                fates = await self._take_batch(connection, batch, uidvalidity)
                deferred += [uid for uid, fate in fates.items() if fate is Fate.DEFERRED]
                committed += sum(1 for fate in fates.values() if fate is not Fate.DEFERRED)
        # Nothing committed: the database, or the messages? It is the messages if it takes
        # the lease's write now.
        if deferred and (committed or await self._lease.renew_now()):
            await self._retry_later(connection, uidvalidity, deferred)
        elif deferred:
            raise TemporaryFailure("a message could not be committed; it stays for a retry")
        return len(uids) - len(deferred)

    async def _batches(self, connection: MailboxConnection, uids: Sequence[int]) -> list[list[int]]:
        """`uids` in batches of at most BATCH_BYTES; a message over the size limit is put
        aside at once (SMTP would refuse it at DATA; here it waits for an operator)."""
        sizes = await connection.sizes(uids)
        limit = self._timing.max_message_size
        oversized = [uid for uid in uids if sizes.get(uid, 0) > limit]
        if oversized:
            _log.error("imap_message_too_large", uids=oversized, limit=limit)
            self._count(Fate.QUARANTINED, len(oversized))
            await self._put_aside(connection, oversized)
        batches: list[list[int]] = []
        load = 0
        for uid in uids:
            if uid in oversized:
                continue
            if not batches or load + sizes.get(uid, 0) > BATCH_BYTES:
                batches.append([])
                load = 0
            batches[-1].append(uid)
            load += sizes.get(uid, 0)
        return batches

    async def _take_batch(
        self, connection: MailboxConnection, uids: Sequence[int], uidvalidity: int
    ) -> dict[int, Fate]:
        """A batch fetched and taken in concurrently (so that its commits share
        transactions); a second copy of the same bytes waits for the first."""
        fetched = await connection.fetch(uids)
        self._metrics.imap_messages.labels(self.config.name, "fetched").inc(len(fetched))
        firsts: dict[str, int] = {}
        copies: list[int] = []
        digests = {uid: digest(raw) for uid, raw in fetched.items()}
        for uid, hashed in digests.items():
            if hashed in firsts:
                copies.append(uid)
            else:
                firsts[hashed] = uid
        fates = dict(
            zip(
                firsts.values(),
                await asyncio.gather(
                    *(
                        self._take(uid, fetched[uid], digests[uid], uidvalidity)
                        for uid in firsts.values()
                    )
                ),
                strict=True,
            )
        )
        for uid in copies:
            fates[uid] = await self._take(uid, fetched[uid], digests[uid], uidvalidity)
        for fate in fates.values():
            self._count(fate)
        await self._finish(connection, [uid for uid, fate in fates.items() if fate in _FINISHED])
        await self._put_aside(
            connection, [uid for uid, fate in fates.items() if fate is Fate.QUARANTINED]
        )
        for uid, fate in fates.items():
            if fate is not Fate.DEFERRED:
                self._attempts.pop((uidvalidity, uid), None)
                self._retry_at.pop((uidvalidity, uid), None)
        return fates

    async def _retry_later(
        self, connection: MailboxConnection, uidvalidity: int, uids: Sequence[int]
    ) -> None:
        """Messages that could not be committed while the database took writes: each waits
        longer before the next try, and after MAX_ATTEMPTS is put aside (never retried for
        ever; the quarantine folder keeps it for an operator)."""
        now = asyncio.get_running_loop().time()
        aside = []
        for uid in uids:
            key = (uidvalidity, uid)
            attempts = self._attempts[key] = self._attempts.get(key, 0) + 1
            if attempts >= MAX_ATTEMPTS:
                aside.append(uid)
                self._attempts.pop(key)
                self._retry_at.pop(key, None)
                continue
            self._retry_at[key] = now + self._timing.retry_message_after * 2 ** (attempts - 1)
        if aside:
            _log.error("imap_message_put_aside", uids=aside, attempts=MAX_ATTEMPTS)
            self._count(Fate.QUARANTINED, len(aside))
            await self._put_aside(connection, aside)

    async def _take(self, uid: int, raw: bytes, hashed: str, uidvalidity: int) -> Fate:
        """One message through the intake; its fate decides what is done with it."""
        config = self.config
        session_id = secrets.token_hex(6)
        structlog.contextvars.bind_contextvars(session_id=session_id)
        envelope = read_envelope(
            raw, self._domain, config.recipient_headers, config.sender_header, config.endpoint.user
        )
        origin = MailboxOrigin(
            config.name, uidvalidity, uid, hashed, envelope.message_id, config.trusted_authserv_ids
        )
        try:
            earlier = await asyncio.to_thread(
                self._ledger.taken_before, config.name, hashed, envelope.message_id
            )
            if earlier is not None:
                place = Taken(config.name, uidvalidity, uid, hashed, envelope.message_id, earlier)
                await asyncio.to_thread(self._ledger.seen_again, place, self._clock.now())
                _log.info("imap_seen_again", uid=uid, message_id=earlier)
                return Fate.DUPLICATE
            arrival = await self._arrival(envelope, raw, origin, session_id)
        except Exception as error:  # the database, most likely: tried again later
            _log.error("imap_take_failed", uid=uid, error=type(error).__name__)
            return Fate.DEFERRED
        receipt = await self._intake.accept(arrival)
        if not receipt.record_ids:
            return Fate.DEFERRED  # not committed (451): the message stays for a retry
        _log.info(
            "imap_taken", uid=uid, message_ids=list(receipt.record_ids), code=receipt.reply.code
        )
        if receipt.unreadable or not envelope.recipients:
            return Fate.QUARANTINED
        return Fate.REFUSED if receipt.reply.code >= 400 else Fate.TAKEN

    async def _arrival(
        self, envelope: MailboxEnvelope, raw: bytes, origin: MailboxOrigin, session_id: str
    ) -> Arrival:
        """The envelope as RCPT would have judged it: the recipients that lead somewhere,
        and those refused (archived with the message, told to nobody)."""
        sender = envelope.sender if envelope.sender is not None else ""
        recipients: list[Recipient] = []
        refused: list[tuple[str, Violation]] = []
        for address in envelope.recipients:
            check = await self._intake.recipient(address, sender)
            if check.target is not None:
                recipients.append(Recipient(address, check.target))
            elif 400 <= check.reply.code < 500:
                raise TemporaryFailure("a recipient could not be looked up")
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
        if uids:
            await connection.move(uids, self.config.quarantine_to)

    # -- state ------------------------------------------------------------------------

    def _set_state(self, state: str) -> None:
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
    process with the same pid is another holder); it fits imap_sources.holder."""
    return f"{hostname[:80]}:{pid}:{secrets.token_hex(4)}"
