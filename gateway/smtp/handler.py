"""The aiosmtpd handler: SMTP's commands in front of the intake, and nothing else. MAIL
checks the sender's syntax (and on submission that it is the seller's own mailbox), RCPT
asks the intake where a recipient leads, DATA hands the message to the intake and answers
what it says."""

from __future__ import annotations

import asyncio
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from aiosmtpd.smtp import Envelope, Session

from gateway.core import status
from gateway.core.addresses import AddressError, parse_mailbox
from gateway.core.model import SellerLogin
from gateway.core.throttle import backoff
from gateway.intake.intake import Intake
from gateway.intake.model import Arrival, Client, Recipient, Target
from gateway.obs import maillog
from gateway.obs.log import get_logger
from gateway.smtp.spool import ByteBudget, Spool
from gateway.storage.client_failures import FailureThrottle
from gateway.storage.disk import DiskRoom

_log = get_logger("smtp")

# Refusals that say a recipient does not exist: a client collecting them is guessing
# aliases. A suppressed or an over-many recipient is no such sign. (A real alias refuses
# an unregistered sender with the same reply, and must not answer faster.)
GUESSED = frozenset({status.UNKNOWN_ALIAS, status.RELAY_DENIED})
FREE_REFUSALS = 3  # guessed recipients in a session before each further one is slowed


class GatewaySession(Session):
    """aiosmtpd's session, with what the gateway keeps about it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, listener: str) -> None:
        super().__init__(loop)
        self.listener = listener
        self.session_id = secrets.token_hex(6)
        self.rcpt_refusals = 0

    @property
    def client_address(self) -> str:
        """The client's IP address: the connection's peer, or the one a trusted load
        balancer's PROXY header named."""
        return self.peer[0] if isinstance(self.peer, tuple) and self.peer else ""

    @property
    def login(self) -> SellerLogin | None:
        """The seller authenticated in this session (submission ports), if any."""
        return self.auth_data if isinstance(self.auth_data, SellerLogin) else None


class GatewayEnvelope(Envelope):
    """aiosmtpd's envelope, with where each accepted recipient leads."""

    def __init__(self) -> None:
        super().__init__()
        self.targets: dict[str, Target] = {}


@dataclass(frozen=True, slots=True)
class HandlerLimits:
    max_recipients: int = 100
    rcpt_refusal_delay: float = 1.0  # 0: guessing is not slowed
    spool_after: int = 1 << 20  # bytes of a message kept in memory while it arrives
    spool_folder: Path | None = None  # None: the system's temporary folder


@dataclass
class SmtpHandler:
    intake: Intake
    limits: HandlerLimits = field(default_factory=HandlerLimits)
    disk: DiskRoom = field(default_factory=lambda: DiskRoom([], 0))
    # The bytes of messages being taken in at once, across this process's listeners.
    budget: ByteBudget = field(default_factory=lambda: ByteBudget(1 << 62))
    # Guessed recipients per client address, counted by every process and replica alike.
    guesses: FailureThrottle | None = None

    def new_spool(self) -> Spool:
        folder = self.limits.spool_folder or Path(tempfile.gettempdir())
        return Spool(folder, self.limits.spool_after)

    async def handle_MAIL(
        self,
        server: Any,
        session: GatewaySession,
        envelope: GatewayEnvelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        _bind(session)
        if not self.disk.has_room():
            return str(status.NO_DISK_ROOM)
        login = session.login
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
        self,
        server: Any,
        session: GatewaySession,
        envelope: GatewayEnvelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        _bind(session)
        if len(envelope.rcpt_tos) >= self.limits.max_recipients:
            maillog.recipient_refused(rule_id="rcpt.count", reply_code=452)
            reply = status.TOO_MANY_RECIPIENTS
        else:
            check = await self.intake.recipient(address, envelope.mail_from or "", session.login)
            reply = check.reply
            if check.target is not None:
                envelope.rcpt_tos.append(address)
                envelope.rcpt_options.extend(rcpt_options)
                envelope.targets[address] = check.target
                return str(reply)
        if reply in GUESSED and session.login is None and self.limits.rcpt_refusal_delay:
            await self._slow_down(session)
        return str(reply)

    async def _slow_down(self, session: GatewaySession) -> None:
        """A client guessing aliases waits longer for each refusal: past the first few of
        a session, and past the free ones of its address over all its sessions on every
        replica (reconnecting, or going to another replica, starts that count nothing
        over), doubling from the base delay."""
        session.rcpt_refusals += 1
        delay = backoff(session.rcpt_refusals, FREE_REFUSALS, self.limits.rcpt_refusal_delay)
        if self.guesses is not None:
            try:
                counted, _ = await asyncio.to_thread(
                    self.guesses.failed, [f"client:{session.client_address}"]
                )
                delay = max(delay, counted)
            except Exception as error:  # the refusal stands; only the count is lost
                _log.warning("guess_not_counted", error=type(error).__name__)
        if delay:
            await asyncio.sleep(delay)

    async def handle_DATA(
        self, server: Any, session: GatewaySession, envelope: GatewayEnvelope
    ) -> str:
        _bind(session)
        peer = session.client_address
        arrival = Arrival(
            envelope_from=envelope.mail_from or "",
            recipients=tuple(Recipient(r, envelope.targets[r]) for r in envelope.rcpt_tos),
            raw=envelope.content if isinstance(envelope.content, bytes) else b"",
            client=Client(
                listener=session.listener,
                session_id=session.session_id,
                peer=peer,
                helo=session.host_name or "",
                login=session.login,
            ),
        )
        receipt = await self.intake.accept(arrival)
        return str(receipt.reply)

    async def handle_exception(self, error: Exception) -> str:
        # aiosmtpd would answer "500 Error: ..." and tell the client never to retry.
        _log.error("unexpected_error", exc_info=error)
        return str(status.TEMPORARY_FAILURE)


def _bind(session: GatewaySession) -> None:
    structlog.contextvars.bind_contextvars(session_id=session.session_id)
