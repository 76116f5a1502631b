"""The Authentication-Results field (RFC 8601) recorded on the archived original only."""

from __future__ import annotations

import authres

from gateway.core.model import AuthCheck, SenderAuthentication


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
