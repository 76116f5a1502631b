"""The Authentication-Results field (RFC 8601) recorded on the archived original only."""

from __future__ import annotations

import authres

from gateway.core.model import AuthCheck, SenderAuthentication
from gateway.pipeline.dsn import header_block


def _result(check: AuthCheck) -> authres.BaseAuthenticationResult:
    if check.method == "dkim":
        return authres.DKIMAuthenticationResult(
            result=check.result,
            header_d=check.domain or None,
            header_s=check.selector or None,
        )
    if check.method == "spf":
        return authres.SPFAuthenticationResult(result=check.result, smtp_mailfrom=check.identity)
    return authres.SMTPAUTHAuthenticationResult(result=check.result, smtp_auth=check.identity)


def authentication_results(authentication: SenderAuthentication, authserv_id: str) -> bytes:
    """The field, folded to lines of at most 78 characters where it can be, with CRLF."""
    header = authres.AuthenticationResultsHeader(
        authserv_id=authserv_id, results=[_result(c) for c in authentication.checks]
    )
    name, _, value = str(header).partition(": ")
    parts = value.split("; ")
    lines = [f"{name}: {parts[0]};"]
    for part in parts[1:]:
        lines.append(f"\t{part};")
    lines[-1] = lines[-1].rstrip(";")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def stamp(raw: bytes, authentication: SenderAuthentication, authserv_id: str) -> bytes:
    """`raw` with the field prepended, as a receiving MTA adds it (RFC 8601 5)."""
    return authentication_results(authentication, authserv_id) + raw


def trusted_checks(raw: bytes, trusted: tuple[str, ...]) -> list[AuthCheck]:
    """The DKIM and SPF results that the servers named in `trusted` (their authserv-id)
    wrote into the message's Authentication-Results fields; the others' are ignored, as
    anyone can write the field (RFC 8601 7.2). Of each trusted server only the topmost
    field counts: the one it wrote last, above any that came with the message (RFC 8601 5
    has it remove those; this holds if it did not)."""
    if not trusted:
        return []
    wanted = {name.lower() for name in trusted}
    checks = []
    for value in _fields(header_block(raw), b"authentication-results"):
        try:
            header = authres.AuthenticationResultsHeader.parse(f"Authentication-Results: {value}")
        except Exception:  # noqa: S112  (authres raises its own errors and plain ones: unreadable)
            continue
        server = str(header.authserv_id).lower()
        if server not in wanted:
            continue
        wanted.discard(server)
        for result in header.results:
            method = str(result.method).lower()
            if method not in ("dkim", "spf"):
                continue
            properties = {f"{p.type}.{p.name}".lower(): str(p.value) for p in result.properties}
            if method == "dkim":
                domain = properties.get("header.d", "").lower()
                selector = properties.get("header.s", "")
                checks.append(AuthCheck("dkim", str(result.result).lower(), domain, selector))
            else:
                identity = properties.get("smtp.mailfrom", "")
                domain = identity.rpartition("@")[2].lower()
                checks.append(
                    AuthCheck("spf", str(result.result).lower(), domain, identity=identity)
                )
    return checks


def _fields(head: bytes, name: bytes) -> list[str]:
    """The unfolded values of the header fields called `name` (lower case), in order."""
    values: list[str] = []
    current: list[bytes] | None = None
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and current is not None:
            current.append(line)
            continue
        if current is not None:
            values.append(b" ".join(part.strip() for part in current).decode("utf-8", "replace"))
            current = None
        field, colon, rest = line.partition(b":")
        if colon and field.strip().lower() == name:
            current = [rest]
    if current is not None:
        values.append(b" ".join(part.strip() for part in current).decode("utf-8", "replace"))
    return values
