"""The command's skeleton: its sub-commands, consoles, and the helpers every command uses."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from gateway.obs.log import configure_logging
from gateway.services import Services
from gateway.settings import ConfigError, Settings, load_settings
from gateway.storage.migrate import SchemaError
from gateway.storage.registry import Registry, RegistryError

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="bsm-gateway: the mail gateway of a marketplace's buyer-seller messaging.",
)
seller_app = typer.Typer(no_args_is_help=True, help="Sellers and their registered mailboxes.")
buyer_app = typer.Typer(no_args_is_help=True, help="Buyers.")
order_app = typer.Typer(no_args_is_help=True, help="Orders (the first one of a pair makes it).")
pair_app = typer.Typer(no_args_is_help=True, help="Buyer-seller pairs and their aliases.")
db_app = typer.Typer(no_args_is_help=True, help="The database schema.")
dkim_app = typer.Typer(no_args_is_help=True, help="DKIM keys of the alias domain.")
message_app = typer.Typer(no_args_is_help=True, help="Archived messages.")
report_app = typer.Typer(no_args_is_help=True, help="Reports for operators and the marketplace.")
archive_app = typer.Typer(
    no_args_is_help=True, help="The archive for auditors: its signed log and its verification."
)
archive_key_app = typer.Typer(no_args_is_help=True, help="The key that signs the archive log.")
archive_app.add_typer(archive_key_app, name="key")
auditor_app = typer.Typer(
    no_args_is_help=True, help="Accounts of the auditor console (auditors and operators)."
)
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
    (message_app, "message"),
    (report_app, "report"),
    (archive_app, "archive"),
    (auditor_app, "auditor"),
):
    app.add_typer(sub, name=name)

out = Console()
err = Console(stderr=True)

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


def settings_of(ctx: typer.Context) -> Settings:
    try:
        settings = load_settings(ctx.find_root().obj)
    except ConfigError as error:
        err.print(str(error), markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    configure_logging(settings.log.level, settings.log.format)
    return settings


def fail(message: str, as_json: bool, code: int = 1) -> NoReturn:
    if as_json:
        print(json.dumps({"error": message}))
    else:
        err.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def services_of(ctx: typer.Context, as_json: bool) -> Iterator[Services]:
    """The settings' services (the database opened, its schema checked), closed after the
    command."""
    settings = settings_of(ctx)
    try:
        services = Services.open(settings)
    except SchemaError as error:
        fail(str(error), as_json)
    except Exception as error:  # the database cannot be reached or opened
        fail(f"database unavailable: {type(error).__name__}: {error}", as_json)
    try:
        yield services
    finally:
        services.close()


@contextmanager
def registry_of(ctx: typer.Context, as_json: bool) -> Iterator[Registry]:
    with services_of(ctx, as_json) as services:
        try:
            yield services.registry
        except RegistryError as error:
            fail(str(error), as_json)


def emit(result: dict[str, Any], as_json: bool, human: Callable[[], None]) -> None:
    if as_json:
        print(json.dumps(result))
    else:
        human()


def table(title: str, values: dict[str, Any]) -> Callable[[], None]:
    def show() -> None:
        table = Table(title=title, show_header=False)
        for key, value in values.items():
            table.add_row(key, str(value))
        out.print(table)

    return show


def parse_time(text: str, option: str, as_json: bool) -> datetime:
    """An ISO 8601 time with a zone ("Z" or an offset), as every time option takes it."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        fail(f"{option} {text!r} is not ISO 8601", as_json)
    if moment.tzinfo is None:
        fail(f"{option} {text!r} needs a zone, e.g. 2026-11-01T10:00:00Z", as_json)
    return moment
