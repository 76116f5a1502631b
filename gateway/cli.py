"""The bsm-gateway command: thin wrappers that parse arguments, call services and print."""

from __future__ import annotations

import asyncio
import json
import re
import smtplib
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from gateway.core.clock import SystemClock
from gateway.core.model import SigningKey
from gateway.db import migrate
from gateway.db.credentials import CredentialError, CredentialStore
from gateway.db.dkim_keys import DkimKeyError, DkimKeyStore
from gateway.db.migrate import SchemaError, open_database
from gateway.db.registry import Registry, RegistryError
from gateway.db.session import Database
from gateway.obs.log import configure_logging
from gateway.outbound.dkim import dns_record, new_private_key
from gateway.settings import ConfigError, Settings, load_settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
seller_app = typer.Typer(no_args_is_help=True, help="Sellers and their registered mailboxes.")
buyer_app = typer.Typer(no_args_is_help=True, help="Buyers.")
order_app = typer.Typer(no_args_is_help=True, help="Orders (the first one of a pair makes it).")
pair_app = typer.Typer(no_args_is_help=True, help="Buyer-seller pairs and their aliases.")
db_app = typer.Typer(no_args_is_help=True, help="The database schema.")
dkim_app = typer.Typer(no_args_is_help=True, help="DKIM keys of the alias domain.")
credential_app = typer.Typer(
    no_args_is_help=True, help="Submission logins (user name and app password) of a seller."
)
seller_app.add_typer(credential_app, name="credential")
for sub, name in (
    (seller_app, "seller"),
    (buyer_app, "buyer"),
    (order_app, "order"),
    (pair_app, "pair"),
    (db_app, "db"),
    (dkim_app, "dkim"),
):
    app.add_typer(sub, name=name)

_out = Console()
_err = Console(stderr=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


@app.callback()
def _main(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option("--config", envvar="BSM_CONFIG", help="Operator config file (TOML)."),
    ] = None,
) -> None:
    ctx.obj = config


def _settings(ctx: typer.Context) -> Settings:
    try:
        settings = load_settings(ctx.find_root().obj)
    except ConfigError as error:
        _err.print(str(error), markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    configure_logging(settings.log.level, settings.log.format)
    return settings


def _fail(message: str, as_json: bool, code: int = 1) -> NoReturn:
    if as_json:
        print(json.dumps({"error": message}))
    else:
        _err.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def _database(ctx: typer.Context, as_json: bool) -> Iterator[tuple[Database, Settings]]:
    """The database of the settings, opened (schema checked) and closed after the command."""
    settings = _settings(ctx)
    try:
        database = open_database(settings.database_url)
    except SchemaError as error:
        _fail(str(error), as_json)
    except Exception as error:  # the database cannot be reached or opened
        _fail(f"database unavailable: {type(error).__name__}: {error}", as_json)
    try:
        yield database, settings
    finally:
        database.dispose()


@contextmanager
def _registry(ctx: typer.Context, as_json: bool) -> Iterator[Registry]:
    with _database(ctx, as_json) as (database, settings):
        try:
            yield Registry(database, settings.alias_domain, SystemClock())
        except RegistryError as error:
            _fail(str(error), as_json)


def _emit(result: dict[str, Any], as_json: bool, human: Callable[[], None]) -> None:
    if as_json:
        print(json.dumps(result))
    else:
        human()


def _table(title: str, values: dict[str, Any]) -> Callable[[], None]:
    def show() -> None:
        table = Table(title=title, show_header=False)
        for key, value in values.items():
            table.add_row(key, str(value))
        _out.print(table)

    return show


# -- serve ---------------------------------------------------------------------------


@app.command()
def serve(ctx: typer.Context) -> None:
    """Run the SMTP listener and the delivery workers until SIGTERM."""
    settings = _settings(ctx)
    try:
        database = open_database(settings.database_url)
    except SchemaError as error:
        _fail(str(error), False, 2)
    from gateway.app import Gateway  # the SMTP and delivery stack: only `serve` needs it

    try:
        asyncio.run(Gateway(settings, database=database).run_until_signalled())
    except ConfigError as error:
        _fail(str(error), False, 2)


@app.command()
def check(ctx: typer.Context) -> None:
    """Health check: the SMTP listener greets and answers NOOP."""
    settings = _settings(ctx)
    # A wildcard listener is reached on loopback from inside its own host or container.
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(  # noqa: S104
        settings.smtp.host, settings.smtp.host
    )
    try:
        with smtplib.SMTP(host, settings.smtp.port, timeout=5) as client:
            code, _ = client.noop()
    except (OSError, smtplib.SMTPException) as error:
        _fail(f"SMTP listener not answering: {error}", False)
    if code != 250:
        _fail(f"SMTP listener answered NOOP with {code}", False)
    _out.print("ok")


# -- db ------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Bring the schema to the newest revision (Alembic)."""
    settings = _settings(ctx)
    database = Database.from_url(settings.database_url)
    try:
        before = migrate.current_revision(database)
        migrate.upgrade(database)
        after = migrate.current_revision(database)
    except Exception as error:
        _fail(f"upgrade failed: {type(error).__name__}: {error}", as_json)
    finally:
        database.dispose()
    _emit(
        {"from": before, "to": after},
        as_json,
        lambda: _out.print(f"schema: {before or 'empty'} -> {after}"),
    )


# -- registry ------------------------------------------------------------------------


@seller_app.command("add")
def seller_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The shop name buyers see.")],
    mailbox: Annotated[list[str], typer.Option("--mailbox", help="A registered mailbox.")],
    as_json: JsonFlag = False,
) -> None:
    """Register a seller with the mailboxes it may send from."""
    with _registry(ctx, as_json) as registry:
        seller_id = registry.add_seller(name, mailbox)
    _emit({"seller_id": seller_id}, as_json, lambda: _out.print(f"seller {seller_id}"))


