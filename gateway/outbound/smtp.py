"""Delivery through a smarthost with aiosmtplib."""

from __future__ import annotations

import ssl

import aiosmtplib

from gateway.core.ports import ClaimedDelivery, Outcome, SendResult


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

    async def send(self, delivery: ClaimedDelivery) -> SendResult:
        client = aiosmtplib.SMTP(
            hostname=self._host,
            port=self._port,
            timeout=self._timeout,
            local_hostname=self._helo,
            start_tls=self._starttls,
            tls_context=self._tls_context,
        )
        try:
            async with client:
                if self._username is not None:
                    await client.login(self._username, self._password or "")
                await client.sendmail(
                    delivery.envelope_from, [delivery.recipient], delivery.content
                )
        except aiosmtplib.SMTPRecipientsRefused as error:
            refusal = error.recipients[0]
            return _by_code(refusal.code, refusal.message)
        except aiosmtplib.SMTPResponseException as error:
            return _by_code(error.code, error.message)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            return SendResult(Outcome.TRANSIENT, f"4.4.1 smarthost unreachable: {error}")
        return SendResult(Outcome.DELIVERED, "accepted by smarthost")


def _by_code(code: int, message: str) -> SendResult:
    outcome = Outcome.PERMANENT if 500 <= code < 600 else Outcome.TRANSIENT
    return SendResult(outcome, f"{code} {message}")
