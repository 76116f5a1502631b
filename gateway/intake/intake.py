"""The one intake. Whatever adapter a message arrives by (SMTP today), its way is one
straight line: read (parse once) -> gather (all I/O: sender authentication, the pair's
thread and quota) -> decide (pure: the chains) -> build (pure: rewrite once per pair, leak
guard, DSNs) -> commit (the group committer, one transaction) -> the reply -> deliver (the
deliveries go to this process's workers from memory)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

from gateway.core import status
from gateway.core.addresses import (
    AddressError,
    BounceCheck,
    BounceSigner,
    alias_token_of,
    parse_mailbox,
)
from gateway.core.clock import Clock
from gateway.core.model import (
    ArchiveEntry,
    AuthCheck,
    BounceContext,
    Conversation,
    Direction,
    SellerLogin,
    SenderAuthentication,
    SuppressionRules,
    Violation,
)
from gateway.intake import build, decide
from gateway.intake.commit import UnitWrite
from gateway.intake.model import (
    Arrival,
    Committed,
    Outcome,
    Receipt,
    Received,
    Recipient,
    RecipientCheck,
    Unit,
)
from gateway.intake.policy import Policy
from gateway.intake.read import read
from gateway.intake.verify import SenderVerifier
from gateway.obs import maillog
from gateway.obs.log import get_logger
from gateway.obs.metrics import Metrics
from gateway.pipeline.authresults import trusted_checks
from gateway.pipeline.bounces import Returned, ReturnReport, classify_returned
from gateway.pipeline.parse import canonical_line_ends
from gateway.storage.committer import Committer
from gateway.storage.directory import Directory
from gateway.storage.queue import ClaimedDelivery

_log = get_logger("intake")
T = TypeVar("T")

# Messages up to this size are read, judged and built on the event loop: a few ms. Larger
# ones (a PDF to read, a long HTML to sanitise) go to a worker thread, so that the other
# sessions of the process keep being served meanwhile.
INLINE_BYTES = 256 * 1024
# How long a message waits, before its commit, for the deliveries ahead of it to go out
# when they pile up; then it is committed all the same.
FLOW_WAIT_SECONDS = 1.0
BAD_RECIPIENT = Violation("rcpt.syntax", status.BAD_ADDRESS)
UNKNOWN_BOUNCE = Violation("rcpt.bounce", status.UNKNOWN_ALIAS)


class Deliveries(Protocol):
    """Where committed deliveries go: the delivery workers of this process."""

    def room(self, count: int, size: int = 0) -> bool:
        """Whether `count` more deliveries of `size` bytes in all can be taken from memory
        now."""
        ...

    async def admit(self, at_most: float) -> None:
        """Returns once few deliveries wait to be sent, or after `at_most` seconds."""
        ...

    def take(self, deliveries: Sequence[ClaimedDelivery], lease_until: datetime) -> None:
        """Deliveries this process holds the lease of (until `lease_until`)."""
        ...

    @property
    def lease_seconds(self) -> float: ...

    @property
    def holder(self) -> str:
        """The id of this process, which its claims name."""
        ...


class Intake:
    def __init__(
        self,
        *,
        policy: Policy,
        directory: Directory,
        committer: Committer,
        deliveries: Deliveries,
        clock: Clock,
        metrics: Metrics,
        alias_domain: str,
        bounce_signer: BounceSigner,
        suppression: SuppressionRules,
        max_mime_depth: int = 100,
        verifier: SenderVerifier | None = None,
    ) -> None:
        self.policy = policy
        self._directory = directory
        self._committer = committer
        self._deliveries = deliveries
        self._clock = clock
        self._metrics = metrics
        self._domain = alias_domain
        self._bounce_signer = bounce_signer
        self._suppression = suppression
        self._max_depth = max_mime_depth
        # No verifier: nothing is checked on the MX path (sender_auth = "none").
        self._verifier = verifier if policy.sender_auth != "none" else None
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    # -- RCPT -----------------------------------------------------------------------

    async def recipient(
        self, address: str, envelope_from: str, login: SellerLogin | None = None
    ) -> RecipientCheck:
        """What RCPT TO answers for `address`, and where it leads."""
        try:
            mailbox = parse_mailbox(address)
        except AddressError:
            return self._refused(BAD_RECIPIENT)
        bounce = self._bounce_signer.read(mailbox, self._clock.now())
        if bounce is not None and login is None:
            if bounce.check is not BounceCheck.VALID:
                # Forged or expired: the same answer as an unknown alias, nothing looked up.
                return self._refused(UNKNOWN_BOUNCE, why=bounce.check)
            return await self._bounce_recipient(bounce.token)
        token = alias_token_of(mailbox, self._domain)
        try:
            found = await self._directory.find_alias(token) if token else None
        except Exception as error:
            _log.error("alias_lookup_failed", alias_token=token, exc_info=error)
            return RecipientCheck(status.TEMPORARY_FAILURE)
        violation = decide.recipient(
            mailbox, self._domain, found, envelope_from, login, self.policy, self._clock.now()
        )
        if violation is not None or found is None:
            assert violation is not None, "a recipient without a pair fails the alias rule"
            return self._refused(violation, token=token)
        return RecipientCheck(status.RCPT_OK, found)

    def _refused(
        self, violation: Violation, token: str | None = None, why: str | None = None
    ) -> RecipientCheck:
        maillog.recipient_refused(
            rule_id=violation.rule_id, reply_code=violation.reply.code, token=token, why=why
        )
        self._metrics.rule_hits.labels(violation.rule_id, "enforce").inc()
        return RecipientCheck(violation.reply, violation=violation)

    async def _bounce_recipient(self, token: str) -> RecipientCheck:
        """A report about a message the gateway delivered, sent to its bounce address."""
        try:
            context = await self._directory.find_bounce(token)
        except Exception as error:
            _log.error("bounce_lookup_failed", exc_info=error)
            return RecipientCheck(status.TEMPORARY_FAILURE)
        if context is None:
            return self._refused(UNKNOWN_BOUNCE)
        return RecipientCheck(status.RCPT_OK, context)

    # -- DATA -----------------------------------------------------------------------

    async def accept(self, arrival: Arrival) -> Receipt:
        """The reply to one message: 250 only once it is committed; 451 if anything on the
        way fails for a reason a retry may not meet again."""
        self._in_flight += 1
        self._idle.clear()
        try:
            return await self._accept(arrival)
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()

    async def drained(self) -> None:
        """Returns once no message is being taken in."""
        await self._idle.wait()

    async def _accept(self, arrival: Arrival) -> Receipt:
        policy = self.policy  # a reload from now on does not change this message's policy
        try:
            raw = await self._cpu(len(arrival.raw), canonical_line_ends, arrival.raw)
            returned = None
            if any(isinstance(r.target, BounceContext) for r in arrival.recipients):
                returned = await self._cpu(len(raw), classify_returned, raw, self._max_depth)
                if returned.kind is Returned.AUTO_REPLY:
                    replies = await self._as_replies(arrival.recipients)
                    arrival = replace(arrival, recipients=replies)
            authentication = await self._authenticate(arrival, raw)
            arrived = Received(
                envelope_from=arrival.envelope_from,
                raw=raw,
                parsed=None,
                received_at=self._clock.now(),
                session_id=arrival.client.session_id,
                alias_domain=self._domain,
                authentication=authentication,
            )
            to_pairs = any(isinstance(r.target, Conversation) for r in arrival.recipients)
            received = await self._cpu(
                len(raw), read, arrived, self._max_depth, policy.reads_content and to_pairs
            )
            recipients = await self._gather(received, arrival.recipients, policy)
            unit = await self._cpu(
                len(raw), self._decide_and_build, received, recipients, arrival, policy, returned
            )
            if arrival.origin is not None and _sender_check_unavailable(unit):
                # No sender retries a mailbox's message: it stays in the mailbox instead,
                # not committed, until its sender's DNS answers.
                return Receipt(status.AUTH_CHECK_UNAVAILABLE)
            await self._deliveries.admit(FLOW_WAIT_SECONDS)
            entries = unit.passing.entries
            size = sum(len(entry.raw_delivered or b"") for entry in entries)
            room = self._deliveries.room(len(entries), size)
            leased_until = (
                received.received_at + timedelta(seconds=self._deliveries.lease_seconds)
                if room
                else None
            )
            write = UnitWrite(unit, leased_until, self._deliveries.holder, self._suppression)
            committed = await self._committer.run(write)
        except Exception as error:
            maillog.not_stored(error=type(error).__name__)
            _log.error("commit_failed", exc_info=error)
            return Receipt(status.TEMPORARY_FAILURE)
        self._after_commit(arrival, unit, committed)
        unreadable = received.parsed is None
        return Receipt(_reply(committed), tuple(committed.record_ids), unreadable)

    async def _cpu(self, size: int, work: Callable[..., T], *args: object) -> T:
        if size <= INLINE_BYTES:
            return work(*args)
        return await asyncio.to_thread(work, *args)

    async def _authenticate(self, arrival: Arrival, raw: bytes) -> SenderAuthentication | None:
        """What proves the sender: its AUTH on submission, else DKIM and SPF (DNS); for a
        mailbox's message, DKIM and the results its trusted servers wrote."""
        client = arrival.client
        if client.login is not None:
            passed = AuthCheck("auth", "pass", identity=client.login.username)
            return SenderAuthentication((passed,))
        to_pairs = any(isinstance(r.target, Conversation) for r in arrival.recipients)
        if self._verifier is None or not to_pairs:
            return None  # not required, or only reports to bounce addresses
        origin = arrival.origin
        if origin is not None:
            own = await self._verifier.verify_signatures(raw)
            trusted = trusted_checks(raw, origin.trusted_authserv_ids)
            authentication = SenderAuthentication((*own.checks, *trusted))
        else:
            authentication = await self._verifier.verify(
                raw, client.peer, client.helo, arrival.envelope_from
            )
        for check in authentication.checks:
            self._metrics.sender_auth.labels(check.method, check.result).inc()
        return authentication

    async def _as_replies(self, recipients: Sequence[Recipient]) -> tuple[Recipient, ...]:
        """An auto-reply sent back to a delivery's bounce address is its recipient's answer:
        it goes on as if written to the alias that delivery came from."""
        routed = []
        for recipient in recipients:
            target = recipient.target
            if isinstance(target, BounceContext) and target.original_sender:
                back = await self._reply_route(target)
                if back is not None:
                    recipient = replace(recipient, target=back)
            routed.append(recipient)
        return tuple(routed)

    async def _reply_route(self, delivered: BounceContext) -> Conversation | None:
        written_to = alias_token_of(parse_mailbox(delivered.alias_written_to), self._domain)
        forward = await self._directory.find_alias(written_to) if written_to else None
        if forward is None:
            return None
        back = alias_token_of(parse_mailbox(forward.sender.alias), self._domain)
        return await self._directory.find_alias(back) if back else None

    async def _gather(
        self, received: Received, recipients: Sequence[Recipient], policy: Policy
    ) -> list[Recipient]:
        """Each pair's facts for this message: its earlier messages this one refers to, and
        for a seller's message the seller's day so far."""
        references = received.parsed.thread_ids if received.parsed else ()
        gathered = []
        for recipient in recipients:
            target = recipient.target
            if isinstance(target, Conversation):
                quota = None
                if target.direction is Direction.SELLER_TO_BUYER:
                    window = policy.marketplace.quota_window_days
                    quota = await self._directory.quota(
                        target.seller_id, received.received_at, window
                    )
                thread = await self._directory.thread(target.pair_id, references)
                target = replace(target, thread=thread, quota=quota)
            gathered.append(replace(recipient, target=target))
        return gathered

    def _decide_and_build(
        self,
        received: Received,
        recipients: Sequence[Recipient],
        arrival: Arrival,
        policy: Policy,
        returned: ReturnReport | None = None,
    ) -> Unit:
        outcomes = [build.unrouted(received, rcpt, why) for rcpt, why in arrival.refused]
        tells = arrival.notifies_refusals
        for recipient in recipients:
            target = recipient.target
            if isinstance(target, BounceContext):
                report = returned or ReturnReport(Returned.OTHER)
                outcomes.append(build.for_bounce(received, recipient.address, target, report))
                continue
            try:
                judged = decide.judge_alias(received, recipient.address, target, policy)
                outcome = (
                    build.deliverable(received, judged, policy)
                    if judged.passed
                    else build.refused(judged)
                )
            except Exception as error:
                # Judging and rewriting are pure: the same bytes would fail again, so a
                # 451 would only make the sender retry for days. Refuse, keep, report.
                _log.error("content_error", pair_id=target.pair_id, exc_info=error)
                outcome = decide.unprocessable(received, recipient.address, target)
            if tells:
                outcome = replace(outcome, tell=target.sender.delivery_address)
            outcomes.append(outcome)
        return build.unit(received, outcomes, policy, arrival.origin)

    def _after_commit(self, arrival: Arrival, unit: Unit, committed: Committed) -> None:
        variant = committed.variant
        if unit.claim is not None:
            claim = unit.claim
            used = committed.quota_used if committed.quota_used is not None else claim.limit
            self._directory.counted(claim.seller_id, claim.day, used)
        if committed.leased_until is not None:
            claimed = _claimed(variant.entries, committed, unit.received.received_at)
            self._deliveries.take(claimed, committed.leased_until)
        _log_outcomes(variant.outcomes, committed.record_ids, len(unit.received.raw))
        listener = arrival.client.listener
        for outcome in variant.outcomes:
            entry = outcome.entry
            verdict = "accepted" if entry.accepted else "refused"
            self._metrics.messages.labels(listener, verdict).inc()
            for violation in entry.violations:
                self._metrics.rule_hits.labels(violation.rule_id, "enforce").inc()
            for violation in entry.shadowed:
                self._metrics.rule_hits.labels(violation.rule_id, "shadow").inc()
        returned = sum(1 for outcome in variant.outcomes if outcome.notice is not None)
        if returned:
            self._metrics.notices.labels("returned").inc(returned)
        if len(variant.notices) > returned:
            self._metrics.notices.labels("refused").inc(len(variant.notices) - returned)

    def use_policy(self, policy: Policy) -> None:
        """From the next message on, judge by `policy` (a reload); a message being taken in
        keeps the policy it started with."""
        self.policy = policy


