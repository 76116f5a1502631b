"""The aiosmtpd handler: judge each recipient, rewrite, commit, and only then answer 250."""

from __future__ import annotations

import asyncio
import secrets
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

import structlog

from gateway.core import status
from gateway.core.addresses import AddressError, alias_token_of, bounce_token_of, parse_mailbox
from gateway.core.clock import Clock
from gateway.core.model import (
    AuthCheck,
    BounceContext,
    Conversation,
    Direction,
    IntakeBatch,
    QuotaExceeded,
    SellerLogin,
    SenderAuthentication,
)
from gateway.core.ports import Directory, Intake
from gateway.core.status import Reply
from gateway.inbound.judging import Judging
from gateway.inbound.outcomes import (
    MIME_TOO_DEEP,
    Outcome,
    Received,
    for_alias,
    for_bounce,
    over_quota,
    partial_refusal_notice,
    quota_claims,
    refusal_reply,
    unprocessable,
)
from gateway.inbound.throttle import backoff
from gateway.inbound.verify import SenderVerifier
from gateway.obs import maillog
from gateway.obs.log import get_logger
from gateway.obs.metrics import Metrics
from gateway.pipeline.content import read_content
from gateway.pipeline.parse import (
    MessageFormatError,
    MimeTooDeep,
    canonical_line_ends,
    parse_message,
)
from gateway.policy.chains import RCPT_CHAIN, SUBMISSION_RCPT_CHAIN, judge
from gateway.policy.config import OFF_POLICY, ContentPolicy
from gateway.policy.rule import RecipientContext
from gateway.policy.rules.marketplace import MarketplacePolicy

_log = get_logger("inbound")

FREE_REFUSALS = 3  # refused RCPTs in a session before each further one is slowed


