"""DNS for sender authentication: dnspython's async resolver, configured from settings."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import dns.asyncresolver
import dns.exception
import dns.resolver
from dns.rdata import Rdata


class DnsTemporaryError(Exception):
    """No answer could be had (timeout, SERVFAIL): the check must be retried later."""


class Resolver:
    def __init__(self, nameservers: Sequence[str], port: int, timeout: float) -> None:
        # With no servers given, the system's /etc/resolv.conf (which must then exist).
        self._resolver = dns.asyncresolver.Resolver(configure=not nameservers)
        if nameservers:
            self._resolver.nameservers = list(nameservers)
            self._resolver.port = port
        self._resolver.lifetime = timeout
        # Answers are kept for their TTL, as a caching resolver would: a seller's SPF record
        # and DKIM key are asked for once, not for every message.
        self._resolver.cache = dns.resolver.LRUCache(max_size=10_000)
        self.timeout = timeout

    async def resolve(self, name: str, rdtype: str) -> list[Rdata]:
        """The records of `name`; none for NXDOMAIN or an empty answer."""
        try:
            answer = await self._resolver.resolve(name, rdtype, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except (dns.exception.Timeout, dns.resolver.NoNameservers) as error:
            raise DnsTemporaryError(f"{rdtype} {name}: {error}") from None
        return list(answer)

    def resolve_from_thread(
        self, loop: asyncio.AbstractEventLoop, name: str, rdtype: str
    ) -> list[Rdata]:
        """For libraries that look names up synchronously (dkimpy, pyspf) in a worker
        thread: the look-up still runs on the event loop, through the one resolver."""
        future = asyncio.run_coroutine_threadsafe(self.resolve(name, rdtype), loop)
        try:
            return future.result(self.timeout + 5)
        except TimeoutError:
            future.cancel()
            raise DnsTemporaryError(f"{rdtype} {name}: no answer in time") from None
