"""SMTP listeners on the daemon's own event loop, and their orderly shutdown."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiosmtpd.smtp import SMTP

from gateway.core import status
from gateway.inbound.handler import GatewayHandler

BANNER_IDENT = "ESMTP"  # the greeting names no software and no version


# aiosmtpd's own replies, in the gateway's words with RFC 3463 codes.
_BUILT_IN_REPLIES = {
    b"552 Error: Too much mail data": str(status.TOO_BIG).encode(),
    b"552 Error: message size exceeds fixed maximum message size": str(status.TOO_BIG).encode(),
    b"500 Line too long (see RFC5321 4.5.3.1.6)": str(status.LINE_TOO_LONG).encode(),
}


class _TrackedSMTP(SMTP):
    """aiosmtpd's protocol with the gateway's limits; it remembers its open sessions, so that
    shutdown can close them and one client cannot take every slot."""

    # Text lines longer than RFC 5322's 998 octets are accepted, as Postfix does: real
    # mail has them. Commands keep aiosmtpd's own limit (512, RFC 5321 4.5.3.1.4).
    line_length_limit = 64 * 1024

    local_part_limit = 64  # RFC 5321 4.5.3.1.1

    def __init__(
        self, sessions: set[_TrackedSMTP], per_client: int, *args: Any, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._open_sessions = sessions
        self._per_client = per_client
        self._client: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        self._client = peer[0] if peer else None
        if sum(1 for s in self._open_sessions if s._client == self._client) >= self._per_client:
            # Refused before the greeting: one client cannot hold every session slot.
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(f"{status.TOO_MANY_SESSIONS}\r\n".encode())
            transport.close()
            return
        self._open_sessions.add(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self in self._open_sessions:
            self._open_sessions.discard(self)
            super().connection_lost(error)

    async def push(self, reply: str | bytes) -> None:
        raw = reply.encode() if isinstance(reply, str) else reply
        await super().push(_BUILT_IN_REPLIES.get(raw, raw))

    def say_goodbye(self) -> None:
        transport = self.transport
        assert transport is None or isinstance(transport, asyncio.WriteTransport)
        if transport is not None and not transport.is_closing():
            transport.write(f"{status.SHUTTING_DOWN}\r\n".encode())
            transport.close()


class Listener:
    def __init__(
        self,
        handler: GatewayHandler,
        *,
        host: str,
        port: int,
        hostname: str,
        max_message_size: int,
        idle_timeout: float,
        max_commands: int,
        max_sessions_per_client: int,
    ) -> None:
        self._max_commands = max_commands
        self._per_client = max_sessions_per_client
        self._handler = handler
        self._host = host
        self._port = port
        self._hostname = hostname
        self._max_size = max_message_size
        self._idle_timeout = idle_timeout
        self._sessions: set[_TrackedSMTP] = set()
        self._server: asyncio.Server | None = None

    def _protocol(self) -> _TrackedSMTP:
        return _TrackedSMTP(
            self._sessions,
            self._per_client,
            self._handler,
            hostname=self._hostname,
            ident=BANNER_IDENT,
            data_size_limit=self._max_size,
            decode_data=False,
            timeout=self._idle_timeout,
            command_call_limit={"*": self._max_commands},
            loop=asyncio.get_running_loop(),
        )

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._protocol, self._host, self._port)

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
            await asyncio.wait_for(self._handler.drained(), timeout=grace)
        for session in list(self._sessions):
            session.say_goodbye()
        await self._server.wait_closed()
        self._server = None
