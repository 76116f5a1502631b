"""What the marketplace registers: sellers and their logins, buyers, orders, pairs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress

from gateway.admin.orders import count_rows, file_format, import_orders, read_orders
from gateway.cli.common import (
    JsonFlag,
    buyer_app,
    credential_app,
    emit,
    err,
    fail,
    order_app,
    out,
    pair_app,
    parse_time,
    registry_of,
    seller_app,
    services_of,
    table,
)
from gateway.storage.credentials import CredentialError, CredentialStore
from gateway.storage.registry import PairView

# -- registry ------------------------------------------------------------------------


@seller_app.command("add")
def seller_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The shop name buyers see.")],
    mailbox: Annotated[list[str], typer.Option("--mailbox", help="A registered mailbox.")],
    as_json: JsonFlag = False,
) -> None:
    """Register a seller with the mailboxes it may send from."""
    with registry_of(ctx, as_json) as registry:
        seller_id = registry.add_seller(name, mailbox)
    emit({"seller_id": seller_id}, as_json, lambda: out.print(f"seller {seller_id}"))


@buyer_app.command("add")
def buyer_add(
    ctx: typer.Context,
    address: Annotated[str, typer.Argument(help="The buyer's real mailbox.")],
    as_json: JsonFlag = False,
) -> None:
    """Register a buyer (registering one twice returns the same id)."""
    with registry_of(ctx, as_json) as registry:
        buyer_id, created = registry.add_buyer(address)
    emit(
        {"buyer_id": buyer_id, "created": created},
        as_json,
        lambda: out.print(f"buyer {buyer_id}" + ("" if created else " (already registered)")),
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
    placed = parse_time(placed_at, "--placed-at", as_json) if placed_at else None
    with registry_of(ctx, as_json) as registry:
        view = registry.add_order(seller, buyer, order_ref, placed)
    result = {"order_id": view.order_id, "created": view.created, **asdict(view.pair)}
    emit(result, as_json, table(f"order {view.order_id}", result))


@pair_app.command("show")
def pair_show(
    ctx: typer.Context,
    seller: Annotated[int, typer.Option("--seller", help="Seller id.")],
    buyer: Annotated[int, typer.Option("--buyer", help="Buyer id.")],
    as_json: JsonFlag = False,
) -> None:
    """Show a pair and both of its aliases."""
    with registry_of(ctx, as_json) as registry:
        _emit_pair(registry.show_pair(seller, buyer), as_json)


@contextmanager
def credentials_of(ctx: typer.Context, as_json: bool) -> Iterator[CredentialStore]:
    with services_of(ctx, as_json) as services:
        try:
            yield services.credentials
        except CredentialError as error:
            fail(str(error), as_json)


@credential_app.command("add")
def credential_add(
    ctx: typer.Context,
    seller_id: Annotated[int, typer.Argument(help="Seller id.")],
    as_json: JsonFlag = False,
) -> None:
    """Make a login for the submission ports. The password is shown now and never again."""
    with credentials_of(ctx, as_json) as credentials:
        made = credentials.add(seller_id)
    result = asdict(made)

    def human() -> None:
        table(f"submission login of seller {seller_id}", result)()
        out.print("The password is shown only now; store it in the seller's mail program.")

    emit(result, as_json, human)


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
    with credentials_of(ctx, as_json) as credentials:
        revoked = credentials.revoke(seller_id, username)
    emit(
        {"seller_id": seller_id, "revoked": revoked},
        as_json,
        lambda: out.print(f"revoked: {', '.join(revoked)}"),
    )


@pair_app.command("add")
def pair_add(
    ctx: typer.Context,
    seller: Annotated[int, typer.Option("--seller", help="Seller id.")],
    buyer: Annotated[int, typer.Option("--buyer", help="Buyer id.")],
    as_json: JsonFlag = False,
) -> None:
    """A pair before any order, so that the buyer can ask a pre-purchase question."""
    with registry_of(ctx, as_json) as registry:
        _emit_pair(registry.add_pair(seller, buyer), as_json)


@order_app.command("import")
def order_import(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="CSV with a header row, or JSON Lines.")],
    fmt: Annotated[
        str | None, typer.Option("--format", help="csv or jsonl (default: by file name).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Import orders (seller, buyer, order_ref, placed_at). Idempotent on order_ref; a bad
    row is reported with its line number and the others are imported."""
    if not file.is_file():
        fail(f"{file}: no such file", as_json)
    try:
        kind = fmt or file_format(file)
    except ValueError as error:
        fail(str(error), as_json)
    if kind not in ("csv", "jsonl"):
        fail(f"--format {kind!r}: use csv or jsonl", as_json)
    with registry_of(ctx, as_json) as registry, Progress(console=err, disable=as_json) as bar:
        task = bar.add_task(f"importing {file.name}", total=count_rows(file, kind))
        summary = import_orders(registry, read_orders(file, kind), on_row=lambda: bar.advance(task))

    def human() -> None:
        out.print(f"{summary.imported} imported, {summary.known} already known")
        for failed in summary.failed:
            err.print(f"line {failed.line}: {failed.error}", markup=False, highlight=False)

    emit(summary.as_dict(), as_json, human)
    if summary.failed:
        raise typer.Exit(1)


def _emit_pair(view: PairView, as_json: bool) -> None:
    result = asdict(view)
    emit(result, as_json, table(f"pair {view.pair_id}", result))
