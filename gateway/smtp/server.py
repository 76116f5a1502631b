"""SMTP listeners on the daemon's own event loop: the MX and the submission ports, their
TLS and AUTH, their limits, and their orderly shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
import socket
import ssl
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

from aiosmtpd.proxy_protocol import AF, V2_CMD, ProxyData
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword, TLSSetupException

from gateway.core import status
from gateway.core.model import SellerLogin
from gateway.smtp.auth import SubmissionAuth
from gateway.smtp.data import Problem, read_data
from gateway.smtp.handler import GatewayEnvelope, GatewaySession, SmtpHandler

BANNER_IDENT = "ESMTP"  # the greeting names no software and no version
_CLOSING_TIME = 2.0  # seconds a closed session's task has to end at shutdown
PROXY_HEADER_TIMEOUT = 10.0  # seconds a load balancer has to send its PROXY header

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_PATH = re.compile(
    rf"\s*<(?P<local>{_ATEXT}(?:\.{_ATEXT})*)@(?P<domain>[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>"
    r"(?:[ \t]+(?P<rest>.*))?$",
    re.DOTALL,
)


# aiosmtpd's own replies, in the gateway's words with RFC 3463 codes.
_BUILT_IN_REPLIES = {
    b"552 Error: Too much mail data": str(status.TOO_BIG).encode(),
    b"552 Error: message size exceeds fixed maximum message size": str(status.TOO_BIG).encode(),
    b"500 Line too long (see RFC5321 4.5.3.1.6)": str(status.LINE_TOO_LONG).encode(),
    b"500 Command line too long": str(status.COMMAND_TOO_LONG).encode(),
}


@dataclass(frozen=True, slots=True)
class SessionLimits:
    """What every listener enforces on its sessions."""

    hostname: str
    max_message_size: int
    idle_timeout: float
    max_commands: int
    max_sessions_per_client: int
    # Networks whose connections begin with a PROXY header naming the client (a load
    # balancer's); None: connections come straight from their clients.
    proxy_from: tuple[Network, ...] | None = None


class _TrackedSMTP(SMTP):
    """aiosmtpd's protocol with the gateway's limits and AUTH check; it remembers its open
    sessions, so that shutdown can close them and one client cannot take every slot."""

    # Text lines longer than RFC 5322's 998 octets are accepted, as Postfix does: real
    # mail has them. Commands keep aiosmtpd's own limit (512, RFC 5321 4.5.3.1.4).
    line_length_limit = 64 * 1024

    local_part_limit = 64  # RFC 5321 4.5.3.1.1

    _command_names: ClassVar[list[str]]  # what __dir__ lists, per class

    def __init__(
        self,
        listener: Listener,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._listener = listener
        self._client: str | None = None
        self._admitted = False  # aiosmtpd has the connection
        self._named_peer: tuple[str, int | None] | None = None  # by a balancer's PROXY header
        self._offered: LoginPassword | None = None
        self._unsent: list[bytes] = []  # the lines of a multi-line reply so far
        self._answering = False  # the data has ended and its reply is being worked out

    def __dir__(self) -> list[str]:
        # aiosmtpd builds its tables of commands and AUTH mechanisms on every connection
        # from dir() and inspect.getmembers(), reading every attribute and property: about
        # a tenth of the CPU with one message per session. They take only these names.
        protocol = type(self)
        names: list[str] | None = protocol.__dict__.get("_command_names")
        if names is None:
            names = sorted(n for n in dir(protocol) if n.startswith(("smtp_", "auth_")))
            protocol._command_names = names
        return names

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        # aiosmtpd reads every MAIL and RCPT address with the email package's header
        # parser; a plain <dot-atom@domain> (nearly every one) reads the same way by a pattern.
        plain = _PLAIN_PATH.match(arg)
        if plain is None or len(plain["local"]) > self.local_part_limit:
            return super()._getaddr(arg)
        return f"{plain['local']}@{plain['domain']}", plain["rest"] or ""

    async def smtp_DATA(self, arg: str) -> None:
        """aiosmtpd's DATA, with the text read in pieces (gateway.smtp.data) rather than one
        await per line; the checks before and the replies after are aiosmtpd's."""
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        handler: SmtpHandler = self.event_handler
        spool = handler.new_spool()
        try:
            try:
                limit = self.data_size_limit or 0
                text = await read_data(self._reader, limit, self.line_length_limit, spool)
            except asyncio.CancelledError:
                self._writer.close()  # the connection went away during DATA
                raise
            if text.problem is Problem.LINE_TOO_LONG:
                await self.push("500 Line too long (see RFC5321 4.5.3.1.6)")
            elif text.problem is Problem.TOO_MUCH_DATA:
                await self.push("552 Error: Too much mail data")
            if text.problem is not None:
                self._set_post_data_state()  # type: ignore[no-untyped-call]
                return
            # Taken in only while the process's budget of bytes in processing has room:
            # meanwhile the text waits in its spool, and the sender for its reply.
            self._answering = True
            async with handler.budget.hold(spool.size):
                content = spool.read()
                spool.close()
                self.envelope.content = self.envelope.original_content = content
                reply = await self._call_handler_hook("DATA")
                self._set_post_data_state()  # type: ignore[no-untyped-call]
                del content  # gone before the budget is given back
        finally:
            self._answering = False
            spool.close()
        self._reset_timeout()  # the client's idle time starts with its reply
        await self.push(reply)

    async def smtp_STARTTLS(self, arg: str) -> None:
        if self._tls_protocol is not None:
            await self.push(str(status.TLS_ALREADY_ACTIVE))
            return
        await super().smtp_STARTTLS(arg)
        if self._tls_protocol is not None and self.session.ssl is None:
            # The handshake was cut before it finished (the idle timer, a shutdown): asyncio
            # then reports it done without handing over a secured connection, and aiosmtpd
            # would go on reading a connection that is gone. End it as a failed handshake.
            raise TLSSetupException("the TLS handshake did not finish")

    def _create_session(self) -> GatewaySession:
        return GatewaySession(self.loop, self._listener.name)

    def _create_envelope(self) -> GatewayEnvelope:
        return GatewayEnvelope()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.transport is not None:  # the same session, now over TLS (STARTTLS)
            super().connection_made(transport)  # a new session, its peer the socket's
            if self._named_peer is not None and self.session is not None:
                self.session.peer = self._named_peer  # type: ignore[assignment]
            return
        assert isinstance(transport, asyncio.WriteTransport)
        peer = transport.get_extra_info("peername")
        address = peer[0] if peer else None
        proxy_from = self._listener.limits.proxy_from
        if proxy_from is not None:
            if not _within(address, proxy_from):
                transport.close()  # only a trusted load balancer may name a client
                return
            # The client is known, and counted, once the balancer's header has named it.
        elif self._refused(address, transport):
            return
        self._listener.sessions.add(self)
        self._admitted = True
        super().connection_made(transport)

    def _refused(self, client: str | None, transport: asyncio.WriteTransport) -> bool:
        """Refused before the greeting: one client cannot hold every session slot."""
        per_client = self._listener.limits.max_sessions_per_client
        if sum(1 for s in self._listener.sessions if s._client == client) >= per_client:
            transport.write(f"{status.TOO_MANY_SESSIONS}\r\n".encode())
            transport.close()
            return True
        self._client = client
        return False

    async def _call_handler_hook(self, command: str, *args: Any) -> Any:
        if command == "PROXY":
            return self._take_proxy_header(args[0])
        return await super()._call_handler_hook(command, *args)

    def _take_proxy_header(self, header: ProxyData) -> bool:
        """The client a load balancer's PROXY header names becomes the session's peer. Its
        own health checks (LOCAL, UNKNOWN) keep the balancer's address."""
        session = self.session
        assert isinstance(session, GatewaySession)
        assert isinstance(self.transport, asyncio.WriteTransport)
        if header.command != V2_CMD.LOCAL and header.family in (AF.INET, AF.INET6):
            self._named_peer = (_plain(str(header.src_addr)), header.src_port)
            # aiosmtpd's type says str; it holds the socket's peername, (address, port).
            session.peer = self._named_peer  # type: ignore[assignment]
        self._listener.sessions.discard(self)  # not to count itself
        if self._refused(session.client_address, self.transport):
            return False
        self._listener.sessions.add(self)
        return True

    def connection_lost(self, error: Exception | None) -> None:
        self._listener.sessions.discard(self)
        if self._admitted:  # a session refused before aiosmtpd saw it has nothing to end
            self._admitted = False
            super().connection_lost(error)

    async def push(self, reply: str | bytes) -> None:
        raw = reply.encode() if isinstance(reply, str) else reply
        if raw == b"250-AUTH ":
            return  # an EHLO line listing no mechanism: this listener takes no AUTH
        raw = _BUILT_IN_REPLIES.get(raw, raw)
        if raw.rpartition(b"\r\n")[2][3:4] == b"-":
            # Lines of a multi-line reply (RFC 5321 4.2.1), which the client reads only
            # once the last line has come: all of them go out in one write, not one each.
            self._unsent.append(raw)
            return
        if self._unsent:
            raw = b"\r\n".join([*self._unsent, raw])
            self._unsent.clear()
        await super().push(raw)

    def say_goodbye(self, reply: status.Reply = status.SHUTTING_DOWN) -> None:
        transport = self.transport
        assert transport is None or isinstance(transport, asyncio.WriteTransport)
        if transport is not None and not transport.is_closing():
            transport.write(f"{reply}\r\n".encode())
            transport.close()

    def abort(self) -> None:
        """Drop the connection at once, unsent replies and all."""
        for transport in (self.transport, self._original_transport):
            if transport is not None and not transport.is_closing():
                transport.abort()  # type: ignore[attr-defined]

    def _timeout_cb(self) -> None:
        if self._answering:
            # The client waits for the reply to its data: the server is the slow one (it
            # may wait its turn for the budget), and the client's own timer is the one that
            # counts (RFC 5321 4.5.3.2.6: ten minutes).
            self._reset_timeout()
            return
        # aiosmtpd just closes; a 421 first tells the client why (RFC 5321 3.8, 4.5.3.2).
        self.say_goodbye(status.IDLE_TIMEOUT)

    # -- AUTH -------------------------------------------------------------------------
    # aiosmtpd decodes PLAIN and LOGIN, then calls its authenticator synchronously. A
    # database look-up and an argon2 check must not block the event loop: the decoded
    # credentials are only taken here, and checked asynchronously in auth_PLAIN/LOGIN.

    def _authenticate(self, mechanism: str, auth_data: Any) -> AuthResult:
        self._offered = auth_data
        return AuthResult(success=False, handled=False)

    async def auth_PLAIN(self, _: Any, args: list[str]) -> AuthResult:
        if (locked := await self._lockout()) is not None:
            return locked
        return await self._check_offered(await super().auth_PLAIN(_, args))

    async def auth_LOGIN(self, _: Any, args: list[str]) -> AuthResult:
        if (locked := await self._lockout()) is not None:
            return locked
        return await self._check_offered(await super().auth_LOGIN(_, args))

    async def _lockout(self) -> AuthResult | None:
        """A locked-out client is refused before it sends its credentials."""
        auth = self._listener.auth
        if auth is not None and await auth.client_locked(self._client or ""):
            return AuthResult(success=False, handled=False, message=str(status.AUTH_LOCKED))
        return None

    async def _check_offered(self, decoded: AuthResult) -> AuthResult:
        auth = self._listener.auth
        offered, self._offered = self._offered, None
        if offered is None or auth is None:
            return decoded  # not decodable or cancelled: aiosmtpd has answered
        try:
            username = offered.login.decode("utf-8")
            password = offered.password.decode("utf-8")
        except UnicodeDecodeError:
            username, password = "", ""
        result = await auth.check(self._client or "", username, password)
        if isinstance(result, SellerLogin):
            return AuthResult(success=True, auth_data=result, message=str(status.AUTH_OK))
        return AuthResult(success=False, handled=False, message=str(result))


