"""Organizational domains (RFC 7489 3.2), from the Public Suffix List snapshot that
tldextract ships: no network."""

from __future__ import annotations

from functools import cache, lru_cache

import tldextract


@cache
def _extractor() -> tldextract.TLDExtract:
    # Read once from the bundled snapshot; never fetched, never written to a cache.
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


@lru_cache(maxsize=4096)  # the same few senders' domains, message after message
def organizational_domain(domain: str) -> str:
    """The public suffix plus one label; for a suffix the list does not know, the last two
    labels (the list's implicit "*" rule)."""
    name = domain.lower().rstrip(".")
    return registrable(name) or ".".join(name.split(".")[-2:])


def aligned(domain: str, from_domain: str) -> bool:
    """Relaxed alignment: both under the same organizational domain."""
    return bool(domain) and organizational_domain(domain) == organizational_domain(from_domain)


@lru_cache(maxsize=65536)
def registrable(host: str) -> str | None:
    """The registrable domain of a host written in a message ("shop.example.co.uk" ->
    "example.co.uk"), or None when it ends in no public suffix ("photo.jpg")."""
    parts = _extractor()(host.lower().rstrip("."))
    return f"{parts.domain}.{parts.suffix}" if parts.suffix and parts.domain else None


def within(host: str, domains: tuple[str, ...]) -> bool:
    """The host is one of `domains` or a subdomain of one."""
    name = host.lower().rstrip(".")
    return any(name == d or name.endswith("." + d) for d in domains)