class GatewayHandler:
    def __init__(
        self,
        *,
        alias_domain: str,
        directory: Directory,
        intake: Intake,
        clock: Clock,
        max_recipients: int = 100,
        max_mime_depth: int = 100,
        rcpt_refusal_delay: float = 1.0,
        metrics: Metrics,
        verifier: SenderVerifier | None = None,
        sender_auth: str = "aligned",
        marketplace: MarketplacePolicy | None = None,
        content_policy: ContentPolicy = OFF_POLICY,
        on_queued: Callable[[], None] = lambda: None,
    ) -> None:
        self._marketplace = marketplace or MarketplacePolicy()
        self._metrics = metrics
        # No verifier: nothing is checked on the MX path (sender_auth = "none").
        self._verifier = verifier if sender_auth != "none" else None
        self._sender_auth = sender_auth
        self._judging = Judging.build(content_policy, sender_auth, self._marketplace)
        self._rcpt_refusal_delay = rcpt_refusal_delay
        self._max_recipients = max_recipients
        self._max_mime_depth = max_mime_depth
        self._domain = alias_domain
        self._directory = directory
        self._intake = intake
        self._clock = clock
        self._on_queued = on_queued
        # What each accepted RCPT resolved to, kept for DATA of the same transaction.
        self._targets: weakref.WeakKeyDictionary[Any, dict[str, Conversation | BounceContext]] = (
            weakref.WeakKeyDictionary()
        )
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    # -- aiosmtpd hooks ---------------------------------------------------------------

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        self._bind(session)
        login = _login(session)
        if address not in ("", "<>"):
            try:
                mailbox = parse_mailbox(address)
            except AddressError:
                return str(status.BAD_SENDER_ADDRESS)
            if login is not None and str(mailbox) not in login.mailboxes:
                maillog.sender_refused(rule_id="sender.submission", seller_id=login.seller_id)
                return str(status.SENDER_NOT_YOURS)
        elif login is not None:
            return str(status.SENDER_NOT_YOURS)  # a seller's message is not a bounce
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return str(status.SENDER_OK)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        self._bind(session)
        reply = await self._rcpt(envelope, address, rcpt_options, _login(session))
        if not reply.startswith("250"):
            # A client collecting refusals is guessing aliases: each further one costs it time.
            session.bsm_rcpt_refusals = getattr(session, "bsm_rcpt_refusals", 0) + 1
            delay = backoff(session.bsm_rcpt_refusals, FREE_REFUSALS, self._rcpt_refusal_delay)
            if delay:
                await asyncio.sleep(delay)
        return reply

    async def _rcpt(
        self, envelope: Any, address: str, rcpt_options: list[str], login: SellerLogin | None
    ) -> str:
        if len(envelope.rcpt_tos) >= self._max_recipients:
            maillog.recipient_refused(rule_id="rcpt.count", reply_code=452)
            return str(status.TOO_MANY_RECIPIENTS)
        try:
            mailbox = parse_mailbox(address)
        except AddressError:
            maillog.recipient_refused(rule_id="rcpt.syntax", reply_code=501)
            return str(status.BAD_ADDRESS)
        bounce_token = bounce_token_of(mailbox, self._domain)
        if bounce_token is not None and login is None:
            return await self._bounce_rcpt(envelope, address, bounce_token)
        token = alias_token_of(mailbox, self._domain)
        try:
            found = await asyncio.to_thread(self._directory.find_alias, token) if token else None
        except Exception as error:
            _log.error("alias_lookup_failed", alias_token=token, exc_info=error)
            return str(status.TEMPORARY_FAILURE)
        context = RecipientContext(mailbox, self._domain, found, envelope.mail_from or "", login)
        judgement = judge(RCPT_CHAIN if login is None else SUBMISSION_RCPT_CHAIN, context)
        if not judgement.passed or found is None:
            violation = judgement.rejections[0]
            maillog.recipient_refused(
                rule_id=violation.rule_id, reply_code=violation.reply.code, token=token
            )
            return str(violation.reply)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        self._targets.setdefault(envelope, {})[address] = found
        return str(status.RCPT_OK)

    async def _bounce_rcpt(self, envelope: Any, address: str, token: str) -> str:
        """A report about a message the gateway delivered, sent to its bounce address."""
        try:
            context = await asyncio.to_thread(self._directory.find_bounce, token)
        except Exception as error:
            _log.error("bounce_lookup_failed", exc_info=error)
            return str(status.TEMPORARY_FAILURE)
        if context is None:
            maillog.recipient_refused(rule_id="rcpt.bounce", reply_code=550)
            return str(status.UNKNOWN_ALIAS)
        envelope.rcpt_tos.append(address)
        self._targets.setdefault(envelope, {})[address] = context
        return str(status.RCPT_OK)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self._bind(session)
        self._in_flight += 1
        self._idle.clear()
        try:
            return str(await self._data(session, envelope))
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()

    @property
    def policy_version(self) -> str:
        return self._judging.version

    def use_policy(self, policy: ContentPolicy) -> None:
        """From the next DATA command on, judge by `policy` (a reload); a message being
        judged keeps the policy it started with."""
        self._judging = Judging.build(policy, self._sender_auth, self._marketplace)

    async def drained(self) -> None:
        """Returns once no DATA transaction is being judged or committed."""
        await self._idle.wait()

    async def handle_exception(self, error: Exception) -> str:
        # aiosmtpd would answer "500 Error: ..." and tell the client never to retry.
        _log.error("unexpected_error", exc_info=error)
        return str(status.TEMPORARY_FAILURE)

    # -- DATA -------------------------------------------------------------------------

    async def _data(self, session: Any, envelope: Any) -> Reply:
        targets = self._targets.pop(envelope, {})
        try:
            # Large messages take a while to read: off the event loop, like the rest.
            raw = await asyncio.to_thread(canonical_line_ends, envelope.content)
            authentication = await self._authenticate(session, envelope, raw, targets.values())
            received, outcomes = await asyncio.to_thread(
                self._judge,
                self._judging,
                Received(
                    envelope_from=envelope.mail_from,
                    raw=raw,
                    parsed=None,
                    received_at=self._clock.now(),
                    session_id=session.bsm_session_id,
                    alias_domain=self._domain,
                    authentication=authentication,
                ),
                [(rcpt, targets[rcpt]) for rcpt in envelope.rcpt_tos],
            )
            ids, outcomes = await self._commit_within_quota(received, outcomes)
            refused = [o for o in outcomes if not o.entry.accepted]
        except Exception as error:
            maillog.not_stored(error=type(error).__name__)
            _log.error("commit_failed", exc_info=error)
            return status.TEMPORARY_FAILURE
        self._log_outcomes(outcomes, ids, len(received.raw))
        for outcome in outcomes:
            entry = outcome.entry
            verdict = "accepted" if entry.accepted else "refused"
            self._metrics.messages.labels(session.bsm_listener, verdict).inc()
            for violation in entry.violations:
                self._metrics.rule_hits.labels(violation.rule_id, "enforce").inc()
            for violation in entry.shadowed:
                self._metrics.rule_hits.labels(violation.rule_id, "shadow").inc()
        if len(refused) < len(outcomes):
            self._on_queued()
            return status.QUEUED.with_text(
                f"Message accepted for delivery as {ids[0]}"
                + (f"; {len(refused)} recipient(s) refused, a report follows" if refused else "")
            )
        return refusal_reply(refused)

    async def _authenticate(
        self,
        session: Any,
        envelope: Any,
        raw: bytes,
        targets: Iterable[Conversation | BounceContext],
    ) -> SenderAuthentication | None:
        """What proves the sender: its AUTH on submission, else DKIM and SPF (DNS)."""
        login = _login(session)
        if login is not None:
            return SenderAuthentication((AuthCheck("auth", "pass", identity=login.username),))
        if self._verifier is None or not any(isinstance(t, Conversation) for t in targets):
            return None  # not required, or only reports to bounce addresses
        peer = session.peer[0] if session.peer else ""
        authentication = await self._verifier.verify(
            raw, peer, session.host_name or "", envelope.mail_from or ""
        )
        for check in authentication.checks:
            self._metrics.sender_auth.labels(check.method, check.result).inc()
        return authentication

    async def _commit_within_quota(
        self, received: Received, outcomes: list[Outcome]
    ) -> tuple[list[int], list[Outcome]]:
        """Commit; if another session took the last of a seller's day between judging and
        now, that seller's recipients are refused and the rest committed."""
        try:
            return await self._commit(received, outcomes), outcomes
        except QuotaExceeded as exceeded:
            outcomes = [
                over_quota(o, self._marketplace)
                if o.quota_claim and o.quota_claim.seller_id in exceeded.seller_ids
                else o
                for o in outcomes
            ]
            return await self._commit(received, outcomes), outcomes

    async def _commit(self, received: Received, outcomes: Sequence[Outcome]) -> list[int]:
        refused = [o for o in outcomes if not o.entry.accepted]
        entries = [o.entry for o in outcomes]
        entries += [o.notice for o in outcomes if o.notice is not None]
        if refused and len(refused) < len(outcomes):
            entries.append(partial_refusal_notice(received, refused))
        batch = IntakeBatch(
            tuple(entries),
            tuple(o.failed_delivery for o in outcomes if o.failed_delivery is not None),
            quota_claims(outcomes),
        )
        # Shielded: a client that hangs up mid-commit does not cut the transaction short.
        return await asyncio.shield(asyncio.to_thread(self._intake.commit, batch))

    def _judge(
        self,
        judging: Judging,
        arrived: Received,
        targets: Sequence[tuple[str, Conversation | BounceContext]],
    ) -> tuple[Received, list[Outcome]]:
        """Runs in a worker thread: read the message, then each recipient's outcome."""
        try:
            parsed = parse_message(arrived.raw, self._max_mime_depth)
            received = replace(arrived, parsed=parsed)
        except MimeTooDeep:
            received = replace(arrived, unreadable=MIME_TOO_DEEP)
        except MessageFormatError:
            received = arrived
        if (
            received.parsed is not None
            and judging.reads_content
            and any(isinstance(target, Conversation) for _, target in targets)
        ):
            received = replace(received, content=read_content(received.parsed))
        return received, self._outcomes(judging, received, targets)

    def _outcomes(
        self,
        judging: Judging,
        received: Received,
        targets: Sequence[tuple[str, Conversation | BounceContext]],
    ) -> list[Outcome]:
        """The thread look-up for each recipient, then pure judging and rewriting."""
        references = received.parsed.thread_ids if received.parsed else ()
        outcomes = []
        for rcpt, target in targets:
            if isinstance(target, BounceContext):
                outcomes.append(for_bounce(received, rcpt, target))
                continue
            conversation = replace(
                target,
                thread=self._directory.thread(target.pair_id, references),
                quota=self._directory.quota(
                    target.seller_id, received.received_at, self._marketplace.quota_window_days
                )
                if target.direction is Direction.SELLER_TO_BUYER
                else None,
            )
            try:
                outcomes.append(for_alias(received, rcpt, conversation, judging, self._marketplace))
            except Exception as error:
                # Judging and rewriting are pure: the same bytes would fail again, so a
                # 451 would only make the sender retry for days. Refuse, keep, report.
                _log.error("content_error", pair_id=target.pair_id, exc_info=error)
                outcomes.append(unprocessable(received, rcpt, conversation))
        return outcomes

    def _log_outcomes(self, outcomes: Sequence[Outcome], ids: Sequence[int], size: int) -> None:
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

    @staticmethod
    def _bind(session: Any) -> None:
        if getattr(session, "bsm_session_id", None) is None:
            session.bsm_session_id = secrets.token_hex(6)
        structlog.contextvars.bind_contextvars(session_id=session.bsm_session_id)


def _login(session: Any) -> SellerLogin | None:
    """The seller authenticated in this session (submission ports), if any."""
    data = getattr(session, "auth_data", None)
    return data if isinstance(data, SellerLogin) else None
