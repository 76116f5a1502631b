"""Addresses suppressed after hard bounces: listed (never shown whole) and lifted."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from gateway.cli.common import JsonFlag, app, emit, out, services_of

suppression_app = typer.Typer(
    no_args_is_help=True, help="Recipient addresses suppressed after hard bounces."
)
app.add_typer(suppression_app, name="suppression")


@suppression_app.command("list")
def suppression_list(
    ctx: typer.Context,
    everything: Annotated[
        bool, typer.Option("--all", help="Also addresses that bounced but are not suppressed.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """The suppressed addresses, latest bounce first: a reference to lift each by, the
    address masked, its hard bounces, and until when messages to it are refused."""
    with services_of(ctx, as_json) as services:
        listed = services.suppressions(everything)

    def human() -> None:
        if not listed:
            out.print("No address is suppressed.")
            return
        table = Table("ref", "address", "hard bounces", "last status", "last bounce", "until")
        for row in listed:
            until = row["suppressed_until"] or "-"
            table.add_row(
                row["ref"],
                row["address"],
                str(row["hard_bounces"]),
                row["last_status"],
                row["last_bounce_at"],
                until if row["active"] else f"{until} (over)",
            )
        out.print(table)

    emit({"suppressions": listed}, as_json, human)


@suppression_app.command("remove")
def suppression_remove(
    ctx: typer.Context,
    address: Annotated[str, typer.Argument(help="The address, or its ref from `list`.")],
    as_json: JsonFlag = False,
) -> None:
    """Lift a suppression and forget the address's bounces: messages to it are sent again."""
    with services_of(ctx, as_json) as services:
        removed = services.lift_suppression(address)
    emit(
        {"removed": removed},
        as_json,
        lambda: out.print("Lifted." if removed else "No such suppressed address."),
    )
    if not removed:
        raise typer.Exit(1)
