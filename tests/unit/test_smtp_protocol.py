"""The SMTP adapter's protocol lists only its commands and AUTH mechanisms in dir(), so that
aiosmtpd's per-connection introspection is cheap: its tables must stay what aiosmtpd builds
from the full dir()."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.smtp.server import _TrackedSMTP


class _FullDir(_TrackedSMTP):
    def __dir__(self) -> list[str]:
        return list(object.__dir__(self))


class _Handler:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 OK"


@pytest.mark.parametrize("excluded", [[], ["PLAIN", "LOGIN"]])
async def test_command_and_auth_tables_are_aiosmtpds(excluded: list[str]) -> None:
    def tables(protocol_class: type[_TrackedSMTP]) -> tuple[set[str], set[str], set[str]]:
        protocol = protocol_class(
            None,  # type: ignore[arg-type]  # the listener is not used to build the tables
            _Handler(),
            hostname="mx.test",
            auth_require_tls=False,
            auth_exclude_mechanism=excluded,
        )
        return (
            set(protocol._smtp_methods),
            set(protocol._auth_methods),
            set(protocol._handle_hooks),
        )

    cheap, full = tables(_TrackedSMTP), tables(_FullDir)
    assert cheap == full
    assert {"EHLO", "MAIL", "RCPT", "DATA", "AUTH", "STARTTLS", "QUIT"} <= cheap[0]
    assert cheap[1] == ({"PLAIN", "LOGIN"} - set(excluded))
