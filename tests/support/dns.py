"""A real DNS server on 127.0.0.1 serving test zones (dnslib), and a resolver pointed at it."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import dns.resolver
from dnslib import QTYPE, RCODE, RR, TXT
from dnslib.server import BaseResolver, DNSLogger, DNSServer

from tests.support.sink import free_port


@dataclass
class Zones(BaseResolver):  # type: ignore[misc]
    """TXT records by owner name; any other name is NXDOMAIN."""

    txt: dict[str, list[str]] = field(default_factory=dict)

    def resolve(self, request: Any, handler: Any) -> Any:
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        if name not in self.txt:
            reply.header.rcode = RCODE.NXDOMAIN
        elif request.q.qtype in (QTYPE.TXT, QTYPE.ANY):
            for value in self.txt[name]:
                # A TXT string holds at most 255 octets: long records come in pieces.
                reply.add_answer(RR(name, QTYPE.TXT, rdata=TXT(textwrap.wrap(value, 255)), ttl=60))
        return reply


@dataclass
class LocalDns:
    zones: Zones
    port: int

    def resolver(self) -> dns.resolver.Resolver:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = ["127.0.0.1"]
        resolver.port = self.port
        resolver.lifetime = 5
        return resolver

    def txt(self, name: bytes, timeout: int = 5) -> bytes:
        """dkimpy's DNS hook: the TXT record of `name`, asked of this server over UDP."""
        answer = self.resolver().resolve(name.decode().rstrip("."), "TXT")
        return b"".join(answer[0].strings)


@contextmanager
def local_dns() -> Iterator[LocalDns]:
    zones = Zones()
    port = free_port()
    quiet = DNSLogger(log="-request,-reply,-truncated,-error", prefix=False)
    servers = [
        DNSServer(zones, address="127.0.0.1", port=port, tcp=tcp, logger=quiet)
        for tcp in (False, True)
    ]
    for server in servers:
        server.start_thread()
    try:
        yield LocalDns(zones, port)
    finally:
        for server in servers:
            server.stop()
            server.server.server_close()
