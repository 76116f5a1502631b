"""The alias domain's DKIM keys."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from gateway.cli.common import (
    JsonFlag,
    dkim_app,
    emit,
    fail,
    out,
    services_of,
)
from gateway.core.model import SigningKey
from gateway.delivery.dkim import dns_record, new_private_key
from gateway.settings import Settings
from gateway.storage.dkim_keys import DkimKeyError, DkimKeyStore


@contextmanager
def dkim_keys_of(ctx: typer.Context, as_json: bool) -> Iterator[tuple[DkimKeyStore, Settings]]:
    with services_of(ctx, as_json) as services:
        try:
            yield services.dkim_keys, services.settings
        except DkimKeyError as error:
            fail(str(error), as_json)


def emit_key(key: SigningKey, keys: DkimKeyStore, domain: str, as_json: bool) -> None:
    result = {"selector": key.selector, "domain": domain, "txt": dns_record(key.private_key_pem)}
    older = [s for s in keys.selectors() if s != key.selector]

    def human() -> None:
        out.print(f"Publish at {key.selector}._domainkey.{domain}:", highlight=False)
        out.print(result["txt"], soft_wrap=True, highlight=False)
        if older:
            out.print(f"Keep the records of older selectors published: {', '.join(older)}")

    emit(result, as_json, human)


@dkim_app.command("show")
def dkim_show(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """The DNS TXT record of the active signing key (made now if there is none yet)."""
    with dkim_keys_of(ctx, as_json) as (keys, settings):
        key = keys.ensure_active(settings.dkim.selector, new_private_key)
        emit_key(key, keys, settings.alias_domain, as_json)


@dkim_app.command("keygen")
def dkim_keygen(
    ctx: typer.Context,
    selector: Annotated[str, typer.Option("--selector", help="Selector of the new key.")],
    as_json: JsonFlag = False,
) -> None:
    """Make a new key the active one. Publish its record first; keep the old ones."""
    if not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", selector):
        fail(f"selector {selector!r}: use lowercase letters, digits and '-'", as_json)
    with dkim_keys_of(ctx, as_json) as (keys, settings):
        key = keys.add(selector, new_private_key())
        emit_key(key, keys, settings.alias_domain, as_json)