def _sender_check_unavailable(unit: Unit) -> bool:
    """Whether a recipient was refused because the sender's DNS did not answer."""
    return any(
        violation.reply == status.AUTH_CHECK_UNAVAILABLE
        for outcome in unit.passing.outcomes
        for violation in outcome.entry.violations
    )


def _reply(committed: Committed) -> status.Reply:
    outcomes = committed.variant.outcomes
    refused = [o for o in outcomes if not o.entry.accepted]
    if len(refused) < len(outcomes):
        return status.accepted(committed.record_ids[0], len(refused))
    return decide.refusal_reply(refused)


def _claimed(
    entries: Sequence[ArchiveEntry], committed: Committed, queued_at: datetime
) -> list[ClaimedDelivery]:
    """The committed deliveries, as this process's workers take them from memory."""
    claimed = []
    for entry, record_id in zip(entries, committed.record_ids, strict=True):
        if entry.delivery is None or entry.raw_delivered is None:
            continue
        claimed.append(
            ClaimedDelivery(
                outbound_id=committed.outbound_ids[record_id],
                message_id=record_id,
                envelope_from=entry.delivery.envelope_from,
                recipient=entry.delivery.recipient,
                token=entry.delivery.token,
                content=entry.raw_delivered,
                attempts=1,
                queued_at=queued_at,
                is_notice=entry.direction is Direction.NOTICE,
            )
        )
    return claimed


def _log_outcomes(outcomes: Sequence[Outcome], ids: Sequence[int], size: int) -> None:
    for outcome, message_id in zip(outcomes, ids, strict=False):
        entry = outcome.entry
        if entry.accepted:
            maillog.queued(
                message_id=message_id, pair_id=entry.pair_id, direction=entry.direction.value
            )
        else:
            maillog.refused(
                message_id=message_id,
                pair_id=entry.pair_id,
                rules=[v.rule_id for v in entry.violations],
                code=entry.reply.code,
            )
    maillog.received(
        message_ids=list(ids),
        size=size,
        recipients=len(outcomes),
        accepted=sum(1 for o in outcomes if o.entry.accepted),
    )