def _within(address: str | None, networks: tuple[Network, ...]) -> bool:
    if address is None:
        return False
    try:
        ip = ipaddress.ip_address(_plain(address).partition("%")[0])  # no IPv6 zone
    except ValueError:
        return False
    return any(ip in network for network in networks)


def _plain(address: str) -> str:
    """An IPv4 client as IPv4, however a dual-stack socket or a balancer wrote it."""
    with contextlib.suppress(ValueError):
        ip = ipaddress.ip_address(address)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
    return address


class Listener:
    """One listening socket: the MX, or a submission port (STARTTLS or implicit TLS)."""

    def __init__(
        self,
        handler: SmtpHandler,
        *,
        name: str,
        host: str,
        port: int,
        limits: SessionLimits,
        sock: socket.socket | None = None,
        tls: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
        auth: SubmissionAuth | None = None,
        auth_require_tls: bool = True,
    ) -> None:
        self.name = name
        self.limits = limits
        self.auth = auth
        self.sessions: set[_TrackedSMTP] = set()
        self._handler = handler
        self._host = host
        self._port = port
        self._tls = tls
        self._implicit_tls = implicit_tls
        self._auth_require_tls = auth_require_tls
        self._sock = sock  # bound by a parent process (several processes, one port)
        self._server: asyncio.Server | None = None

    def _protocol(self) -> _TrackedSMTP:
        limits = self.limits
        submission = self.auth is not None
        with warnings.catch_warnings():
            # Over implicit TLS every session is encrypted before its first command, which
            # aiosmtpd cannot see: it would warn that AUTH does not require TLS.
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
            return _TrackedSMTP(
                self,
                self._handler,
                hostname=limits.hostname,
                ident=BANNER_IDENT,
                data_size_limit=limits.max_message_size,
                decode_data=False,
                timeout=limits.idle_timeout,
                command_call_limit={"*": limits.max_commands},
                tls_context=None if self._implicit_tls else self._tls,
                require_starttls=submission and self._auth_require_tls and not self._implicit_tls,
                auth_required=submission,
                auth_require_tls=self._auth_require_tls and not self._implicit_tls,
                # Only AUTH PLAIN and LOGIN, and only on submission ports.
                auth_exclude_mechanism=[] if submission else ["PLAIN", "LOGIN"],
                proxy_protocol_timeout=None if limits.proxy_from is None else PROXY_HEADER_TIMEOUT,
                loop=asyncio.get_running_loop(),
            )

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        tls = self._tls if self._implicit_tls else None
        if self._sock is not None:
            self._server = await loop.create_server(self._protocol, sock=self._sock, ssl=tls)
        else:
            self._server = await loop.create_server(self._protocol, self._host, self._port, ssl=tls)

    @property
    def address(self) -> str:
        """host:port as configured, for messages."""
        return f"{self._host}:{self._port}"

    @property
    def serving(self) -> bool:
        return self._server is not None and self._server.is_serving()

    @property
    def port(self) -> int:
        """The bound port (the configured one, or the one chosen for port 0)."""
        assert self._server is not None and self._server.sockets
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def stop(self, grace: float) -> None:
        """Stop accepting; let transactions in flight commit and answer; then close."""
        if self._server is None:
            return
        self._server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._handler.intake.drained(), timeout=grace)
        sessions = list(self.sessions)
        for session in sessions:
            session.say_goodbye()
        # Each session's task ends once its connection is closed; one that does not (a
        # peer that never reads) is cut, so that no task outlives the listener.
        tasks = {s._handler_coroutine: s for s in sessions if s._handler_coroutine is not None}
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=_CLOSING_TIME)
            for task in stuck:
                tasks[task].abort()
                task.cancel()
            if stuck:
                await asyncio.wait(stuck, timeout=_CLOSING_TIME)
        await self._server.wait_closed()
        self._server = None