@buyer_app.command("add")
def buyer_add(
    ctx: typer.Context,
    address: Annotated[str, typer.Argument(help="The buyer's real mailbox.")],
    as_json: JsonFlag = False,
) -> None:
    """Register a buyer (registering one twice returns the same id)."""
    with _registry(ctx, as_json) as registry:
        buyer_id, created = registry.add_buyer(address)
    _emit(
        {"buyer_id": buyer_id, "created": created},
        as_json,
        lambda: _out.print(f"buyer {buyer_id}" + ("" if created else " (already registered)")),
    )


@order_app.command("add")
def order_add(
    ctx: typer.Context,
    seller: Annotated[int, typer.Option("--seller", help="Seller id.")],
    buyer: Annotated[int, typer.Option("--buyer", help="Buyer id.")],
    order_ref: Annotated[str | None, typer.Option("--order-ref", help="Marketplace ref.")] = None,
    placed_at: Annotated[
        str | None, typer.Option("--placed-at", help="ISO 8601 with zone; default now.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Record an order; the first order of a buyer-seller pair creates its aliases."""
    placed = _parse_time(placed_at, as_json) if placed_at else None
    with _registry(ctx, as_json) as registry:
        view = registry.add_order(seller, buyer, order_ref, placed)
    result = {"order_id": view.order_id, "created": view.created, **asdict(view.pair)}
    _emit(result, as_json, _table(f"order {view.order_id}", result))


@pair_app.command("show")
def pair_show(
    ctx: typer.Context,
    seller: Annotated[int, typer.Option("--seller", help="Seller id.")],
    buyer: Annotated[int, typer.Option("--buyer", help="Buyer id.")],
    as_json: JsonFlag = False,
) -> None:
    """Show a pair and both of its aliases."""
    with _registry(ctx, as_json) as registry:
        view = registry.show_pair(seller, buyer)
    result = asdict(view)
    _emit(result, as_json, _table(f"pair {view.pair_id}", result))


@contextmanager
def _credentials(ctx: typer.Context, as_json: bool) -> Iterator[CredentialStore]:
    with _database(ctx, as_json) as (database, _):
        try:
            yield CredentialStore(database, SystemClock())
        except CredentialError as error:
            _fail(str(error), as_json)


@credential_app.command("add")
def credential_add(
    ctx: typer.Context,
    seller_id: Annotated[int, typer.Argument(help="Seller id.")],
    as_json: JsonFlag = False,
) -> None:
    """Make a login for the submission ports. The password is shown now and never again."""
    with _credentials(ctx, as_json) as credentials:
        made = credentials.add(seller_id)
    result = asdict(made)

    def human() -> None:
        _table(f"submission login of seller {seller_id}", result)()
        _out.print("The password is shown only now; store it in the seller's mail program.")

    _emit(result, as_json, human)


@credential_app.command("revoke")
def credential_revoke(
    ctx: typer.Context,
    seller_id: Annotated[int, typer.Argument(help="Seller id.")],
    username: Annotated[
        str | None, typer.Option("--username", help="Only this login; default: all of them.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Revoke a seller's submission logins; sessions already authenticated keep theirs."""
    with _credentials(ctx, as_json) as credentials:
        revoked = credentials.revoke(seller_id, username)
    _emit(
        {"seller_id": seller_id, "revoked": revoked},
        as_json,
        lambda: _out.print(f"revoked: {', '.join(revoked)}"),
    )


@contextmanager
def _dkim_keys(ctx: typer.Context, as_json: bool) -> Iterator[tuple[DkimKeyStore, Settings]]:
    with _database(ctx, as_json) as (database, settings):
        try:
            yield DkimKeyStore(database, SystemClock()), settings
        except DkimKeyError as error:
            _fail(str(error), as_json)


def _emit_key(key: SigningKey, keys: DkimKeyStore, domain: str, as_json: bool) -> None:
    result = {"selector": key.selector, "domain": domain, "txt": dns_record(key.private_key_pem)}
    older = [s for s in keys.selectors() if s != key.selector]

    def human() -> None:
        _out.print(f"Publish at {key.selector}._domainkey.{domain}:", highlight=False)
        _out.print(result["txt"], soft_wrap=True, highlight=False)
        if older:
            _out.print(f"Keep the records of older selectors published: {', '.join(older)}")

    _emit(result, as_json, human)


@dkim_app.command("show")
def dkim_show(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """The DNS TXT record of the active signing key (made now if there is none yet)."""
    with _dkim_keys(ctx, as_json) as (keys, settings):
        key = keys.ensure_active(settings.dkim.selector, new_private_key)
        _emit_key(key, keys, settings.alias_domain, as_json)


@dkim_app.command("keygen")
def dkim_keygen(
    ctx: typer.Context,
    selector: Annotated[str, typer.Option("--selector", help="Selector of the new key.")],
    as_json: JsonFlag = False,
) -> None:
    """Make a new key the active one. Publish its record first; keep the old ones."""
    if not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", selector):
        _fail(f"selector {selector!r}: use lowercase letters, digits and '-'", as_json)
    with _dkim_keys(ctx, as_json) as (keys, settings):
        key = keys.add(selector, new_private_key())
        _emit_key(key, keys, settings.alias_domain, as_json)


def _parse_time(text: str, as_json: bool) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        _fail(f"--placed-at {text!r} is not ISO 8601", as_json)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
