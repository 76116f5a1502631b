"""Sender authentication on the MX path: DKIM (dkimpy) and SPF (pyspf), DNS through the
configured resolver. This gathers results; whether they suffice is the policy's call."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from typing import Any

import dkim
import dkim.util
import spf

from gateway.core.model import AuthCheck, SenderAuthentication
from gateway.intake.resolver import DnsTemporaryError, Resolver
from gateway.obs.log import silenced

Lookup = Callable[[str, str], list[Any]]

# pyspf looks names up through its module-level DNSLookup function. It is pointed, once,
# at _spf_lookup below, which finds the look-up of the check in progress here.
_current_lookup: contextvars.ContextVar[Lookup] = contextvars.ContextVar("spf_lookup")


def _spf_lookup(name: str, qtype: str, strict: bool = True, timeout: float = 20) -> list[Any]:
    """pyspf's DNSLookup contract: ((name, qtype), value) pairs, TempError when DNS fails."""
    try:
        records = _current_lookup.get()(name, qtype)
    except DnsTemporaryError as error:
        raise spf.TempError(f"DNS {error}") from None
    pairs: list[Any] = []
    for rdata in records:
        if qtype in ("A", "AAAA"):
            pairs.append(((name, qtype), rdata.address))
        elif qtype == "MX":
            pairs.append(((name, qtype), (rdata.preference, rdata.exchange)))
        elif qtype == "PTR":
            pairs.append(((name, qtype), rdata.target.to_text(True)))
        elif qtype in ("TXT", "SPF"):
            pairs.append(((name, qtype), rdata.strings))
    return pairs


spf.DNSLookup = _spf_lookup


class SenderVerifier:
    def __init__(self, resolver: Resolver) -> None:
        self._resolver = resolver
        # dkimpy logs each failed signature at ERROR on its own logger; the result is ours.
        self._dkim_log = silenced("gateway.dkim_verify")

    async def verify(
        self, raw: bytes, client_ip: str, helo: str, mail_from: str
    ) -> SenderAuthentication:
        loop = asyncio.get_running_loop()

        def lookup(name: str, rdtype: str) -> list[Any]:
            return self._resolver.resolve_from_thread(loop, name, rdtype)

        # dkimpy and pyspf are synchronous and CPU-bound in parts: a worker thread. The
        # context (with the look-up) goes along with it.
        _current_lookup.set(lookup)
        return await asyncio.to_thread(self._verify, raw, client_ip, helo, mail_from, lookup)

    async def verify_signatures(self, raw: bytes) -> SenderAuthentication:
        """DKIM only: a message fetched from a mailbox, whose client address (for SPF) only
        the server that received it knew."""
        loop = asyncio.get_running_loop()

        def lookup(name: str, rdtype: str) -> list[Any]:
            return self._resolver.resolve_from_thread(loop, name, rdtype)

        checks = await asyncio.to_thread(self._dkim, raw, lookup)
        return SenderAuthentication(tuple(checks))

    def _verify(
        self, raw: bytes, client_ip: str, helo: str, mail_from: str, lookup: Lookup
    ) -> SenderAuthentication:
        return SenderAuthentication(
            (*self._dkim(raw, lookup), self._spf(client_ip, helo, mail_from))
        )

    def _dkim(self, raw: bytes, lookup: Lookup) -> list[AuthCheck]:
        def txt(name: bytes, timeout: float = 5) -> bytes | None:
            records = lookup(name.decode("ascii").rstrip("."), "TXT")
            return b"".join(records[0].strings) if records else None

        try:
            message = dkim.DKIM(raw, logger=self._dkim_log, timeout=self._resolver.timeout)
        except dkim.MessageFormatError:
            return [AuthCheck("dkim", "permerror")]
        signatures = [value for name, value in message.headers if name.lower() == b"dkim-signature"]
        if not signatures:
            return [AuthCheck("dkim", "none")]
        checks = []
        for index, value in enumerate(signatures):
            try:
                tags = dkim.util.parse_tag_value(value)
            except dkim.util.InvalidTagValueList:
                checks.append(AuthCheck("dkim", "permerror"))
                continue
            domain = tags.get(b"d", b"").decode("ascii", "replace").lower()
            selector = tags.get(b"s", b"").decode("ascii", "replace")
            try:
                result = "pass" if message.verify(idx=index, dnsfunc=txt) else "fail"
            except DnsTemporaryError:
                result = "temperror"
            except dkim.DKIMException:  # a signature that cannot be checked at all
                result = "permerror"
            checks.append(AuthCheck("dkim", result, domain, selector))
        return checks

    def _spf(self, client_ip: str, helo: str, mail_from: str) -> AuthCheck:
        # RFC 7208 2.4: a null reverse-path is checked as postmaster@HELO.
        identity = mail_from or f"postmaster@{helo}"
        domain = identity.rpartition("@")[2].lower()
        try:
            query = spf.query(i=client_ip, s=identity, h=helo, timeout=self._resolver.timeout)
            result, _, _ = query.check()
        except (ValueError, spf.TempError, spf.PermError):
            result = "permerror"
        return AuthCheck("spf", result, domain, identity=identity)
