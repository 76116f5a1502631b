"""A real DNS server on 127.0.0.1 serving test zones (dnslib), and a resolver pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import dns.resolver
from dnslib import QTYPE, RCODE, RR, TXT, A
from dnslib.server import BaseResolver, DNSLogger, DNSServer

from gateway.delivery.dkim import dns_record
from gateway.storage.dkim_keys import DkimKeyStore
from tests.support.gateway import RunningGateway
from tests.support.sink import free_port


@dataclass
class Zones(BaseResolver):  # type: ignore[misc]
    """TXT and A records by owner name; names in `servfail` fail; others are NXDOMAIN."""

    txt: dict[str, list[str]] = field(default_factory=dict)
    a: dict[str, list[str]] = field(default_factory=dict)
    servfail: set[str] = field(default_factory=set)

    def resolve(self, request: Any, handler: Any) -> Any:
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        qtype = request.q.qtype
        if name in self.servfail:
            reply.header.rcode = RCODE.SERVFAIL
        elif name not in self.txt and name not in self.a:
            reply.header.rcode = RCODE.NXDOMAIN
        elif qtype == QTYPE.TXT:
            for value in self.txt.get(name, []):
                # A TXT string holds at most 255 octets: long records come in pieces.
                pieces = [value[i : i + 255] for i in range(0, len(value), 255)]
                reply.add_answer(RR(name, QTYPE.TXT, rdata=TXT(pieces), ttl=60))
        elif qtype == QTYPE.A:
            for address in self.a.get(name, []):
                reply.add_answer(RR(name, QTYPE.A, rdata=A(address), ttl=60))
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


def publish_dkim_key(gw: RunningGateway, dns: LocalDns) -> None:
    """Publish the active signing key's record, as an operator following `dkim show` would."""
    active = DkimKeyStore(gw.gateway.database, gw.gateway.clock).active()
    assert active is not None
    name = f"{active.selector}._domainkey.{gw.settings.alias_domain}"
    dns.zones.txt[name] = [dns_record(active.private_key_pem)]
