"""Delivery through a smarthost with aiosmtplib, reusing connections between messages."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time

import aiosmtplib

from gateway.delivery.transport import Outcome, SendResult
from gateway.storage.queue import ClaimedDelivery

# An idle connection older than this is closed rather than reused (servers drop idle
# sessions after a while; RFC 5321 4.5.3.2.7 allows 5 minutes).
IDLE_REUSE_SECONDS = 30.0
MAX_IDLE_CONNECTIONS = 16

_GONE = (aiosmtplib.SMTPServerDisconnected, ConnectionError)


class SmtpTransport:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        timeout: float,
        helo_name: str,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._timeout = timeout
        self._helo = helo_name
        self._username = username
        self._password = password
        self._starttls = starttls
        self._tls_context = tls_context
        self._idle: list[tuple[float, aiosmtplib.SMTP]] = []

    async def send(self, delivery: ClaimedDelivery) -> SendResult:
        client: aiosmtplib.SMTP | None = None
        try:
            # One bound for the whole attempt: aiosmtplib's own per-command timeout would
            # wrap every reply it waits for in a timer task of its own.
            async with asyncio.timeout(self._timeout):
                client = await self._session_for(delivery)
                await client.rcpt(delivery.recipient)
                await client.data(delivery.content)
        except aiosmtplib.SMTPResponseException as error:
            _close(client)
            return _by_code(error.code, error.message)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            _close(client)
            return SendResult(Outcome.TRANSIENT, f"4.4.1 smarthost unreachable: {error}")
        self._release(client)
        return SendResult(Outcome.DELIVERED, "accepted by smarthost")

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for _, client in idle:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
                async with asyncio.timeout(self._timeout):
                    await client.quit()

    async def _session_for(self, delivery: ClaimedDelivery) -> aiosmtplib.SMTP:
        """A connection with MAIL FROM accepted: an idle one if it is still alive."""
        while self._idle:
            since, client = self._idle.pop()
            if time.monotonic() - since > IDLE_REUSE_SECONDS:
                _close(client)
                continue
            try:
                await client.mail(delivery.envelope_from)
                return client
            except _GONE:
                # Dropped while idle: nothing of this message was sent on it.
                _close(client)
        client = aiosmtplib.SMTP(
            hostname=self._host,
            port=self._port,
            timeout=None,  # send() bounds the attempt
            local_hostname=self._helo,
            start_tls=self._starttls,
            tls_context=self._tls_context,
        )
        await client.connect()
        if self._username is not None:
            await client.login(self._username, self._password or "")
        await client.mail(delivery.envelope_from)
        return client

    def _release(self, client: aiosmtplib.SMTP) -> None:
        if len(self._idle) < MAX_IDLE_CONNECTIONS:
            self._idle.append((time.monotonic(), client))
        else:
            client.close()


def _close(client: aiosmtplib.SMTP | None) -> None:
    if client is not None and client.is_connected:
        client.close()


def _by_code(code: int, message: str) -> SendResult:
    outcome = Outcome.PERMANENT if 500 <= code < 600 else Outcome.TRANSIENT
    return SendResult(outcome, f"{code} {message}")
