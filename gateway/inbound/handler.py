"""The aiosmtpd handler: judge each recipient, rewrite, commit, and only then answer 250."""

from __future__ import annotations

import asyncio
import secrets
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import structlog

from gateway.core import status
from gateway.core.addresses import (
    AddressError,
    alias_token_of,
    bounce_address,
    bounce_token_of,
    new_alias_token,
    new_message_id,
    parse_mailbox,
)
from gateway.core.clock import Clock
from gateway.core.message import ParsedMessage
from gateway.core.model import (
    ArchiveEntry,
    BounceContext,
    Conversation,
    Delivery,
    Direction,
    IntakeBatch,
    Violation,
)
from gateway.core.ports import Directory, Intake
from gateway.core.status import Reply
from gateway.obs import maillog
from gateway.obs.log import get_logger
from gateway.pipeline.dsn import (
    FailedRecipient,
    failure_notice,
    header_block,
    read_report,
    scrub_addresses,
)
from gateway.pipeline.leakguard import LeakFound
from gateway.pipeline.parse import MessageFormatError, parse_message
from gateway.pipeline.rewrite import rewrite
from gateway.policy.chains import DATA_CHAIN, RCPT_CHAIN, judge
from gateway.policy.rule import MessageContext, RecipientContext

_log = get_logger("inbound")


@dataclass(frozen=True, slots=True)
class _Outcome:
    """One recipient's fate at DATA."""

    rcpt: str
    target: Conversation | BounceContext
    entry: ArchiveEntry
    notice: ArchiveEntry | None = None  # a DSN this recipient's outcome sends to a sender
    failed_delivery: tuple[int, str] | None = None


