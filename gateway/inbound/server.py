"""SMTP listeners on the daemon's own event loop, and their orderly shutdown."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiosmtpd.smtp import SMTP

from gateway.core import status
from gateway.inbound.handler import GatewayHandler

BANNER_IDENT = "ESMTP"  # the greeting names no software and no version


class _TrackedSMTP(SMTP):
    """aiosmtpd's protocol, remembering its open sessions so shutdown can close them."""

    def __init__(self, sessions: set[_TrackedSMTP], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._open_sessions = sessions

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._open_sessions.add(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self._open_sessions.discard(self)
        super().connection_lost(error)

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
    ) -> None:
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
            self._handler,
            hostname=self._hostname,
            ident=BANNER_IDENT,
            data_size_limit=self._max_size,
            decode_data=False,
            timeout=self._idle_timeout,
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