class GatewayHandler:
    def __init__(
        self,
        *,
        alias_domain: str,
        directory: Directory,
        intake: Intake,
        clock: Clock,
        on_queued: Callable[[], None] = lambda: None,
    ) -> None:
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
        if address not in ("", "<>"):
            try:
                parse_mailbox(address)
            except AddressError:
                return str(status.BAD_SENDER_ADDRESS)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return str(status.SENDER_OK)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        self._bind(session)
        try:
            mailbox = parse_mailbox(address)
        except AddressError:
            maillog.recipient_refused(rule_id="rcpt.syntax", reply_code=501)
            return str(status.BAD_ADDRESS)
        bounce_token = bounce_token_of(mailbox, self._domain)
        if bounce_token is not None:
            return await self._bounce_rcpt(envelope, address, bounce_token)
        token = alias_token_of(mailbox, self._domain)
        try:
            found = await asyncio.to_thread(self._directory.find_alias, token) if token else None
        except Exception as error:
            _log.error("alias_lookup_failed", alias_token=token, exc_info=error)
            return str(status.TEMPORARY_FAILURE)
        judgement = judge(RCPT_CHAIN, RecipientContext(mailbox, self._domain, found))
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

    async def drained(self) -> None:
        """Returns once no DATA transaction is being judged or committed."""
        await self._idle.wait()

    async def handle_exception(self, error: Exception) -> str:
        # aiosmtpd would answer "500 Error: ..." and tell the client never to retry.
        _log.error("unexpected_error", exc_info=error)
        return str(status.TEMPORARY_FAILURE)

    # -- DATA -------------------------------------------------------------------------

    async def _data(self, session: Any, envelope: Any) -> Reply:
        received_at = self._clock.now()
        raw: bytes = envelope.content
        targets = self._targets.pop(envelope, {})
        session_id: str = session.bsm_session_id
        try:
            parsed: ParsedMessage | None = parse_message(raw)
        except MessageFormatError:
            parsed = None
        try:
            outcomes = await asyncio.to_thread(
                self._judge_all,
                envelope.mail_from,
                envelope.rcpt_tos,
                targets,
                parsed,
                raw,
                received_at,
                session_id,
            )
            entries = [o.entry for o in outcomes]
            entries += [o.notice for o in outcomes if o.notice is not None]
            refused = [o for o in outcomes if not o.entry.accepted]
            if refused and len(refused) < len(outcomes):
                entries.append(
                    self._notice(envelope.mail_from, raw, refused, received_at, session_id)
                )
            batch = IntakeBatch(
                tuple(entries),
                tuple(o.failed_delivery for o in outcomes if o.failed_delivery is not None),
            )
            # Shielded: a client that hangs up mid-commit does not cut the transaction short.
            ids = await asyncio.shield(asyncio.to_thread(self._intake.commit, batch))
        except Exception as error:
            maillog.not_stored(error=type(error).__name__)
            _log.error("commit_failed", exc_info=error)
            return status.TEMPORARY_FAILURE
        self._log_outcomes(outcomes, ids, len(raw))
        if len(refused) < len(outcomes):
            self._on_queued()
            return status.QUEUED.with_text(
                f"Message accepted for delivery as {ids[0]}"
                + (f"; {len(refused)} recipient(s) refused, a report follows" if refused else "")
            )
        return _refusal_reply(refused)

    def _judge_all(
        self,
        envelope_from: str,
        rcpts: Sequence[str],
        targets: dict[str, Conversation | BounceContext],
        parsed: ParsedMessage | None,
        raw: bytes,
        received_at: datetime,
        session_id: str,
    ) -> list[_Outcome]:
        """Runs in a worker thread: directory look-ups, then pure judging and rewriting."""
        references = parsed.thread_ids if parsed else ()
        outcomes = []
        for rcpt in rcpts:
            target = targets[rcpt]
            if isinstance(target, BounceContext):
                outcomes.append(
                    self._bounce(envelope_from, rcpt, target, parsed, raw, received_at, session_id)
                )
                continue
            conversation = replace(
                target, thread=self._directory.thread(target.pair_id, references)
            )
            try:
                entry = self._judge_one(envelope_from, rcpt, conversation, parsed, raw, received_at)
            except Exception as error:
                # Judging and rewriting are pure: the same bytes would fail again, so a
                # 451 would only make the sender retry for days. Refuse, keep, report.
                _log.error("content_error", pair_id=target.pair_id, exc_info=error)
                entry = self._unprocessable(envelope_from, rcpt, conversation, raw, received_at)
            outcomes.append(_Outcome(rcpt, target, replace(entry, session_id=session_id)))
        return outcomes

    def _judge_one(
        self,
        envelope_from: str,
        rcpt: str,
        conversation: Conversation,
        parsed: ParsedMessage | None,
        raw: bytes,
        received_at: datetime,
    ) -> ArchiveEntry:
        entry = ArchiveEntry(
            direction=conversation.direction,
            pair_id=conversation.pair_id,
            envelope_from=envelope_from,
            recipient=rcpt,
            received_at=received_at,
            raw_received=raw,
            raw_delivered=None,
            gateway_message_id=new_message_id(self._domain),
            original_message_id=parsed.message_id if parsed else None,
            reply=status.MALFORMED,
        )
        if parsed is None:
            return replace(entry, violations=(Violation("message.format", status.MALFORMED),))
        violations = judge(DATA_CHAIN, MessageContext(envelope_from, parsed, conversation))
        if not violations.passed:
            rejections = violations.rejections
            return replace(entry, reply=rejections[0].reply, violations=rejections)
        try:
            delivered = rewrite(parsed, conversation, entry.gateway_message_id, received_at)
        except LeakFound as leak:
            where = ", ".join(leak.places)
            reply = status.LEAK_REFUSED.with_details(f"Your address appears in: {where}")
            return replace(entry, reply=reply, violations=(Violation("leak.guard", reply, where),))
        token = new_alias_token()
        delivery = Delivery(
            envelope_from=bounce_address(token, self._domain),
            recipient=conversation.recipient.delivery_address,
            token=token,
        )
        return replace(entry, reply=status.QUEUED, raw_delivered=delivered, delivery=delivery)

    def _unprocessable(
        self,
        envelope_from: str,
        rcpt: str,
        conversation: Conversation,
        raw: bytes,
        received_at: datetime,
    ) -> ArchiveEntry:
        reply = status.UNPROCESSABLE
        return ArchiveEntry(
            direction=conversation.direction,
            pair_id=conversation.pair_id,
            envelope_from=envelope_from,
            recipient=rcpt,
            received_at=received_at,
            raw_received=raw,
            raw_delivered=None,
            gateway_message_id=new_message_id(self._domain),
            original_message_id=None,
            reply=reply,
            violations=(Violation("message.unprocessable", reply),),
        )

    def _bounce(
        self,
        envelope_from: str,
        rcpt: str,
        context: BounceContext,
        parsed: ParsedMessage | None,
        raw: bytes,
        received_at: datetime,
        session_id: str,
    ) -> _Outcome:
        """Archive the report; if it says the delivery failed, tell the sender in our words."""
        entry = ArchiveEntry(
            direction=Direction.BOUNCE,
            pair_id=context.pair_id,
            envelope_from=envelope_from,
            recipient=rcpt,
            received_at=received_at,
            raw_received=raw,
            raw_delivered=None,
            gateway_message_id=new_message_id(self._domain),
            original_message_id=parsed.message_id if parsed else None,
            reply=status.QUEUED,
            session_id=session_id,
        )
        report = read_report(parsed.message) if parsed else None
        if (
            report is None
            or report.action != "failed"
            or context.state == "failed"
            or not context.original_sender
        ):
            return _Outcome(rcpt, context, entry)
        code = report.status if report.status.startswith("5.") else "5.0.0"
        diagnostic = scrub_addresses(
            report.diagnostic or "the recipient's mail server returned the message",
            self._domain,
            "the recipient",
        )
        notice = failure_notice(
            alias_domain=self._domain,
            pair_id=context.pair_id,
            original_sender=context.original_sender,
            original_headers=context.original_headers,
            arrival=context.received_at,
            now=received_at,
            failed=[FailedRecipient(context.alias_written_to, code, diagnostic)],
            session_id=session_id,
        )
        failed = (context.outbound_id, f"bounced after delivery: {code} {diagnostic}")
        return _Outcome(rcpt, context, entry, notice, failed)

    def _notice(
        self,
        envelope_from: str,
        raw: bytes,
        refused: Sequence[_Outcome],
        received_at: datetime,
        session_id: str,
    ) -> ArchiveEntry:
        """Some recipients passed, others not: the sender learns which by a DSN."""
        return failure_notice(
            alias_domain=self._domain,
            pair_id=refused[0].target.pair_id,
            original_sender=envelope_from,
            original_headers=header_block(raw),
            arrival=received_at,
            now=received_at,
            failed=[
                FailedRecipient(
                    alias=o.rcpt,
                    status=o.entry.reply.enhanced,
                    diagnostic=o.entry.reply.text,
                )
                for o in refused
            ],
            session_id=session_id,
        )

    def _log_outcomes(self, outcomes: Sequence[_Outcome], ids: Sequence[int], size: int) -> None:
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


def _refusal_reply(refused: Sequence[_Outcome]) -> Reply:
    replies = list(dict.fromkeys(o.entry.reply for o in refused))
    if len(replies) == 1:
        return replies[0]
    # Different reasons for different recipients: name each one.
    return status.SOME_REFUSED.with_details(
        *(f"{o.rcpt}: {o.entry.reply.enhanced} {o.entry.reply.text}" for o in refused)
    )
